"""!db, !dd, !dq, !dc: physical memory, '#' and an 8-column address, failures as WinDbg words them."""


def test_physical_db_and_a_read_into_the_hole(x64):
    d = x64.debugger
    assert d.execute("!db 0x9eff0 l10") == \
        "#   9eff0 00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00 ................\n"
    assert d.execute("!db 0x9f000 l1") == "Physical memory read at 9f000 failed\n"
    assert d.execute("!db 0x9eff0 l20") == (
        "#   9eff0 00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00 ................\n"
        "Physical memory read at 9f000 failed\n")


def test_physical_dd_dq_dc_read_the_nt_image(x86, x64):
    assert x64.debugger.execute("!dd 2a1f000 l4") == "# 2a1f000 00005a4d 00000000 00000000 00000000\n"
    assert x64.debugger.execute("!dq 2a1f000 l1") == "# 2a1f000 00000000`00005a4d\n"
    assert x86.debugger.execute("!dc 2a1f000 l4") == \
        "# 2a1f000 00005a4d 00000000 00000000 00000000 MZ..............\n"
