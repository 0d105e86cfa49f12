"""Windows Server 2003 SP1 x86 (PDB ntkrnlmp), the Windows Research Kernel v1.2 generation.

2-level paging, 4-byte PTEs. Unlike Win7, WRK x86 carves system space into fixed regions;
the values are the mi386.h / data386.c defaults (nt-structures.md §12) unless a comment
says "kdsim choice" (for what WRK sizes at boot from the amount of RAM).
"""
from .model import AddressSpace, KernelVersion, Profile, SelfMap

PROFILE = Profile(
    name="wrk-x86",
    description="Windows Server 2003 SP1 x86 (ntoskrnl.exe, PDB ntkrnlmp, 5.2.3790), WRK v1.2",
    pointer_size=4,
    paging_mode="x86",
    types_resource="wrk_x86.types.json",
    self_map=SelfMap(
        index=0x300,
        pte_base=0xC0000000,
        pde_base=0xC0300000,
    ),
    address_space=AddressSpace(
        highest_user_address=0x7FFEFFFF,            # KSEG0_BASE - 0x10000 - 1
        user_probe_address=0x7FFF0000,
        system_range_start=0x80000000,
        shared_user_data_va=0xFFDF0000,
        hyper_space_start=0xC0400000,               # HYPER_SPACE
        hyper_space_end=0xC07FFFFF,                 # HYPER_SPACE_END
        # The Server 2003 !wsle sample (windbg-formats D-7) shows "Working Set @ c0503000"
        # and, among its locked entries, c0502000 -- the VAD bitmap page, below the list.
        working_set_list=0xC0503000,
        vad_bitmap=0xC0502000,
        system_cache_working_set=0xC0C00000,        # MM_SYSTEM_CACHE_WORKING_SET
        kseg0_base=0x80000000,                      # MM_KSEG0_BASE
        kernel_base=0x80800000,                     # kdsim choice: 2003's usual nt base
        pfn_database=0x81000000,                    # kdsim choice: KSEG0 | a 16 MB MmBootImageSize
        # kdsim choice: pool sits below MM_NONPAGED_POOL_END (0xFFBE0000, exclusive).
        nonpaged_pool_start=0xFB000000,
        nonpaged_pool_end=0xFFBDFFFF,
        paged_pool_start=0xE1000000,                # MM_DEFAULT_PAGED_POOL_START
        paged_pool_end=0xEAFFFFFF,                  # kdsim choice: up to the system PTEs
        system_pte_start=0xEB000000,                # MM_LOWEST_NONPAGED_SYSTEM_START
        system_pte_end=0xFAFFFFFF,                  # kdsim choice
        system_cache_start=0xC1000000,              # MM_SYSTEM_CACHE_START
        system_cache_end=0xE0FFFFFF,                # MM_SYSTEM_CACHE_END (0xE1000000) - 1
        # [D] WRK MiInitializeSessionSpaceLayout: MmSessionBase = session pool start,
        # 0xBD000000 in the mi.h layout, up to MM_SESSION_SPACE_DEFAULT_END (0xC0000000).
        session_space_start=0xBD000000,
        session_space_end=0xBFFFFFFF,
        nonpaged_system_start=0xEB000000,           # MmNonPagedSystemStart default
        hal_reserved_start=0xFFC00000,
        system_cache_end_extra=0xC0000000,          # MiSystemCacheEndExtra default
    ),
    version=KernelVersion(
        product_name="Windows Server 2003",
        major=5,
        minor=2,
        build=3790,
        qfe=1830,                                   # 5.2.3790.1830 is Server 2003 SP1 RTM
        service_pack=1,
        csd_version="Service Pack 1",
        # kdsim choice: the SP1 RTM lab tag; the reference has no 2003 `vertarget` sample.
        build_lab="3790.srv03_sp1_rtm.050324-1447",
        product_type="Server",                      # kdsim choice: a member server, not a DC
        suite="TerminalServer SingleUserTS",
        platform="x86 compatible",
        machine_type=0x014C,                        # IMAGE_FILE_MACHINE_I386
        kernel_image="ntoskrnl.exe",
        pdb_name="ntkrnlmp",
        kdbg_size=0x318,
    ),
)
