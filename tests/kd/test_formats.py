""".formats: the reference's samples line for line (times in UTC -- WinDbg prints the
host's local time, kdsim UTC), 32-bit layouts on x86 and 64-bit ones on x64, errors."""
import struct


def _block(*lines):
    return "Evaluate expression:\n" + "".join(f"  {line}\n" for line in lines)


def test_x86_sample_the_page_tables_exercise_uses(x86):
    # windbg-formats.md §15.2 / workshops D-3: the sample's Time is UTC-8, kdsim's UTC.
    assert x86.debugger.execute(".formats 12f980") == _block(
        "Hex:     0012f980",
        "Decimal: 1243520",
        "Decimal (unsigned) : 1243520",
        "Octal:   00004574600",
        "Binary:  00000000 00010010 11111001 10000000",
        "Chars:   ....",
        "Time:    Thu Jan 15 09:25:20 1970",
        "Float:   low 1.74254e-039 high 0",
        "Double:  6.14381e-318")


def test_x86_negative_value_is_sign_extended_for_float_and_double(x86):
    assert x86.debugger.execute(".formats 80010033") == _block(
        "Hex:     80010033",
        "Decimal: -2147418061",
        "Decimal (unsigned) : 2147549235",
        "Octal:   20000200063",
        "Binary:  10000000 00000001 00000000 00110011",
        "Chars:   ...3",
        "Time:    ***** Invalid",
        "Float:   low -9.1907e-041 high -1.#QNAN",
        "Double:  -1.#QNAN")


def test_x64_small_value(x64):
    # Sample: "Thu Jan  1 08:45:16 1970" in UTC+8.
    assert x64.debugger.execute(".formats a9c") == _block(
        "Hex:     00000000`00000a9c",
        "Decimal: 2716",
        "Decimal (unsigned) : 2716",
        "Octal:   0000000000000000005234",
        "Binary:  00000000 00000000 00000000 00000000 00000000 00000000 00001010 10011100",
        "Chars:   ........",
        "Time:    Thu Jan  1 00:45:16 1970",
        "Float:   low 3.80593e-042 high 0",
        "Double:  1.34188e-320")


def test_x64_pool_tag_value_is_a_filetime(x64):
    # Sample: "Fri Jan  7 20:15:00.577 28163 (UTC - 7:00)".
    assert x64.debugger.execute(".formats 0x74536d4d`03880000") == _block(
        "Hex:     74536d4d`03880000",
        "Decimal: 8382163509005778944",
        "Decimal (unsigned) : 8382163509005778944",
        "Octal:   0721233324640342000000",
        "Binary:  01110100 01010011 01101101 01001101 00000011 10001000 00000000 00000000",
        "Chars:   tSmM....",
        "Time:    Sat Jan  8 03:15:00.577 28163 (UTC + 0:00)",
        "Float:   low 7.99336e-037 high 6.70039e+031",
        "Double:  2.22547e+252")


def test_x64_kernel_address(x64):
    d = x64.debugger
    assert d.execute(".formats nt") == d.execute(".formats fffff800`02a1f000")
    assert d.execute(".formats fffff805`2e3ff090") == _block(
        "Hex:     fffff805`2e3ff090",
        "Decimal: -8773842243440",
        "Decimal (unsigned) : 18446735299867308176",
        "Octal:   1777777600245617770220",
        "Binary:  11111111 11111111 11111000 00000101 00101110 00111111 11110000 10010000",
        "Chars:   .....?..",
        "Time:    ***** Invalid FILETIME",
        "Float:   low 4.3642e-011 high -1.#QNAN",
        "Double:  -1.#QNAN")


def test_special_floats_zero_and_time_zero(x64, x86):
    lines = x64.debugger.execute(".formats 0").splitlines()
    assert lines[7:] == ["  Time:    Thu Jan  1 00:00:00 1970", "  Float:   low 0 high 0",
                         "  Double:  0"]
    assert x86.debugger.execute(".formats 7f800000").splitlines()[8] == \
        "  Float:   low 1.#INF high 0"
    assert x86.debugger.execute(".formats ffc00000").splitlines()[8] == \
        "  Float:   low -1.#IND high -1.#QNAN"
    assert x64.debugger.execute(".formats 7ff00000`00000001").splitlines()[9] == \
        "  Double:  1.#SNAN"
    assert x64.debugger.execute(".formats fff00000`00000000").splitlines()[9] == \
        "  Double:  -1.#INF"


def test_values_agree_with_an_independent_conversion(x64, x86):
    for value in (0x3F800000, 0x40490FDB, 0x00800000, 0x12345678):
        want = f"{struct.unpack('<f', value.to_bytes(4, 'little'))[0]:g}"
        mantissa, _, exponent = want.partition("e")
        if exponent:
            want = f"{mantissa}e{exponent[0]}{int(exponent[1:]):03d}"
        assert x86.debugger.execute(f".formats {value:x}").splitlines()[8] == \
            f"  Float:   low {want} high 0"
    out = x64.debugger.execute(".formats 3ff00000`00000000").splitlines()
    assert out[9] == "  Double:  1" and out[8] == "  Float:   low 0 high 1.875"
    # A 64-bit time_t above 2^31 on x64 (32 bits wide): 2038 is no overflow.
    assert x64.debugger.execute(".formats 80000000").splitlines()[7] == \
        "  Time:    Tue Jan 19 03:14:08 2038"


def test_x86_value_wider_than_32_bits_shows_64(x86):
    out = x86.debugger.execute(".formats 1`00000000").splitlines()
    assert out[1] == "  Hex:     00000001`00000000"
    assert out[4] == "  Octal:   0000000000040000000000"


def test_errors(x64):
    d = x64.debugger
    assert d.execute(".formats") == " " * 15 + "^ Syntax error in '.formats'\n"
    assert d.execute(".formats nosuch") == "Couldn't resolve error at 'nosuch'\n"
    assert d.execute(".formats 1+") == " " * 17 + "^ Syntax error in '.formats 1+'\n"
    assert d.execute(".formats poi(0)") == "Memory access error at ')'\n"
