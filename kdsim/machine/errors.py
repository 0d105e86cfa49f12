"""Typed errors of the machine layer.  Each carries the C core's status and its evidence."""
from __future__ import annotations

from ._kdcore import ffi, lib


def status_message(status: int) -> str:
    return ffi.string(lib.kd_strerror(status)).decode()


class KdError(Exception):
    """A call into the C core returned a failure status."""

    def __init__(self, status: int, what: str = ""):
        self.status = status
        text = status_message(status)
        super().__init__(f"{what}: {text}" if what else text)


class KdArgumentError(KdError, ValueError):
    """An argument the core refused: a bad mode or access, a misaligned or out-of-range value."""


class PhysicalMemoryError(KdError):
    """A physical access touched a hole or went beyond the end of RAM.

    ``done`` bytes were transferred before it (``data`` holds them for a read)."""

    def __init__(self, status: int, pa: int, done: int = 0, data: bytes = b""):
        super().__init__(status, f"physical address {pa:#x}")
        self.pa = pa
        self.done = done
        self.data = data


class VirtualMemoryError(KdError):
    """A virtual access stopped at a page that did not translate or is not backed.

    ``translation`` is the failing walk (a :class:`~kdsim.machine.core.Translation`),
    ``done``/``data`` what was transferred before it."""

    def __init__(self, status: int, va: int, translation, done: int = 0, data: bytes = b""):
        super().__init__(status, f"virtual address {va:#x}")
        self.va = va
        self.translation = translation
        self.done = done
        self.data = data


_ARGUMENT_STATUSES = {lib.KD_E_INVAL, lib.KD_E_RANGE, lib.KD_E_ALIGN}


def check(status: int, what: str = "") -> None:
    """Raise the typed error for a non-OK status of a call that has no evidence to carry."""
    if status == lib.KD_OK:
        return
    if status in _ARGUMENT_STATUSES:
        raise KdArgumentError(status, what)
    if status == lib.KD_E_NOMEM:
        raise MemoryError(f"{what}: {status_message(status)}")
    raise KdError(status, what)
