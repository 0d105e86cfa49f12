"""WinDbg's number and address formatting (windbg-formats.md §1, §15)."""
from __future__ import annotations

MASK64 = (1 << 64) - 1


def hex64(value: int) -> str:
    """A quad word as ``d*`` and ``?`` print it on x64: ``fffff803`42939f50``."""
    value &= MASK64
    return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"


def pointer(value: int, ptr_size: int) -> str:
    """A pointer-sized value: 8 lowercase digits on 32-bit targets, ``hi`lo`` on 64-bit."""
    if ptr_size == 4:
        return f"{value & 0xFFFFFFFF:08x}"
    return hex64(value)


def signed(value: int, bits: int) -> int:
    """``value`` as a two's-complement number of ``bits`` bits."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def evaluate_line(value: int, ptr_size: int) -> str:
    """What ``? expr`` prints: the signed decimal at pointer width, then the hex."""
    return f"Evaluate expression: {signed(value, 8 * ptr_size)} = {pointer(value, ptr_size)}"
