"""README.md tells the truth: its command list is the registry's, its first screen has
the two commands a newcomer runs."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("readme_commands",
                                                  ROOT / "scripts" / "readme_commands.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_command_list_is_generated_from_the_registry():
    gen = _generator()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert gen.current(text) == gen.block()
    from kdsim.kd.registry import REGISTRY
    for cmd in REGISTRY.commands:             # every command is in the list
        assert f"| `{cmd.syntax.replace('|', chr(92) + '|')}` |" in text


def test_readme_first_screen_has_the_install_commands():
    first = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:25])
    assert 'pip install -e ".[test]" && kdsim' in first
    assert 'pip install -e ".[test]" && pytest' in first


def _replay_readme_block(first_line: str) -> None:
    """The README's transcript block that starts with ``first_line`` is what kdsim's
    default machine prints for the commands in it."""
    import kdsim
    from kdsim.shell.runner import Runner
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```\n" + first_line)
    block = text[start + 4:text.index("```", start + 4)]
    lines = [line[len("0: kd> "):] for line in block.splitlines() if line.startswith("0: kd> ")]
    out = []
    runner = Runner(kdsim.boot().debugger, out.append)
    for line in lines:
        runner.run(line, echo=True)
    assert "".join(out) == block


def test_readme_sim_example_is_what_kdsim_prints():
    _replay_readme_block("0: kd> !sim.spawn test.exe")


def test_readme_breakpoint_example_is_what_kdsim_prints():
    _replay_readme_block("0: kd> !sim.run pagefault")
