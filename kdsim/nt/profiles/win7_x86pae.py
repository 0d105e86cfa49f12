"""Windows 7 SP1 x86 with PAE (ntkrnlpa.exe / PDB ntkrpamp): 3-level paging, 8-byte PTEs.

The structure layouts come from build 6.1.7601.24000 (no RTM-SP1 PAE dump is public; see
the types data). Values from nt-structures.md §2.2 unless a comment says "kdsim choice".
Win7's 32-bit system VA is dynamic (MiInitializeDynamicVa), so the pool, PTE, cache and
session ranges here are kdsim's fixed picks, the same as win7-x86's.
"""
from .model import AddressSpace, KernelVersion, Profile, SelfMap

PROFILE = Profile(
    name="win7-x86pae",
    description="Windows 7 SP1 x86 PAE (ntkrnlpa.exe, PDB ntkrpamp, layouts of 6.1.7601.24000)",
    pointer_size=4,
    paging_mode="pae",
    types_resource="win7_x86pae.types.json",
    self_map=SelfMap(
        index=0x600,                    # PDEs 0x600..0x603 (0xC0603000..18) map the 4 PDs
        pte_base=0xC0000000,
        pde_base=0xC0600000,
    ),
    address_space=AddressSpace(
        highest_user_address=0x7FFEFFFF,
        user_probe_address=0x7FFF0000,
        system_range_start=0x80000000,
        shared_user_data_va=0xFFDF0000,
        hyper_space_start=0xC0800000,               # kdsim choice: PTE_TOP + 1, as on x86 [I]
        hyper_space_end=0xC0BFFFFF,                 # kdsim choice: 4 MB, as on x86
        working_set_list=0xC0802000,                # kdsim choice: the reference's [I] value
        system_cache_working_set=0xC0C00000,        # kdsim choice: the WRK value
        kseg0_base=0x80000000,
        kernel_base=0x82A1F000,                     # kdsim choice: "~0x82a1x000" [O]
        pfn_database=0x84000000,                    # [D] from a 7601 PAE !pfn transcript
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
        # kdsim choice: report the RTM-SP1 kernel that tutorials show, although the
        # layouts are those of the .24000 update (they match RTM except as noted there).
        qfe=17514,
        service_pack=1,
        csd_version="Service Pack 1",
        build_lab="7601.17514.x86fre.win7sp1_rtm.101119-1850",
        product_type="WinNt",
        suite="TerminalServer SingleUserTS",
        platform="x86 compatible",
        machine_type=0x014C,                        # IMAGE_FILE_MACHINE_I386
        kernel_image="ntkrnlpa.exe",
        pdb_name="ntkrpamp",
        kdbg_size=0x340,
    ),
)
