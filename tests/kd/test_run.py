"""Breakpoints, g, k/kn and r over guest threads (kdsim/kd/commands/run.py and
kdsim/nt/execution.py): exact outputs on PAE and x64, what the stack walk reads agrees with
memory, /p and pass counts, the int 3s never show, and the machine's state at each stop
is the one the routine sees on entry."""
import pytest

import kdsim

BANNER_END = "*" * 79 + "\n"


def run(d, lines):
    return {line: d.execute(line) for line in lines}


@pytest.fixture
def pae():
    b = kdsim.boot("win7-x86pae", ram="256m", scenario="none")
    assert b.debugger.execute("!sim.run pagefault") == \
        "Created pagefault.exe: PROCESS 86001508  Cid: 0100\n"
    return b


@pytest.fixture
def x64():
    b = kdsim.boot("win7-x64", ram="256m", scenario="none")
    assert b.debugger.execute("!sim.run pagefault") == \
        "Created pagefault.exe: PROCESS fffffa8003000860  Cid: 0100\n"
    return b


def test_x_names_the_routines_with_their_public_decorations(pae, x64):
    assert pae.debugger.execute("x nt!mi*resolve*fault*") == (
        "82a37000          nt!MiResolveDemandZeroFault (_MiResolveDemandZeroFault@24)\n"
        "82a39000          nt!MiResolveTransitionFault (_MiResolveTransitionFault@28)\n"
        "82a3b000          nt!MiResolvePageFileFault (_MiResolvePageFileFault@28)\n"
        "82a3d000          nt!MiResolveProtoPteFault (_MiResolveProtoPteFault@32)\n"
        "82a3f000          nt!MiResolveMappedFileFault (_MiResolveMappedFileFault@32)\n")
    assert pae.debugger.execute("x nt!KiTrap0E") == \
        "82a2f000          nt!KiTrap0E (<no parameter info>)\n"
    assert x64.debugger.execute("x nt!MmAccessFault") == \
        "fffff800`02a33000 nt!MmAccessFault (<no parameter info>)\n"
    assert x64.debugger.execute("x nt!KiTrap0E") == ""          # x64 enters through KiPageFault


def test_bp_bl_and_the_breakpoint_list_format(pae):
    d = pae.debugger
    out = run(d, ["bp /p 86001508 nt!MmAccessFault", "bp nt!MiResolveDemandZeroFault 2",
                  "bp /1 82a43000", "bl", "bd 1", "bl 1", "be 1", "bp nt!MmAccessFault"])
    assert out["bp /p 86001508 nt!MmAccessFault"] == ""
    assert out["bl"] == (
        "     0 e Disable Clear  82a33000     0001 (0001) nt!MmAccessFault\n"
        "     Match process data 86001508\n"
        "     1 e Disable Clear  82a37000     0002 (0002) nt!MiResolveDemandZeroFault\n"
        "     2 e Disable Clear  82a43000     0001 (0001) nt!NtAllocateVirtualMemory\n")
    assert out["bl 1"] == \
        "     1 d Enable Clear  82a37000     0002 (0002) nt!MiResolveDemandZeroFault\n"
    assert out["bp nt!MmAccessFault"] == "breakpoint 0 redefined\n"
    assert d.execute("bl 0") == \
        "     0 e Disable Clear  82a33000     0001 (0001) nt!MmAccessFault\n"
    assert d.execute("bc 0-1") == ""
    assert d.execute("bl") == \
        "     2 e Disable Clear  82a43000     0001 (0001) nt!NtAllocateVirtualMemory\n"
    assert d.execute("bc *") == "" and d.execute("bl") == ""


def test_bp_errors(pae):
    d = pae.debugger
    assert d.execute("bp nt!Nope") == "Couldn't resolve error at 'nt!Nope'\n"
    assert d.execute("bp /x 1") == "          ^ Syntax error in 'bp /x 1'\n"
    assert d.execute("bp 401000").startswith("kdsim: breakpoints in user-mode code")
    assert d.execute('bp nt!MmAccessFault "kn"').startswith("kdsim: breakpoint command")
    assert d.execute("bc x") == "          ^ Syntax error in 'bc x'\n"
    assert d.execute("g 1234").startswith("kdsim: g takes no address")


def test_a_breakpoint_in_the_fault_path_and_the_stack_it_stops_on(pae):
    d = pae.debugger
    d.execute("bp nt!MmAccessFault")
    assert d.execute("g") == (
        "Breakpoint 0 hit\n"
        "nt!MmAccessFault:\n"
        "82a33000 8bff            mov     edi,edi\n")
    # The program's first write goes to a reserved page: CR2 holds the address, the PTE
    # is still zero (MmAccessFault has not run yet), and the thread is pagefault's.
    assert d.execute("r cr2") == "cr2=00210000\n"
    assert d.execute("!process -1 0").splitlines()[-1] == "    Image: pagefault.exe"
    assert d.execute("kn") == (
        " # ChildEBP RetAddr\n"
        "00 86007f74 82a2f0dc nt!MmAccessFault\n"
        "01 86007f7c 00401c20 nt!KiTrap0E+0xdc\n"
        "02 0010ff88 77fc3c45 pagefault+0x1c20\n"
        "03 0010ffc8 77fe37f5 kernel32+0x3c45\n"
        "04 0010ffe0 00000000 ntdll+0x37f5\n")
    assert d.execute("k").splitlines()[:2] == [
        "ChildEBP RetAddr", "86007f74 82a2f0dc nt!MmAccessFault"]
    assert d.execute("r") == (
        "eax=00000000 ebx=00000000 ecx=00000000 edx=00000000 esi=00000000 edi=00000000\n"
        "eip=82a33000 esp=86007f78 ebp=86007f7c iopl=0         nv up ei pl nz na po nc\n"
        "cs=0008  ss=0010  ds=0023  es=0023  fs=0030  gs=0000             efl=00000202\n"
        "nt!MmAccessFault:\n"
        "82a33000 8bff            mov     edi,edi\n")
    # The walk is what memory holds: the return address at esp, the EBP chain, and the
    # trap frame's DbgEbp/DbgEip at its first two dwords.
    assert d.execute("dd @esp L1") == "86007f78  82a2f0dc\n"
    assert d.execute("dd @ebp L2") == "86007f7c  0010ff88 00401c20\n"
    assert d.execute("dd 0010ff88 L2") == "0010ff88  0010ffc8 77fc3c45\n"
    assert d.execute("!pte @cr2").splitlines()[-1] == "not valid"
    # The debugger's int 3s are gone while the machine is stopped.
    assert d.execute("db nt!MmAccessFault L5") == \
        "82a33000  8b ff 55 8b ec                                   ..U..\n"


def test_the_demand_zero_cycle_under_breakpoints(pae):
    """The SDK sample: access violation, the filter commits, the retry is a demand-zero
    fault; each stop sees the PTE the routine is about to change."""
    d = pae.debugger
    d.execute("bp nt!NtAllocateVirtualMemory")
    d.execute("bp nt!MiResolveDemandZeroFault")
    assert d.execute("g").startswith("Breakpoint 0 hit\n")       # VirtualAlloc(MEM_RESERVE)
    # The service's stack: the system-service entry, ntdll's stub, the program's main.
    assert d.execute("kn") == (
        " # ChildEBP RetAddr\n"
        "00 86007f74 82a3112a nt!NtAllocateVirtualMemory\n"
        "01 86007f7c 77fe64f0 nt!KiFastCallEntry+0x12a\n"
        "02 0010ff68 00401c10 ntdll+0x64f0\n"
        "03 0010ff88 77fc3c45 pagefault+0x1c10\n"
        "04 0010ffc8 77fe37f5 kernel32+0x3c45\n"
        "05 0010ffe0 00000000 ntdll+0x37f5\n")
    assert d.execute("!sim.alloc pagefault.exe 1000") == (
        "kdsim: a guest thread is stopped inside the memory manager; let it finish (g) "
        "before driving the machine\n")
    assert d.execute("g").startswith("Breakpoint 0 hit\n")       # the filter's MEM_COMMIT
    assert d.execute("!pte 210000").splitlines()[-1] == "not valid"
    assert d.execute("g").startswith("Breakpoint 1 hit\n"
                                     "nt!MiResolveDemandZeroFault:\n")
    pte = d.execute("!pte @cr2").splitlines()
    assert pte[-2:] == ["                            DemandZero",
                        "                            Protect: 4 - ReadWrite"]
    assert d.execute("kn") == (
        " # ChildEBP RetAddr\n"
        "00 86007ee4 82a352f7 nt!MiResolveDemandZeroFault\n"
        "01 86007f2c 82a34dc1 nt!MiDispatchFault+0x2f7\n"
        "02 86007f74 82a2f0dc nt!MmAccessFault+0x1dc1\n"
        "03 86007f7c 00401c20 nt!KiTrap0E+0xdc\n"
        "04 0010ff88 77fc3c45 pagefault+0x1c20\n"
        "05 0010ffc8 77fe37f5 kernel32+0x3c45\n"
        "06 0010ffe0 00000000 ntdll+0x37f5\n")
    assert d.execute("g").startswith("Breakpoint 0 hit\n")       # page 2's MEM_COMMIT
    assert d.execute("!pte 210000").splitlines()[-1].startswith("pfn ")
    assert d.execute("db 210000 L4") == "00210000  61 61 61 61                                      aaaa\n"
    d.execute("bc *")
    out = d.execute("g")
    assert out.startswith("pagefault: 2 pages written at 0x00210000\n"
                          "Break instruction exception - code 80000003 (first chance)\n")
    assert out.endswith(BANNER_END + "nt!RtlpBreakWithStatusInstruction:\n"
                        "82a4d000 cc              int     3\n")
    # Idle: the processor runs System (no user space); pagefault's pages are written.
    assert d.execute("r cr3") == f"cr3={pae.nt.kernel_tables.top:08x}\n"
    assert d.execute("db 211ffc L4") == "00211ffc  ?? ?? ?? ??" + " " * 38 + "????\n"
    d.execute(".process /p 86001508")
    assert d.execute("db 211ffc L4") == "00211ffc  61 61 61 61" + " " * 38 + "aaaa\n"
    d.execute(".process 0")
    assert d.execute("g") == out[len("pagefault: 2 pages written at 0x00210000\n"):]   # nothing to run


def test_bp_p_stops_only_in_that_process(pae):
    d = pae.debugger
    d.execute("!sim.run pagefault")            # a second one, PROCESS 86001790
    eps = [line.split()[1] for line in d.execute("!process 0 0 pagefault.exe").splitlines()
           if line.startswith("PROCESS")]
    assert len(eps) == 2
    d.execute(f"bp /p {eps[1]} nt!MiResolveDemandZeroFault")
    # The first program runs to its end without stopping (its line is printed), then
    # the second one stops.
    assert d.execute("g").startswith("pagefault: 2 pages written at 0x00210000\nBreakpoint 0 hit\n")
    assert d.execute("!process -1 0").splitlines()[0].startswith(f"PROCESS {eps[1]}")
    # The first program ran to its end without stopping: its pages are written.
    assert d.execute(f".process /p {eps[0]}").startswith("Implicit process is now")
    assert d.execute("db 211000 L2") == "00211000  61 61                                            aa\n"


def test_x64_stack_walk_uses_frame_sizes_and_the_machine_frame(x64):
    d = x64.debugger
    d.execute("bp nt!MiResolveDemandZeroFault")
    assert d.execute("g") == (
        "Breakpoint 0 hit\n"
        "nt!MiResolveDemandZeroFault:\n"
        "fffff800`02a37000 48895c2408      mov     qword ptr [rsp+8],rbx\n")
    assert d.execute("kn") == (
        " # Child-SP          RetAddr           Call Site\n"
        "00 fffffa80`0300ace8 fffff800`02a352f7 nt!MiResolveDemandZeroFault\n"
        "01 fffffa80`0300acf0 fffff800`02a34dc1 nt!MiDispatchFault+0x2f7\n"
        "02 fffffa80`0300adb0 fffff800`02a2f16e nt!MmAccessFault+0x1dc1\n"
        "03 fffffa80`0300ae90 00000001`3f001c20 nt!KiPageFault+0x16e\n"
        "04 00000000`0010ff40 000007fe`fefc3c45 pagefault+0x1c20\n"
        "05 00000000`0010ff70 000007fe`fefe37f5 kernel32+0x3c45\n"
        "06 00000000`0010ffa0 00000000`00000000 ntdll+0x37f5\n")
    assert d.execute("dq @rsp L1") == "fffffa80`0300ace8  fffff800`02a352f7\n"
    assert d.execute("r rip") == "rip=fffff80002a37000\n"
    assert d.execute("r cr2") == "cr2=0000000000210000\n"
    assert d.execute("? @$ip") == "Evaluate expression: -8796048756736 = fffff800`02a37000\n"
    assert d.execute("r").splitlines()[2] == \
        "rip=fffff80002a37000 rsp=fffffa800300ace8 rbp=fffffa800300acf0"


def test_interrupt_breaks_in_between_two_steps(pae):
    d = pae.debugger
    d.execute("bp nt!NtAllocateVirtualMemory")
    assert d.execute("g").startswith("Breakpoint 0 hit\n")
    d.execute("bc *")
    pae.nt.executor.interrupt = True          # what Ctrl+C during g sets
    out = d.execute("g")
    assert out.startswith("Break instruction exception - code 80000003 (first chance)\n")
    assert out.endswith(BANNER_END + "nt!RtlpBreakWithStatusInstruction:\n"
                        "82a4d000 cc              int     3\n")
    # The program had reserved its range and not written yet; g goes on from there.
    assert d.execute("!pte 210000").splitlines()[-1] == "not valid"
    assert d.execute("g").startswith("pagefault: 2 pages written at 0x00210000\n")
    d.execute(".process /p 86001508")
    assert d.execute("db 210000 L1") == "00210000  61" + " " * 47 + "a\n"


def test_the_same_run_gives_the_same_transcript():
    def transcript():
        b = kdsim.boot("win7-x86", ram="256m", scenario="none")
        d = b.debugger
        lines = ["!sim.run pagefault", "bp nt!MmAccessFault", "g", "kn", "g", "kn", "bc *",
                 "g", "!pte 210000"]
        return [d.execute(line) for line in lines]
    assert transcript() == transcript()


def test_process_i_switches_the_processor_at_the_next_break_in(pae):
    d = pae.debugger
    before = d.execute("r cr3")
    assert d.execute(".process /i 86001508") == (
        "You need to continue execution (press 'g' <enter>) for the context\n"
        "to be switched. When the debugger breaks in again, you will be in\n"
        "the new process context.\n")
    assert d.execute("r cr3") == before                # nothing changes until g
    out = d.execute("g")
    assert out == ("pagefault: 2 pages written at 0x00210000\n"
                   "Break instruction exception - code 80000003 (first chance)\n"
                   "nt!RtlpBreakWithStatusInstruction:\n"
                   "82a4d000 cc              int     3\n")
    assert d.execute("!process -1 0").splitlines()[0].startswith("PROCESS 86001508")
    words = d.execute("!process -1 0").split()
    assert d.execute("r cr3") == "cr3=" + words[words.index("DirBase:") + 1] + "\n"
    assert d.execute("db 210000 L1") == "00210000  61" + " " * 47 + "a\n"
    assert d.execute("g").startswith("Break instruction exception - code 80000003 (first "
                                     "chance)\n****")     # the next break-in: System again
    words = d.execute("!process 0 0 System").split()
    assert d.execute("r cr3") == "cr3=" + words[words.index("DirBase:") + 1] + "\n"
