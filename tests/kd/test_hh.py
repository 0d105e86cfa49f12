""".hh, .help, ? alone and command_table (all generated from the command table), .cls and q."""
import kdsim
from kdsim.kd.commands.meta import command_table
from kdsim.kd.registry import REGISTRY


def test_hh_prints_a_commands_syntax_summary_and_help(x64):
    assert x64.debugger.execute(".hh dd") == "dd [/c Width] [Range]\n    display memory as double words\n"
    assert x64.debugger.execute(".hh d") == (
        "d [/c Width] [Range]\n"
        "    display memory in the format of the last d* command\n"
        "\n"
        "    db when no display command has run yet.  The physical !d* extensions do\n"
        "    not count.\n")


def test_hh_names_aliases_and_finds_extensions_without_the_bang(x86):
    assert x86.debugger.execute(".hh qq").splitlines()[:3] == \
        ["q", "    end the debugging session", "    Names: q, qq"]
    assert x86.debugger.execute(".hh DU") == x86.debugger.execute(".hh du")
    assert x86.debugger.execute(".hh du").startswith("du [Range]\n")
    assert x86.debugger.execute(".hh !du").startswith("!du [PhysicalAddress] [L Count]\n")
    assert x86.debugger.execute(".hh eb").startswith("eb Address Values\n")
    assert x86.debugger.execute(".hh ed") == x86.debugger.execute(".hh ed ")


def test_hh_every_registered_name_has_a_page(x64):
    for cmd in REGISTRY.commands:
        for name in cmd.names:
            page = x64.debugger.execute(f".hh {name}")
            assert page.startswith(cmd.syntax + "\n    " + cmd.summary), name


def test_hh_unknown_topic_is_one_line(x64):
    assert x64.debugger.execute(".hh dbgerr004") == \
        "No help for 'dbgerr004'; .help lists the commands\n"


def test_help_lists_every_command_once_in_windbgs_groups(x64):
    table = command_table()
    assert len(table) == len(REGISTRY.commands)
    assert sorted(s for s, _ in table) == sorted(c.syntax for c in REGISTRY.commands)
    groups = [1 if s.startswith(".") else 2 if s.startswith("!") else 0 for s, _ in table]
    assert groups == sorted(groups)            # commands, meta-commands, extensions
    assert table[0] == ("$$ comment", "a comment up to the next ';'")
    assert ("* comment", "a comment up to the end of the line") in table
    assert ("? Expression", "evaluate an expression") in table
    plain = [s for s, _ in table if groups[table.index((s, _))] == 0]
    assert plain == sorted(plain, key=lambda s: (s[0].isalpha(), s.lower()))
    out = x64.debugger.execute(".help")
    assert out.splitlines() == [f"{s:<32}  {summary}" for s, summary in table]
    assert "d [/c Width] [Range]              display memory in the format of the last " \
           "d* command" in out.splitlines()
    assert x64.debugger.execute(".hh") == out
    assert x64.debugger.execute("?") == out


def test_help_marks_kdsim_extensions():
    marked = {s for s, summary in command_table() if summary.endswith("  [kdsim]")}
    assert marked == {c.syntax for c in REGISTRY.commands if c.kdsim_only}


def test_cls_prints_nothing_and_asks_the_shell_to_clear():
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    assert m.debugger.execute(".cls") == ""
    assert m.debugger.clear_requested is True


def test_q_prints_nothing_and_asks_the_shell_to_quit():
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d = m.debugger
    assert not getattr(d, "quit_requested", False)
    assert d.execute("q 1") == " " * 9 + "^ Syntax error in 'q 1'\n"
    assert not getattr(d, "quit_requested", False)
    assert d.execute("q") == ""
    assert d.quit_requested is True
    m2 = kdsim.boot("win7-x86", ram="256m", scenario="none")
    assert m2.debugger.execute("qq") == "" and m2.debugger.quit_requested is True
