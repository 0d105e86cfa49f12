"""The guest's physical memory map: RAM runs with the holes a PC has.

A PC's firmware reports RAM in runs (E820): the first page and 0x9F000-0xFFFFF (VGA,
option ROMs, BIOS) are not RAM; below 4 GB the RAM stops under the PCI window (kdsim
puts it at 3 GB, minus 1 MB of ACPI tables at the top) and the rest is remapped above
4 GB.  A machine of 3 GB or less loses only the 64 KB of ACPI data at its top.  These are
kdsim's choices for a plausible map; the debugger sees them in MmPhysicalMemoryBlock.
"""
from __future__ import annotations

PAGE = 0x1000
LOW_RUN = (0x1000, 0x9F000)           # [start, end): conventional memory minus page 0
HIGH_START = 0x100000                 # above the legacy hole
PCI_HOLE_START = 0xC0000000           # 3 GB: the PCI window starts here
ACPI_BELOW_PCI = 0x100000             # 1 MB of ACPI tables under the PCI window
ACPI_AT_TOP = 0x10000                 # 64 KB of ACPI data at the top of a small machine
FOUR_GB = 1 << 32


def ram_runs(ram_bytes: int, max_physical: int) -> list[tuple[int, int]]:
    """``(start, length)`` runs for ``ram_bytes`` of installed RAM.  ``max_physical`` is the
    first address the target cannot reach (4 GB for non-PAE x86)."""
    if ram_bytes < 16 << 20:
        raise ValueError("kdsim needs at least 16 MB of guest RAM")
    ram_bytes &= ~(PAGE - 1)
    runs = [(LOW_RUN[0], LOW_RUN[1] - LOW_RUN[0])]
    if ram_bytes <= PCI_HOLE_START:
        runs.append((HIGH_START, ram_bytes - ACPI_AT_TOP - HIGH_START))
    else:
        runs.append((HIGH_START, PCI_HOLE_START - ACPI_BELOW_PCI - HIGH_START))
        above = ram_bytes - PCI_HOLE_START
        if FOUR_GB < max_physical:
            runs.append((FOUR_GB, min(above, max_physical - FOUR_GB)))
    return runs


def address_space_size(runs: list[tuple[int, int]]) -> int:
    """Bytes of physical address space the machine needs (up to the last run's end)."""
    return max(start + length for start, length in runs)
