"""The MASM expression evaluator (windbg-formats.md §16).

Default radix 16; ``0x``/``0n``/``0t``/``0y`` prefixes and the ``h`` suffix; the grave
accent inside 64-bit numbers (which also stops sign extension); symbols (``nt!Mm...``,
``!name``, bare names that are not numbers); ``@register`` and ``$pseudo`` registers;
``poi``/``dwo``/``qwo``/``wo``/``by``/``hi``/``low``/``not``; binary operators with
WinDbg's precedence; comparisons giving 1 or 0.  All arithmetic is on 64-bit unsigned
values; on a 32-bit target a 32-bit number with its top bit set is sign-extended, as
WinDbg does for addresses.

``@@c++( )`` or ``@@( )`` evaluates a C++ expression inside a MASM one (cppexpr.py; its
value arrives as a ULONG64), ``@@masm( )`` a MASM one.

The evaluator stops at the end of the longest expression, so a command can read what
follows (``dd 80000000 L4``).  Errors are values with the position they refer to; the
session words them the way WinDbg does.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

MASK = (1 << 64) - 1


class ExprError(Exception):
    """``kind``: "syntax" (the session prints the caret line at ``pos``), "resolve",
    "memory", "operand" or "register" (one-line messages, see ``message``)."""

    def __init__(self, kind: str, pos: int, rest: str = ""):
        super().__init__(kind)
        self.kind, self.pos, self.rest = kind, pos, rest

    @property
    def message(self) -> str:
        return {"resolve": f"Couldn't resolve error at '{self.rest}'",
                "memory": f"Memory access error at '{self.rest}'",
                "operand": "Operand error",
                "register": "Bad register error"}.get(self.kind, "Syntax error")


_WORD = re.compile(r"[A-Za-z0-9_`!$@.?:]+")
_FIELD_OFFSET = re.compile(r"#FIELD_OFFSET\s*\(\s*([A-Za-z0-9_!]+)\s*,\s*([A-Za-z0-9_.]+)\s*\)",
                           re.IGNORECASE)
_SWITCH = re.compile(r"@@(masm|c\+\+)?\(", re.IGNORECASE)
_STRING_OP = re.compile(r"\$(spat|scmp|sicmp)\s*\(", re.IGNORECASE)
_BINARY = [  # lowest precedence first (§16)
    ("or", "|"), ("xor", "^"), ("and", "&"),
    ("==", "!=", "<=", ">=", "=", "<", ">"),
    ("<<", ">>>", ">>"), ("+", "-"), ("*", "/", "mod", "%"),
]
_FUNCS = {"poi": None, "dwo": 4, "qwo": 8, "wo": 2, "by": 1, "hi": "hi", "low": "low",
          "not": "not"}
_RADIX_PREFIX = {"0x": 16, "0n": 10, "0t": 8, "0y": 2}


class Evaluator:
    def __init__(self, ptr_size: int, symbol: Callable[[str], Optional[int]],
                 read: Callable[[int, int], Optional[int]],
                 register: Callable[[str], Optional[int]] = lambda name: None,
                 radix: int = 16,
                 field_offset: Callable[[str, str], Optional[int]] = lambda t, f: None,
                 type_size: Callable[[str], Optional[int]] = lambda t: None):
        self.ptr = ptr_size
        self.symbol, self.read, self.register = symbol, read, register
        self.radix = radix
        self.field_offset = field_offset        # (type, field) -> offset, from the symbols
        self.type_size = type_size              # type name -> size (C++ sizeof)

    # -- entry points -------------------------------------------------------------------

    def evaluate(self, text: str) -> int:
        value, end = self.parse(text)
        if text[end:].strip():
            raise ExprError("syntax", end + len(text[end:]) - len(text[end:].lstrip()))
        return value

    def parse(self, text: str, start: int = 0) -> tuple[int, int]:
        """The value of the longest expression at ``start`` and where it ends."""
        self.text, self.i = text, start
        self._skip()
        if self.i >= len(text):
            raise ExprError("syntax", self.i)
        try:
            value = self._binary(0)
        except RecursionError:     # thousands of nested parentheses or signs: kdsim's limit
            raise ExprError("syntax", self.i) from None
        return value & MASK, self.i

    def nested(self, text: str, start: int) -> tuple[int, int]:
        """A MASM expression inside a C++ one (``@@masm( )``), parsed by a fresh
        evaluator so that this one's position is kept."""
        return Evaluator(self.ptr, self.symbol, self.read, self.register, self.radix,
                         self.field_offset, self.type_size).parse(text, start)

    def cpp(self):
        """A C++ evaluator with this one's registers and types (``@@c++( )``, ``??``)."""
        from .cppexpr import CppEvaluator
        return CppEvaluator(self)

    # -- grammar ------------------------------------------------------------------------

    def _skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def _peek_op(self, ops) -> Optional[str]:
        t, i = self.text, self.i
        for op in sorted(ops, key=len, reverse=True):
            if t.startswith(op, i) or (op.isalpha() and t[i:i + len(op)].lower() == op):
                if op.isalpha():       # a word operator needs a break after it
                    after = t[i + len(op):i + len(op) + 1]
                    if after and (after.isalnum() or after == "_"):
                        continue
                return op
        return None

    def _binary(self, level: int) -> int:
        if level == len(_BINARY):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            end = self.i
            self._skip()
            op = self._peek_op(_BINARY[level])
            if op is None:
                self.i = end              # the spaces belong to what follows
                return left
            at = self.i
            self.i += len(op)
            self._skip()
            if self.i >= len(self.text):
                raise ExprError("syntax", at)
            right = self._binary(level + 1)
            left = self._apply(op, left, right, at)

    def _apply(self, op: str, a: int, b: int, at: int) -> int:
        if op in ("*",):
            return (a * b) & MASK
        if op in ("/", "mod", "%"):
            if b == 0:
                raise ExprError("operand", at)
            return (a // b) if op == "/" else (a % b)
        if op == "+":
            return (a + b) & MASK
        if op == "-":
            return (a - b) & MASK
        if op == "<<":
            return (a << b) & MASK if b < 64 else 0
        if op == ">>":
            return a >> b if b < 64 else 0
        if op == ">>>":
            s = a - (1 << 64) if a >> 63 else a
            return (s >> min(b, 63)) & MASK
        if op in ("=", "=="):
            return int(a == b)
        if op == "!=":
            return int(a != b)
        if op == "<":
            return int(a < b)
        if op == ">":
            return int(a > b)
        if op == "<=":
            return int(a <= b)
        if op == ">=":
            return int(a >= b)
        if op in ("and", "&"):
            return a & b
        if op in ("xor", "^"):
            return a ^ b
        return a | b                                  # or, |

    def _unary(self) -> int:
        self._skip()
        t = self.text
        if self.i >= len(t):
            raise ExprError("syntax", self.i)
        c = t[self.i]
        if c in "+-":
            self.i += 1
            v = self._unary()
            return v if c == "+" else (-v) & MASK
        if c == "(":
            self.i += 1
            v = self._binary(0)
            self._skip()
            if self.i >= len(t) or t[self.i] != ")":
                raise ExprError("syntax", self.i)
            self.i += 1
            return v
        sw = _SWITCH.match(t, self.i)
        if sw:                    # @@c++( ) / @@( ): a C++ sub-expression, as a ULONG64
            if (sw.group(1) or "c++").lower() == "masm":
                self.i = sw.end()
                v = self._binary(0)
            else:
                value, self.i = self.cpp().parse(t, sw.end())
                v = value.as_ulong64()
            self._skip()
            if self.i >= len(t) or t[self.i] != ")":
                raise ExprError("syntax", self.i)
            self.i += 1
            return v
        s = _STRING_OP.match(t, self.i)
        if s:
            return self._string_op(s.group(1).lower(), s.end())
        f = _FIELD_OFFSET.match(t, self.i)
        if f:                     # #FIELD_OFFSET(Type, Field): a member's offset
            offset = self.field_offset(f.group(1), f.group(2))
            if offset is None:
                raise ExprError("resolve", f.start(1), f.group(1))
            self.i = f.end()
            return offset
        m = _WORD.match(t, self.i)
        if not m:
            raise ExprError("syntax", self.i)
        word = m.group(0)
        func = word.lower()
        after = m.end()
        while after < len(t) and t[after] in " \t":
            after += 1
        if func in _FUNCS and after < len(t) and t[after] == "(":
            self.i = after + 1
            arg = self._binary(0)
            self._skip()
            if self.i >= len(t) or t[self.i] != ")":
                raise ExprError("syntax", self.i)
            close = self.i
            self.i += 1
            return self._function(func, arg, close)
        self.i = m.end()
        return self._atom(word, m.start())

    def _string(self) -> str:
        """A quoted string argument ("..."; \\" and \\\\ inside)."""
        self._skip()
        t = self.text
        if self.i >= len(t) or t[self.i] != '"':
            raise ExprError("syntax", self.i)
        out, i = [], self.i + 1
        while i < len(t) and t[i] != '"':
            if t[i] == "\\" and i + 1 < len(t) and t[i + 1] in '"\\':
                i += 1
            out.append(t[i])
            i += 1
        if i >= len(t):
            raise ExprError("syntax", self.i)
        self.i = i + 1
        return "".join(out)

    def _string_op(self, name: str, at: int) -> int:
        """$spat("string", "pattern") (1 if the string matches the wildcard pattern),
        $scmp / $sicmp("a", "b") (-1, 0 or 1, case-sensitive or not)."""
        self.i = at
        a = self._string()
        self._skip()
        if self.i >= len(self.text) or self.text[self.i] != ",":
            raise ExprError("syntax", self.i)
        self.i += 1
        b = self._string()
        self._skip()
        if self.i >= len(self.text) or self.text[self.i] != ")":
            raise ExprError("syntax", self.i)
        self.i += 1
        if name == "spat":
            from .wildcard import wildcard
            return int(bool(wildcard(b).fullmatch(a)))
        if name == "sicmp":
            a, b = a.lower(), b.lower()
        return ((a > b) - (a < b)) & MASK

    def _function(self, name: str, arg: int, close: int) -> int:
        kind = _FUNCS[name]
        if kind == "hi":
            return (arg >> 16) & 0xFFFF
        if kind == "low":
            return arg & 0xFFFF
        if kind == "not":
            return int(arg == 0)
        size = self.ptr if kind is None else kind
        addr = self._address(arg)
        value = self.read(addr, size)
        if value is None:
            raise ExprError("memory", close, self.text[close:])
        if kind is None and self.ptr == 4:
            value = self._extend32(value)
        return value

    def _address(self, value: int) -> int:
        return value & 0xFFFFFFFF if self.ptr == 4 else value

    @staticmethod
    def _extend32(value: int) -> int:
        return value | 0xFFFFFFFF00000000 if value & 0x80000000 and value >> 32 == 0 else value

    def _atom(self, word: str, at: int) -> int:
        if word.startswith("@"):
            v = self.register(word[1:].lower())
            if v is None:
                raise ExprError("register", at)
            return v & MASK
        if word.startswith("$") and not word.startswith("$$"):
            v = self.register(word.lower())
            if v is None:
                raise ExprError("register", at)
            return v & MASK
        number = self._number(word)
        if number is not None:
            return number
        if "!" in word or not word[0].isdigit():
            v = self.symbol(word)
            if v is None:
                raise ExprError("resolve", at, self.text[at:])
            return self._extend32(v) if self.ptr == 4 else v & MASK
        raise ExprError("syntax", at)

    def _number(self, word: str) -> Optional[int]:
        text, radix = word.lower(), self.radix
        backtick = "`" in text
        text = text.replace("`", "")
        if text[:2] in _RADIX_PREFIX:
            radix, text = _RADIX_PREFIX[text[:2]], text[2:]
            if text == "":
                return 0
        elif radix == 16 and len(text) > 1 and text.endswith("h") and \
                re.fullmatch(r"[0-9a-f]+", text[:-1]):
            text = text[:-1]
        digits = "0123456789abcdef"[:radix]
        if not text or any(ch not in digits for ch in text):
            return None
        value = int(text, radix)
        if value > MASK:
            return None
        if self.ptr == 4 and not backtick:
            value = self._extend32(value)
        return value
