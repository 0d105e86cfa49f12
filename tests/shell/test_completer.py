"""Tab completion at the kd> prompt: stage one (what kind of thing is expected at the
cursor) from plain strings; stage two (the candidates) against a booted machine; and a
Tab pressed in a real prompt_toolkit session."""
import os
import sys
import threading
import time
import types

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

import kdsim
import kdsim.kd.commands
from kdsim.shell import completer as completer_module
from kdsim.shell.completer import (SCRIPT_TOKENS, CommandName, FieldName, KdCompleter, Path,
                                   ProcessName, SimArgument, SimCommand, Symbol, TypeName,
                                   suggest)

# -- stage one: plain strings -------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    # command names: at the start of a line, after ';' and inside a block
    ("", [CommandName("")]),
    ("!pr", [CommandName("!pr")]),
    ("  dd", [CommandName("dd")]),
    (".pro", [CommandName(".pro")]),
    ("?", [CommandName("?")]),
    ("$$>", [CommandName("$$>")]),
    ("dd nt!MmPfnDatabase L1; !pt", [CommandName("!pt")]),
    ("dd x;", [CommandName("")]),
    (".if (poi(nt!MmPfnDatabase) != 0) { !pf", [CommandName("!pf")]),
    (".block { dd x } ; .ec", [CommandName(".ec")]),
    (".hh !pr", [CommandName("!pr")]),
    (".foreach /pS 1 (place { !pr", [CommandName("!pr")]),
    (".else { dd nt!Mm", [Symbol("nt", "nt!Mm")]),
    ('.printf "%p\\n", nt!Mm', [Symbol("nt", "nt!Mm")]),
    ("$$>a< foo.kd 1; dd nt!Mm", [Symbol("nt", "nt!Mm")]),
    ("ad ${", []),
    (".help !s", [CommandName("!s")]),
    (".hh dd ", []),
    # symbols after commands that take an address or an expression
    ("dd nt!Mm", [Symbol("nt", "nt!Mm")]),
    ("dd NT!mm", [Symbol("nt", "NT!mm")]),
    ("dd Mm", [Symbol(None, "Mm")]),
    ("dd n", [Symbol(None, "n")]),
    ("dd nt!", [Symbol("nt", "nt!")]),
    ("dd ", [Symbol(None, "")]),
    ("? poi(nt!MmHigh", [Symbol("nt", "nt!MmHigh")]),
    ("?poi(nt!MmHigh", [Symbol("nt", "nt!MmHigh")]),
    ("? nt!MmPfnDatabase+nt!Mm", [Symbol("nt", "nt!Mm")]),
    ("!pte nt!MmSys", [Symbol("nt", "nt!MmSys")]),
    ("ln nt!Ps", [Symbol("nt", "nt!Ps")]),
    ("x nt!Mm", [Symbol("nt", "nt!Mm")]),
    ("r $t0 = nt!Mm", [Symbol("nt", "nt!Mm")]),
    (".process /p /r nt!Ps", [Symbol("nt", "nt!Ps")]),
    ("!process nt!Ps", [Symbol("nt", "nt!Ps")]),
    ("$$ a comment; dd nt!Mm", [Symbol("nt", "nt!Mm")]),
    ("dd ${$arg1}+nt!Mm", [Symbol("nt", "nt!Mm")]),
    # a range's length and numbers are not symbols
    ("dd nt!MmPfnDatabase L", []),
    ("dd nt!MmPfnDatabase L4", []),
    ("dd nt!MmPfnDatabase L4 ", []),
    ("dq nt!MmPfnDatabase l?", []),
    ("dd 12", []),
    ("dd fffff800`02c1", []),
    ("dd @$pe", []),
    ("r $t", []),
    ("x nt!Mm*", []),
    # options are not completed
    ("dd /c", []),
    ("dt -r", []),
    ("lm m n", []),
    # types after dt and its options
    ("dt nt!_MM", [TypeName("nt", "nt!_MM")]),
    ("dt _EPR", [TypeName(None, "_EPR")]),
    ("dt ", [TypeName(None, "")]),
    ("dt -r1 -b _MMP", [TypeName(None, "_MMP")]),
    ("dt -y _MMP", [TypeName(None, "_MMP")]),
    ("dt fffffa80`03000290 _EPR", [TypeName(None, "_EPR")]),
    ("dd x; dt nt!_MMV", [TypeName("nt", "nt!_MMV")]),
    # after the type: a field, or the address
    ("dt nt!_EPROCESS ", [FieldName("nt!_EPROCESS", ""), Symbol(None, "")]),
    ("dt _EPROCESS Ima", [FieldName("_EPROCESS", "Ima"), Symbol(None, "Ima")]),
    ("dt _EPROCESS nt!Ps", [Symbol("nt", "nt!Ps")]),
    ("dt _EPROCESS Pcb.Dir", [FieldName("_EPROCESS", "Pcb.Dir")]),
    ("dt nt!_EPROCESS fffffa80`03000290 Ima", [FieldName("nt!_EPROCESS", "Ima")]),
    ("dt nt!_EPROCESS poi(nt!PsInitialSystemProcess) Ima", [FieldName("nt!_EPROCESS", "Ima")]),
    ("dt nt!_EPROCESS -y Vad", [FieldName("nt!_EPROCESS", "Vad")]),
    ("dt fffffa80`03000290 _EPROCESS Ima", [FieldName("_EPROCESS", "Ima")]),
    # process image names
    ("!process 0 0 note", [ProcessName("note")]),
    ("!process 0 7 ", [ProcessName("")]),
    ("!process 0x0 0xf svc", [ProcessName("svc")]),
    ("!process 0 ", []),
    ("!process fffffa80`03000290 7 x", []),
    # file paths
    ("$<scr", [Path("scr")]),
    ("$>< /tmp/a", [Path("/tmp/a")]),
    ("$$< dir/sub", [Path("dir/sub")]),
    ("$$>< ~/scr", [Path("~/scr")]),
    ("$$>a<~/scr", [Path("~/scr")]),
    ("$$>A< ~/scr", [Path("~/scr")]),
    ('$$>a< "my scripts/fi', [Path("my scripts/fi")]),
    ("$$>a< file.kd arg", []),
    ('$$>a< "my file.kd" arg', []),
    ("$<my dir/a;b", [Path("my dir/a;b")]),      # $< takes the rest of the line
    ("? 1; $$>< scr", [Path("scr")]),
    (".logopen /t lo", [Path("lo")]),
    # !sim sub-commands and their arguments
    ("!sim.", [SimCommand("!sim.")]),
    ("!SIM.al", [SimCommand("!SIM.al")]),
    ("!sim.alloc note", [SimArgument("alloc", 0, "note")]),
    ("!sim.alloc notepad.exe 1000 ", [SimArgument("alloc", 2, "")]),
    ("!sim.touch notepad.exe 10000 2000 r", [SimArgument("touch", 3, "r")]),
    # nothing inside quotes or comments
    ('.echo "dd nt!Mm', []),
    ('.echo "a;b', []),
    ("* dd nt!Mm", []),
    ("* a; dd nt!Mm", []),
    ("$$ dd nt!Mm", []),
    (".echo nt!Mm", []),
    ("!sim nt!Mm", []),
    ("(", []),
])
def test_suggest(text, expected):
    assert suggest(text) == expected


# -- stage two: candidates from a booted machine ------------------------------------------

@pytest.fixture(scope="module")
def booted():
    return kdsim.boot("win7-x64", ram="256m", scenario="default")


@pytest.fixture
def completer(booted):
    return KdCompleter(booted.debugger)


def complete(completer, text):
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_command_names_complete_with_their_descriptions(completer):
    (c,) = completer.get_completions(Document("!pr"), CompleteEvent())
    assert (c.text, c.start_position) == ("!process", -3)
    assert c.display_meta_text == \
        "display processes (EPROCESS summaries, memory figures, threads)"
    assert complete(completer, "dd x; !pr") == ["!process"]
    assert complete(completer, ".pro") == [".process"]
    assert complete(completer, "DD") == ["dd", "dds"]
    assert complete(completer, ".hh !vt") == ["!vtop"]


def test_every_registered_command_completes_from_its_own_name(completer):
    from kdsim.kd.registry import REGISTRY
    for cmd in REGISTRY.commands:
        for name in cmd.names:
            typed = name[:-1] if name in SCRIPT_TOKENS else name   # "$<" + a file name
            assert name in complete(completer, typed), name


def test_script_tokens_are_command_names(completer):
    assert complete(completer, "$$>") == ["$$><", "$$>a<"]


def test_symbols_complete_as_module_bang_name(completer):
    got = list(completer.get_completions(Document("dd nt!MmHighest"), CompleteEvent()))
    assert [c.text for c in got] == ["nt!MmHighestPhysicalPage", "nt!MmHighestUserAddress"]
    assert all(c.start_position == -len("nt!MmHighest") and c.display_meta_text == "symbol"
               for c in got)
    assert complete(completer, "? poi(nt!MmHighestU") == ["nt!MmHighestUserAddress"]
    assert complete(completer, "dd nt!mmhighestu") == ["nt!MmHighestUserAddress"]
    assert complete(completer, "dd MmHighestU") == ["nt!MmHighestUserAddress"]


def test_a_module_name_completes_to_module_bang(completer):
    got = list(completer.get_completions(Document("dd n"), CompleteEvent()))
    assert got[0].text == "nt!" and got[0].display_meta_text == "module"
    assert complete(completer, "dd ha") == ["hal!"]


def test_symbol_candidates_are_what_x_lists(booted, completer):
    listed = [line.split()[1].split("=")[0] for line in
              booted.debugger.execute("x nt!Mm*").splitlines()]
    assert sorted(listed, key=str.lower) == complete(completer, "dd nt!Mm")


def test_the_completed_symbol_evaluates(booted, completer):
    (name,) = complete(completer, "? nt!MmHighestUserA")
    assert booted.debugger.execute(f"? {name}").startswith("Evaluate expression: ")
    assert "Couldn't resolve" not in booted.debugger.execute(f"? {name}")


def test_type_names_after_dt(completer):
    got = list(completer.get_completions(Document("dt nt!_MMPF"), CompleteEvent()))
    assert [c.text for c in got] == ["nt!_MMPFN", "nt!_MMPFNENTRY", "nt!_MMPFNLIST"]
    assert got[0].start_position == -len("nt!_MMPF") and got[0].display_meta_text == "type"
    assert complete(completer, "dt _EPR") == ["_EPROCESS"]
    assert complete(completer, "dt -r1 _epr") == ["_EPROCESS"]
    assert complete(completer, "dt n") == ["nt!"]


def test_fields_after_dt_type(booted, completer):
    ts = booted.debugger.target.types
    assert complete(completer, "dt nt!_EPROCESS fffffa80`03000290 ImageF") == ["ImageFileName"]
    assert complete(completer, "dt _EPROCESS Pcb.Dir") == ["Pcb.DirectoryTableBase"]
    assert complete(completer, "dt _eprocess vm.workingsetsi") == \
        ["Vm.WorkingSetSize", "Vm.WorkingSetSizeOverhead"]
    assert complete(completer, "dt _MMPFN -y u") == [f.path for f in ts.fields("_MMPFN")
                                                      if f.path.lower().startswith("u")]
    assert complete(completer, "dt _NOSUCH Fi") == []


def test_process_names_are_read_from_guest_memory(booted, completer):
    got = list(completer.get_completions(Document("!process 0 0 note"), CompleteEvent()))
    assert [(c.text, c.start_position, c.display_meta_text) for c in got] == \
        [("notepad.exe", -4, "process")]
    # Oracle: the memory manager's own list of processes (plus System).
    names = {p.name for p in booted.nt.process_objects.values()} | {"System"}
    assert sorted(complete(completer, "!process 0 0 ")) == sorted(names)
    assert complete(completer, "!process 0 7 SVC") == ["svchost.exe"]


def test_the_process_list_is_read_fresh(booted, completer):
    assert complete(completer, "!process 0 0 calc") == []
    proc = booted.nt.spawn("calc.exe")
    try:
        assert complete(completer, "!process 0 0 calc") == ["calc.exe"]
    finally:
        booted.nt.terminate(proc)
    assert complete(completer, "!process 0 0 calc") == []


def test_a_name_changed_in_guest_memory_is_what_completes(booted, completer):
    """The name comes from EPROCESS.ImageFileName in memory, not from Python state."""
    t = booted.debugger.target
    f = t.types.field("_EPROCESS", "ImageFileName")
    proc = next(p for p in booted.nt.process_objects.values() if p.name == "notepad.exe")
    old = t.read_virtual(proc.ep + f.offset, f.size).data
    t.write_virtual(proc.ep + f.offset, b"wordpad.exe\0".ljust(f.size, b"\0"))
    try:
        assert complete(completer, "!process 0 0 wordp") == ["wordpad.exe"]
        assert complete(completer, "!process 0 0 notep") == []
    finally:
        t.write_virtual(proc.ep + f.offset, old)


def test_symbol_and_type_tables_are_cached(booted, monkeypatch):
    target = booted.debugger.target
    calls = []
    real_symbols, real_names = target.symbols, target.types.type_names
    monkeypatch.setattr(target, "symbols", lambda m: calls.append(m) or real_symbols(m))
    monkeypatch.setattr(target.types, "type_names",
                        lambda *a: calls.append("types") or real_names(*a))
    c = KdCompleter(booted.debugger)
    for _ in range(3):
        assert complete(c, "dd nt!MmHighestU") == ["nt!MmHighestUserAddress"]
        assert complete(c, "dt nt!_EPR") == ["nt!_EPROCESS"]
    assert calls == ["nt", "types"]


def test_file_paths_after_script_tokens(tmp_path, completer, monkeypatch):
    (tmp_path / "script1.kd").write_text("? 1\n")
    (tmp_path / "Script2.kd").write_text("? 2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").write_text("")
    d = str(tmp_path)
    got = list(completer.get_completions(Document(f"$$>< {d}/"), CompleteEvent()))
    assert [(c.text, c.display_meta_text) for c in got] == \
        [(f"{d}/script1.kd", "file"), (f"{d}/Script2.kd", "file"), (f"{d}/sub/", "directory")]
    assert all(c.start_position == -len(d + "/") for c in got)
    assert complete(completer, f"$$>< {d}/scr") == [f"{d}/script1.kd", f"{d}/Script2.kd"]
    assert complete(completer, f"$$>a<{d}/su") == [f"{d}/sub/"]
    assert complete(completer, f"$$>< {d}/.h") == [f"{d}/.hidden"]
    monkeypatch.chdir(tmp_path)
    assert complete(completer, "$<scr") == ["script1.kd", "Script2.kd"]
    assert complete(completer, "$$< s") == ["script1.kd", "Script2.kd", "sub/"]
    assert complete(completer, ".logopen /t scRIPT1") == ["script1.kd"]
    monkeypatch.setenv("HOME", d)
    assert complete(completer, "$$>< ~/Scr") == ["~/script1.kd", "~/Script2.kd"]
    assert complete(completer, "$$>< ~") == ["~/"]
    assert complete(completer, "$$>< nosuchdir/x") == []


# -- !sim -------------------------------------------------------------------------------

FAKE_SIM = {
    "alloc": ("!sim.alloc Process Size [Address] [reserve|commit] [Protection]",
              "reserve and/or commit virtual memory"),
    "touch": ("!sim.touch Process Address [Size] [r|w|x]", "touch pages"),
    "write": ('!sim.write Process Address Bytes|"Text"', "write memory"),
    "zero": ("!sim.zero [Pages]", "run the zero page thread"),
    "run": ("!sim.run Program", "start a program"),
}


@pytest.fixture
def fake_sim(monkeypatch):
    fake = types.ModuleType("kdsim.kd.commands.sim")
    fake.SUBCOMMANDS = FAKE_SIM
    fake.PROGRAMS = lambda: ["memoryalloc", "pagefault"]
    monkeypatch.setitem(sys.modules, "kdsim.kd.commands.sim", fake)
    monkeypatch.setattr(kdsim.kd.commands, "sim", fake, raising=False)


def test_sim_subcommands(completer, fake_sim):
    got = list(completer.get_completions(Document("!sim."), CompleteEvent()))
    assert [c.text for c in got] == ["!sim.alloc", "!sim.run", "!sim.touch", "!sim.write",
                                     "!sim.zero"]
    assert got[0].display_meta_text == "reserve and/or commit virtual memory"
    assert complete(completer, "!SIM.T") == ["!sim.touch"]
    assert "!sim.zero" in complete(completer, "!s")


def test_sim_arguments(completer, fake_sim):
    assert complete(completer, "!sim.alloc note") == ["notepad.exe"]
    assert complete(completer, "!sim.alloc notepad.exe 10000 co") == ["commit"]
    assert complete(completer, "!sim.alloc notepad.exe 10000 commit PAGE_READW") == \
        ["PAGE_READWRITE"]
    assert complete(completer, "!sim.alloc notepad.exe 10000 commit page_readwrite|page_g") \
        == ["PAGE_READWRITE|PAGE_GUARD"]
    assert complete(completer, "!sim.alloc notepad.exe 10000 ")[:2] == ["reserve", "commit"]
    assert complete(completer, "!sim.touch notepad.exe 10000 ") == ["r", "w", "x"]
    assert complete(completer, "!sim.touch notepad.exe 10000 1000 w") == ["w"]
    assert complete(completer, "!sim.write notepad.exe 10000 ") == []
    assert complete(completer, "!sim.zero ") == []
    assert complete(completer, "!sim.run ") == ["memoryalloc", "pagefault"]   # kdsim's programs
    assert complete(completer, "!sim.run PAGE") == ["pagefault"]
    assert complete(completer, "!sim.nosuch ") == []


def test_without_the_sim_extension_there_is_nothing_to_complete(completer, monkeypatch):
    monkeypatch.setitem(sys.modules, "kdsim.kd.commands.sim", None)   # import fails
    monkeypatch.delattr(kdsim.kd.commands, "sim", raising=False)
    assert completer_module.sim_subcommands() == {}
    assert complete(completer, "!sim.al") == []
    assert complete(completer, "!sim.alloc notepad.exe 1000 co") == []
    assert complete(completer, "!pr") == ["!process"]


def test_the_real_sim_table_completes(completer):
    got = complete(completer, "!sim.")
    assert got == sorted(got, key=str.lower)
    assert all(name.startswith("!sim.") for name in got)


def test_unreadable_memory_gives_no_candidates_and_no_error(booted, monkeypatch):
    c = KdCompleter(booted.debugger)
    monkeypatch.setattr(completer_module, "process_names",
                        lambda d: (_ for _ in ()).throw(RuntimeError("bad list")))
    assert complete(c, "!process 0 0 n") == []
    assert complete(c, "dd nt!MmHighestU") == ["nt!MmHighestUserAddress"]


# -- a Tab in a real prompt_toolkit session ----------------------------------------------

def _wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_tab_completes_in_a_prompt_session(booted):
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as pipe:
        session = PromptSession(completer=KdCompleter(booted.debugger),
                                complete_while_typing=False, input=pipe,
                                output=DummyOutput(), history=InMemoryHistory())
        buffer_text = lambda: session.default_buffer.text      # noqa: E731
        seen = []

        def type_keys():
            # A completion runs after the key that asked for it: wait for each one
            # before typing on, as a person would.
            pipe.send_text("!pro\t")
            seen.append(_wait_for(lambda: buffer_text() == "!process"))
            pipe.send_text(" 0 0 note\t")
            seen.append(_wait_for(lambda: buffer_text() == "!process 0 0 notepad.exe"))
            pipe.send_text("\r")

        feeder = threading.Thread(target=type_keys)
        feeder.start()
        line = session.prompt("0: kd> ")
        feeder.join()
    assert seen == [True, True]
    assert line == "!process 0 0 notepad.exe"
    out = booted.debugger.execute(line)
    assert out.count("Image: ") == 1 and "Image: notepad.exe" in out


def test_completion_does_not_read_the_memory_manager():
    """The completer reads through the debugger only (the one rule)."""
    src = open(completer_module.__file__).read()
    assert "kdsim.nt." not in src.replace("kdsim.nt.protect", "")
    assert ".nt." not in src.replace("kdsim.nt.protect", "") and "booted" not in src
    assert os.path.basename(completer_module.__file__) == "completer.py"


@pytest.mark.parametrize("target", ["win7-x86pae", "wrk-x86"])
def test_candidates_on_32_bit_targets(target):
    b = kdsim.boot(target, ram="256m")
    c = KdCompleter(b.debugger)
    names = {p.name for p in b.nt.process_objects.values()} | {"System"}
    assert sorted(complete(c, "!process 0 0 ")) == sorted(names)
    assert complete(c, "dd nt!MmHighestU") == ["nt!MmHighestUserAddress"]
    assert complete(c, "dt _MMPFN u3.e1.PageL") == ["u3.e1.PageLocation"]
