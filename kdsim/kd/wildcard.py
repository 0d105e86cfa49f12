"""The debugger's string wildcards (x, lm, $spat): WinDbg's documented pattern syntax as
a regular expression."""
from __future__ import annotations

import re


def wildcard(pattern: str, symbol: bool = False) -> re.Pattern:
    """``*`` any run, ``?`` one character, ``[a-z]`` one of a set, ``#`` zero or more and
    ``+`` one or more of the preceding item, ``\\`` quotes the next character; matching
    ignores case.  For symbols a leading ``_`` stands for any number of underscores."""
    out: list[str] = []
    i = 0
    if symbol and pattern.startswith("_"):
        out.append("_*")
        i = 1
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in pattern[i + 1:]:
            close = pattern.index("]", i + 1)
            body = pattern[i + 1:close]
            items = []
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    items.append(re.escape(body[j]) + "-" + re.escape(body[j + 2]))
                    j += 3
                else:
                    items.append(re.escape(body[j]))
                    j += 1
            out.append("[" + "".join(items) + "]" if items else re.escape("[]"))
            i = close + 1
            continue
        elif c in "#+" and out and out[-1][-1:] not in "*+":
            out[-1] = "(?:" + out[-1] + ")" + ("*" if c == "#" else "+")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
