"""Meta commands: ``?``, ``.echo``, comments, ``.help``."""
from __future__ import annotations

from ..expr import ExprError
from ..fmt import evaluate_line
from ..registry import REGISTRY


@REGISTRY.command("?", syntax="? Expression", summary="evaluate an expression")
def evaluate(session, args: str, offset: int) -> str:
    if not args.strip():
        return "".join(f"{', '.join(c.names):<12} {c.summary}\n" for c in REGISTRY.commands)
    start = len(args) - len(args.lstrip())
    try:
        value = session.evaluator().evaluate(args[start:])
    except ExprError as e:
        e.pos += start
        raise
    return evaluate_line(value, session.target.pointer_size) + "\n"


@REGISTRY.command(".echo", syntax=".echo String", summary="print a string")
def echo(session, args: str, offset: int) -> str:
    text = args.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text + "\n"


@REGISTRY.command("$$", syntax="$$ comment", summary="a comment up to the next ';'")
def comment(session, args: str, offset: int) -> str:
    return ""


@REGISTRY.command("*", syntax="* comment", summary="a comment up to the end of the line")
def line_comment(session, args: str, offset: int) -> str:
    return ""


@REGISTRY.command(".help", syntax=".help", summary="list the commands")
def help_(session, args: str, offset: int) -> str:
    lines = []
    for c in REGISTRY.commands:
        tag = "  [kdsim]" if c.kdsim_only else ""
        lines.append(f"{c.syntax:<24} {c.summary}{tag}\n")
    return "".join(lines)
