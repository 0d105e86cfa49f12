"""What the debugger can know about the machine it is attached to.

The kd engine reads a target only through this interface -- memory, probe translations,
the symbol and type information a debugger loads from symbol files -- never through
the memory manager's Python objects (DESIGN.md, "the one rule").  A live emulated
machine is one Target; a crash-dump file can be another.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from kdsim.machine import Translation
from kdsim.machine.errors import KdArgumentError
from kdsim.nt import ntimage
from kdsim.nt.boot import place_variables

PAGE = 0x1000


@dataclass(frozen=True)
class Read:
    """Bytes read from a target: ``data`` is as long as asked, with zeros where memory
    could not be read; ``readable[i]`` is 1 if byte i was read, 0 if not (the ``??``
    cells).  Both are bytes, so a large read stays compact."""

    data: bytes
    readable: bytes

    @property
    def complete(self) -> bool:
        return 0 not in self.readable

    @property
    def readable_prefix(self) -> int:
        """How many bytes from the start were read."""
        i = self.readable.find(0)
        return len(self.readable) if i < 0 else i


class ProcessContext(int):
    """The directory base of the implicit process after ``.process /p``: an int, so every
    read that takes ``cr3=`` takes it, which also asks the target to decode transition
    PTEs at user addresses itself.  MSD ".process": /p "translates all transition page
    table entries (PTEs) for this process to physical addresses before access" -- the
    ``.cache forcedecodeuser`` setting: a page trimmed to the standby or modified list
    still holds its bytes in the frame its transition PTE names.  Only transition PTEs:
    a prototype or paging-file PTE has no frame to read."""

    decode_user = True


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

    def functions(self, module: str) -> dict[str, tuple[int, int | None, int]]:
        """The module's routines (see LiveTarget.functions); none by default."""
        return {}

    def registers(self) -> dict[str, int]:
        """The current processor's instruction, stack and frame pointers ("ip", "sp",
        "bp"); what a debugger transport reports of a stopped processor."""
        return {"ip": 0, "sp": 0, "bp": 0}

    def go(self, switch_cr3: int | None = None):
        """Let the target run until it stops; a StopEvent (kdsim.nt.execution).
        ``switch_cr3``: break in with that address space loaded once the machine idles
        (what ``.process /i`` asks of the target).  A target that cannot run (a dump)
        raises RuntimeError."""
        raise RuntimeError("the target cannot run")


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
        ptr = self._profile.pointer_size
        rvas = ntimage.function_rvas(self._profile.name, ptr)
        self._symbols["nt"].update(rvas)
        self._functions = {"nt": {f.name: (rvas[f.name], f.args, f.frame)
                                  for f in ntimage.functions_of(self._profile.name)}}
        self._booted = booted
        self._codec = None            # the build's PTE decoder, made on first need

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

    def functions(self, module: str) -> dict[str, tuple[int, int | None, int]]:
        """The module's routines: name -> (offset, x86 stdcall argument bytes or None,
        x64 frame size from the unwind data), what a symbol file says of a function."""
        return dict(self._functions.get(module.lower(), {}))

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
        cr4 with DE|MCE|OSFXSR|OSXMMEXCPT, efer with SCE on x64).  CR2 holds the address of
        the last page fault a guest thread took (kdsim.nt.execution)."""
        p = self._m.paging
        cr0 = 0x80040033 | (0x10000 if p.wp else 0)
        cr4 = 0x648 | (0x10 if p.pse else 0) | (0x80 if p.pge else 0) | \
            (0x20 if p.mode in ("pae", "x64") else 0)
        efer = (0x800 if p.nxe and p.mode in ("pae", "x64") else 0) | (0x501 if p.mode == "x64" else 0)
        cr2 = self._booted.nt.executor.regs["cr2"]
        return {"cr0": cr0, "cr2": cr2, "cr3": p.cr3, "cr4": cr4, "efer": efer}

    def registers(self) -> dict[str, int]:
        r = self._booted.nt.executor.regs
        return {"ip": r["ip"], "sp": r["sp"], "bp": r["bp"]}

    def go(self, switch_cr3: int | None = None):
        return self._booted.nt.executor.go(switch_cr3)

    def translate(self, va: int, cr3: int | None = None) -> Translation:
        return self._m.translate(va, cr3=cr3 if cr3 is not None else self._m.cr3)

    def _span(self, va: int, limit: int, cr3: int,
              decode: bool = False) -> tuple[int | None, int]:
        """``(pa, length)``: where the bytes from ``va`` to the end of its page (a large
        page counts whole), at most ``limit`` of them, are in RAM -- or ``(None,
        length)`` if they cannot be read.  A directory base the MMU cannot use (a
        .process on something that is not a process) reads as unreadable memory, as it
        would on a real target."""
        try:
            t = self.translate(va, cr3)
        except KdArgumentError:
            t = None
        size = t.page_size if t is not None and t.ok else PAGE
        length = min(limit, size - (va & (size - 1)))
        if t is None or not t.ok:
            frame = self._transition_frame(va, t) if decode else None
            if frame is None:
                return None, length
            pa = frame * PAGE + (va & (PAGE - 1))
            return (pa if self._m.is_physical(pa, length) else None), length
        if not self._m.is_physical(t.pa, length):
            length = min(length, PAGE - (va & (PAGE - 1)))
            return (t.pa if self._m.is_physical(t.pa, length) else None), length
        return t.pa, length

    def _transition_frame(self, va: int, t: Translation | None) -> int | None:
        """The page frame a user address's transition PTE names, read from the PTE the
        failed walk ended on (its bytes in guest memory) -- or None."""
        if t is None or t.ok or t.fault_level != 1 or not t.levels \
                or va > self._profile.address_space.highest_user_address:
            return None
        if self._codec is None:
            from kdsim.nt.pte import PteCodec       # a build's PTE format: pure data
            self._codec = PteCodec(self._profile)
        value = t.levels[-1][1]
        if value > self._codec.value_mask:
            return None
        d = self._codec.decode(value)
        return d.pfn if d.kind == "transition" else None

    def read_virtual(self, va: int, n: int, cr3: int | None = None) -> Read:
        decode = getattr(cr3, "decode_user", False)         # .process /p (ProcessContext)
        cr3 = self._m.cr3 if cr3 is None else cr3           # once, not once a page
        if n > 8 * PAGE and va + n <= 1 << 64:
            try:
                return self._read_many_pages(va, n, cr3, decode)
            except KdArgumentError:            # a directory base the MMU cannot use
                return Read(bytes(n), bytes(n))
        return self._read_by_page(va, n, cr3, decode)

    def _read_by_page(self, va: int, n: int, cr3: int, decode: bool = False) -> Read:
        out, ok = bytearray(n), bytearray(n)
        done = 0
        while done < n:
            pa, chunk = self._span((va + done) & 0xFFFFFFFFFFFFFFFF, n - done, cr3, decode)
            if pa is not None:
                out[done:done + chunk] = self._m.read_physical(pa, chunk)
                ok[done:done + chunk] = b"\1" * chunk
            done += chunk
        return Read(bytes(out), bytes(ok))

    def _read_many_pages(self, va: int, n: int, cr3: int, decode: bool = False) -> Read:
        """A long read: every page probed in one batch call under ``cr3``, then one
        physical read per run of physically contiguous pages."""
        first = va & ~(PAGE - 1)
        pages = np.arange(first, va + n, PAGE, dtype=np.uint64)
        pas, status = self._m.translate_batch(pages, cr3=cr3)
        good = status == 0
        # Runs: a page starts a new run unless it follows the previous one in RAM.
        follows = np.zeros(len(pages), dtype=bool)
        follows[1:] = good[1:] & good[:-1] & (pas[1:] == pas[:-1] + np.uint64(PAGE))
        starts = np.flatnonzero(~follows).tolist() + [len(pages)]
        out, ok = bytearray(n), bytearray(n)
        user_end = self._profile.address_space.highest_user_address
        for a, b in zip(starts, starts[1:]):
            lo = max(va, first + a * PAGE)               # the run's bytes within the read
            hi = min(va + n, first + b * PAGE)
            if not good[a]:
                if decode and lo <= user_end:            # transition PTEs, page by page
                    part = self._read_by_page(lo, hi - lo, cr3, decode)
                    out[lo - va:hi - va], ok[lo - va:hi - va] = part.data, part.readable
                continue
            pa = int(pas[a]) + (lo - (first + a * PAGE))
            if self._m.is_physical(pa, hi - lo):
                out[lo - va:hi - va] = self._m.read_physical(pa, hi - lo)
                ok[lo - va:hi - va] = b"\1" * (hi - lo)
            else:                                         # a run crossing a hole: by page
                part = self._read_by_page(lo, hi - lo, cr3, decode)
                out[lo - va:hi - va], ok[lo - va:hi - va] = part.data, part.readable
        return Read(bytes(out), bytes(ok))

    def read_physical(self, pa: int, n: int) -> Read:
        if n and self._m.is_physical(pa, n):                 # one run of RAM: one read
            return Read(self._m.read_physical(pa, n), b"\1" * n)
        out, ok = bytearray(n), bytearray(n)
        done = 0
        while done < n:
            chunk = min(n - done, PAGE - ((pa + done) & (PAGE - 1)))
            if self._m.is_physical(pa + done, chunk):
                out[done:done + chunk] = self._m.read_physical(pa + done, chunk)
                ok[done:done + chunk] = b"\1" * chunk
            done += chunk
        return Read(bytes(out), bytes(ok))

    def write_virtual(self, va: int, data: bytes, cr3: int | None = None) -> int:
        cr3 = self._m.cr3 if cr3 is None else cr3
        done = 0
        while done < len(data):
            pa, chunk = self._span((va + done) & 0xFFFFFFFFFFFFFFFF, len(data) - done, cr3)
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
