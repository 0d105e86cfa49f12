"""`/c Width` (cells a line) on the display commands: db dw dd dq dc dp, dds dps dqs, d."""
import re


def test_dd_one_column_on_x86_and_x64(x86, x64):
    assert x86.debugger.execute("dd /c 1 MmPfnDatabase L3") == \
        "82b4f38c  84000000\n82b4f390  86000008\n82b4f394  00000001\n"
    assert x64.debugger.execute("dd /c 1 MmPfnDatabase L3") == (
        "fffff800`02c1f3d8  00000000\n"
        "fffff800`02c1f3dc  fffffa80\n"
        "fffff800`02c1f3e0  03000010\n")


def test_dw_and_db_one_column_as_the_published_sample(x64):
    # windbg-formats.md §2.3: "dw /c 1  <addr> l3" and "db /c 1 <addr> l1" (two spaces
    # after the width in the sample).
    assert x64.debugger.execute("dw /c 1  MmPfnDatabase+8 l3") == (
        "fffff800`02c1f3e0  0010\n"
        "fffff800`02c1f3e2  0300\n"
        "fffff800`02c1f3e4  fa80\n")
    assert x64.debugger.execute("db /c 1 MmPfnDatabase+b l1") == "fffff800`02c1f3e3  03  .\n"


def test_db_wide_lines_keep_the_ascii_column_aligned(x64):
    assert x64.debugger.execute("db /c 20 nt L30") == (
        "fffff800`02a1f000  4d 5a 00 00 00 00 00 00-00 00 00 00 00 00 00 00"
        "-00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00  MZ..............................\n"
        "fffff800`02a1f020  00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00"
        + " " * 48 + "  ................\n")


def test_dq_dc_dp_and_a_partial_last_line(x86, x64):
    assert x64.debugger.execute("dq /c 3 MmPfnDatabase L4") == (
        "fffff800`02c1f3d8  fffffa80`00000000 fffffa80`03000010 00000000`00000001\n"
        "fffff800`02c1f3f0  00000000`0000ffef\n")
    assert x64.debugger.execute("dc /c 2 nt L3") == (
        "fffff800`02a1f000  00005a4d 00000000  MZ......\n"
        "fffff800`02a1f008  00000000           ....\n")
    assert x86.debugger.execute("dp /c 2 MmPfnDatabase L3") == \
        "82b4f38c  84000000 86000008\n82b4f394  00000001\n"
    assert x64.debugger.execute("dp /c 1 MmPfnDatabase L2") == \
        "fffff800`02c1f3d8  fffffa80`00000000\nfffff800`02c1f3e0  fffffa80`03000010\n"


def test_unreadable_cells_with_columns(x86):
    assert x86.debugger.execute("db /c 4 0 L4") == "00000000  ?? ?? ?? ??  ????\n"
    assert x86.debugger.execute("dd /c 2 0 L2") == "00000000  ???????? ????????\n"


def test_columns_change_the_lines_not_the_cells(x86, x64):
    """Every width shows the same cells as the default layout, in the same order."""
    for d in (x86.debugger, x64.debugger):
        for cmd in ("db", "dw", "dd", "dq", "dp"):
            plain = d.execute(f"{cmd} MmPfnDatabase L20")
            cells = [c for line in plain.splitlines() for c in line.split("  ")[1].split()]
            for width in (1, 3, 7, 0x10, 0x25):
                out = d.execute(f"{cmd} /c {width:x} MmPfnDatabase L20")
                lines = out.splitlines()
                got = [c for line in lines
                       for c in re.split(r"[ -]", line.split("  ")[1]) if c]
                if cmd == "db":
                    got = [c for line in lines
                           for c in re.split(r"[ -]", line[line.index("  ") + 2:][:width * 3 - 1])
                           if c]
                assert got == [c for c in cells if c != "-"] or \
                    got == [c for cell in cells for c in cell.split("-")], (cmd, width)
                per_line = [len(re.split(r"[ -]", line.split("  ")[1].strip()))
                            for line in lines]
                if cmd != "db":
                    assert max(per_line) == min(width, len(got))


def test_dds_family_one_column_is_the_default_layout(x86, x64):
    for d in (x86.debugger, x64.debugger):
        assert d.execute("dps /c 1 PsLoadedModuleList L4") == \
            d.execute("dps PsLoadedModuleList L4")
    assert x86.debugger.execute("dds /c 2 MmPfnDatabase L3") == \
        "82b4f38c  84000000 86000008\n82b4f394  00000001\n"


def test_dds_columns_keep_each_values_symbol(x64):
    # nt's loader entry: the list links, then DllBase and EntryPoint (inside nt).
    assert x64.debugger.execute("dqs /c 2 poi(PsLoadedModuleList) L8") == (
        "fffffa80`030000c0  fffffa80`030001c0 fffff800`02c1f350 nt!PsLoadedModuleList\n"
        "fffffa80`030000d0  fffffa80`030000d0 fffffa80`030000d0\n"
        "fffffa80`030000e0  fffffa80`030000e0 fffffa80`030000e0\n"
        "fffffa80`030000f0  fffff800`02a1f000 nt fffff800`02bcf000 nt!KiSystemStartup\n")
    one = x64.debugger.execute("dqs poi(PsLoadedModuleList) L8").splitlines()
    two = x64.debugger.execute("dqs /c 2 poi(PsLoadedModuleList) L8").splitlines()
    assert two == [one[k] + " " + one[k + 1].split("  ", 1)[1] for k in range(0, 8, 2)]


def test_d_takes_the_option_too(x64):
    d = x64.debugger
    d.execute("dd MmPfnDatabase L1")
    assert d.execute("d /c 1 MmPfnDatabase L2") == \
        "fffff800`02c1f3d8  00000000\nfffff800`02c1f3dc  fffffa80\n"


def test_bad_widths_and_physical_commands(x64):
    d = x64.debugger
    assert d.execute("dd /c 0 MmPfnDatabase") == \
        " " * 7 + "      ^ Syntax error in 'dd /c 0 MmPfnDatabase'\n"
    assert d.execute("dd /c") == " " * 7 + "   ^ Syntax error in 'dd /c'\n"
    # The physical !d* extensions have no /c (MSD-physd lists their options).
    assert d.execute("!dd /c 1 0") == " " * 7 + "    ^ Syntax error in '!dd /c 1 0'\n"
