"""The interactive ``kd>`` prompt (prompt_toolkit): persistent history in the user's data
directory, Ctrl-R search and auto-suggest from history, Enter on an empty line repeating
the last display command, Ctrl-C stopping a command (the session goes on), Ctrl-D or
``q`` quitting."""
from __future__ import annotations

import os
from pathlib import Path


def history_path() -> Path:
    """``$XDG_DATA_HOME/kdsim/history`` (``~/.local/share/kdsim/history`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return Path(base) / "kdsim" / "history"


def make_session(color: bool, input=None, output=None, history=None, debugger=None):
    """The PromptSession: history, suggestions, Tab completion from the engine (when a
    debugger is given) and, with colour, the kd lexer's highlighting."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.output import ColorDepth

    if history is None:
        path = history_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(path))
        except OSError:
            history = InMemoryHistory()       # a read-only home: history for this run only
    extra = {}
    if debugger is not None:
        from .completer import KdCompleter
        extra.update(completer=KdCompleter(debugger), complete_while_typing=False)
    if color:
        from prompt_toolkit.lexers import PygmentsLexer
        from prompt_toolkit.styles import style_from_pygments_cls

        from .lexer import KdCommandLexer, KdStyle
        extra.update(lexer=PygmentsLexer(KdCommandLexer), style=style_from_pygments_cls(KdStyle))
    return PromptSession(history=history, auto_suggest=AutoSuggestFromHistory(),
                         enable_history_search=False,
                         color_depth=None if color else ColorDepth.DEPTH_1_BIT,
                         input=input, output=output, **extra)


def interact(runner, color: bool = True, session=None) -> int:
    """Read lines until ``q`` or end of input; returns the exit status."""
    session = session or make_session(color, debugger=runner.debugger)
    while not runner.quit:
        try:
            line = session.prompt(runner.prompt)
        except KeyboardInterrupt:          # Ctrl-C at the prompt: a fresh line
            continue
        except EOFError:                   # Ctrl-D
            break
        runner.run(line, echo=False)
        if getattr(runner.debugger, "clear_requested", False):      # .cls
            runner.debugger.clear_requested = False
            session.output.erase_screen()
            session.output.cursor_goto(0, 0)
            session.output.flush()
    return 0
