""".logopen/.logappend/.logclose/.logfile: the log holds exactly what the screen shows
from the .logopen on, in transcript and interactive mode alike."""
from datetime import datetime, timedelta

import pytest

import kdsim
from kdsim.kd.session import Debugger
from kdsim.shell.runner import Runner


@pytest.fixture(scope="module")
def m64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture(scope="module")
def m86():
    return kdsim.boot("wrk-x86", ram="256m", scenario="none")


@pytest.fixture
def d(m64, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Debugger(m64.debugger.target)


@pytest.fixture
def d86(m86, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Debugger(m86.debugger.target)


LINES = ['r $t0 = 3', '.printf "%p %d\\n", nt, @$t0', "db nt L20", "r nope; .echo no",
         '.foreach (t {.echo hidden output}) { .echo t }', "$$<script.txt",
         ".if (@$t0 == 3) { .echo three }", ".printf \"no newline\"", ".logfile"]


def read(path) -> str:
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("machine", ["d", "d86"])
def test_the_log_is_what_execute_returned(machine, request, tmp_path):
    d = request.getfixturevalue(machine)
    (tmp_path / "script.txt").write_text(".echo from the script\n")
    assert d.execute(".logopen kd.log") == "Opened log file 'kd.log'\n"
    screen = ["Opened log file 'kd.log'\n"]
    for line in LINES:
        screen.append(d.prompt + line + "\n" + d.execute(line))
    closing = d.execute(".logclose")
    assert closing == "Closing open log file kd.log\n"
    screen.append(d.prompt + ".logclose\n" + closing)
    assert read(tmp_path / "kd.log") == "".join(screen)
    assert "hidden output\n" not in read(tmp_path / "kd.log")     # InCommands: not shown
    assert "0: kd> .echo from the script\nfrom the script\n" in read(tmp_path / "kd.log")


def run(d, lines, echo):
    out = []
    runner = Runner(d, out.append)
    for line in lines:
        runner.run(line, echo=echo)
    return "".join(out)


def test_transcript_and_interactive_logs_are_the_same(m64, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [".logopen a.log"] + LINES[:3] + [".logclose"]
    shown = run(Debugger(m64.debugger.target), lines, echo=True)
    # the screen of a transcript, from the line after .logopen
    assert read(tmp_path / "a.log") == shown.split("\n", 1)[1]
    lines[0] = ".logopen b.log"
    run(Debugger(m64.debugger.target), lines, echo=False)
    assert read(tmp_path / "b.log") == read(tmp_path / "a.log").replace("a.log", "b.log")


def test_ctrl_c_is_logged_as_the_shell_shows_it(d, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = Debugger.evaluator

    def evaluator(self):
        calls["n"] += 1
        if calls["n"] > 50:
            raise KeyboardInterrupt
        return real(self)
    shown = run(d, [".logopen c.log"], echo=True)
    monkeypatch.setattr(d, "evaluator", evaluator.__get__(d))
    shown += run(d, [".while (1) { }"], echo=True)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    shown += run(d, [".logclose"], echo=True)
    assert shown.endswith("0: kd> .while (1) { }\n^C\n0: kd> .logclose\n"
                          "Closing open log file c.log\n")
    assert read(tmp_path / "c.log") == shown.split("\n", 1)[1]


def test_logappend_appends_and_logopen_truncates(d, tmp_path):
    assert d.execute(".logopen l.log; .echo one; .logclose") == \
        "Opened log file 'l.log'\none\nClosing open log file l.log\n"
    assert read(tmp_path / "l.log") == \
        "Opened log file 'l.log'\none\nClosing open log file l.log\n"
    assert d.execute(".logappend l.log") == "Opened log file 'l.log'\n"
    d.execute(".echo two")
    d.execute(".logclose")
    assert read(tmp_path / "l.log") == \
        "Opened log file 'l.log'\none\nClosing open log file l.log\n" \
        "Opened log file 'l.log'\n0: kd> .echo two\ntwo\n0: kd> .logclose\n" \
        "Closing open log file l.log\n"
    d.execute(".logopen l.log")
    d.execute(".logclose")
    assert read(tmp_path / "l.log") == \
        "Opened log file 'l.log'\n0: kd> .logclose\nClosing open log file l.log\n"


def test_opening_a_log_closes_the_open_one(d, tmp_path):
    assert d.execute(".logopen first.log") == "Opened log file 'first.log'\n"
    assert d.execute(".logopen second.log") == \
        "Closing open log file first.log\nOpened log file 'second.log'\n"
    assert read(tmp_path / "first.log") == \
        "Opened log file 'first.log'\n0: kd> .logopen second.log\n" \
        "Closing open log file first.log\n"
    d.execute(".logclose")
    assert read(tmp_path / "second.log") == \
        "Opened log file 'second.log'\n0: kd> .logclose\nClosing open log file second.log\n"


def test_logfile_and_default_name(d, tmp_path):
    assert d.execute(".logfile") == "No log file open\n"
    assert d.execute(".logclose") == ""
    assert d.execute(".logopen") == "Opened log file 'Dbgeng.log'\n"
    assert d.execute(".logfile") == "Log 'Dbgeng.log' open\n"
    assert d.execute('.logopen "with space.log"') == \
        "Closing open log file Dbgeng.log\nOpened log file 'with space.log'\n"
    d.execute(".logclose")
    assert (tmp_path / "Dbgeng.log").exists() and (tmp_path / "with space.log").exists()


def test_t_stamps_the_name_with_the_targets_clock(m64, d, tmp_path):
    t = m64.debugger.target
    shared = t.profile.address_space.shared_user_data_va
    f = t.types.field("_KUSER_SHARED_DATA", "SystemTime")
    raw = m64.core.read_physical(t.translate(shared + f.offset).pa, 12)
    ticks = int.from_bytes(raw[0:4], "little") | int.from_bytes(raw[4:8], "little") << 32
    when = datetime(1601, 1, 1) + timedelta(microseconds=ticks // 10)
    name = f"x_0000_{when:%Y-%m-%d_%H-%M-%S}-{when.microsecond // 1000:03d}.txt"
    assert d.execute(".logopen /t x.txt") == f"Opened log file '{name}'\n"
    d.execute(".logclose")
    assert (tmp_path / name).exists()


def test_u_writes_utf16(d, tmp_path):
    d.execute(".logopen /u u.log")
    d.execute(".echo wide")
    d.execute(".logclose")
    assert (tmp_path / "u.log").read_bytes().decode("utf-16") == \
        "Opened log file 'u.log'\n0: kd> .echo wide\nwide\n0: kd> .logclose\n" \
        "Closing open log file u.log\n"


def test_errors(d, tmp_path):
    assert d.execute(".logopen /q x.log") == " " * 16 + "^ Syntax error in '.logopen /q x.log'\n"
    assert d.execute(".logappend /t x.log") == \
        " " * 18 + "^ Syntax error in '.logappend /t x.log'\n"
    (tmp_path / "dir").mkdir()
    assert d.execute(".logopen dir; .echo not run") == "Unable to open log file 'dir'\n"
    assert d.execute(".logclose now") == " " * 17 + "^ Syntax error in '.logclose now'\n"
    assert d.log is None
