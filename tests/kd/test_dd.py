"""dd, dw, dq, dp: cells of the unit's width, pointer-width addresses, L counts, ranges,
errors."""


def test_dd_reads_mmhighestuseraddress(x86, x64):
    assert x86.debugger.execute("dd MmHighestUserAddress L1") == "82b4f354  7ffeffff\n"
    assert x64.debugger.execute("dd MmHighestUserAddress L2") == \
        "fffff800`02c1f368  fffeffff 000007ff\n"


def test_dq_uses_the_backtick_form_on_both_targets(x86, x64):
    assert x64.debugger.execute("dq MmSystemRangeStart L1") == \
        "fffff800`02c1f378  ffff0800`00000000\n"
    assert x86.debugger.execute("dq MmHighestUserAddress L1") == \
        "82b4f354  7fff0000`7ffeffff\n"


def test_dp_is_dd_on_x86_and_dq_on_x64(x86, x64):
    assert x86.debugger.execute("dp MmPfnDatabase L1") == "82b4f38c  84000000\n"
    assert x64.debugger.execute("dp MmPfnDatabase L1") == \
        "fffff800`02c1f3d8  fffffa80`00000000\n"


def test_dw_and_an_inclusive_end_address(x64):
    assert x64.debugger.execute("dw nt nt+7") == "fffff800`02a1f000  5a4d 0000 0000 0000\n"


def test_unreadable_dwords_and_qwords(x86, x64):
    assert x86.debugger.execute("dd 10000 L4") == "00010000  ???????? ???????? ???????? ????????\n"
    assert x64.debugger.execute("dq 10000 L2") == \
        "00000000`00010000  ????????`???????? ????????`????????\n"


def test_range_and_symbol_errors(x64):
    d = x64.debugger
    # 0x40000000 dwords is more than 256 MB: the caret goes under the count's last digit.
    assert d.execute("dd 10000 L 40000000") == " " * 25 + "^ Range error in 'dd 10000 L 40000000'\n"
    assert d.execute("dd nosuch") == "Couldn't resolve error at 'nosuch'\n"
    assert d.execute("dd 10000 L?40000000".replace("40000000", "1")) == \
        "00000000`00010000  ????????\n"
