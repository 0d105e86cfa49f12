"""lm: the modules on PsLoadedModuleList, read from guest memory."""
import pytest

import kdsim

LM_X64 = (
    "start             end                 module name\n"
    "fffff800`02a1f000 fffff800`03007000   nt         (pdb symbols)          ntkrnlmp.pdb\n"
    "fffff800`03007000 fffff800`03050000   hal        (no symbols)           \n")
LM_X86 = (
    "start    end        module name\n"
    "82a1f000 82e2f000   nt         (pdb symbols)          ntkrnlmp.pdb\n"
    "82e2f000 82e66000   hal        (no symbols)           \n")


def test_lm_on_x64(x64):
    assert x64.debugger.execute("lm") == LM_X64


def test_lm_on_x86(x86):
    assert x86.debugger.execute("lm") == LM_X86


def test_lm_m_pattern(x64, x86):
    header, nt, hal = LM_X64.splitlines(keepends=True)
    assert x64.debugger.execute("lm m nt") == header + nt
    assert x64.debugger.execute("lm m h*") == header + hal
    assert x64.debugger.execute("lmm NT") == header + nt
    assert x64.debugger.execute("lm mnt") == header + nt
    assert x64.debugger.execute("lm m ?a?") == header + hal
    assert x64.debugger.execute("lm m zz") == header
    header, nt, hal = LM_X86.splitlines(keepends=True)
    assert x86.debugger.execute("lm m h*") == header + hal


def test_lmv_m_nt_on_x64(x64):
    want = LM_X64.splitlines(keepends=True)
    verbose = (
        "    Image path: \\SystemRoot\\system32\\ntoskrnl.exe\n"
        "    Image name: ntoskrnl.exe\n"
        "    Timestamp:        Sat Nov 20 09:30:02 2010 (4CE7951A)\n"
        "    ImageSize:        005E8000\n"
        "    File version:     6.1.7601.17514\n"
        "    Product version:  6.1.7601.17514\n")
    assert x64.debugger.execute("lmv m nt") == want[0] + want[1] + verbose
    assert x64.debugger.execute("lmvm nt") == want[0] + want[1] + verbose
    assert x64.debugger.execute("lm vm nt") == want[0] + want[1] + verbose


def test_lmvm_on_x86(x86):
    assert x86.debugger.execute("lmvm hal") == (
        "start    end        module name\n"
        "82e2f000 82e66000   hal        (no symbols)           \n"
        "    Image path: \\SystemRoot\\system32\\hal.dll\n"
        "    Image name: hal.dll\n"
        "    Timestamp:        Sat Nov 20 13:00:25 2010 (4CE7C669)\n"
        "    ImageSize:        00037000\n")
    assert x86.debugger.execute("lmvm nt").splitlines()[-3:] == [
        "    ImageSize:        00410000",
        "    File version:     6.1.7601.17514",
        "    Product version:  6.1.7601.17514"]


def test_wrk_file_version_is_the_builds():
    m = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    assert "    File version:     5.2.3790.1830\n" in m.debugger.execute("lmvm nt")


def test_lm_options(x64):
    d = x64.debugger
    header, nt, hal = LM_X64.splitlines(keepends=True)
    assert d.execute("lm a nt!MmPfnDatabase") == header + nt
    assert d.execute("lm a fffff800`03007010") == header + hal
    assert d.execute("lm a 0") == header
    assert d.execute("lm 1m") == "nt\nhal\n"
    assert d.execute("lmsm") == header + hal + nt
    assert d.execute("lml") == header + nt
    assert d.execute("lme") == header + hal
    assert d.execute("lmk") == LM_X64
    assert d.execute("lmo") == LM_X64
    assert d.execute("lmu") == header
    assert d.execute("lm M *\\hal.dll") == header + hal
    assert d.execute("lmD") == LM_X64


def test_lm_errors(x64):
    d = x64.debugger
    assert d.execute("lm z") == "          ^ Syntax error in 'lm z'\n"
    assert d.execute("lmm") == "          ^ Syntax error in 'lmm'\n"
    assert d.execute("lm m") == "           ^ Syntax error in 'lm m'\n"
    assert d.execute("lm a nt!Nope") == "Couldn't resolve error at 'nt!Nope'\n"
    assert d.execute("lm t") == "kdsim: lm option t is not supported\n"


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"])
def test_lm_lists_exactly_the_modules_on_psloadedmodulelist(target):
    m = kdsim.boot(target, ram="256m", scenario="none")
    ptr = m.nt.profile.pointer_size
    rows = m.debugger.execute("lm").splitlines()[1:]
    got = [(r.split()[2], int(r.split()[0].replace("`", ""), 16),
            int(r.split()[1].replace("`", ""), 16)) for r in rows]
    want = [(short, base & ((1 << 8 * ptr) - 1), (base + size) & ((1 << 8 * ptr) - 1))
            for _, short, base, size in m.nt.modules]          # the memory manager's list
    assert got == want


@pytest.fixture
def x86_own():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


def test_lm_reads_sizes_and_links_from_memory(x86_own):
    d = x86_own.debugger
    head = x86_own.nt.symbols["PsLoadedModuleList"]
    nt_entry = int(d.execute("dd nt!PsLoadedModuleList L1").split()[1], 16)
    hal_entry = int(d.execute(f"dd {nt_entry:x} L1").split()[1], 16)
    d.execute(f"ed {hal_entry + 0x20:x} 1000")           # hal's SizeOfImage
    assert d.execute("lm m hal").splitlines()[1].startswith("82e2f000 82e30000   hal ")
    d.execute(f"ed {hal_entry:x} {hal_entry:x}")         # a loop: hal -> hal
    assert d.execute("lm 1m") == "nt\nhal\n"
    d.execute(f"ed {nt_entry:x} {head:x}")               # unlink hal
    assert d.execute("lm") == LM_X86.splitlines(keepends=True)[0] + \
        LM_X86.splitlines(keepends=True)[1]


# -- user modules: the implicit process's PEB.Ldr ------------------------------------------

USER_X64 = (
    "start             end                 module name\n"
    "00000001`3f000000 00000001`3f009000   calc         (deferred)             \n"
    "000007fe`fefa0000 000007fe`fefa9000   user32       (deferred)             \n"
    "000007fe`fefb0000 000007fe`fefbb000   KernelBase   (deferred)             \n"
    "000007fe`fefc0000 000007fe`fefd2000   kernel32     (deferred)             \n"
    "000007fe`fefe0000 000007fe`feff1000   ntdll        (deferred)             \n"
    "fffff800`02a1f000 fffff800`03007000   nt           (pdb symbols)          ntkrnlmp.pdb\n"
    "fffff800`03007000 fffff800`03050000   hal          (no symbols)           \n")
USER_X86 = (
    "start    end        module name\n"
    "00400000 00409000   calc         (deferred)             \n"
    "77fa0000 77fa9000   user32       (deferred)             \n"
    "77fb0000 77fbb000   KernelBase   (deferred)             \n"
    "77fc0000 77fd2000   kernel32     (deferred)             \n"
    "77fe0000 77ff1000   ntdll        (deferred)             \n"
    "82a1f000 82e2f000   nt           (pdb symbols)          ntkrnlmp.pdb\n"
    "82e2f000 82e66000   hal          (no symbols)           \n")


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86"])
def calc(request):
    """calc.exe (with user32) as the implicit process, after .process /p /r."""
    m = kdsim.boot(request.param, ram="256m", scenario="none")
    proc = m.nt.spawn("calc.exe", dlls=["user32.dll"])
    m.debugger.execute(f".process /p /r {proc.ep:x}")
    return m, proc


def test_lm_lists_the_implicit_processs_user_modules_by_address(calc):
    m, _ = calc
    assert m.debugger.execute("lm") == {"win7-x64": USER_X64, "win7-x86": USER_X86}[m.target]


def test_lm_m_u_and_k_select_user_and_kernel_modules(calc):
    m, _ = calc
    d = m.debugger
    header, calc_row, user32, kernelbase, kernel32, ntdll, nt, hal = \
        {"win7-x64": USER_X64, "win7-x86": USER_X86}[m.target].splitlines(keepends=True)
    assert d.execute("lm m ntdll") == header + ntdll
    assert d.execute("lm m kernel*") == header + kernelbase + kernel32
    assert d.execute("lm u") == header + calc_row + user32 + kernelbase + kernel32 + ntdll
    assert d.execute("lm k") == header + nt + hal
    assert d.execute("lm l") == header + nt                     # symbols loaded: nt only
    assert d.execute("lm 1m") == "calc\nuser32\nKernelBase\nkernel32\nntdll\nnt\nhal\n"


def test_lmv_of_a_user_module_names_its_file(calc):
    m, _ = calc
    rows = m.debugger.execute("lmv m kernel32").splitlines()
    assert rows[2:] == ["    Image path: C:\\Windows\\System32\\kernel32.dll",
                        "    Image name: kernel32.dll",
                        "    ImageSize:        00012000"]


def test_user_modules_are_the_processs_image_views(calc):
    """Each user module is a view of an image section: the loader entry's base and size
    are the view's, its path the section's FILE_OBJECT name with the drive."""
    m, proc = calc
    from kdsim.kd.commands.symbols import loaded_modules
    users = [x for x in loaded_modules(m.debugger) if x.user]
    views = sorted((base, sec) for base, (sec, _) in proc.views.items())
    assert [(x.base, x.size, x.image_path) for x in sorted(users, key=lambda x: x.base)] == \
        [(base, sec.pages * 0x1000, "C:" + sec.path) for base, sec in views]
    assert [x.name for x in users] == ["calc", "ntdll", "kernel32", "KernelBase", "user32"]


def test_the_system_process_has_no_user_modules(calc):
    m, proc = calc
    d = m.debugger
    d.execute(f".process /p /r {m.nt.system_process:x}")
    assert d.execute("lm u") == d.execute("lm").splitlines(keepends=True)[0]
    assert "ntdll" not in d.execute("lm")
    d.execute(f".process /p /r {proc.ep:x}")


def test_an_unreadable_loader_list_ends_the_user_modules(calc):
    """The walk reads guest memory: cut InLoadOrderModuleList after the first entry and
    only the exe is left; restore it and all five come back."""
    m, proc = calc
    d, ts = m.debugger, m.nt.ts
    peb_ldr = int(d.execute(f"? poi(@$peb+{ts.offset_of('_PEB', 'Ldr'):x})").split()[-1]
                  .replace("`", ""), 16)
    first = peb_ldr + ts.offset_of("_PEB_LDR_DATA", "InLoadOrderModuleList")
    entry = int(d.execute(f"? poi({first:x})").split()[-1].replace("`", ""), 16)
    saved = d.execute(f"? poi({entry:x})").split()[-1].replace("`", "")
    d.execute(f"ep {entry:x} {first:x}")                      # the exe's Flink -> the head
    assert [line.split()[2] for line in d.execute("lm u").splitlines()[1:]] == ["calc"]
    d.execute(f"ep {entry:x} {saved}")
    assert len(d.execute("lm u").splitlines()) == 6


def test_a_user_modules_name_is_its_base_in_expressions(calc):
    m, proc = calc
    d = m.debugger
    ntdll = m.nt.sections["ntdll.dll"].base
    want = f"{ntdll:08x}" if m.nt.ptr == 4 else f"{ntdll >> 32:08x}`{ntdll & 0xFFFFFFFF:08x}"
    assert d.execute("? ntdll").endswith(f" = {want}\n")
    assert d.execute("? KERNEL32") == d.execute(f"? {m.nt.sections['kernel32.dll'].base:x}")
    assert d.execute("!vad user32 1") == d.execute(f"!vad {m.nt.sections['user32.dll'].base:x} 1")
    assert d.execute("? ntdll!nosuch") == "Couldn't resolve error at 'ntdll!nosuch'\n"
    assert d.execute("x ntdll!*") == ""                # no symbols for user modules
