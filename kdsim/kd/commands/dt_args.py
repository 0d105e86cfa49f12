"""``dt``'s command line: options, the type, the address and the fields asked for
(windbg-formats.md §12.1), parsed into a Request; and finding a type by name."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ..expr import ExprError

DEFAULT_DEPTH = 2          # plain -r (every public ``dt -r`` transcript stops at depth 2)
# Option letters that only switch something: letter -> (Request attribute, value).
FLAG_OPTIONS = {"b": ("blocks", True), "p": ("physical", True), "o": ("offsets", False),
                "i": ("indent", False), "v": (None, None)}
_HEXLIKE = re.compile(r"(0[xX])?[0-9a-fA-F`]+$")
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]*)*\*?$")


@dataclass
class Request:
    type_text: str = ""
    prefix_type: bool = False
    address: Optional[int] = None
    fields: list = field(default_factory=list)    # (text as typed, prefix match)
    depth: int = 0
    blocks: bool = False
    physical: bool = False
    offsets: bool = True
    indent: bool = True


def _tokens(args: str) -> list[tuple[int, str]]:
    """Blank-separated words with their offsets; blanks inside parentheses do not split
    (``dt _MMPFN (fffffa80`00000000 + 5 * 0x30)``)."""
    out, start, depth = [], None, 0
    for i, c in enumerate(args + " "):
        if c in " \t" and (depth == 0 or i == len(args)):
            if start is not None:
                out.append((start, args[start:i]))
                start = None
            continue
        if start is None:
            start = i
        depth += (c == "(") - (c == ")" and depth > 0)
    return out


def parse(session, args: str) -> Request:
    req, words, name_next = Request(), [], None     # name_next: None, or -y (True) / -n
    for at, word in _tokens(args):
        if word.startswith("-") and word[1:2].isalpha() and name_next is None:
            name_next = _options(req, word, at)
        else:
            words.append((at, word, name_next))
            name_next = None
    if not words:
        raise ExprError("syntax", len(args.rstrip()))
    for i, (at, word, named) in enumerate(words):
        if not req.type_text:
            # `dt Address Type`: a first word that is no type, before one that is (a
            # plain number, or an expression such as poi(nt!MmPhysicalMemoryBlock)).
            address_first = _HEXLIKE.match(word) or (
                i + 1 < len(words) and lookup(session, words[i + 1][1]) is not None)
            if named is None and address_first and lookup(session, word) is None \
                    and req.address is None and i + 1 < len(words):
                req.address = _address(session, args, at, word)     # `dt Address Type`
            else:
                req.type_text, req.prefix_type = word, bool(named)
        elif named is not None or _is_field(session, req.type_text, word):
            req.fields.append((word, bool(named)))
        elif req.address is None:
            req.address = _address(session, args, at, word)
        else:
            raise ExprError("syntax", at)                     # a second address
    return req


def _options(req: Request, word: str, at: int) -> Optional[bool]:
    """Apply one cluster of options (``-r1``, ``-b``, ``-yoi``); returns whether the next
    word is a name: True after -y (a prefix), False after -n, else None."""
    name_next, i = None, 1
    while i < len(word):
        c = word[i].lower()
        i += 1
        if c == "r":
            digits = re.match(r"\d*", word[i:]).group(0)
            i += len(digits)
            req.depth = int(digits) if digits else DEFAULT_DEPTH
        elif c in FLAG_OPTIONS:
            attr, value = FLAG_OPTIONS[c]
            if attr:
                setattr(req, attr, value)
        elif c in "yn":
            name_next = bool(name_next) or c == "y"
        else:
            raise ExprError("syntax", at + i - 1)
    return name_next


def _address(session, args: str, at: int, word: str) -> int:
    # Evaluate this word alone: "addr -r1" is not the subtraction addr - r1.
    value, end = session.evaluator().parse(args[:at + len(word)], at)
    if end < at + len(word):
        raise ExprError("syntax", end)
    return value & (0xFFFFFFFF if session.target.pointer_size == 4 else (1 << 64) - 1)


def _is_field(session, type_text: str, word: str) -> bool:
    """Whether ``word`` names fields rather than the address.  An all-hex word is an
    address (WinDbg's rule, hence -n); a name-like word is a field if it matches a
    member, or if it is no expression either."""
    if _HEXLIKE.match(word) or not FIELD_PATTERN.match(word):
        return False
    found = lookup(session, type_text)
    first = field_spec(word, False)[0]
    if any(first(m.name) for m in getattr(found, "members", ())):
        return True
    try:
        session.evaluator().evaluate(word)
        return False
    except ExprError:
        return True


# -- names --------------------------------------------------------------------------------

def split_type(session, text: str) -> tuple[Optional[str], str]:
    """``nt!_X`` -> ("nt", "_X"); the PDB's own name (``ntkrnlmp!``) means nt too."""
    module, bang, name = text.rpartition("!")
    module = module.lower() if bang else None
    if module == session.target.profile.version.pdb_name.lower():
        module = "nt"
    return module, name


def lookup(session, text: str):
    """The StructType or EnumType ``text`` names (case-insensitive, like WinDbg), or None."""
    ts = session.target.types
    module, name = split_type(session, text)
    structs = {n.lower(): n for n in ts.type_names(module or "nt")}
    if name.lower() in structs:
        bare = structs[name.lower()]
        return ts.get_type(bare if module in (None, "nt") else f"{module}!{bare}")
    enums = {n.lower(): n for n in ts.enum_names()} if module in (None, "nt") else {}
    return ts.enum(enums[name.lower()]) if name.lower() in enums else None


def field_spec(text: str, prefix: bool) -> tuple:
    """A field argument as one name matcher per level.  A name followed by a period is a
    prefix (``Pcb.DirectoryTableBase``), an empty one matches every member (``Pcb.``),
    the last name is exact unless it ends in ``*`` or -y came before it."""
    parts = text.split(".")
    out = []
    for i, part in enumerate(parts):
        stem = part.rstrip("*").lower()
        if i < len(parts) - 1 or part.endswith("*") or prefix or not stem:
            out.append(lambda name, s=stem: name.lower().startswith(s))
        else:
            out.append(lambda name, s=stem: name.lower() == s)
    return tuple(out)


# -- the display --------------------------------------------------------------------------
