"""Windows 7 SP1 x64 (6.1.7601, ntoskrnl.exe / PDB ntkrnlmp): kdsim's default target.

Values from nt-structures.md §2.3 (WRK amd64.h / miamd.h and CodeMachine's Win7 x64 VA
table) unless a comment says "kdsim choice": those are marked [I]/[D] in the reference or
are dynamic on a real system, and kdsim fixes them so that every run is identical.
"""
from .model import AddressSpace, KernelVersion, Profile, SelfMap

PROFILE = Profile(
    name="win7-x64",
    description="Windows 7 SP1 x64 (ntoskrnl.exe, PDB ntkrnlmp, 6.1.7601)",
    pointer_size=8,
    paging_mode="x64",
    types_resource="win7_x64.types.json",
    self_map=SelfMap(
        index=0x1ED,                                  # WRK miamd.h: PML4[0x1ED] maps the PML4
        pte_base=0xFFFFF68000000000,
        pde_base=0xFFFFF6FB40000000,
        ppe_base=0xFFFFF6FB7DA00000,
        pxe_base=0xFFFFF6FB7DBED000,
    ),
    address_space=AddressSpace(
        highest_user_address=0x000007FFFFFEFFFF,
        user_probe_address=0x000007FFFFFF0000,
        system_range_start=0xFFFF080000000000,
        shared_user_data_va=0xFFFFF78000000000,     # PML4 index 0x1EF
        hyper_space_start=0xFFFFF70000000000,       # PML4 index 0x1EE
        hyper_space_end=0xFFFFF77FFFFFFFFF,
        working_set_list=0xFFFFF70001080000,        # kdsim choice: the reference's [I] Win7 value
        system_cache_working_set=0xFFFFF78000001000,
        kseg0_base=0xFFFFF80000000000,
        kernel_base=0xFFFFF80002A1F000,             # kdsim choice: fffff800`02xxx000 [I]
        pfn_database=0xFFFFFA8000000000,
        # kdsim choice: pool starts after a PFN database big enough for a 4 GB guest
        # (0x30 bytes x 1M pages), giving the usual fffffa80`0xxxxxxx object addresses.
        nonpaged_pool_start=0xFFFFFA8003000000,
        nonpaged_pool_end=0xFFFFFAFFFFFFFFFF,       # kdsim choice: 512 GB from MmPfnDatabase [D]
        paged_pool_start=0xFFFFF8A000000000,
        paged_pool_end=0xFFFFF8BFFFFFFFFF,
        system_pte_start=0xFFFFF88000000000,
        system_pte_end=0xFFFFF89FFFFFFFFF,
        system_cache_start=0xFFFFF98000000000,      # the 1 TB dynamic kernel VA region
        system_cache_end=0xFFFFFA7FFFFFFFFF,        # kdsim choice: CM's end read as …A7F… [D]
        session_space_start=0xFFFFF90000000000,
        session_space_end=0xFFFFF97FFFFFFFFF,
        nonpaged_system_start=0xFFFFF88000000000,   # kdsim choice: start of system PTE space
        hal_reserved_start=0xFFFFFFFFFFC00000,
    ),
    version=KernelVersion(
        product_name="Windows 7",
        major=6,
        minor=1,
        build=7601,
        qfe=17514,
        service_pack=1,
        csd_version="Service Pack 1",
        build_lab="7601.17514.amd64fre.win7sp1_rtm.101119-1850",
        product_type="WinNt",
        suite="TerminalServer SingleUserTS",
        platform="x64",
        machine_type=0x8664,                        # IMAGE_FILE_MACHINE_AMD64
        kernel_image="ntoskrnl.exe",
        pdb_name="ntkrnlmp",
        kdbg_size=0x340,
    ),
)
