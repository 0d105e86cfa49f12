"""The kdsim command line: transcripts from -c, -cf and standard input, options, exit
status, and the interactive prompt driven through prompt_toolkit's pipe input."""
import os
import subprocess
import sys

import pytest

import kdsim
from kdsim.shell.cli import main, ram_text
from kdsim.shell.runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kdsim_cli(*args, stdin=""):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "kdsim", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def test_c_commands_then_q_is_a_transcript():
    r = kdsim_cli("--target", "wrk-x86", "-q", "-c",
                  "? poi(MmHighestUserAddress); dd nt!MmSystemRangeStart L1; q")
    assert r.returncode == 0 and r.stderr == ""
    dd = kdsim.boot("wrk-x86", ram="256m", scenario="none").debugger.execute(
        "dd nt!MmSystemRangeStart L1")
    assert r.stdout == ("0: kd> ? poi(MmHighestUserAddress); dd nt!MmSystemRangeStart L1; q\n"
                        "Evaluate expression: 2147418111 = 7ffeffff\n" + dd)
    assert dd.endswith("  80000000\n")


def test_standard_input_is_read_as_commands_and_echoed():
    r = kdsim_cli("--target", "win7-x86", "-q", stdin="? 0n10\n\n.echo hi\n")
    assert r.returncode == 0
    assert r.stdout == ("0: kd> ? 0n10\nEvaluate expression: 10 = 0000000a\n"
                        "0: kd> \n"
                        "0: kd> .echo hi\nhi\n")


def test_script_file_and_banner(tmp_path):
    script = tmp_path / "s.kd"
    script.write_text("$$ a comment\n? 1\nq\n? 2\n")
    r = kdsim_cli("--target", "win7-x64", "--ram", "512m", "--scenario", "none",
                  "-cf", str(script))
    assert r.returncode == 0
    head, _, rest = r.stdout.partition("Type .help for commands, q to quit.\n")
    assert head.startswith("kdsim ") and "Target win7-x64, 512 MB RAM, scenario none, seed 0" \
        in head and "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x64" in head
    assert rest == ("0: kd> $$ a comment\n0: kd> ? 1\n"
                    "Evaluate expression: 1 = 00000000`00000001\n0: kd> q\n")


def test_same_input_gives_the_same_transcript_byte_for_byte():
    cmds = "!process 0 0; !pte 7ffe0000; q"
    a = kdsim_cli("-q", "--seed", "3", "-c", cmds)
    b = kdsim_cli("-q", "--seed", "3", "-c", cmds)
    assert a.returncode == 0 and a.stdout == b.stdout and "PROCESS" in a.stdout


@pytest.mark.parametrize("args, message", [
    (["--target", "win95"], "kdsim: error: argument --target: invalid choice: 'win95'"),
    (["--bogus"], "kdsim: error: unrecognized arguments: --bogus"),
    (["--ram", "1m", "-c", "q"], "kdsim: error: kdsim needs at least 256 MB of guest RAM"),
    (["--seed", "x"], "kdsim: error: argument --seed: invalid int value: 'x'"),
])
def test_bad_options_get_one_line_and_status_2(args, message):
    r = kdsim_cli(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(message)


def test_missing_script_file_is_an_error(tmp_path):
    r = kdsim_cli("-cf", str(tmp_path / "nope.kd"))
    assert r.returncode == 1
    assert r.stderr == f"kdsim: cannot read script file '{tmp_path / 'nope.kd'}': " \
        "No such file or directory\n"


def test_version():
    r = kdsim_cli("--version")
    assert r.returncode == 0 and r.stdout == f"kdsim {kdsim.__version__}\n"


def test_ram_text():
    assert ram_text("2g") == "2 GB" and ram_text("512M") == "512 MB" and ram_text("64g") == "64 GB"


# -- the interactive prompt ---------------------------------------------------------------

@pytest.fixture(scope="module")
def x86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


def run_interactive(booted, keys: str):
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from kdsim.shell.app import interact, make_session
    written = []
    runner = Runner(booted.debugger, written.append)
    booted.debugger.quit_requested = False
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        session = make_session(False, input=pipe, output=DummyOutput(),
                               history=InMemoryHistory())
        status = interact(runner, session=session)
    return status, "".join(written), session


def test_interactive_runs_lines_repeats_display_on_enter_and_quits(x86):
    status, out, session = run_interactive(
        x86, "dd nt!MmHighestUserAddress L4\r\r? 3\rq\r")
    d = kdsim.boot("win7-x86", ram="256m", scenario="none").debugger
    expected = d.execute("dd nt!MmHighestUserAddress L4") + d.execute("dd") + \
        d.execute("? 3")
    assert status == 0 and out == expected
    assert session.history.get_strings() == ["dd nt!MmHighestUserAddress L4", "? 3", "q"]


def test_interactive_ends_on_ctrl_d(x86):
    status, out, _ = run_interactive(x86, "? 1\r\x04")
    assert status == 0 and out == "Evaluate expression: 1 = 00000001\n"


def test_ctrl_c_during_a_command_returns_to_the_prompt(x86):
    class Slow:
        prompt = "0: kd> "
        calls = []

        def run_line(self, line, write, typed=None):
            self.calls.append(line)
            write("first part\n")
            if line == "slow":
                raise KeyboardInterrupt
            write("ok\n")
    written = []
    r = Runner(Slow(), written.append)
    r.run("slow", echo=False)
    r.run("fast", echo=False)
    assert written == ["first part\n", "^C\n", "first part\n", "ok\n"]
    assert Slow.calls == ["slow", "fast"]


def test_a_long_dump_stops_on_ctrl_c_after_what_it_printed(x86):
    """A real command: db over 1 GB with L? is read and printed a chunk at a time; the
    interrupt (raised here by the output after 3 chunks) stops it and the session goes on."""
    d = x86.debugger
    pieces = []

    def write(text):
        pieces.append(text)
        if len(pieces) == 3:
            raise KeyboardInterrupt
    written = []
    r = Runner(d, written.append)
    r.write = write
    r.run("db 80000000 L?40000000", echo=False)
    assert len(pieces) == 4 and pieces[-1] == "^C\n"             # three chunks, then ^C
    assert all(p.count("\n") == 1024 for p in pieces[:3])       # 1024 lines each
    assert pieces[0].startswith("80000000  ") and pieces[2].startswith("80008000  ")
    r.write = written.append
    r.run("? 1", echo=False)
    assert written == ["Evaluate expression: 1 = 00000001\n"]


def test_main_in_process_with_c_and_q(capsys):
    assert main(["--target", "wrk-x86", "-q", "-c", ".echo x; q"]) == 0
    assert capsys.readouterr().out == "0: kd> .echo x; q\nx\n"


def test_cls_clears_the_terminal_in_the_interactive_shell(x86):
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from kdsim.shell.app import interact, make_session

    class Recording(DummyOutput):
        erased = 0

        def erase_screen(self):
            Recording.erased += 1
    written = []
    runner = Runner(x86.debugger, written.append)
    with create_pipe_input() as pipe:
        pipe.send_text(".cls\r? 1\rq\r")
        session = make_session(False, input=pipe, output=Recording(), history=InMemoryHistory())
        assert interact(runner, session=session) == 0
    assert Recording.erased == 1 and written == ["", "Evaluate expression: 1 = 00000001\n", ""]


def test_ctrl_c_at_the_prompt_drops_the_line_and_the_session_goes_on(x86):
    status, out, session = run_interactive(x86, "? 5\x03? 6\r\x04")
    assert status == 0 and out == "Evaluate expression: 6 = 00000006\n"
    assert session.history.get_strings() == ["? 6"]

