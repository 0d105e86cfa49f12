"""db and dc: bytes (or dwords) with the ASCII column, unreadable cells as ??."""


def test_db_at_the_nt_image(x64):
    assert x64.debugger.execute("db nt L20") == (
        "fffff800`02a1f000  4d 5a 00 00 00 00 00 00-00 00 00 00 00 00 00 00  MZ..............\n"
        "fffff800`02a1f010  00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00  ................\n")


def test_db_on_x86_uses_eight_digit_addresses(x86):
    assert x86.debugger.execute("db nt L10") == (
        "82a1f000  4d 5a 00 00 00 00 00 00-00 00 00 00 00 00 00 00  MZ..............\n")


def test_unreadable_bytes_and_a_short_last_line(x64):
    assert x64.debugger.execute("db 10000 L18") == (
        "00000000`00010000  ?? ?? ?? ?? ?? ?? ?? ??-?? ?? ?? ?? ?? ?? ?? ??  ????????????????\n"
        "00000000`00010010  ?? ?? ?? ?? ?? ?? ?? ??                          ????????\n")


def test_dc_shows_dwords_and_the_bytes_in_memory_order(x64):
    assert x64.debugger.execute("dc nt L4") == \
        "fffff800`02a1f000  00005a4d 00000000 00000000 00000000  MZ..............\n"


def test_db_default_is_eight_lines_and_db_without_range_continues(x86):
    d = x86.debugger
    first = d.execute("db nt")
    assert len(first.splitlines()) == 8
    assert d.execute("db").splitlines()[0].startswith("82a1f080  ")
