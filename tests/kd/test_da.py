"""da (ASCII strings) and d (the last display format): stop at the null or the count, 32
characters a line, '?' for unreadable memory, continuation after the null."""
import pytest

import kdsim


@pytest.fixture(scope="module")
def machines():
    # Machines of their own: these tests write strings into the nt image's first pages.
    return {t: kdsim.boot(t, ram="256m", scenario="none") for t in ("win7-x64", "win7-x86")}


def _image_name(m):
    return m.nt.ts.offset_of("_EPROCESS", "ImageFileName")


def test_da_shows_the_system_process_image_name(x64, x86):
    assert x64.debugger.execute(f"da poi(PsInitialSystemProcess)+{_image_name(x64):x}") == \
        'fffffa80`03000570  "System"\n'
    assert x86.debugger.execute(f"da poi(PsInitialSystemProcess)+{_image_name(x86):x}") == \
        '8600030c  "System"\n'


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_da_reads_what_the_memory_manager_named_every_process(target):
    m = kdsim.boot(target, ram="256m", scenario="default")
    off = _image_name(m)
    for proc in m.nt.scenario["processes"].values():
        line = m.debugger.execute(f"da {proc.ep + off:x}")
        assert line.split("  ", 1)[1] == f'"{proc.name[:15]}"\n'


def test_long_strings_wrap_at_32_characters_and_stop_at_the_null(machines):
    d = machines["win7-x64"].debugger
    text = "The quick brown fox jumps over the lazy dog; 0123456789"   # 55 characters
    assert d.execute(f'eza nt+1000 "{text}"') == ""
    assert d.execute("da nt+1000") == (
        'fffff800`02a20000  "The quick brown fox jumps over t"\n'
        'fffff800`02a20020  "he lazy dog; 0123456789"\n')
    x86 = machines["win7-x86"].debugger
    x86.execute(f'eza nt+1000 "{text}"')
    assert x86.execute("da nt+1000") == (
        '82a20000  "The quick brown fox jumps over t"\n'
        '82a20020  "he lazy dog; 0123456789"\n')


def test_a_string_of_exactly_32_characters_is_one_line(machines):
    d = machines["win7-x86"].debugger
    d.execute('eza nt+1100 "' + "x" * 32 + '"')
    assert d.execute("da nt+1100") == '82a20100  "' + "x" * 32 + '"\n'


def test_the_count_limits_the_string_and_nonprintable_bytes_are_dots(machines):
    d = machines["win7-x86"].debugger
    d.execute("eb nt+1200 41 0d 0a 42 ff 43 00")
    assert d.execute("da nt+1200 L2") == '82a20200  "A."\n'
    assert d.execute("da nt+1200 nt+1203") == '82a20200  "A..B"\n'
    assert d.execute("da nt+1200") == '82a20200  "A..B.C"\n'


def test_without_a_range_the_string_is_128_characters_at_most(machines):
    d = machines["win7-x64"].debugger
    d.execute('ea nt+1300 "' + "y" * 0xA0 + '"')
    lines = d.execute("da nt+1300").splitlines()
    assert len(lines) == 4 and all(line.endswith('"' + "y" * 32 + '"') for line in lines)
    assert lines[3].startswith("fffff800`02a20360  ")


def test_da_without_a_range_continues_after_the_null(machines):
    d = machines["win7-x86"].debugger
    d.execute('eza nt+1400 "one"; eza nt+1404 "two"')
    assert d.execute("da nt+1400") == '82a20400  "one"\n'
    assert d.execute("da") == '82a20404  "two"\n'
    assert d.execute("da") == '82a20408  ""\n'


def test_unreadable_memory_shows_question_marks_and_ends_the_string(x64, x86):
    assert x64.debugger.execute("da 10000") == \
        '00000000`00010000  "' + "?" * 32 + '"\n'
    assert x86.debugger.execute("da 10000 L4") == '00010000  "????"\n'


def test_errors_are_worded_as_windbg_words_them(x64):
    d = x64.debugger
    assert d.execute("da nosuch") == "Couldn't resolve error at 'nosuch'\n"
    # More than 256 MB of characters needs L?; the caret sits under the count's last digit.
    assert d.execute("da 10000 L 10000001") == \
        " " * 25 + "^ Range error in 'da 10000 L 10000001'\n"
    assert d.execute("da (1") == " " * 12 + "^ Syntax error in 'da (1'\n"


def test_d_is_db_before_any_display_then_repeats_the_last_format():
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    d = m.debugger
    assert d.execute("d nt L10") == d.execute("db nt L10")
    d.execute("dd nt L1")
    assert d.execute("d") == d.execute("dd nt+4")
    assert d.execute("d nt L2") == "82a1f000  00005a4d 00000000\n"
    d.execute(f"da poi(PsInitialSystemProcess)+{_image_name(m):x}")
    assert d.execute(f"d poi(PsInitialSystemProcess)+{_image_name(m):x}") == \
        '8600030c  "System"\n'
    d.execute("dps nt L1")
    assert d.execute("d poi(PsLoadedModuleList)+4 L1") == \
        "86000094  82b4f348 nt!PsLoadedModuleList\n"
    # The physical !d* extensions are not d* commands: d keeps the last virtual format.
    d.execute("!db 0 L1")
    assert d.execute("d nt L1") == "82a1f000  00005a4d\n"       # dps, not db
    assert d.execute("d 10000 L 40000001") == \
        " " * 24 + "^ Range error in 'd 10000 L 40000001'\n"
