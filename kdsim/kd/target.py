"""What the debugger can know about the machine it is attached to.

The kd engine reads a target only through this interface -- memory, probe translations,
the symbol and type information a debugger loads from symbol files -- never through
the memory manager's Python objects (DESIGN.md, "the one rule").  A live emulated
machine is one Target; a crash-dump file can be another.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from kdsim.machine import Translation
from kdsim.machine.errors import KdArgumentError
from kdsim.nt.boot import place_variables

PAGE = 0x1000


@dataclass(frozen=True)
class Read:
    """Bytes read from a target: ``data`` is as long as asked, with zeros where memory
    could not be read; ``readable[i]`` says whether byte i was read (the ``??`` cells)."""

    data: bytes
    readable: tuple[bool, ...]

    @property
    def complete(self) -> bool:
        return all(self.readable)

    @property
    def readable_prefix(self) -> int:
        """How many bytes from the start were read."""
        for i, ok in enumerate(self.readable):
            if not ok:
                return i
        return len(self.readable)


class Target(ABC):
    """The debugger's view of one machine."""

    @property
    @abstractmethod
    def pointer_size(self) -> int: ...

    @property
    @abstractmethod
    def profile(self):
        """The target's build: name, paging mode, version facts (what ``vertarget``
        prints and symbol files describe)."""

    @property
    @abstractmethod
    def types(self):
        """Structure layouts from the symbol files (a kdsim.nt.types.TypeSystem)."""

    @abstractmethod
    def symbols(self, module: str) -> dict[str, int]:
        """A module's symbols as its symbol file gives them: name -> offset from the
        module's base (where the module is loaded, the debugger finds in memory)."""

    @abstractmethod
    def read_virtual(self, va: int, n: int, cr3: int | None = None) -> Read: ...

    @abstractmethod
    def read_physical(self, pa: int, n: int) -> Read: ...

    @abstractmethod
    def write_virtual(self, va: int, data: bytes, cr3: int | None = None) -> int:
        """Write like a debugger (no faults, no A/D side effects); returns bytes written."""

    @abstractmethod
    def write_physical(self, pa: int, data: bytes) -> int: ...

    @abstractmethod
    def translate(self, va: int, cr3: int | None = None) -> Translation:
        """A probe of the tables under ``cr3`` (the loaded one by default)."""

    @property
    @abstractmethod
    def cr3(self) -> int:
        """The CR3 loaded on the current processor."""

    @abstractmethod
    def control_registers(self) -> dict[str, int]:
        """cr0, cr2, cr3, cr4 and efer of the current processor (what ``r cr4`` shows)."""

    @property
    @abstractmethod
    def kernel_base(self) -> int:
        """Where nt is loaded (what the debugger transport reports, as KernBase)."""


class LiveTarget(Target):
    """An emulated machine booted by kdsim."""

    def __init__(self, booted):
        self._m = booted.core
        self._profile = booted.nt.profile
        self._types = booted.nt.ts
        # The "symbol file" of nt: where its variables sit relative to the image base,
        # a pure function of the build's profile and types (what a PDB records).
        base = self._profile.address_space.kernel_base
        layout = place_variables(self._profile, self._types)
        self._symbols = {"nt": {name: va - base for name, va in layout.items()}}

    @property
    def pointer_size(self) -> int:
        return self._profile.pointer_size

    @property
    def profile(self):
        return self._profile

    @property
    def types(self):
        return self._types

    def symbols(self, module: str) -> dict[str, int]:
        return dict(self._symbols.get(module.lower(), {}))

    @property
    def cr3(self) -> int:
        return self._m.cr3

    @property
    def kernel_base(self) -> int:
        return self._profile.address_space.kernel_base

    def control_registers(self) -> dict[str, int]:
        """The bits kdsim's MMU models come from its paging state (CR0.WP, CR4.PSE/PAE/PGE,
        EFER.LME/LMA/NXE); the others are what a Windows 7 kernel runs with (kdsim choice,
        from the usual ``r cr0``/``r cr4`` values: cr0=80050033 PG|AM|WP|NE|ET|MP|PE,
        cr4 with DE|MCE|OSFXSR|OSXMMEXCPT, efer with SCE on x64).  CR2 holds no fault
        address: kdsim's debugger is never entered through a page fault."""
        p = self._m.paging
        cr0 = 0x80040033 | (0x10000 if p.wp else 0)
        cr4 = 0x648 | (0x10 if p.pse else 0) | (0x80 if p.pge else 0) | \
            (0x20 if p.mode in ("pae", "x64") else 0)
        efer = (0x800 if p.nxe and p.mode in ("pae", "x64") else 0) | (0x501 if p.mode == "x64" else 0)
        return {"cr0": cr0, "cr2": 0, "cr3": p.cr3, "cr4": cr4, "efer": efer}

    def translate(self, va: int, cr3: int | None = None) -> Translation:
        return self._m.translate(va, cr3=cr3 if cr3 is not None else self._m.cr3)

    def _pa(self, va: int, n: int, cr3: int | None) -> int | None:
        """Where ``n`` bytes at ``va`` (inside one page) are, or None.  A directory base
        the MMU cannot use (a .process on something that is not a process) reads as
        unreadable memory, as it would on a real target."""
        try:
            t = self.translate(va, cr3)
        except KdArgumentError:
            return None
        return t.pa if t.ok and self._m.is_physical(t.pa, n) else None

    def read_virtual(self, va: int, n: int, cr3: int | None = None) -> Read:
        out, ok = bytearray(n), [False] * n
        done = 0
        while done < n:
            cur = (va + done) & 0xFFFFFFFFFFFFFFFF
            chunk = min(n - done, PAGE - (cur & (PAGE - 1)))
            pa = self._pa(cur, chunk, cr3)
            if pa is not None:
                out[done:done + chunk] = self._m.read_physical(pa, chunk)
                ok[done:done + chunk] = [True] * chunk
            done += chunk
        return Read(bytes(out), tuple(ok))

    def read_physical(self, pa: int, n: int) -> Read:
        out, ok = bytearray(n), [False] * n
        done = 0
        while done < n:
            chunk = min(n - done, PAGE - ((pa + done) & (PAGE - 1)))
            if self._m.is_physical(pa + done, chunk):
                out[done:done + chunk] = self._m.read_physical(pa + done, chunk)
                ok[done:done + chunk] = [True] * chunk
            done += chunk
        return Read(bytes(out), tuple(ok))

    def write_virtual(self, va: int, data: bytes, cr3: int | None = None) -> int:
        done = 0
        while done < len(data):
            cur = (va + done) & 0xFFFFFFFFFFFFFFFF
            chunk = min(len(data) - done, PAGE - (cur & (PAGE - 1)))
            pa = self._pa(cur, chunk, cr3)
            if pa is None:
                break
            self._m.write_physical(pa, data[done:done + chunk])
            done += chunk
        return done

    def write_physical(self, pa: int, data: bytes) -> int:
        done = 0
        while done < len(data):
            chunk = min(len(data) - done, PAGE - ((pa + done) & (PAGE - 1)))
            if not self._m.is_physical(pa + done, chunk):
                break
            self._m.write_physical(pa + done, data[done:done + chunk])
            done += chunk
        return done
