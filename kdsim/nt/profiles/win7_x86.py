"""Windows 7 SP1 x86 without PAE (ntoskrnl.exe / PDB ntkrnlmp): 2-level paging, 4-byte PTEs.

Values from nt-structures.md §2.2 unless a comment says "kdsim choice". Win7's 32-bit
system VA is dynamic (MiInitializeDynamicVa), so the pool, PTE, cache and session ranges
are kdsim's fixed picks, the same as win7-x86pae's.
"""
from .model import AddressSpace, KernelVersion, Profile, SelfMap

PROFILE = Profile(
    name="win7-x86",
    description="Windows 7 SP1 x86 non-PAE (ntoskrnl.exe, PDB ntkrnlmp, 6.1.7601)",
    pointer_size=4,
    paging_mode="x86",
    types_resource="win7_x86.types.json",
    self_map=SelfMap(
        index=0x300,                    # PD[0x300] (0xC0300C00) maps the PD itself
        pte_base=0xC0000000,
        pde_base=0xC0300000,
    ),
    address_space=AddressSpace(
        highest_user_address=0x7FFEFFFF,
        user_probe_address=0x7FFF0000,
        system_range_start=0x80000000,
        shared_user_data_va=0xFFDF0000,
        hyper_space_start=0xC0400000,
        hyper_space_end=0xC07FFFFF,
        working_set_list=0xC0502000,                # [D] HYPER_SPACE + 255 + 3 pages (ROS)
        system_cache_working_set=0xC0C00000,        # kdsim choice: the WRK value
        kseg0_base=0x80000000,
        kernel_base=0x82A1F000,                     # kdsim choice: "~0x82a1x000" [O]
        pfn_database=0x84000000,                    # kdsim choice: the PAE transcript's value
        nonpaged_pool_start=0x86000000,             # kdsim choice (dynamic on Win7)
        nonpaged_pool_end=0x88FFFFFF,               # kdsim choice
        paged_pool_start=0x89000000,                # kdsim choice
        paged_pool_end=0x8FFFFFFF,                  # kdsim choice
        system_pte_start=0x90000000,                # kdsim choice
        system_pte_end=0x97FFFFFF,                  # kdsim choice
        system_cache_start=0xA0000000,              # kdsim choice
        system_cache_end=0xBFFFFFFF,                # kdsim choice
        session_space_start=0x98000000,             # kdsim choice
        session_space_end=0x9FFFFFFF,               # kdsim choice
        nonpaged_system_start=0x90000000,           # kdsim choice: start of system PTE space
        hal_reserved_start=0xFFC00000,
    ),
    version=KernelVersion(
        product_name="Windows 7",
        major=6,
        minor=1,
        build=7601,
        qfe=17514,
        service_pack=1,
        csd_version="Service Pack 1",
        build_lab="7601.17514.x86fre.win7sp1_rtm.101119-1850",
        product_type="WinNt",
        suite="TerminalServer SingleUserTS",
        platform="x86 compatible",
        machine_type=0x014C,                        # IMAGE_FILE_MACHINE_I386
        kernel_image="ntoskrnl.exe",
        pdb_name="ntkrnlmp",
        kdbg_size=0x340,
    ),
)
