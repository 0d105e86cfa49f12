"""``!ca Address [Flags]``: a control area, its segment and its subsections.

Microsoft's !ca documentation gives the flags (1 segment, 2 subsections, 4 mapped views,
8 compact) and a Windows 2000-era sample; the Vista/7-era layout kdsim follows is the one
quoted in *Windows Internals* (6th ed., ch. 10, ``lkd> !ca 0x863d3b00``): ``ControlArea @``,
three label/value columns per line (Segment/Flink/Blink, Section Ref/Pfn Ref/Mapped Views,
User Ref/WaitForDel/Flush Count, File Object/ModWriteCount/System Views, WritableRefs), the
``Flags (hex) Names`` line, the file name, then ``Segment @`` and ``Subsection N @`` blocks.
That quotation lost its spacing: the column widths below are kdsim's choice (labels
padded, values right-aligned to pointer width, hex throughout), kept the same everywhere.

Also here: ``read_struct``, the helper the memory commands (!vm, !wsle) use to read one
structure whole and look at its fields by path.
"""
from __future__ import annotations

from ..expr import ExprError
from ..registry import REGISTRY
from ..session import CommandError


class Struct:
    """A structure read whole from the target.  ``s["u.Flags.Image"]`` reads a field by its
    ``dt`` path; a field the build's layout does not have reads 0 (the WRK and Win7
    structures differ)."""

    def __init__(self, ts, type_name: str, addr: int, data: bytes):
        self.ts, self.type_name, self.addr, self.data = ts, type_name, addr, data

    def has(self, path: str) -> bool:
        return self.ts.has_field(self.type_name, path)

    def __getitem__(self, path: str) -> int:
        if not self.has(path):
            return 0
        return self.ts.field(self.type_name, path).unpack_from(self.data)

    def raw(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


def read_struct(session, type_name: str, addr: int, cr3: int | None = None) -> Struct | None:
    """The structure at ``addr`` in the implicit process's context (or ``cr3``); None if any
    byte of it cannot be read."""
    t = session.target
    size = t.types.sizeof(type_name)
    r = t.read_virtual(addr, size, cr3=cr3 if cr3 is not None else session.context_cr3)
    return Struct(t.types, type_name, addr, r.data) if r.complete else None


def parse_args(session, args: str, at_most: int) -> list[int]:
    """Up to ``at_most`` expressions separated by blanks (positions in errors are relative
    to ``args``, for the caret line)."""
    ev = session.evaluator()
    text = args.rstrip()
    values, i = [], 0
    while text[i:].strip():
        if len(values) == at_most:
            raise ExprError("syntax", i + len(text[i:]) - len(text[i:].lstrip()))
        value, i = ev.parse(text, i)
        values.append(value)
    return values


def unreadable(what: str, addr: int, ptr: int) -> CommandError:
    """kdsim's one wording for a structure the target does not let a command read (no
    WinDbg sample gives the extensions' own)."""
    return CommandError(f"Unable to read {what} @ {addr & ((1 << 8 * ptr) - 1):0{2 * ptr}x}\n")


# _MMSECTION_FLAGS names in the order the debugger lists them: the sample prints
# "Flags (c080) File WasPurged Accessed" -- WasPurged (bit 15) before Accessed (bit 14),
# the order of the older structure.  Set bits not named here follow in bit order.
CA_FLAG_ORDER = ("BeingDeleted", "BeingCreated", "BeingPurged", "NoModifiedWriting",
                 "FailAllIo", "Image", "Based", "File", "Networked", "NoCache", "Rom",
                 "PhysicalMemory", "CopyOnWrite", "Reserve", "Commit", "FloppyMedia",
                 "WasPurged", "UserReference", "GlobalMemory", "DeleteOnClose",
                 "FilePointerNull", "DebugSymbolsLoaded", "GlobalOnlyPerSession",
                 "SetMappedFileIoComplete", "CollidedFlush", "NoChange", "UserWritable",
                 "Accessed")
SUBSECTION_FLAG_NAMES = {"SubsectionAccessed": "Accessed", "SubsectionStatic": "Static",
                         "GlobalMemory": "GlobalMemory", "DirtyPages": "DirtyPages",
                         "ReadOnly": "ReadOnly", "ReadWrite": "ReadWrite"}
NOT_FLAGS = ("Spare", "filler", "filler0", "PreferredNode")
MAX_SUBSECTIONS = 4096


def set_flag_names(s: Struct, prefix: str, order=()) -> list[str]:
    """The one-bit flags of ``prefix`` that are set, ``order`` first."""
    names = [f.path[len(prefix):] for f in s.ts.leaves(s.type_name)
             if f.path.startswith(prefix) and f.bit_width == 1]
    names = [n for n in names if n not in NOT_FLAGS and s[prefix + n]]
    ranked = [n for n in order if n in names]
    return ranked + [n for n in names if n not in ranked]


def _cells(cells, ptr: int) -> str:
    """One line of label/value columns: labels padded to their width, values
    right-aligned to pointer width (pointers zero-padded, counts in hex)."""
    width = 2 * ptr
    out = []
    for label, pad, value, is_ptr in cells:
        text = f"{value:0{width}x}" if is_ptr else f"{value:x}"
        out.append(f"{label:<{pad}}{text:>{width}}")
    return "  " + "  ".join(out)


def _file_name(session, ca: Struct, ptr: int) -> str:
    """The name of the file behind the control area, if it has one kdsim can read.
    FilePointer is an _EX_FAST_REF on Win7 (low 3/4 bits a reference count)."""
    t = session.target
    fo = ca["FilePointer.Value"] if ca.has("FilePointer.Value") else ca["FilePointer"]
    fo &= ~(0xF if ptr == 8 else 0x7)
    if fo and t.types.has_type("_FILE_OBJECT"):
        f = read_struct(session, "_FILE_OBJECT", fo)
        if f is not None and f["FileName.Length"]:
            r = t.read_virtual(f["FileName.Buffer"], f["FileName.Length"],
                               cr3=session.context_cr3)
            if r.complete:
                return r.data.decode("utf-16-le", "replace")
    return "No name for file"


def _segment_block(seg: Struct, image: bool, ptr: int) -> list[str]:
    P = True
    lines = [f"Segment @ {seg.addr:0{2 * ptr}x}"]
    second = ("BasedAddress", 14, seg["BasedAddress"], P) if image else \
        ("ExtendInfo", 14, seg["ExtendInfo"], P)
    lines.append(_cells([("ControlArea", 18, seg["ControlArea"], P), second], ptr))
    lines.append(_cells([("Total Ptes", 18, seg["TotalNumberOfPtes"], False)], ptr))
    lines.append(_cells([("Segment Size", 18, seg["SizeOfSegment"], False),
                         ("Committed", 14, seg["NumberOfCommittedPages"], False)], ptr))
    if image:
        lines.append(_cells([("Image Commit", 18, seg["u1.ImageCommitment"], False),
                             ("Image Info", 14, seg["u2.ImageInformation"], P)], ptr))
    lines.append(_cells([("ProtoPtes", 18, seg["PrototypePte"], P)], ptr))
    flags = seg["SegmentFlags.DefaultProtectionMask"]
    raw = int.from_bytes(seg.raw(seg.ts.offset_of("_SEGMENT", "SegmentFlags"), 4), "little")
    lines.append(f"  Flags ({raw:x})" + (" ProtectionMask" if flags else ""))
    return lines


def _subsection_block(sub: Struct, number: int, ptr: int) -> list[str]:
    prefix = "u.SubsectionFlags."
    starting = sub["StartingSector"] | (sub[prefix + "StartingSector4132"] << 32)
    lines = [f"Subsection {number} @ {sub.addr:0{2 * ptr}x}",
             _cells([("ControlArea", 13, sub["ControlArea"], True),
                     ("Starting Sector", 16, starting, False),
                     ("Number Of Sectors", 18, sub["NumberOfFullSectors"], False)], ptr),
             _cells([("Base Pte", 13, sub["SubsectionBase"], True),
                     ("Ptes In Subsect", 16, sub["PtesInSubsection"], False),
                     ("Unused Ptes", 18, sub["UnusedPtes"], False)], ptr),
             _cells([("Flags", 13, sub["u.LongFlags"], False),
                     ("Sector Offset", 16, sub[prefix + "SectorEndOffset"], False),
                     ("Protection", 18, sub[prefix + "Protection"], False)], ptr)]
    names = [SUBSECTION_FLAG_NAMES[n] for n in set_flag_names(sub, prefix)
             if n in SUBSECTION_FLAG_NAMES]
    if names:
        lines.append("  " + " ".join(names))
    return lines


@REGISTRY.command("!ca", syntax="!ca Address [Flags]",
                  summary="display a control area, its segment and subsections",
                  help="Flags: 1 the segment, 2 the subsections (none: both).  kdsim does "
                       "not support Address 0 (all control areas) or -1 (the unused "
                       "segment list), nor flags 4 (mapped views) and 8 (compact).")
def ca(session, args: str, offset: int) -> str:
    t = session.target
    ptr = t.pointer_size
    mask = (1 << 8 * ptr) - 1
    values = parse_args(session, args, 2)
    if not values:
        raise CommandError("kdsim: !ca needs the address of a control area "
                           "(!vad shows it for a mapped view)\n")
    addr, flags = values[0] & mask, (values[1:] or [0])[0]
    if addr in (0, mask):
        raise CommandError("kdsim: !ca 0 (every control area) and !ca -1 (the unused "
                           "segment list) are not supported; give a control area address\n")
    area = read_struct(session, "_CONTROL_AREA", addr)
    if area is None:
        raise unreadable("_CONTROL_AREA", addr, ptr)
    P = True
    fo = area["FilePointer.Value"] if area.has("FilePointer.Value") else area["FilePointer"]
    fo &= ~(0xF if ptr == 8 else 0x7)
    views = area["u2.e2.NumberOfSystemCacheViews"] if area.has("u2.e2.NumberOfSystemCacheViews") \
        else area["NumberOfSystemCacheViews"]
    writable = area["u2.e2.WritableUserReferences"] if area.has("u2.e2.WritableUserReferences") \
        else area["WritableUserReferences"]
    lines = [f"ControlArea @ {addr:0{2 * ptr}x}",
             _cells([("Segment", 13, area["Segment"], P),
                     ("Flink", 14, area["DereferenceList.Flink"], P),
                     ("Blink", 13, area["DereferenceList.Blink"], P)], ptr),
             _cells([("Section Ref", 13, area["NumberOfSectionReferences"], False),
                     ("Pfn Ref", 14, area["NumberOfPfnReferences"], False),
                     ("Mapped Views", 13, area["NumberOfMappedViews"], False)], ptr),
             _cells([("User Ref", 13, area["NumberOfUserReferences"], False),
                     ("WaitForDel", 14, area["WaitingForDeletion"] or area["WaitList"], False),
                     ("Flush Count", 13, area["FlushInProgressCount"], False)], ptr),
             _cells([("File Object", 13, fo, P),
                     ("ModWriteCount", 14, area["ModifiedWriteCount"], False),
                     ("System Views", 13, views, False)], ptr),
             _cells([("WritableRefs", 13, writable, False)], ptr)]
    names = set_flag_names(area, "u.Flags.", CA_FLAG_ORDER)
    lines.append(f"  Flags ({area['u.LongFlags']:x}) " + " ".join(names))
    lines += ["", "      " + _file_name(session, area, ptr)]
    image = bool(area["u.Flags.Image"])
    if not flags or flags & 1:
        seg = read_struct(session, "_SEGMENT", area["Segment"])
        lines.append("")
        if seg is None:
            lines.append(unreadable("_SEGMENT", area["Segment"], ptr).text.rstrip("\n"))
        else:
            lines += _segment_block(seg, image, ptr)
    if not flags or flags & 2:
        # The first subsection follows the control area; the rest are chained through
        # NextSubsection (nt-structures.md §9.1).
        sub_va = addr + t.types.sizeof("_CONTROL_AREA")
        for number in range(1, MAX_SUBSECTIONS + 1):
            sub = read_struct(session, "_SUBSECTION", sub_va)
            lines.append("")
            if sub is None:
                lines.append(unreadable("_SUBSECTION", sub_va, ptr).text.rstrip("\n"))
                break
            lines += _subsection_block(sub, number, ptr)
            sub_va = sub["NextSubsection"]
            if not sub_va:
                break
    return "\n".join(line.rstrip() for line in lines) + "\n"
