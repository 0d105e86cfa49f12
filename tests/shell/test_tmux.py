"""kdsim in a real terminal: typed into a tmux pane, read back from its screen."""
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _screen(name):
    return subprocess.run(["tmux", "capture-pane", "-t", name, "-p"], capture_output=True,
                          text=True).stdout


def _wait_for(name, text, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        screen = _screen(name)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; the screen:\n{_screen(name)}")


def test_kdsim_in_a_terminal(tmp_path):
    name = f"kdsim-{uuid.uuid4().hex[:8]}"
    env = f"PYTHONPATH={ROOT} XDG_DATA_HOME={tmp_path} NO_COLOR=1"
    cmd = f"env {env} {sys.executable} -m kdsim --target wrk-x86; echo EXITED $?; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "50", cmd],
                   check=True)
    try:
        _wait_for(name, "Type .help for commands, q to quit.")
        _wait_for(name, "0: kd>")           # capture-pane drops trailing blanks
        subprocess.run(["tmux", "send-keys", "-t", name, "dd nt!MmHighestUserAddress L1",
                        "Enter"], check=True)
        _wait_for(name, "80930354  7ffeffff")
        subprocess.run(["tmux", "send-keys", "-t", name, "db 340000 L10", "Enter"], check=True)
        _wait_for(name, "00340000  41 00 00 00")
        subprocess.run(["tmux", "send-keys", "-t", name, "Enter"], check=True)   # repeat
        _wait_for(name, "00340010  00 00 00 00")
        subprocess.run(["tmux", "send-keys", "-t", name, "? 1", "C-c"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", name, "? 0n42", "Enter"], check=True)
        screen = _wait_for(name, "Evaluate expression: 42 = 0000002a")
        assert "Evaluate expression: 1 =" not in screen         # Ctrl-C dropped the line
        subprocess.run(["tmux", "send-keys", "-t", name, "q", "Enter"], check=True)
        _wait_for(name, "EXITED 0")
        history = (tmp_path / "kdsim" / "history").read_text()
        assert "+dd nt!MmHighestUserAddress L1" in history and "+? 0n42" in history
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
