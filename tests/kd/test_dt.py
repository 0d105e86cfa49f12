"""dt: type views with WinDbg's columns and type names, instance views with its value
formats, field selection, recursion, wildcards and errors -- and the rule that what dt
prints is what the memory manager wrote (checked against raw physical reads)."""
import re

import pytest

import kdsim
from kdsim.nt.types import TypeSystem

X64_SYSTEM = 0xFFFFFA8003000290        # the System EPROCESS, scenario "none", 256 MB
X86_SYSTEM = 0x860001A0


def lines(*text):
    return "".join(t + "\n" for t in text)


def run(booted, command):
    return booted.debugger.execute(command)


@pytest.fixture(scope="module")
def x64_default():
    return kdsim.boot("win7-x64", ram="256m", scenario="default")


@pytest.fixture(scope="module")
def x86_default():
    return kdsim.boot("win7-x86", ram="256m", scenario="default")


def test_fixture_addresses_are_the_system_processes(x64, x86):
    assert x64.nt.system_process == X64_SYSTEM == x64.nt.processes[0]
    assert x86.nt.system_process == X86_SYSTEM == x86.nt.processes[0]


# -- type view --------------------------------------------------------------------------

MMPTE_HARDWARE_X64 = lines(
    "   +0x000 Valid            : Pos 0, 1 Bit",
    "   +0x000 Dirty1           : Pos 1, 1 Bit",
    "   +0x000 Owner            : Pos 2, 1 Bit",
    "   +0x000 WriteThrough     : Pos 3, 1 Bit",
    "   +0x000 CacheDisable     : Pos 4, 1 Bit",
    "   +0x000 Accessed         : Pos 5, 1 Bit",
    "   +0x000 Dirty            : Pos 6, 1 Bit",
    "   +0x000 LargePage        : Pos 7, 1 Bit",
    "   +0x000 Global           : Pos 8, 1 Bit",
    "   +0x000 CopyOnWrite      : Pos 9, 1 Bit",
    "   +0x000 Unused           : Pos 10, 1 Bit",
    "   +0x000 Write            : Pos 11, 1 Bit",
    "   +0x000 PageFrameNumber  : Pos 12, 36 Bits",
    "   +0x000 reserved1        : Pos 48, 4 Bits",
    "   +0x000 SoftwareWsIndex  : Pos 52, 11 Bits",
    "   +0x000 NoExecute        : Pos 63, 1 Bit")

MMPTE_HARDWARE_X86 = lines(
    "   +0x000 Valid            : Pos 0, 1 Bit",
    "   +0x000 Dirty1           : Pos 1, 1 Bit",
    "   +0x000 Owner            : Pos 2, 1 Bit",
    "   +0x000 WriteThrough     : Pos 3, 1 Bit",
    "   +0x000 CacheDisable     : Pos 4, 1 Bit",
    "   +0x000 Accessed         : Pos 5, 1 Bit",
    "   +0x000 Dirty            : Pos 6, 1 Bit",
    "   +0x000 LargePage        : Pos 7, 1 Bit",
    "   +0x000 Global           : Pos 8, 1 Bit",
    "   +0x000 CopyOnWrite      : Pos 9, 1 Bit",
    "   +0x000 Unused           : Pos 10, 1 Bit",
    "   +0x000 Write            : Pos 11, 1 Bit",
    "   +0x000 PageFrameNumber  : Pos 12, 20 Bits")


def test_dt_mmpte_hardware_with_module_prints_no_type_line(x64, x86):
    assert run(x64, "dt nt!_MMPTE_HARDWARE") == MMPTE_HARDWARE_X64
    assert run(x86, "dt nt!_MMPTE_HARDWARE") == MMPTE_HARDWARE_X86


def test_dt_without_module_first_names_the_type_it_found(x64, x86):
    assert run(x64, "dt _MMPTE_HARDWARE") == "nt!_MMPTE_HARDWARE\n" + MMPTE_HARDWARE_X64
    assert run(x86, "dt _mmpte_hardware") == "nt!_MMPTE_HARDWARE\n" + MMPTE_HARDWARE_X86


def test_dt_mmpte_hardware_on_pae_has_64_bit_fields():
    m = kdsim.boot("win7-x86pae", ram="256m", scenario="none")
    out = run(m, "dt nt!_MMPTE_HARDWARE").splitlines()
    assert out[-2:] == ["   +0x000 PageFrameNumber  : Pos 12, 26 Bits",
                        "   +0x000 reserved1        : Pos 38, 26 Bits"]


def test_dt_mmpfn_type_view_x64(x64):
    assert run(x64, "dt _MMPFN") == lines(
        "nt!_MMPFN",
        "   +0x000 u1               : <unnamed-tag>",
        "   +0x008 u2               : <unnamed-tag>",
        "   +0x010 PteAddress       : Ptr64 _MMPTE",
        "   +0x010 VolatilePteAddress : Ptr64 Void",
        "   +0x010 Lock             : Int4B",
        "   +0x010 PteLong          : Uint8B",
        "   +0x018 u3               : <unnamed-tag>",
        "   +0x01c UsedPageTableEntries : Uint2B",
        "   +0x01e VaType           : UChar",
        "   +0x01f ViewCount        : UChar",
        "   +0x020 OriginalPte      : _MMPTE",
        "   +0x020 AweReferenceCount : Int4B",
        "   +0x028 u4               : <unnamed-tag>")


def test_dt_eprocess_type_view_names_pointers_arrays_unions_and_base_types(x64, x86):
    out64 = run(x64, "dt nt!_EPROCESS").splitlines()
    for line in ("   +0x000 Pcb              : _KPROCESS",
                 "   +0x180 UniqueProcessId  : Ptr64 Void",
                 "   +0x188 ActiveProcessLinks : _LIST_ENTRY",
                 "   +0x198 ProcessQuotaUsage : [2] Uint8B",
                 "   +0x1f8 ExceptionPortState : Pos 0, 3 Bits",
                 "   +0x200 ObjectTable      : Ptr64 _HANDLE_TABLE",
                 "   +0x2e0 ImageFileName    : [15] UChar",
                 "   +0x334 LastThreadExitStatus : Int4B",
                 "   +0x440 AddressSpaceInitialized : Pos 10, 2 Bits",
                 "   +0x448 VadRoot          : _MM_AVL_TABLE"):
        assert line in out64
    out86 = run(x86, "dt nt!_EPROCESS").splitlines()
    assert "   +0x0b4 UniqueProcessId  : Ptr32 Void" in out86
    assert "   +0x16c ImageFileName    : [15] UChar" in out86
    kprocess = run(x86, "dt nt!_KPROCESS").splitlines()
    assert "   +0x060 BasePriority     : Char" in kprocess
    shared = run(x64, "dt nt!_KUSER_SHARED_DATA").splitlines()
    assert "   +0x030 NtSystemRoot     : [260] Wchar" in shared
    assert "   +0x264 NtProductType    : _NT_PRODUCT_TYPE" in shared
    peb = run(x64, "dt nt!_PEB").splitlines()
    assert "   +0x230 PostProcessInitRoutine : Ptr64     void " in peb
    assert "   +0x0f0 ProcessHeaps     : Ptr64 Ptr64 Void" in peb


_BOOTED = {}


def _booted(target):
    """One machine per target for the layout checks (booting takes a fraction of a second)."""
    if target not in _BOOTED:
        _BOOTED[target] = kdsim.boot(target, ram="256m", scenario="none")
    return _BOOTED[target]


TYPE_LINE = re.compile(r"   \+0x([0-9a-f]{3,}) (\S+)( *) : (.*)$")


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"])
@pytest.mark.parametrize("type_name", ["_EPROCESS", "_MMPFN", "_MMVAD"])
def test_type_view_lists_every_member_of_the_layout_at_its_offset(target, type_name):
    ts = TypeSystem(target)
    m = _booted(target)
    rows = []
    for line in run(m, f"dt nt!{type_name}").splitlines():
        found = TYPE_LINE.match(line)
        assert found, line
        offset, name, pad, text = found.groups()
        assert len(name) + len(pad) == max(16, len(name))       # names padded to 16
        rows.append((int(offset, 16), name, text))
    layout = ts.get_type(type_name).members
    assert rows == [(mb.offset, mb.name, mb.type.dt_text()) for mb in layout]
    for mb in layout:                                  # the offsets are the type system's
        assert ts.offset_of(type_name, mb.name) == mb.offset



def test_dt_recursion_in_type_view(x64):
    assert run(x64, "dt nt!_MMPTE -r1") == lines(
        "   +0x000 u                : <unnamed-tag>",
        "      +0x000 Long             : Uint8B",
        "      +0x000 VolatileLong     : Uint8B",
        "      +0x000 Hard             : _MMPTE_HARDWARE",
        "      +0x000 Flush            : _HARDWARE_PTE",
        "      +0x000 Proto            : _MMPTE_PROTOTYPE",
        "      +0x000 Soft             : _MMPTE_SOFTWARE",
        "      +0x000 TimeStamp        : _MMPTE_TIMESTAMP",
        "      +0x000 Trans            : _MMPTE_TRANSITION",
        "      +0x000 Subsect          : _MMPTE_SUBSECTION",
        "      +0x000 List             : _MMPTE_LIST")
    deeper = run(x64, "dt nt!_MMPTE -r2").splitlines()
    assert deeper[3:6] == ["      +0x000 Hard             : _MMPTE_HARDWARE",
                           "         +0x000 Valid            : Pos 0, 1 Bit",
                           "         +0x000 Dirty1           : Pos 1, 1 Bit"]
    assert run(x64, "dt nt!_MMPTE -r") == run(x64, "dt nt!_MMPTE -r2")
    assert max(len(x) - len(x.lstrip()) for x in deeper) == 9


def test_enum_type_lists_its_values(x64):
    assert run(x64, "dt nt!_MMLISTS") == lines(
        "   ZeroedPageList = 0n0", "   FreePageList = 0n1", "   StandbyPageList = 0n2",
        "   ModifiedPageList = 0n3", "   ModifiedNoWritePageList = 0n4",
        "   BadPageList = 0n5", "   ActiveAndValid = 0n6", "   TransitionPage = 0n7")


# -- wildcards --------------------------------------------------------------------------

def test_wildcard_lists_matching_types_under_the_pdb_name(x64):
    assert run(x64, "dt nt!_MMPTE*") == lines(
        "          ntkrnlmp!_MMPTE", "          ntkrnlmp!_MMPTE_HARDWARE",
        "          ntkrnlmp!_MMPTE_LIST", "          ntkrnlmp!_MMPTE_PROTOTYPE",
        "          ntkrnlmp!_MMPTE_SOFTWARE", "          ntkrnlmp!_MMPTE_SUBSECTION",
        "          ntkrnlmp!_MMPTE_TIMESTAMP", "          ntkrnlmp!_MMPTE_TRANSITION")
    assert run(x64, "dt _mmpte_s*") == lines(
        "          ntkrnlmp!_MMPTE_SOFTWARE", "          ntkrnlmp!_MMPTE_SUBSECTION")
    assert run(x64, "dt -y nt!_MMPTE_S") == run(x64, "dt _mmpte_s*")
    assert run(x64, "dt nt!_NOSUCH*") == ""


def test_wildcard_on_pae_names_its_own_pdb():
    m = kdsim.boot("win7-x86pae", ram="256m", scenario="none")
    assert run(m, "dt nt!_MMPTE_HA*") == "          ntkrpamp!_MMPTE_HARDWARE\n"


# -- instance view ----------------------------------------------------------------------

EPROCESS_SYSTEM_X64 = "".join(l + "\n" for l in [
    '   +0x000 Pcb              : _KPROCESS',
    '   +0x160 ProcessLock      : _EX_PUSH_LOCK',
    '   +0x168 CreateTime       : _LARGE_INTEGER 0x01cbd2a8`f5a2c000',
    '   +0x170 ExitTime         : _LARGE_INTEGER 0x0',
    '   +0x178 RundownProtect   : _EX_RUNDOWN_REF',
    '   +0x180 UniqueProcessId  : 0x00000000`00000004 Void',
    '   +0x188 ActiveProcessLinks : _LIST_ENTRY [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]',
    '   +0x198 ProcessQuotaUsage : [2] 0',
    '   +0x1a8 ProcessQuotaPeak : [2] 0',
    '   +0x1b8 CommitCharge     : 0',
    '   +0x1c0 QuotaBlock       : (null) ',
    '   +0x1c8 CpuQuotaBlock    : (null) ',
    '   +0x1d0 PeakVirtualSize  : 0',
    '   +0x1d8 VirtualSize      : 0',
    '   +0x1e0 SessionProcessLinks : _LIST_ENTRY [ 0x00000000`00000000 - 0x00000000`00000000 ]',
    '   +0x1f0 DebugPort        : (null) ',
    '   +0x1f8 ExceptionPortData : (null) ',
    '   +0x1f8 ExceptionPortValue : 0',
    '   +0x1f8 ExceptionPortState : 0y000',
    '   +0x200 ObjectTable      : (null) ',
    '   +0x208 Token            : _EX_FAST_REF',
    '   +0x210 WorkingSetPage   : 0',
    '   +0x218 AddressCreationLock : _EX_PUSH_LOCK',
    '   +0x220 RotateInProgress : (null) ',
    '   +0x228 ForkInProgress   : (null) ',
    '   +0x230 HardwareTrigger  : 0',
    '   +0x238 PhysicalVadRoot  : (null) ',
    '   +0x240 CloneRoot        : (null) ',
    '   +0x248 NumberOfPrivatePages : 0',
    '   +0x250 NumberOfLockedPages : 0',
    '   +0x258 Win32Process     : (null) ',
    '   +0x260 Job              : (null) ',
    '   +0x268 SectionObject    : (null) ',
    '   +0x270 SectionBaseAddress : (null) ',
    '   +0x278 Cookie           : 0',
    '   +0x27c UmsScheduledThreads : 0',
    '   +0x280 WorkingSetWatch  : (null) ',
    '   +0x288 Win32WindowStation : (null) ',
    '   +0x290 InheritedFromUniqueProcessId : (null) ',
    '   +0x298 LdtInformation   : (null) ',
    '   +0x2a0 Spare            : (null) ',
    '   +0x2a8 ConsoleHostProcess : 0',
    '   +0x2b0 DeviceMap        : (null) ',
    '   +0x2b8 EtwDataSource    : (null) ',
    '   +0x2c0 FreeTebHint      : (null) ',
    '   +0x2c8 FreeUmsTebHint   : (null) ',
    '   +0x2d0 PageDirectoryPte : _HARDWARE_PTE',
    '   +0x2d0 Filler           : 0',
    '   +0x2d8 Session          : (null) ',
    '   +0x2e0 ImageFileName    : [15]  "System"',
    "   +0x2ef PriorityClass    : 0 ''",
    '   +0x2f0 JobLinks         : _LIST_ENTRY [ 0x00000000`00000000 - 0x00000000`00000000 ]',
    '   +0x300 LockedPagesList  : (null) ',
    '   +0x308 ThreadListHead   : _LIST_ENTRY [ 0xfffffa80`03000598 - 0xfffffa80`03000598 ]',
    '   +0x318 SecurityPort     : (null) ',
    '   +0x320 Wow64Process     : (null) ',
    '   +0x328 ActiveThreads    : 0',
    '   +0x32c ImagePathHash    : 0',
    '   +0x330 DefaultHardErrorProcessing : 0',
    '   +0x334 LastThreadExitStatus : 0n0',
    '   +0x338 Peb              : (null) ',
    '   +0x340 PrefetchTrace    : _EX_FAST_REF',
    '   +0x348 ReadOperationCount : _LARGE_INTEGER 0x0',
    '   +0x350 WriteOperationCount : _LARGE_INTEGER 0x0',
    '   +0x358 OtherOperationCount : _LARGE_INTEGER 0x0',
    '   +0x360 ReadTransferCount : _LARGE_INTEGER 0x0',
    '   +0x368 WriteTransferCount : _LARGE_INTEGER 0x0',
    '   +0x370 OtherTransferCount : _LARGE_INTEGER 0x0',
    '   +0x378 CommitChargeLimit : 0',
    '   +0x380 CommitChargePeak : 0',
    '   +0x388 AweInfo          : (null) ',
    '   +0x390 SeAuditProcessCreationInfo : _SE_AUDIT_PROCESS_CREATION_INFO',
    '   +0x398 Vm               : _MMSUPPORT',
    '   +0x420 MmProcessLinks   : _LIST_ENTRY [ 0x00000000`00000000 - 0x00000000`00000000 ]',
    '   +0x430 HighestUserAddress : (null) ',
    '   +0x438 ModifiedPageCount : 0',
    '   +0x43c Flags2           : 0x5000',
    '   +0x43c JobNotReallyActive : 0y0',
    '   +0x43c AccountingFolded : 0y0',
    '   +0x43c NewProcessReported : 0y0',
    '   +0x43c ExitProcessReported : 0y0',
    '   +0x43c ReportCommitChanges : 0y0',
    '   +0x43c LastReportMemory : 0y0',
    '   +0x43c ReportPhysicalPageChanges : 0y0',
    '   +0x43c HandleTableRundown : 0y0',
    '   +0x43c NeedsHandleRundown : 0y0',
    '   +0x43c RefTraceEnabled  : 0y0',
    '   +0x43c NumaAware        : 0y0',
    '   +0x43c ProtectedProcess : 0y0',
    '   +0x43c DefaultPagePriority : 0y101',
    '   +0x43c PrimaryTokenFrozen : 0y0',
    '   +0x43c ProcessVerifierTarget : 0y0',
    '   +0x43c StackRandomizationDisabled : 0y0',
    '   +0x43c AffinityPermanent : 0y0',
    '   +0x43c AffinityUpdateEnable : 0y0',
    '   +0x43c PropagateNode    : 0y0',
    '   +0x43c ExplicitAffinity : 0y0',
    '   +0x440 Flags            : 0x4040800',
    '   +0x440 CreateReported   : 0y0',
    '   +0x440 NoDebugInherit   : 0y0',
    '   +0x440 ProcessExiting   : 0y0',
    '   +0x440 ProcessDelete    : 0y0',
    '   +0x440 Wow64SplitPages  : 0y0',
    '   +0x440 VmDeleted        : 0y0',
    '   +0x440 OutswapEnabled   : 0y0',
    '   +0x440 Outswapped       : 0y0',
    '   +0x440 ForkFailed       : 0y0',
    '   +0x440 Wow64VaSpace4Gb  : 0y0',
    '   +0x440 AddressSpaceInitialized : 0y10',
    '   +0x440 SetTimerResolution : 0y0',
    '   +0x440 BreakOnTermination : 0y0',
    '   +0x440 DeprioritizeViews : 0y0',
    '   +0x440 WriteWatch       : 0y0',
    '   +0x440 ProcessInSession : 0y0',
    '   +0x440 OverrideAddressSpace : 0y0',
    '   +0x440 HasAddressSpace  : 0y1',
    '   +0x440 LaunchPrefetched : 0y0',
    '   +0x440 InjectInpageErrors : 0y0',
    '   +0x440 VmTopDown        : 0y0',
    '   +0x440 ImageNotifyDone  : 0y0',
    '   +0x440 PdeUpdateNeeded  : 0y0',
    '   +0x440 VdmAllowed       : 0y0',
    '   +0x440 CrossSessionCreate : 0y0',
    '   +0x440 ProcessInserted  : 0y1',
    '   +0x440 DefaultIoPriority : 0y000',
    '   +0x440 ProcessSelfDelete : 0y0',
    '   +0x440 SetTimerResolutionLink : 0y0',
    '   +0x444 ExitStatus       : 0n0',
    '   +0x448 VadRoot          : _MM_AVL_TABLE',
    '   +0x488 AlpcContext      : _ALPC_PROCESS_CONTEXT',
    '   +0x4a8 TimerResolutionLink : _LIST_ENTRY [ 0x00000000`00000000 - 0x00000000`00000000 ]',
    '   +0x4b8 RequestedTimerResolution : 0',
    '   +0x4bc ActiveThreadsHighWatermark : 0',
    '   +0x4c0 SmallestTimerResolution : 0',
    '   +0x4c8 TimerResolutionStackRecord : (null) ',
]) 


def test_dt_eprocess_instance_x64(x64):
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290") == EPROCESS_SYSTEM_X64
    assert run(x64, "dt nt!_EPROCESS poi(nt!PsInitialSystemProcess)") == EPROCESS_SYSTEM_X64
    assert run(x64, "dt _EPROCESS fffffa80`03000290") == "nt!_EPROCESS\n" + EPROCESS_SYSTEM_X64
    assert run(x64, "dt fffffa8003000290 nt!_EPROCESS") == EPROCESS_SYSTEM_X64


def test_dt_eprocess_instance_x86(x86):
    out = run(x86, "dt nt!_EPROCESS 860001a0").splitlines()
    assert out[:16] == [
        "   +0x000 Pcb              : _KPROCESS",
        "   +0x098 ProcessLock      : _EX_PUSH_LOCK",
        "   +0x0a0 CreateTime       : _LARGE_INTEGER 0x01cbd2a8`f5a2c000",
        "   +0x0a8 ExitTime         : _LARGE_INTEGER 0x0",
        "   +0x0b0 RundownProtect   : _EX_RUNDOWN_REF",
        "   +0x0b4 UniqueProcessId  : 0x00000004 Void",
        "   +0x0b8 ActiveProcessLinks : _LIST_ENTRY [ 0x82b4f340 - 0x82b4f340 ]",
        "   +0x0c0 ProcessQuotaUsage : [2] 0",
        "   +0x0c8 ProcessQuotaPeak : [2] 0",
        "   +0x0d0 CommitCharge     : 0",
        "   +0x0d4 QuotaBlock       : (null) ",
        "   +0x0d8 CpuQuotaBlock    : (null) ",
        "   +0x0dc PeakVirtualSize  : 0",
        "   +0x0e0 VirtualSize      : 0",
        "   +0x0e4 SessionProcessLinks : _LIST_ENTRY [ 0x0 - 0x0 ]",
        "   +0x0ec DebugPort        : (null) "]
    for line in ("   +0x16c ImageFileName    : [15]  \"System\"",
                 "   +0x188 ThreadListHead   : _LIST_ENTRY [ 0x86000328 - 0x86000328 ]",
                 "   +0x194 PaeTop           : (null) ",
                 "   +0x270 Flags            : 0x4040800",
                 "   +0x270 AddressSpaceInitialized : 0y10",
                 "   +0x274 ExitStatus       : 0n0"):
        assert line in out
    assert len(out) == len(x86.nt.ts.get_type("_EPROCESS").members)


def test_field_selection_pads_names_to_the_longest_argument(x64, x86):
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290 ImageFileName") == \
        "   +0x2e0 ImageFileName : [15]  \"System\"\n"
    # Members print in structure order, whatever the order of the arguments.
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290 ImageFileName UniqueProcessId "
                    "ActiveProcessLinks") == lines(
        "   +0x180 UniqueProcessId    : 0x00000000`00000004 Void",
        "   +0x188 ActiveProcessLinks : _LIST_ENTRY [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]",
        "   +0x2e0 ImageFileName      : [15]  \"System\"")
    assert run(x86, "dt _EPROCESS 860001a0 UniqueProcessId ImageFileName") == lines(
        "nt!_EPROCESS",
        "   +0x0b4 UniqueProcessId : 0x00000004 Void",
        "   +0x16c ImageFileName   : [15]  \"System\"")
    assert run(x64, "dt nt!_EPROCESS UniqueProcessId ImageFileName") == lines(
        "   +0x180 UniqueProcessId : Ptr64 Void",
        "   +0x2e0 ImageFileName   : [15] UChar")


def test_dotted_paths_and_prefixes(x64, x86):
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290 Pcb.DirectoryTableBase") == lines(
        "   +0x000 Pcb                    : ",
        "      +0x028 DirectoryTableBase     : 0x3200000")
    assert run(x86, "dt nt!_EPROCESS 860001a0 Pcb.DirectoryTableBase ImageFileName") == lines(
        "   +0x000 Pcb                    : ",
        "      +0x018 DirectoryTableBase     : 0x3000000",
        "   +0x16c ImageFileName          : [15]  \"System\"")
    # A trailing period shows the sub-fields; the expanded value loses its type name.
    assert run(x86, "dt nt!_EPROCESS 860001a0 CreateTime.") == lines(
        "   +0x0a0 CreateTime  :  0x01cbd2a8`f5a2c000",
        "      +0x000 LowPart     : 0xf5a2c000",
        "      +0x004 HighPart    : 0n30134952",
        "      +0x000 u           : <unnamed-tag>",
        "      +0x000 QuadPart    : 0n129428637427613696")
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290 -y ImageF") == \
        "   +0x2e0 ImageFileName : [15]  \"System\"\n"
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290 Image*") == lines(
        "   +0x2e0 ImageFileName : [15]  \"System\"",
        "   +0x32c ImagePathHash : 0",
        "   +0x440 ImageNotifyDone : 0y0")
    # A name followed by a period is a prefix too: Vm, VmDeleted, VmTopDown.
    assert run(x86, "dt nt!_EPROCESS 860001a0 Vm.MaximumWorkingSetSize") == lines(
        "   +0x1f0 Vm                       : ",
        "      +0x03c MaximumWorkingSetSize    : 0x159",
        "   +0x270 VmDeleted                : 0y0",
        "   +0x270 VmTopDown                : 0y0")


def test_recursion_r1_indents_three_more_per_level(x64, x86):
    assert run(x64, "dt nt!_LIST_ENTRY fffffa8003000418 -r1") == lines(
        " [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]",
        "   +0x000 Flink            : 0xfffff800`02c1f340 _LIST_ENTRY [ 0xfffffa80`03000418 - 0xfffffa80`03000418 ]",
        "      +0x000 Flink            : 0xfffffa80`03000418 _LIST_ENTRY [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]",
        "      +0x008 Blink            : 0xfffffa80`03000418 _LIST_ENTRY [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]",
        "   +0x008 Blink            : 0xfffff800`02c1f340 _LIST_ENTRY [ 0xfffffa80`03000418 - 0xfffffa80`03000418 ]",
        "      +0x000 Flink            : 0xfffffa80`03000418 _LIST_ENTRY [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]",
        "      +0x008 Blink            : 0xfffffa80`03000418 _LIST_ENTRY [ 0xfffff800`02c1f340 - 0xfffff800`02c1f340 ]")
    assert run(x86, "dt nt!_EPROCESS 860001a0 -r1 Pcb") == lines(
        "   +0x000 Pcb : _KPROCESS",
        "      +0x000 Header : _DISPATCHER_HEADER",
        "      +0x010 ProfileListHead : _LIST_ENTRY [ 0x860001b0 - 0x860001b0 ]",
        "      +0x018 DirectoryTableBase : 0x3000000",
        "      +0x01c LdtDescriptor : _KGDTENTRY",
        "      +0x024 Int21Descriptor : _KIDTENTRY",
        "      +0x02c ThreadListHead : _LIST_ENTRY [ 0x860001cc - 0x860001cc ]",
        "      +0x034 ProcessLock : 0",
        "      +0x038 Affinity : _KAFFINITY_EX",
        "      +0x044 ReadyListHead : _LIST_ENTRY [ 0x0 - 0x0 ]",
        "      +0x04c SwapListEntry : _SINGLE_LIST_ENTRY",
        "      +0x050 ActiveProcessors : _KAFFINITY_EX",
        "      +0x05c AutoAlignment : 0y0",
        "      +0x05c DisableBoost : 0y0",
        "      +0x05c DisableQuantum : 0y0",
        "      +0x05c ActiveGroupsMask : 0y0",
        "      +0x05c ReservedFlags : 0y0000000000000000000000000000 (0)",
        "      +0x05c ProcessFlags : 0n0",
        "      +0x060 BasePriority : 0 ''",
        "      +0x061 QuantumReset : 0 ''",
        "      +0x062 Visited : 0 ''",
        "      +0x063 Unused3 : 0 ''",
        "      +0x064 ThreadSeed : [1] 0",
        "      +0x068 IdealNode : [1] 0",
        "      +0x06a IdealGlobalNode : 0",
        "      +0x06c Flags : _KEXECUTE_OPTIONS",
        "      +0x06d Unused1 : 0 ''",
        "      +0x06e IopmOffset : 0",
        "      +0x070 Unused4 : 0",
        "      +0x074 StackCount : _KSTACK_COUNT",
        "      +0x078 ProcessListEntry : _LIST_ENTRY [ 0x0 - 0x0 ]",
        "      +0x080 CycleTime : 0",
        "      +0x088 KernelTime : 0",
        "      +0x08c UserTime : 0",
        "      +0x090 VdmTrapcHandler : (null) ")
    two = run(x64, "dt nt!_EPROCESS fffffa8003000290 -r2 Pcb").splitlines()
    assert two[:3] == ["   +0x000 Pcb : _KPROCESS",
                       "      +0x000 Header : _DISPATCHER_HEADER",
                       "         +0x000 Type : 0x3 ''"]
    assert "         +0x002 Size : 0x58 'X'" in two


def test_bitfields_print_in_binary_with_the_value_when_wider_than_4_bits(x64, x86):
    # The PTE that maps the System EPROCESS (!pte: contains 000000000350B963 -- nonpaged
    # pool is executable before Windows 8: no NX).
    assert run(x64, "dt _MMPTE_HARDWARE FFFFF6FD40018000") == "nt!_MMPTE_HARDWARE\n" + lines(
        "   +0x000 Valid            : 0y1",
        "   +0x000 Dirty1           : 0y1",
        "   +0x000 Owner            : 0y0",
        "   +0x000 WriteThrough     : 0y0",
        "   +0x000 CacheDisable     : 0y0",
        "   +0x000 Accessed         : 0y1",
        "   +0x000 Dirty            : 0y1",
        "   +0x000 LargePage        : 0y0",
        "   +0x000 Global           : 0y1",
        "   +0x000 CopyOnWrite      : 0y0",
        "   +0x000 Unused           : 0y0",
        "   +0x000 Write            : 0y1",
        "   +0x000 PageFrameNumber  : 0y000000000000000000000011010100001011 (0x350b)",
        "   +0x000 reserved1        : 0y0000",
        "   +0x000 SoftwareWsIndex  : 0y00000000000 (0)",
        "   +0x000 NoExecute        : 0y0")
    assert "contains 000000000350B963" in run(x64, "!pte fffffa8003000290")
    out86 = run(x86, "dt nt!_MMPTE_HARDWARE C0218000").splitlines()
    assert out86[-1] == "   +0x000 PageFrameNumber  : 0y00000011000110000100 (0x3184)"
    assert "contains 03184963" in run(x86, "!pte 860001a0")


def test_mmpfn_instance(x64, x86):
    assert run(x64, "dt nt!_MMPFN poi(nt!MmPfnDatabase)+5*30") == lines(
        "   +0x000 u1               : <unnamed-tag>",
        "   +0x008 u2               : <unnamed-tag>",
        "   +0x010 PteAddress       : 0xfffff6fb`7dbf1400 _MMPTE",
        "   +0x010 VolatilePteAddress : 0xfffff6fb`7dbf1400 Void",
        "   +0x010 Lock             : 0n2109674496",
        "   +0x010 PteLong          : 0xfffff6fb`7dbf1400",
        "   +0x018 u3               : <unnamed-tag>",
        "   +0x01c UsedPageTableEntries : 0",
        "   +0x01e VaType           : 0 ''",
        "   +0x01f ViewCount        : 0 ''",
        "   +0x020 OriginalPte      : _MMPTE",
        "   +0x020 AweReferenceCount : 0n128",
        "   +0x028 u4               : <unnamed-tag>")
    assert run(x86, "dt nt!_MMPFN (poi(nt!MmPfnDatabase) + 3 * 0x18)") == lines(
        "   +0x000 u1               : <unnamed-tag>",
        "   +0x004 u2               : <unnamed-tag>",
        "   +0x008 PteAddress       : 0xc0224000 _MMPTE",
        "   +0x008 VolatilePteAddress : 0xc0224000 Void",
        "   +0x008 Lock             : 0n-1071497216",
        "   +0x008 PteLong          : 0xc0224000",
        "   +0x00c u3               : <unnamed-tag>",
        "   +0x010 OriginalPte      : _MMPTE",
        "   +0x010 AweReferenceCount : 0n128",
        "   +0x014 u4               : <unnamed-tag>")


def test_strings_enums_and_pointers_to_scalars(x64, x86):
    assert run(x64, "dt nt!_KUSER_SHARED_DATA fffff78000000000 NtSystemRoot NtProductType "
                    "NtMajorVersion") == lines(
        "   +0x030 NtSystemRoot   : [260]  \"C:\\Windows\"",
        "   +0x264 NtProductType  : 1 ( NtProductWinNt )",
        "   +0x26c NtMajorVersion : 6")
    assert run(x86, "dt nt!_LDR_DATA_TABLE_ENTRY poi(nt!PsLoadedModuleList) "
                    "FullDllName BaseDllName") == lines(
        "   +0x024 FullDllName : _UNICODE_STRING \"\\SystemRoot\\system32\\ntoskrnl.exe\"",
        "   +0x02c BaseDllName : _UNICODE_STRING \"ntoskrnl.exe\"")
    assert run(x86, "dt _UNICODE_STRING poi(nt!PsLoadedModuleList)+2c") == lines(
        "nt!_UNICODE_STRING",
        " \"ntoskrnl.exe\"",
        "   +0x000 Length           : 0x18",
        "   +0x002 MaximumLength    : 0x1a",
        "   +0x004 Buffer           : 0x8600006c  \"ntoskrnl.exe\"")
    assert run(x86, "dt nt!_RTL_BITMAP poi(poi(nt!MmPagingFile)+2c)") == lines(
        "   +0x000 SizeOfBitMap     : 0xff8e",
        "   +0x004 Buffer           : 0x86001008  -> 1")


def test_blocks_expand_every_substructure_and_array_element(x86):
    assert run(x86, "dt nt!_MMPAGING_FILE poi(nt!MmPagingFile) -b Entry PageFileName") == lines(
        "   +0x01c Entry        : ",
        "    [00] (null) ",
        "    [01] (null) ",
        "   +0x024 PageFileName : _UNICODE_STRING \"\\??\\C:\\pagefile.sys\"",
        "      +0x000 Length       : 0x26",
        "      +0x002 MaximumLength : 0x28",
        "      +0x004 Buffer       : 0x89000008  \"\\??\\C:\\pagefile.sys\"")


def test_process_context_reads_user_structures(x64_default):
    m = x64_default
    notepad = m.nt.scenario["processes"]["notepad"]
    peb = m.nt.ts.field("_EPROCESS", "Peb").read(m.nt.kmem, notepad.ep)
    try:
        run(m, f".process /p {notepad.ep:x}")
        assert run(m, f"dt nt!_PEB {peb:x} OSMajorVersion OSMinorVersion OSBuildNumber") == \
            lines("   +0x118 OSMajorVersion : 6", "   +0x11c OSMinorVersion : 1",
                  "   +0x120 OSBuildNumber  : 0x1db1")
        assert run(m, f"dt nt!_EPROCESS {notepad.ep:x} Peb") == \
            f"   +0x338 Peb : 0x{peb >> 32:08x}`{peb & 0xFFFFFFFF:08x} _PEB\n"
    finally:
        run(m, ".process 0")


# -- errors -----------------------------------------------------------------------------

def test_unknown_type_and_field(x64, x86):
    assert run(x64, "dt nt!_NOSUCH") == "Symbol nt!_NOSUCH not found.\n"
    assert run(x86, "dt _NOSUCH fffff") == "Symbol _NOSUCH not found.\n"
    assert run(x64, "dt 1234") == "Symbol 1234 not found.\n"      # no typed globals
    assert run(x64, "dt nt!_EPROCESS fffffa8003000290 NoSuchField") == \
        "Cannot find specified field members.\n"
    assert run(x86, "dt _EPROCESS NoSuchField") == \
        "nt!_EPROCESS\nCannot find specified field members.\n"


def test_unreadable_memory_shows_question_marks_then_the_last_failed_address(x64, x86):
    assert run(x64, "dt nt!_LIST_ENTRY 0") == lines(
        "   +0x000 Flink            : ???? ",
        "   +0x008 Blink            : ???? ",
        "Memory read error 0000000000000008")
    assert run(x86, "dt nt!_UNICODE_STRING 0") == lines(
        "   +0x000 Length           : ???? ",
        "   +0x002 MaximumLength    : ???? ",
        "   +0x004 Buffer           : ???? ",
        "Memory read error 00000004")
    # Half on the shared-data page, half past it: no summary line, Blink unreadable.
    assert run(x64, "dt nt!_LIST_ENTRY fffff78000000ff8") == lines(
        "   +0x000 Flink            : (null) ",
        "   +0x008 Blink            : ???? ",
        "Memory read error fffff78000001000")


def test_bad_arguments_get_windbgs_errors(x64):
    d = x64.debugger
    assert run(x64, "dt") == " " * (len(d.prompt) + 2) + "^ Syntax error in 'dt'\n"
    assert run(x64, "dt nt!_EPROCESS -z") == \
        " " * (len(d.prompt) + 17) + "^ Syntax error in 'dt nt!_EPROCESS -z'\n"
    assert run(x64, "dt nt!_EPROCESS poi(0)") == "Memory access error at ')'\n"
    assert run(x64, "dt nt!_EPROCESS nt!NoSuchSymbol") == \
        "Couldn't resolve error at 'nt!NoSuchSymbol'\n"
    assert run(x64, "dt nt!_EPROCESS 1000 2000") == \
        " " * (len(d.prompt) + 21) + "^ Syntax error in 'dt nt!_EPROCESS 1000 2000'\n"


# -- consistency: dt prints what the memory manager wrote --------------------------------

def _physical(booted, va, n):
    """Bytes at ``va`` read the hardware way: translate, then read physical memory."""
    out = b""
    while len(out) < n:
        t = booted.core.translate(va + len(out))
        assert t.ok
        chunk = min(n - len(out), 0x1000 - ((va + len(out)) & 0xFFF))
        out += booted.core.read_physical(t.pa, chunk)
    return out


def _value(booted, ep, path):
    """The value dt prints for ``path`` of the EPROCESS at ``ep``, as an int (or str)."""
    # "Vm.X" also matches VmDeleted...: a name followed by a period is a prefix (§12).
    out = run(booted, f"dt nt!_EPROCESS {ep:x} {path}").splitlines()
    name = path.split(".")[-1]
    line, = [x for x in out if x.split()[1] == name]
    text = line.split(" : ", 1)[1].strip()
    if text.startswith("[") and '"' in text:
        return text.split('"')[1]
    if text.startswith("_LIST_ENTRY ["):
        return tuple(int(x.replace("`", ""), 16) for x in text[13:-2].split(" - "))
    if text.startswith("0y"):
        return int(text[2:].split()[0], 2)
    word = text.split()[0].replace("`", "")
    if word == "(null)":
        return 0
    if word.startswith("0n"):
        return int(word[2:])
    return int(word, 16) if word.startswith("0x") else int(word)


CHECKED = ["UniqueProcessId", "InheritedFromUniqueProcessId", "Pcb.DirectoryTableBase",
           "Flags", "HasAddressSpace", "AddressSpaceInitialized", "Vm.MinimumWorkingSetSize",
           "Vm.MaximumWorkingSetSize", "ExitStatus"]


@pytest.mark.parametrize("which", ["x64", "x86"])
def test_system_eprocess_fields_equal_what_the_memory_manager_wrote(which, x64, x86):
    m = {"x64": x64, "x86": x86}[which]
    ts, ep = m.nt.ts, m.nt.system_process
    for path in CHECKED:
        path_in_ts = path + ("[0]" if ts.field("_EPROCESS", path).count else "")
        f = ts.field("_EPROCESS", path_in_ts)
        manager = f.read(m.nt.kmem, ep)                  # the memory manager's own view
        raw = int.from_bytes(_physical(m, ep + f.offset, f.size), "little")
        raw = (raw >> f.bit_pos) & f.mask
        if f.signed and raw >> (f.bit_width - 1):
            raw -= 1 << f.bit_width
        assert _value(m, ep, path) == manager == raw, path
    assert _value(m, ep, "UniqueProcessId") == 4
    assert _value(m, ep, "ImageFileName") == "System"
    assert _value(m, ep, "Pcb.DirectoryTableBase") == m.core.cr3
    links = ts.field("_EPROCESS", "ActiveProcessLinks")
    ptr = m.nt.ptr
    raw = _physical(m, ep + links.offset, 2 * ptr)
    assert _value(m, ep, "ActiveProcessLinks") == (
        int.from_bytes(raw[:ptr], "little"), int.from_bytes(raw[ptr:], "little"))


@pytest.mark.parametrize("which", ["x64_default", "x86_default"])
def test_spawned_processes_show_their_pid_name_and_page_directory(which, request):
    m = request.getfixturevalue(which)
    for name, proc in m.nt.scenario["processes"].items():
        assert _value(m, proc.ep, "UniqueProcessId") == proc.pid
        assert _value(m, proc.ep, "ImageFileName") == proc.name[:14]
        assert _value(m, proc.ep, "Pcb.DirectoryTableBase") == proc.cr3
        elements = m.nt.ts.field("_EPROCESS", "VadRoot.NumberGenericTableElements")
        out = run(m, f"dt nt!_EPROCESS {proc.ep:x} VadRoot.NumberGenericTableElements")
        binary = out.splitlines()[-1].split(" : ")[1].split()[0]
        assert int(binary[2:], 2) == elements.read(m.nt.kmem, proc.ep) == len(list(proc.vads))


def test_an_expression_address_may_come_before_the_type(x64, x86):
    for m in (x64, x86):
        d = m.debugger
        want = d.execute("dt nt!_PHYSICAL_MEMORY_DESCRIPTOR poi(nt!MmPhysicalMemoryBlock)")
        assert "NumberOfRuns" in want
        assert d.execute("dt poi(nt!MmPhysicalMemoryBlock) nt!_PHYSICAL_MEMORY_DESCRIPTOR") \
            == want
        assert d.execute("dt @$proc _EPROCESS ImageFileName") == \
            d.execute("dt _EPROCESS @$proc ImageFileName")
