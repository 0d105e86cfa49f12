"""The C++ expression evaluator, the integer part of it: what ``??`` evaluates and what
``@@c++( )`` / ``@@( )`` put inside a MASM expression (MSD "C++ Numbers and Operators").

The subset: integer literals in C syntax (decimal by default, ``0x`` hex with an optional
grave accent, a leading ``0`` for octal; suffixes ``U``, ``L``, ``UL``, ``I64``, ``UI64``,
``LL``, ``ULL``), the operators ``+ - * / % << >> & | ^ ~ ! < <= > >= == != && || ?:`` with
C's precedence, parentheses, casts to the integer types, ``sizeof(type)`` (``nt!_T`` or
``_T``, pointers, the basic integer types), ``sizeof(expression)``,
``#FIELD_OFFSET(Type, Field)``, ``@register`` and ``@$pseudo`` registers, and ``@@( )`` /
``@@masm( )`` for a MASM sub-expression.  Symbols (typed variables), pointers, structures
and floating point are not in it.

Every value has a C type and follows C's rules (MSVC sizes: int and long 32 bits,
``__int64`` 64): the usual arithmetic conversions, integer promotion, division
truncating toward zero.  What ``??`` prints is the type's name and the value --
``int 0n3``, ``unsigned int 0x230``, ``unsigned int64 0x30``, ``bool true``.

Facts and choices (windbg-formats.md §15.1 and the MSD C++-numbers page):
  * ``?? sizeof(_TEB)`` prints ``unsigned int 0x1000`` on x86, ``?? sizeof(_HEAP_ENTRY)``
    ``unsigned int64 0x10`` on x64: sizeof is size_t, unsigned and pointer-sized.
  * Signed values print in decimal with ``0n`` (``long 0n2`` for #FIELD_OFFSET, ``int64
    0n0``); unsigned ones in hex with ``0x``, except that values below 10 print as a bare
    digit (``unsigned int64 5``, ``unsigned int64 9``) and 64-bit ones above 32 bits with
    the grave accent (``unsigned int64 0xffffffff`ffffffff``) -- all seen verbatim.
  * Registers and integer pseudo-registers: ``?? @eip`` is ``unsigned int`` on x86 and
    ``?? @$t0`` ``unsigned int64`` in a 64-bit session; kdsim types both unsigned and
    pointer-sized (inferred: the documentation says they are cast to ULONG64).
  * Decimal literals without a suffix are int, then unsigned long (MSVC's rule for
    2147483648..4294967295), then int64, then unsigned int64; hex and octal ones int,
    unsigned int, int64, unsigned int64 (C's table, MSVC sizes).  A result of ``@@( )``
    (MASM) is ``unsigned int64`` ("passed ... as a ULONG64 value").
  * Errors use the MASM evaluator's kinds: an unknown type or name ``Couldn't resolve
    error at '<rest>'``, a syntax error the caret line, division by zero ``Operand
    error`` (inferred: the C++ evaluator's own wording for these is not in the reference).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .expr import ExprError

# name -> (bits, signed, conversion rank); bool promotes to int (rank 0 < int's 1).
_TYPES = {
    "bool": (1, False, 0),
    "int": (32, True, 1), "unsigned int": (32, False, 1),
    "long": (32, True, 2), "unsigned long": (32, False, 2),
    "int64": (64, True, 3), "unsigned int64": (64, False, 3),
}
# Spellings of the integer types in casts and sizeof (and the Windows typedefs).
_TYPE_NAMES = {
    "int": "int", "signed int": "int", "signed": "int", "INT": "int",
    "unsigned int": "unsigned int", "unsigned": "unsigned int", "UINT": "unsigned int",
    "long": "long", "signed long": "long", "long int": "long", "LONG": "long",
    "unsigned long": "unsigned long", "ULONG": "unsigned long", "DWORD": "unsigned long",
    "__int64": "int64", "int64": "int64", "long long": "int64", "LONG64": "int64",
    "LONGLONG": "int64", "INT64": "int64",
    "unsigned __int64": "unsigned int64", "unsigned int64": "unsigned int64",
    "unsigned long long": "unsigned int64", "ULONG64": "unsigned int64",
    "ULONGLONG": "unsigned int64", "UINT64": "unsigned int64", "DWORD64": "unsigned int64",
    "bool": "bool",
}
# sizeof of the basic types that are not cast targets.
_BASIC_SIZES = {"char": 1, "unsigned char": 1, "signed char": 1, "UCHAR": 1, "CHAR": 1,
                "BYTE": 1, "BOOLEAN": 1, "short": 2, "unsigned short": 2, "USHORT": 2,
                "SHORT": 2, "WORD": 2, "WCHAR": 2, "wchar_t": 2}

_NUMBER = re.compile(r"(0[xX][0-9a-fA-F`]*|[0-9]+)(ui64|i64|ull|llu|ul|lu|ll|u|l)?(?![0-9A-Za-z_])",
                     re.IGNORECASE)
_TYPE_ARG = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_!]*(?:\s+[A-Za-z_][A-Za-z0-9_]*)*)\s*(\**)\s*\)")
_REGISTER = re.compile(r"@(\$?[A-Za-z_][A-Za-z0-9_]*)")
_FIELD_OFFSET = re.compile(r"#FIELD_OFFSET\s*\(\s*([A-Za-z0-9_!]+)\s*,\s*([A-Za-z0-9_.]+)\s*\)",
                           re.IGNORECASE)
# Pseudo-registers the C++ evaluator casts to structure pointers (MSD).
_TYPED_PSEUDO = {"$proc": "EPROCESS*", "$thread": "ETHREAD*", "$teb": "TEB*", "$peb": "PEB*"}
_SWITCH = re.compile(r"@@(masm|c\+\+)?\(", re.IGNORECASE)

_BINARY = [  # lowest precedence first; ?: is above them
    ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<=", ">=", "<", ">"),
    ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
]
_ALL_OPS = sorted({op for ops in _BINARY for op in ops}, key=len, reverse=True)


@dataclass(frozen=True)
class Value:
    """A typed value; ``value`` is the number the type's bits mean (negative if signed)."""

    value: int
    type: str = "int"

    @property
    def bits(self) -> int:
        return _TYPES[self.type][0]

    @property
    def signed(self) -> bool:
        return _TYPES[self.type][1]

    def as_ulong64(self) -> int:
        """The value as the MASM evaluator gets it (a ULONG64)."""
        return self.value & ((1 << 64) - 1)

    def display(self) -> str:
        """What ``??`` prints: ``int 0n3``, ``unsigned int 0x230``, ``bool true``."""
        if self.type == "bool":
            return "bool " + ("true" if self.value else "false")
        if self.signed:
            return f"{self.type} 0n{self.value}"
        v = self.value
        if v < 10:
            text = str(v)
        elif v > 0xFFFFFFFF:
            text = f"0x{v >> 32:08x}`{v & 0xFFFFFFFF:08x}"
        else:
            text = f"0x{v:x}"
        return f"{self.type} {text}"


def make(value: int, type_name: str) -> Value:
    """``value`` converted to ``type_name`` (C's modular conversion)."""
    if type_name == "bool":
        return Value(int(value != 0), "bool")
    bits, signed, _ = _TYPES[type_name]
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return Value(value, type_name)


def _promote(t: str) -> str:
    return "int" if t == "bool" else t


def _common(a: str, b: str) -> str:
    """C's usual arithmetic conversions of two integer types."""
    a, b = _promote(a), _promote(b)
    if a == b:
        return a
    (_, asig, arank), (_, bsig, brank) = _TYPES[a], _TYPES[b]
    if asig == bsig:
        return a if arank > brank else b
    s, u = (a, b) if asig else (b, a)
    if _TYPES[u][2] >= _TYPES[s][2]:
        return u
    if _TYPES[s][0] > _TYPES[u][0]:       # the signed type holds every unsigned value
        return s
    return "unsigned " + s


class CppEvaluator:
    """Evaluates a C++ expression in ``text`` from ``start``; ``masm`` is the MASM
    evaluator it came from (registers, types and nested ``@@( )`` go through it)."""

    def __init__(self, masm):
        self.masm = masm
        self.ptr = masm.ptr

    def evaluate(self, text: str) -> Value:
        value, end = self.parse(text)
        rest = text[end:]
        if rest.strip():
            raise ExprError("syntax", end + len(rest) - len(rest.lstrip()))
        return value

    def parse(self, text: str, start: int = 0) -> tuple[Value, int]:
        self.text, self.i = text, start
        self.quiet = 0             # inside the branch && || ?: do not take
        self._skip()
        if self.i >= len(text):
            raise ExprError("syntax", self.i)
        try:
            return self._conditional(), self.i
        except RecursionError:     # hundreds of nested parentheses: kdsim's limit
            raise ExprError("syntax", self.i) from None

    # -- grammar ------------------------------------------------------------------------

    def _skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def _conditional(self) -> Value:
        cond = self._binary(0)
        self._skip()
        if not self.text.startswith("?", self.i):
            return cond
        self.i += 1
        taken = bool(cond.value)
        self.quiet += not taken
        a = self._conditional()
        self.quiet -= not taken
        self._skip()
        if not self.text.startswith(":", self.i):
            raise ExprError("syntax", self.i)
        self.i += 1
        self.quiet += taken
        b = self._conditional()
        self.quiet -= taken
        kind = "bool" if a.type == b.type == "bool" else _common(a.type, b.type)
        return make((a if taken else b).value, kind)

    def _operator(self, ops) -> str | None:
        t, i = self.text, self.i
        for op in _ALL_OPS:                 # longest first: "<<" is not "<", "&&" not "&"
            if t.startswith(op, i):
                return op if op in ops else None
        return None

    def _binary(self, level: int) -> Value:
        if level == len(_BINARY):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            self._skip()
            op = self._operator(_BINARY[level])
            if op is None:
                return left
            at = self.i
            self.i += len(op)
            self._skip()
            if self.i >= len(self.text):
                raise ExprError("syntax", at)
            if op in ("&&", "||"):
                skip = (op == "&&") != bool(left.value)    # the right side is not needed
                self.quiet += skip
                right = self._binary(level + 1)
                self.quiet -= skip
                result = bool(left.value) and bool(right.value) if op == "&&" \
                    else bool(left.value) or bool(right.value)
                left = Value(int(result), "bool")
            else:
                left = self._apply(op, left, self._binary(level + 1), at)

    def _apply(self, op: str, a: Value, b: Value, at: int) -> Value:
        if op in ("<<", ">>"):
            kind = _promote(a.type)
            bits = _TYPES[kind][0]
            count = b.value
            if count < 0 or count >= bits:      # undefined in C; kdsim: all bits out
                count = bits
            v = make(a.value, kind).value
            return make(v << count if op == "<<" else v >> count, kind)
        kind = _common(a.type, b.type)
        x, y = make(a.value, kind).value, make(b.value, kind).value
        if op in ("==", "!=", "<", "<=", ">", ">="):
            result = {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y,
                      ">": x > y, ">=": x >= y}[op]
            return Value(int(result), "bool")
        if op in ("/", "%"):
            if y == 0:
                if self.quiet:
                    return make(0, kind)
                raise ExprError("operand", at)
            q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)   # toward zero
            return make(q if op == "/" else x - q * y, kind)
        result = {"+": x + y, "-": x - y, "*": x * y, "&": x & y, "|": x | y,
                  "^": x ^ y}[op]
        return make(result, kind)

    def _unary(self) -> Value:
        self._skip()
        t = self.text
        if self.i >= len(t):
            raise ExprError("syntax", self.i)
        c = t[self.i]
        if c in "-+~!" and not t.startswith(("--", "++"), self.i):
            self.i += 1
            v = self._unary()
            if c == "!":
                return Value(int(v.value == 0), "bool")
            kind = _promote(v.type)
            return make(-v.value if c == "-" else ~v.value if c == "~" else v.value, kind)
        if c == "(":
            cast = self._cast_type(self.i + 1)
            if cast is not None:
                kind, end = cast
                self.i = end
                return make(self._unary().value, kind)
            self.i += 1
            v = self._conditional()
            self._close()
            return v
        if re.match(r"sizeof(?![A-Za-z0-9_])", t[self.i:]):
            return self._sizeof()
        return self._primary()

    def _close(self) -> None:
        self._skip()
        if self.i >= len(self.text) or self.text[self.i] != ")":
            raise ExprError("syntax", self.i)
        self.i += 1

    def _cast_type(self, at: int):
        """``(kind, end)`` when ``(`` at ``at - 1`` opens a cast to an integer type."""
        m = _TYPE_ARG.match(self.text, at)
        if m and not m.group(2) and " ".join(m.group(1).split()) in _TYPE_NAMES:
            return _TYPE_NAMES[" ".join(m.group(1).split())], m.end()
        return None

    def _sizeof(self) -> Value:
        self.i += len("sizeof")
        self._skip()
        size_t = "unsigned int64" if self.ptr == 8 else "unsigned int"
        t = self.text
        if self.i < len(t) and t[self.i] == "(":
            m = _TYPE_ARG.match(t, self.i + 1)
            if m:
                size = self._type_size(m.group(1), bool(m.group(2)))
                if size is None:      # neither a type nor (in this subset) a variable
                    raise ExprError("resolve", m.start(1), t[m.start(1):])
                self.i = m.end()
                return make(size, size_t)
        v = self._unary()                        # sizeof expression: its type's size
        return make(max(1, v.bits // 8), size_t)

    def _type_size(self, name: str, pointer: bool) -> int | None:
        words = " ".join(name.split())
        if pointer:
            return self.ptr
        if words in _TYPE_NAMES:
            return max(1, _TYPES[_TYPE_NAMES[words]][0] // 8)
        if words in _BASIC_SIZES:
            return _BASIC_SIZES[words]
        if words in ("PVOID", "ULONG_PTR", "LONG_PTR", "SIZE_T", "size_t"):
            return self.ptr
        return self.masm.type_size(words)

    def _primary(self) -> Value:
        t = self.text
        s = _SWITCH.match(t, self.i)
        if s:
            if (s.group(1) or "").lower() == "c++":
                self.i = s.end()
                v = self._conditional()
                self._close()
                return v
            value, end = self.masm.nested(t, s.end())     # @@( ) / @@masm( ): MASM
            self.i = end
            self._close()
            return make(value, "unsigned int64")
        f = _FIELD_OFFSET.match(t, self.i)
        if f:
            offset = self.masm.field_offset(f.group(1), f.group(2))
            if offset is None:
                raise ExprError("resolve", f.start(1), t[f.start(1):])
            self.i = f.end()
            return make(offset, "long")
        r = _REGISTER.match(t, self.i)
        if r:
            if r.group(1).lower() in _TYPED_PSEUDO:
                from .session import CommandError
                raise CommandError(
                    f"kdsim: @{r.group(1)} is a typed pointer ({_TYPED_PSEUDO[r.group(1).lower()]}) "
                    "in C++ expressions, and kdsim's C++ evaluator has integers only; "
                    f"@@masm(@{r.group(1)}) gives its value\n")
            v = self.masm.register(r.group(1).lower())
            if v is None:
                raise ExprError("register", self.i)
            self.i = r.end()
            return make(v, "unsigned int64" if self.ptr == 8 else "unsigned int")
        m = _NUMBER.match(t, self.i)
        if m:
            self.i = m.end()
            return self._literal(m.group(1), (m.group(2) or "").lower(), m.start())
        n = re.compile(r"[A-Za-z_][A-Za-z0-9_!:]*").match(t, self.i)
        if n:                       # a name: kdsim's C++ subset has no typed symbols
            raise ExprError("resolve", self.i, t[self.i:])
        raise ExprError("syntax", self.i)

    def _literal(self, digits: str, suffix: str, at: int) -> Value:
        text = digits.replace("`", "").lower()
        if text.startswith("0x"):
            if len(text) == 2:
                raise ExprError("syntax", at)
            value, decimal = int(text, 16), False
        elif len(text) > 1 and text.startswith("0"):
            if any(ch in "89" for ch in text):
                raise ExprError("syntax", at)
            value, decimal = int(text, 8), False
        else:
            value, decimal = int(text), True
        if "`" in digits and not digits.lower().startswith("0x"):
            raise ExprError("syntax", at)
        if suffix in ("ui64", "ull", "llu"):
            candidates = ["unsigned int64"]
        elif suffix in ("i64", "ll"):
            candidates = ["int64", "unsigned int64"]
        elif suffix in ("ul", "lu"):
            candidates = ["unsigned long", "unsigned int64"]
        elif suffix == "u":
            candidates = ["unsigned int", "unsigned int64"]
        elif suffix == "l":
            candidates = ["long", "unsigned long", "int64", "unsigned int64"]
        elif decimal:
            candidates = ["int", "unsigned long", "int64", "unsigned int64"]
        else:
            candidates = ["int", "unsigned int", "int64", "unsigned int64"]
        for kind in candidates:
            bits, signed, _ = _TYPES[kind]
            if value < 1 << (bits - 1 if signed else bits):
                return Value(value, kind)
        raise ExprError("syntax", at)              # more than 64 bits
