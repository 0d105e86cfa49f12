"""``!vad``: a process's VAD tree (``_MM_AVL_TABLE`` of ``_MMVAD*`` nodes) read from guest
memory, and one VAD in detail (windbg-formats.md §8, nt-structures.md §6, §9).

kdsim prints the dbgeng 6.x layout, the debugger of the Windows 7 era (MSD-vad's sample,
kept by today's documentation; the same columns with 16-digit addresses in Microsoft's
64-bit "Mapping Symbols When the PEB is Paged Out" sample):

    VAD     level      start      end    commit
    82741bf8 ( 1)      78000    78045         8 Mapped  Exe  EXECUTE_WRITECOPY

* Rows come in address order (an in-order walk); ``level`` is the depth below the node
  the walk started from (0), as in MSD-vad where the given root prints ``( 0)``.
* ``start``/``end`` are VPNs; ``commit`` is VadFlags.CommitCharge, printed as the
  debugger's signed 32-bit decimal.  ``Exe`` marks VadImageMap, ``Phys``
  VadDevicePhysicalMemory.  The protection word is VadFlags.Protection
  (kdsim.nt.protect.vad_protect_name).
* A mapped view also names what backs it, in a column 19 characters after the protection
  starts (a 64-bit transcript of the same layout): ``Pagefile-backed section`` when its
  control area is neither an image nor a file, else the file's name: FileName of the
  FILE_OBJECT that ControlArea.FilePointer names (``\\Windows\\System32\\ntdll.dll``, as
  the era-3 samples show it); the column stays empty when the name cannot be read.  Rows
  without a description end after the protection word (as MSD-vad prints them).
* Footer ``Total VADs: %5d  average level: %4d  maximum depth: %d``, over the rows
  listed.  The average is inferred from MSD-vad (levels 1,2,0,2,1 print 2): the mean of
  the levels rounded up -- which also keeps it at most the maximum depth, so one row at
  level 3 (``!vad <user address>``) prints average 3, maximum depth 3.  An empty tree
  prints the header and zeros (kdsim's choice).

Arguments (kdsim's reading of MSD-vad and the paged-out-PEB page, which runs
``!vad 7f78e9e000F 1``):

* none: the implicit process's tree (``.process``, else the process whose page tables
  are loaded);
* a kernel address: a VAD node, whose subtree is listed (flag 0) or which is detailed
  (flag 1); the address of an ``EPROCESS.VadRoot`` table (its ``BalancedRoot`` sentinel
  points at itself) lists the whole tree under it;
* a user address: the implicit process's VAD containing it -- flag 1 details it, flag 0
  prints its row (level = its depth in the process's tree).

``!vad <node> 1`` prints MSD-vad's block with the 64-bit sample's ``File Offset`` line:
Start/End VPN and Control Area (Win7: VAD.Subsection->ControlArea; WRK: VAD.ControlArea),
First ProtoPte/Last PTE and Commit Charge (hex, then decimal with a dot), _MMVAD_LONG's
Secured links and Banked pointer (0 unless VadFlags2.LongVad), VadFlags2.FileOffset, and
the flag words -- the _MI_VAD_TYPE name without "Vad" (``ImageMap``), ``ViewShare``
(VadFlags2.Inherit), ``NoChange``, ``MemCommit``, ``PrivateMemory`` -- before the
protection (the order MSD-vad's ``ImageMap ViewShare`` / ``ViewShare NoChange`` implies;
where MemCommit and PrivateMemory go is kdsim's choice).  A short (private) VAD has no
control area or prototype PTEs: those print as 0.  Other VadFlags2 bits get a line of
their own, as MSD-vad's ``SecNoChange``.  A mapped view's control area follows, as the
first block of ``!ca`` prints it (era-2 transcripts).

Error texts have no transcript (windbg-formats.md §19 GAP); kdsim prints
``Unable to read VAD at <addr>`` and ``Unable to find VAD for address <addr>``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from kdsim.nt.protect import vad_protect_name
from kdsim.nt.types import TypeLookupError

from ..expr import ExprError
from ..registry import REGISTRY
from ..session import CommandError
from .process import current_process

MAX_NODES = 1 << 20             # a walk stops here (corrupt links must not hang kd) ...
MAX_DEPTH = 96                  # ... or this deep (an AVL tree of 2**64 nodes is shallower)
VAD_IMAGE_MAP, VAD_DEVICE_PHYSICAL = 2, 1


def plain_pointer(value: int, ptr: int) -> str:
    """A pointer as ``!vad`` prints it: zero-padded, no backtick."""
    return f"{value & ((1 << 8 * ptr) - 1):0{2 * ptr}x}"


def read_bytes(session, addr: int, n: int, cr3=None) -> bytes | None:
    r = session.target.read_virtual(addr, n, cr3=cr3)
    return r.data if r.complete else None


def user_limit(session) -> int:
    """MmHighestUserAddress, read from guest memory."""
    t = session.target
    value = session._read_int(t.kernel_base + t.symbols("nt")["MmHighestUserAddress"],
                              t.pointer_size)
    return value if value is not None else t.profile.address_space.highest_user_address


@dataclass
class Vad:
    """One VAD as guest memory holds it (fields a short VAD lacks read as 0)."""

    addr: int
    parent: int
    left: int
    right: int
    start_vpn: int
    end_vpn: int
    flags: dict
    long: bool = False              # an _MMVAD (or _MMVAD_LONG): a mapped view in kdsim
    flags2: dict = field(default_factory=dict)
    control_area: int = 0
    subsection: int = 0
    first_proto: int = 0
    last_pte: int = 0
    secured: tuple = (0, 0)
    banked: int = 0

    @property
    def start(self) -> int:
        return self.start_vpn << 12

    @property
    def end(self) -> int:                   # exclusive
        return (self.end_vpn + 1) << 12

    @property
    def private(self) -> bool:
        return bool(self.flags["PrivateMemory"])

    @property
    def protection(self) -> int:
        return self.flags["Protection"]

    @property
    def vad_type(self) -> int:
        return self.flags["VadType"]


def _unpacker(ts, type_name: str, raw: bytes):
    """``get(path)``: a field of ``type_name`` from the structure's bytes."""
    def get(path: str) -> int:
        return ts.field(type_name, path).unpack_from(raw)
    return get


def read_vad(session, addr: int) -> Vad | None:
    """The VAD at ``addr``, or None if its header cannot be read.  A private VAD is an
    ``_MMVAD_SHORT`` (kdsim makes no long private VADs); a mapped one an ``_MMVAD``, with
    ``_MMVAD_LONG``'s u3/u4 when VadFlags2.LongVad says it is one."""
    ts = session.target.types
    short = ts.sizeof("_MMVAD_SHORT")
    raw = read_bytes(session, addr, short)
    if raw is None:
        return None
    f = _unpacker(ts, "_MMVAD_SHORT", raw)
    flags = {x.path.rsplit(".", 1)[1]: x.unpack_from(raw)
             for x in ts.leaves("_MMVAD_SHORT") if x.path.startswith("u.VadFlags.")}
    vad = Vad(addr, f("u1.Parent") & ~3, f("LeftChild"), f("RightChild"),
              f("StartingVpn"), f("EndingVpn"), flags)
    if vad.private:
        return vad
    raw = read_bytes(session, addr, ts.sizeof("_MMVAD"))
    if raw is None:
        return vad
    g = _unpacker(ts, "_MMVAD", raw)
    vad.long = True
    vad.flags2 = {x.path.rsplit(".", 1)[1]: x.unpack_from(raw)
                  for x in ts.leaves("_MMVAD") if x.path.startswith("u2.VadFlags2.")}
    vad.first_proto, vad.last_pte = g("FirstPrototypePte"), g("LastContiguousPte")
    if ts.has_field("_MMVAD", "Subsection"):
        vad.subsection = g("Subsection")
        ca = session._read_int(vad.subsection + ts.offset_of("_SUBSECTION", "ControlArea"),
                               session.target.pointer_size) if vad.subsection else None
        vad.control_area = ca or 0
    else:                       # the WRK's _MMVAD names its control area
        vad.control_area = g("ControlArea")
    if vad.flags2.get("LongVad"):
        big = read_bytes(session, addr, ts.sizeof("_MMVAD_LONG"))
        if big is not None:
            h = _unpacker(ts, "_MMVAD_LONG", big)
            vad.secured = (h("u3.List.Flink"), h("u3.List.Blink"))
            vad.banked = h("u4.Banked")
    return vad


# -- the tree ---------------------------------------------------------------------------

class TreeError(Exception):
    """A node of the walk could not be read; ``rows`` holds what came before it."""

    def __init__(self, addr: int, rows: list):
        super().__init__(addr)
        self.addr, self.rows = addr, rows


def walk(session, root: int) -> list[tuple[Vad, int]]:
    """``(vad, level)`` of the subtree under ``root`` in address order (an in-order walk;
    ``root`` is level 0).  Raises TreeError at the first node it cannot read."""
    out: list[tuple[Vad, int]] = []
    seen: set[int] = set()
    stack: list[tuple[Vad, int]] = []
    node, level = root, 0
    while True:
        while node:
            if node in seen or len(seen) >= MAX_NODES or level > MAX_DEPTH:
                raise TreeError(node, out)          # a cycle: the links are corrupt
            vad = read_vad(session, node)
            if vad is None:
                raise TreeError(node, out)
            seen.add(node)
            stack.append((vad, level))
            node, level = vad.left, level + 1
        if not stack:
            return out
        vad, level = stack.pop()
        out.append((vad, level))
        node, level = vad.right, level + 1


def process_table(session, ep: int) -> int:
    """Address of ``EPROCESS.VadRoot`` (the ``_MM_AVL_TABLE``)."""
    return ep + session.target.types.offset_of("_EPROCESS", "VadRoot")


def table_root(session, table: int) -> int | None:
    """The real root of a VAD table: ``BalancedRoot.RightChild`` (0 when empty)."""
    ts = session.target.types
    f = ts.field("_MM_AVL_TABLE", "BalancedRoot.RightChild")
    return session._read_int(table + f.offset, f.size)


def implicit_process(session) -> int:
    return session.implicit_process or current_process(session)


def process_vads(session, ep: int) -> list[Vad]:
    """The VADs of a process in address order (TreeError if a node is unreadable)."""
    table = process_table(session, ep)
    root = table_root(session, table)
    if root is None:
        raise TreeError(table, [])
    return [v for v, _ in walk(session, root)] if root else []


def find_vad(session, ep: int, va: int) -> tuple[Vad, int] | None:
    """The VAD of ``ep`` containing ``va`` and its depth (MiLocateAddress's search)."""
    node = table_root(session, process_table(session, ep))
    vpn, depth = va >> 12, 0
    while node and depth <= MAX_DEPTH:
        vad = read_vad(session, node)
        if vad is None:
            raise TreeError(node, [])
        if vpn < vad.start_vpn:
            node = vad.left
        elif vpn > vad.end_vpn:
            node = vad.right
        else:
            return vad, depth
        depth += 1
    return None


# -- control areas ----------------------------------------------------------------------

def control_area_flags(session, ca: int) -> tuple[int, list[str]] | None:
    """``(u.LongFlags, names of the one-bit flags set)`` of a ``_CONTROL_AREA``."""
    ts = session.target.types
    f = ts.field("_CONTROL_AREA", "u.LongFlags")
    value = session._read_int(ca + f.offset, f.size)
    if value is None:
        return None
    names = [x.path.rsplit(".", 1)[1] for x in ts.leaves("_CONTROL_AREA")
             if x.path.startswith("u.Flags.") and x.bit_width == 1
             and not x.path.rsplit(".", 1)[1].lower().startswith(("spare", "filler"))
             and value >> x.bit_pos & 1]
    return value, names


def file_object(session, ca: int) -> int:
    """ControlArea.FilePointer without the _EX_FAST_REF count bits (Win7: 3 bits on
    x86, 4 on x64; the WRK's is a plain pointer)."""
    ts, ptr = session.target.types, session.target.pointer_size
    value = session._read_int(ca + ts.offset_of("_CONTROL_AREA", "FilePointer"), ptr) or 0
    if ts.has_field("_CONTROL_AREA", "FilePointer.RefCnt"):
        value &= ~((1 << ts.field("_CONTROL_AREA", "FilePointer.RefCnt").bit_width) - 1)
    return value


def file_name(session, ca: int) -> str | None:
    """The mapped file's name (FILE_OBJECT.FileName), when guest memory has one."""
    ts = session.target.types
    fo = file_object(session, ca)
    if not fo or not ts.has_type("_FILE_OBJECT"):
        return None
    length = ts.field("_FILE_OBJECT", "FileName.Length")
    buf = ts.field("_FILE_OBJECT", "FileName.Buffer")
    n = session._read_int(fo + length.offset, length.size)
    p = session._read_int(fo + buf.offset, buf.size)
    raw = read_bytes(session, p, n) if n and p else None
    return raw.decode("utf-16-le", "replace") if raw else None


def backing(session, vad: Vad) -> str:
    """The description column: what a mapped view maps."""
    if vad.private or not vad.control_area:
        return ""
    got = control_area_flags(session, vad.control_area)
    if got is None:
        return ""
    if not {"Image", "File"} & set(got[1]):
        return "Pagefile-backed section"
    return file_name(session, vad.control_area) or ""


# -- output -----------------------------------------------------------------------------

def _commit(vad: Vad) -> int:
    c = vad.flags["CommitCharge"] & 0xFFFFFFFF              # printed as a signed ULONG
    return c - (1 << 32) if c >> 31 else c


def row(session, vad: Vad, level: int) -> str:
    ptr = session.target.pointer_size
    kind = "Private" if vad.private else "Mapped "
    exe = {VAD_IMAGE_MAP: "Exe ", VAD_DEVICE_PHYSICAL: "Phys"}.get(vad.vad_type, "    ")
    prot = vad_protect_name(vad.protection)
    desc = backing(session, vad)
    tail = f"{prot:<19}{desc}" if desc else prot
    return (f"{plain_pointer(vad.addr, ptr)} ({level:2d})   {vad.start_vpn:8x} {vad.end_vpn:8x}"
            f"      {_commit(vad):4d} {kind} {exe} {tail}")


def table(session, rows: list[tuple[Vad, int]], error: int | None = None) -> str:
    header = "VAD     level      start      end    commit" if session.target.pointer_size == 4 \
        else "VAD             level      start      end    commit"
    out = [header] + [row(session, v, lvl) for v, lvl in rows]
    if error is not None:
        out.append(f"Unable to read VAD at {plain_pointer(error, session.target.pointer_size)}")
        return "\n".join(out) + "\n"
    n = len(rows)
    average = -(-sum(lvl for _, lvl in rows) // n) if n else 0      # the mean, rounded up
    depth = max((lvl for _, lvl in rows), default=0)
    out += ["", f"Total VADs: {n:5d}  average level: {average:4d}  maximum depth: {depth}"]
    return "\n".join(out) + "\n"


def _type_word(session, vad_type: int) -> str:
    """_MI_VAD_TYPE's name without "Vad" (VadImageMap -> ImageMap, as MSDN's sample)."""
    try:
        name = session.target.types.note_enum("_MI_VAD_TYPE").name_of(vad_type)
    except TypeLookupError:             # a build without the note
        name = None
    return name[3:] if name and name.startswith("Vad") else (name or "")


def detail(session, vad: Vad) -> str:
    """``!vad <node> 1``: the dbgeng 6.x block (MSD-vad; the 64-bit sample's File Offset
    line), then the control area of a mapped view."""
    ptr = session.target.pointer_size
    p = partial(plain_pointer, ptr=ptr)
    commit = _commit(vad)
    words = []
    if vad.vad_type:
        words.append(_type_word(session, vad.vad_type))
    if vad.flags2.get("Inherit"):
        words.append("ViewShare")
    for name in ("NoChange", "MemCommit", "PrivateMemory"):
        if vad.flags.get(name):
            words.append(name)
    words.append(vad_protect_name(vad.protection))
    out = ["", f"VAD @ {p(vad.addr)}",
           f"  Start VPN:{vad.start_vpn:14x}  End VPN:{vad.end_vpn:9x}  Control Area:  "
           f"{p(vad.control_area)}",
           f"  First ProtoPte: {p(vad.first_proto)}  Last PTE {p(vad.last_pte)}  "
           f"Commit Charge{commit & 0xFFFFFFFF:10x} ({commit}.)",
           f"  Secured.Flink{vad.secured[0]:11x}  Blink{vad.secured[1]:12x}  "
           f"Banked/Extend:{vad.banked:9x}",
           f"  File Offset   {vad.flags2.get('FileOffset', 0):x}",
           "   " + " ".join(words), ""]
    second = [k for k, v in vad.flags2.items()
              if v and k not in ("FileOffset", "Inherit", "Spare")]
    if second:                       # MSD-vad prints VadFlags2's bits on a line of their own
        out += ["".join(k + " " for k in second), ""]
    if vad.control_area:
        out += control_area_block(session, vad.control_area)
    return "\n".join(out) + "\n"


def control_area_block(session, ca: int) -> list[str]:
    """The control area as ``!ca`` prints its first block (era 2 transcripts: label and
    value cells of 13+16, 11+16 and 13+16 characters, hex numbers)."""
    ts, ptr = session.target.types, session.target.pointer_size
    got = control_area_flags(session, ca)
    if got is None:
        return [f"Unable to read ControlArea at {plain_pointer(ca, ptr)}"]

    def val(*paths):
        for path in paths:
            if ts.has_field("_CONTROL_AREA", path):
                f = ts.field("_CONTROL_AREA", path)
                return session._read_int(ca + f.offset, f.size) or 0
        return 0

    def cells(*pairs):
        # 64-bit cells are label 13/11/13 + 16; a 32-bit target's values are 8 wide
        # (kdsim's choice: no 32-bit transcript).
        widths = tuple(w + 2 * ptr for w in (13, 11, 13))
        return "".join(f"  {label}{value:>{w - len(label)}}"
                       for (label, value), w in zip(pairs, widths))

    p = partial(plain_pointer, ptr=ptr)
    flags, names = got
    # Win7 keeps these two in u2.e2, the WRK at the top level.
    system_views = val("u2.e2.NumberOfSystemCacheViews", "NumberOfSystemCacheViews")
    writable = val("u2.e2.WritableUserReferences", "WritableUserReferences")
    out = [f"ControlArea  @ {p(ca)}",
           cells(("Segment", p(val("Segment"))), ("Flink", p(val("DereferenceList.Flink"))),
                 ("Blink", p(val("DereferenceList.Blink")))),
           cells(("Section Ref", f"{val('NumberOfSectionReferences'):x}"),
                 ("Pfn Ref", f"{val('NumberOfPfnReferences'):x}"),
                 ("Mapped Views", f"{val('NumberOfMappedViews'):x}")),
           cells(("User Ref", f"{val('NumberOfUserReferences'):x}"),
                 ("WaitForDel", f"{val('WaitingForDeletion'):x}"),
                 ("Flush Count", f"{val('FlushInProgressCount'):x}")),
           cells(("File Object", p(file_object(session, ca))),
                 ("ModWriteCount", f"{val('ModifiedWriteCount'):x}"),
                 ("System Views", f"{system_views:x}")),
           cells(("WritableRefs", f"{writable:x}")) + "  ",
           f"  Flags ({flags:x}) " + "".join(n + " " for n in names)]
    name = file_name(session, ca)
    if name:
        out += ["", "      " + name]
    return out


# -- the command ------------------------------------------------------------------------

def _arguments(session, args: str) -> tuple[int | None, int]:
    ev = session.evaluator()
    text = args.rstrip()
    i = len(text) - len(text.lstrip())
    if i >= len(text):
        return None, 0
    addr, i = ev.parse(text, i)
    flag = 0
    if text[i:].strip():
        flag, i = ev.parse(text, i)
        rest = text[i:]
        if rest.strip():                # nothing may follow the flag
            raise ExprError("syntax", i + len(rest) - len(rest.lstrip()))
    mask = (1 << 8 * session.target.pointer_size) - 1
    return addr & mask, flag


@REGISTRY.command("!vad", syntax="!vad [VAD-Root | Address] [Flag]",
                  summary="display a VAD tree, or one VAD in detail (flag 1)",
                  help="No argument: the implicit process's whole tree.  A kernel address "
                       "is a VAD node (or an EPROCESS.VadRoot table); a user address finds "
                       "the implicit process's VAD containing it.  Flag 1 shows one VAD "
                       "in detail, with its control area and the mapped file's name.")
def bang_vad(session, args: str, offset: int) -> str:
    addr, flag = _arguments(session, args)
    ptr = session.target.pointer_size
    if addr is None or addr <= user_limit(session):
        ep = implicit_process(session)
        if addr is None:
            try:
                return table(session, walk(session, table_root(session,
                                                                process_table(session, ep)) or 0))
            except TreeError as e:
                return table(session, e.rows, e.addr)
        try:
            found = find_vad(session, ep, addr)
        except TreeError as e:
            raise CommandError(f"Unable to read VAD at {plain_pointer(e.addr, ptr)}\n") from None
        if found is None:
            raise CommandError(f"Unable to find VAD for address {plain_pointer(addr, ptr)}\n")
        vad, depth = found
        return detail(session, vad) if flag & 1 else table(session, [(vad, depth)])
    vad = read_vad(session, addr)
    if vad is None:
        raise CommandError(f"Unable to read VAD at {plain_pointer(addr, ptr)}\n")
    if flag & 1:
        return detail(session, vad)
    root = addr
    if vad.parent == addr:              # a table's BalancedRoot sentinel: its real root
        root = vad.right
    try:
        return table(session, walk(session, root))
    except TreeError as e:
        return table(session, e.rows, e.addr)
