"""Every workshop script reproduces its reviewed transcript byte for byte.

A script's first line names how it is run: ``$$ kdsim <options> -q -cf <script>``; the
test runs kdsim's command line in-process with those options and compares its output with
the ``.txt`` beside the script."""
import shlex
from pathlib import Path

import pytest

from kdsim.shell.cli import main

HERE = Path(__file__).resolve().parents[2] / "scripts" / "workshop"
SCRIPTS = sorted(HERE.glob("[0-9][0-9]-*.kd"))


def command_line(script: Path) -> list[str]:
    first = script.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("$$ kdsim "), f"{script.name}: the first line must say how it runs"
    words = shlex.split(first[len("$$ kdsim "):])
    assert words[-2:] == ["-cf", f"scripts/workshop/{script.name}"], script.name
    assert "-q" in words and "--target" in words and "--scenario" in words, script.name
    return words[:-1] + [str(script)]


def test_there_are_workshop_scripts():
    assert SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_workshop_transcript(script, capsys):
    assert script.read_text(encoding="utf-8").rstrip().splitlines()[-1].strip() == "q"
    assert main(command_line(script)) == 0
    got = capsys.readouterr().out
    want = script.with_suffix(".txt").read_text(encoding="utf-8")
    assert got == want
