"""Random and mutated command lines: nothing escapes the engine, and nothing it prints is
an internal error -- every failure is worded as WinDbg words it."""
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import kdsim
import kdsim.kd.commands  # noqa: F401  (the registry is full before NAMES is taken)
from kdsim.kd.registry import REGISTRY


@pytest.fixture(autouse=True, scope="module")
def _in_a_scratch_directory(tmp_path_factory):
    """Random lines reach .logopen and $<: files they create land in a scratch directory."""
    import os
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("fuzz"))
    yield
    os.chdir(old)


# Machines of their own: the fuzz writes memory (eb, ed, eq) and changes the context.
@pytest.fixture(scope="module")
def fuzz_x86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


@pytest.fixture(scope="module")
def fuzz_x64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")

TOKENS = ["0", "1", "nt", "hal", "L", "L?", "l4", "L-4", "10000", "-1", "ffffffff", "80000000",
          "fffff800`02a1f000", "(", ")", "(1", "poi(", "dwo(", "+", "-", "*", "/", "mod", "0x",
          "0n12", "0y2", "`", "$t0", "@cr3", "@$proc", "foo", "nt!foo", "!", "\"", "'a'",
          "/p", "/r", "/i", "=", "7ffe0000", "nt!MmPfnDatabase", "MmHighestUserAddress", ";",
          "$$", "*", "==", "<<", ">>>", "and", "xor", "-summary", "-r1", "-r", "-b", "m", "v",
          "_EPROCESS", "nt!_MMPFN", "Pcb.", "*!Mm*", "nt!Mm*", "@$peb", "@cr4", "a", "1 1"]
NAMES = sorted({n for c in REGISTRY.commands for n in c.names})
line = st.builds(lambda c, args, junk: f"{c} {' '.join(args)}{junk}",
                 st.sampled_from(NAMES + ["", "zz", "d"]),
                 st.lists(st.sampled_from(TOKENS), max_size=5),
                 st.text(alphabet="0123456789abcdefLl ?!@$`();\"'", max_size=6))


def _check(debugger, text):
    """Run a line as the shell does; a command still printing after 256 KB (a huge L? dump
    or !pte range) is stopped the way Ctrl-C stops it."""
    pieces = []

    def write(piece):
        assert isinstance(piece, str)
        pieces.append(piece)
        if sum(map(len, pieces)) > 256 << 10:
            raise KeyboardInterrupt
    try:
        debugger.run_line(text, write)
    except KeyboardInterrupt:
        pass
    out = "".join(pieces)
    assert "internal error" not in out and "Traceback" not in out, (text, out)


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=line)
def test_random_command_lines_on_x86(fuzz_x86, text):
    _check(fuzz_x86.debugger, text)


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=line)
def test_random_command_lines_on_x64(fuzz_x64, text):
    _check(fuzz_x64.debugger, text)
