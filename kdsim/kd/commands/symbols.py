"""Symbols: ``x``, ``ln``, ``lm``, ``vertarget``/``version`` (windbg-formats.md §13).

Module bases, sizes, names and link timestamps come from the ``_LDR_DATA_TABLE_ENTRY``
entries on PsLoadedModuleList in guest memory, and -- for the user modules of the
implicit process, what ``.reload /user`` gives a kernel debugger -- on its PEB.Ldr's
InLoadOrderModuleList, read in its address space; symbol offsets from the target's symbol
information (what a symbol file gives); version facts from the target's build profile.

kdsim's nt "symbol file" is like Microsoft's public ntkrnlmp.pdb: names and addresses of
global data and of the routines kdsim's guest threads run through (kdsim.nt.ntimage), no
types and no sizes.  So data prints ``= <no type information>`` and a routine its public
decorated name (x86) or ``(<no parameter info>)``, and the ``x`` options that need sizes or
types are left out.
"""
from __future__ import annotations

import bisect
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from ..expr import ExprError
from ..fmt import pointer
from ..registry import REGISTRY, Command
from ..wildcard import wildcard
from ..session import CommandError

NO_TYPE = " = <no type information>"
MAX_MODULES = 1024          # a damaged list must not loop forever


# -- the module list, read from guest memory ----------------------------------------------

class Module(NamedTuple):
    name: str              # debugger name: "nt" for the first entry, else BaseDllName w/o extension
    base: int              # DllBase
    size: int              # SizeOfImage
    entry: int             # the _LDR_DATA_TABLE_ENTRY
    image_path: str        # FullDllName
    image_name: str        # BaseDllName
    timestamp: int         # TimeDateStamp
    user: bool = False     # from the implicit process's PEB.Ldr, not PsLoadedModuleList

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def end(self) -> int:
        return self.base + self.size


def loaded_modules(session) -> list[Module]:
    """The kernel modules on PsLoadedModuleList in list order, then the user modules of
    the implicit process (its PEB.Ldr's InLoadOrderModuleList), as a debugger walks them:
    a walk stops at an unreadable entry or when the list comes back to an entry already
    seen."""
    t = session.target
    head = t.kernel_base + t.symbols("nt")["PsLoadedModuleList"]
    kernel = _walk_modules(session, head, None, kernel=True)
    return kernel + user_modules(session)


def user_modules(session) -> list[Module]:
    """The implicit process's modules (``.process``, else the current process), read
    in its address space from PEB.Ldr: what ``.reload /user`` gives a kernel debugger.
    A process without a PEB (System) or whose loader data cannot be read has none."""
    t = session.target
    ts = t.types
    peb = session._register("$peb")
    if not peb:
        return []
    f = ts.field("_PEB", "Ldr")
    ldr = session._read_int(peb + f.offset, f.size)
    if not ldr:
        return []
    head = ldr + ts.offset_of("_PEB_LDR_DATA", "InLoadOrderModuleList")
    return _walk_modules(session, head, session.context_cr3, kernel=False)


def _walk_modules(session, head: int, cr3, kernel: bool) -> list[Module]:
    t = session.target
    ts, ptr = t.types, t.pointer_size
    size = ts.sizeof("_LDR_DATA_TABLE_ENTRY")
    fields = {name: ts.field("_LDR_DATA_TABLE_ENTRY", name) for name in (
        "DllBase", "SizeOfImage", "TimeDateStamp", "FullDllName.Length",
        "FullDllName.Buffer", "BaseDllName.Length", "BaseDllName.Buffer")}

    def text(data: bytes, which: str) -> str:
        n, buf = get(data, which + ".Length"), get(data, which + ".Buffer")
        r = t.read_virtual(buf, n, cr3=cr3)
        return r.data.decode("utf-16-le", "replace") if r.complete else ""

    def get(data: bytes, name: str) -> int:
        f = fields[name]
        return int.from_bytes(data[f.offset:f.offset + f.size], "little")

    out: list[Module] = []
    first = t.read_virtual(head, ptr, cr3=cr3)
    cur = int.from_bytes(first.data, "little") if first.complete else head
    seen = set()
    while cur != head and cur not in seen and len(out) < MAX_MODULES:
        seen.add(cur)
        r = t.read_virtual(cur, size, cr3=cr3)
        if not r.complete:
            break
        image_name = text(r.data, "BaseDllName")
        name = "nt" if kernel and not out else image_name.rsplit(".", 1)[0]
        out.append(Module(name, get(r.data, "DllBase"), get(r.data, "SizeOfImage"), cur,
                          text(r.data, "FullDllName"), image_name,
                          get(r.data, "TimeDateStamp"), not kernel))
        cur = int.from_bytes(r.data[:ptr], "little")          # InLoadOrderLinks.Flink
    return out


def module_at(session, addr: int) -> Module | None:
    for m in loaded_modules(session):
        if m.base <= addr < m.end:
            return m
    return None


# -- symbols ------------------------------------------------------------------------------

def _table(session, module: Module) -> list[tuple[int, str]]:
    """A module's symbols as (offset, name), by offset then name."""
    return sorted((rva, name) for name, rva in session.target.symbols(module.key).items()
                  if 0 <= rva < module.size)


def neighbours(session, addr: int):
    """``(module, at, after)`` for ``addr``: ``at`` the symbols with the greatest offset at
    or below it (every name sharing that offset), ``after`` those with the least offset
    above it, each a list of (offset, name); None outside every loaded module."""
    module = module_at(session, addr)
    if module is None:
        return None
    table = _table(session, module)
    rvas = [rva for rva, _ in table]
    off = addr - module.base
    i = bisect.bisect_right(rvas, off)
    at = [s for s in table if i and s[0] == rvas[i - 1]]
    after = [s for s in table if i < len(rvas) and s[0] == rvas[i]]
    return module, at, after


def nearest(session, addr: int):
    """``(module, symbol or None, displacement)`` for the symbol at or below ``addr`` in the
    loaded module that contains it, or None outside every module."""
    found = neighbours(session, addr)
    if found is None:
        return None
    module, at, _ = found
    if not at:
        return module.key, None, addr - module.base
    rva, name = at[0]                                  # ties: the first name in order
    return module.key, name, addr - module.base - rva


def symbolize(session, addr: int) -> str | None:
    """``addr`` as WinDbg names it in ``dps``/``ln``/``u``: ``nt!Symbol``,
    ``nt!Symbol+0x10`` or ``nt+0x1234``; None outside every loaded module."""
    found = nearest(session, addr)
    if found is None:
        return None
    module, name, disp = found
    head = f"{module}!{name}" if name else module
    return head + (f"+0x{disp:x}" if disp else "")


def info(session, module: str, name: str) -> str:
    """What x and ln print after a public symbol: a routine's decorated name on x86
    (``(_MmAccessFault@16)``, ``(<no parameter info>)`` for an assembler routine) or
    ``(<no parameter info>)`` on x64; `` = <no type information>`` for data."""
    fn = session.target.functions(module).get(name)
    if fn is None:
        return NO_TYPE
    args = fn[1]
    if session.target.pointer_size == 4 and args is not None:
        return f" (_{name}@{args})"
    return " (<no parameter info>)"


# -- string wildcards (the debugger's "String Wildcard Syntax") -----------------------------

# -- x ------------------------------------------------------------------------------------

# Options that change nothing kdsim can show: /t (types are unknown), /p (no functions),
# /D (no DML), /z /Z (sizes are unknown: the default order stays).
_X_SORTS = {"a": "address", "A": "-address", "n": "name", "N": "-name", "z": None, "Z": None}
_X_QUIET = set("tpD")
_X_FORMS = set("012")
_X_UNSUPPORTED = set("vsqdf")


@REGISTRY.command(
    "x", syntax="x [Options] Module!Symbol",
    summary="list the symbols that match a pattern",
    help="Wildcards * ? [] # + in both the module and the symbol part, case-insensitive; "
         "*!Pattern searches every module.  Options /0 (addresses) /1 (names) /2 (both), "
         "/a /A /n /N sort by address or name.  Without a sort option kdsim lists the "
         "symbols by address (WinDbg's order is the symbol file's).  A pattern without "
         "'!' searches the local scope (dbghelp's rule for a mask without '!'); kdsim "
         "has public symbols and no frames, so there are no locals and nothing prints.")
def examine(session, args: str, offset: int) -> str:
    form, order = None, None
    i, n = 0, len(args)
    while True:
        while i < n and args[i] in " \t":
            i += 1
        if i >= n or args[i] != "/":
            break
        opt = args[i + 1:i + 2]
        if opt in _X_FORMS:
            form = opt
        elif opt in _X_SORTS:
            order = _X_SORTS[opt] or order
        elif opt in _X_UNSUPPORTED:
            raise CommandError(f"kdsim: x /{opt} is not supported (kdsim's symbol files "
                               "hold no symbol sizes or types)\n")
        elif opt not in _X_QUIET or not opt:
            raise ExprError("syntax", i + 1)
        i += 2
    text = args[i:].strip()
    if "!" not in text:
        return ""              # the local scope (SymEnumSymbols without '!'): no locals here
    mod_pat, _, sym_pat = text.partition("!")
    mods = [m for m in loaded_modules(session) if wildcard(mod_pat).fullmatch(m.name)]
    if not mods:
        raise ExprError("resolve", i, text)
    match = wildcard(sym_pat or "*", symbol=True).fullmatch
    found = []
    for m in mods:
        found += [(m.base + rva, m.name, name) for rva, name in _table(session, m)
                  if match(name)]
    if order in ("address", "-address"):
        found.sort(key=lambda s: s[0], reverse=order == "-address")
    elif order in ("name", "-name"):
        found.sort(key=lambda s: (s[2].lower(), s[2]), reverse=order == "-name")
    ptr = session.target.pointer_size
    lines = []
    for addr, module, name in found:
        where = pointer(addr, ptr)
        if form == "0":
            lines.append(where)
        elif form == "1":
            lines.append(f"{module}!{name}")
        else:
            # x64: the backticked address and one space; x86 pads the address to 17 columns
            tail = "" if form == "2" else info(session, module, name)
            lines.append(f"{where:<17} {module}!{name}{tail}")
    return "".join(line + "\n" for line in lines)


# -- ln -----------------------------------------------------------------------------------

@REGISTRY.command(
    "ln", syntax="ln [Address]", summary="list the symbols nearest to an address",
    help="Prints the symbol at or before the address and the one after it, then the exact "
         "matches.  An address before a module's first symbol is named module+offset; "
         "after its last symbol only the left half is printed; outside every module "
         "nothing is printed.")
def list_nearest(session, args: str, offset: int) -> str:
    ptr = session.target.pointer_size
    start = len(args) - len(args.lstrip())
    text = args[start:].rstrip() or "@$ip"        # WinDbg: the current instruction
    try:
        addr = session.evaluator().evaluate(text)
    except ExprError as e:
        e.pos += start
        raise
    addr &= (1 << 8 * ptr) - 1
    found = neighbours(session, addr)
    if found is None:
        return ""
    module, at, after = found
    if at:
        rva, name = at[0]
        disp = addr - module.base - rva
        left = f"({pointer(module.base + rva, ptr)})   {module.name}!{name}"
    else:                       # before the first symbol: the module itself names it
        disp = addr - module.base
        left = f"({pointer(module.base, ptr)})   {module.name}"
    if disp:
        left += f"+0x{disp:x}"
    if after:
        rva, name = after[0]
        left += f"   |  ({pointer(module.base + rva, ptr)})   {module.name}!{name}"
    out = [left]
    if at and not disp:
        out.append("Exact matches:")
        out += [f"    {module.name}!{name}{info(session, module.name, name)}"
                for _, name in at]
    return "".join(line + "\n" for line in out)


# -- lm -----------------------------------------------------------------------------------

_LM_FLAGS = set("vlokueD")
_LM_UNSUPPORTED = set("cfinpt")


def _symbol_state(session, module: Module) -> tuple[str, str]:
    """The unlabelled column after the name and the symbol file after it.  kdsim's nt
    symbols are loaded from the start, so nt shows "(pdb symbols)" and the PDB's name (a
    real debugger prints the path in its symbol cache; kdsim has none); a module kdsim
    has no symbols for shows "(no symbols)"."""
    if module.user:                 # symbols for user modules load on first use
        return "(deferred)", ""
    if session.target.symbols(module.key):
        return "(pdb symbols)", session.target.profile.version.pdb_name + ".pdb"
    return "(no symbols)", ""


def _verbose(session, module: Module) -> list[str]:
    """The lmv lines kdsim can fill.  The image headers kdsim maps hold no optional header
    or resources, so CheckSum and the resource strings are left out (WinDbg leaves out what
    the headers lack); the timestamp and size come from the loader entry; nt's file and
    product version are the build's."""
    out = [f"    Image path: {module.image_path}", f"    Image name: {module.image_name}"]
    if module.timestamp:        # kdsim's user modules have none (their loader entries say 0)
        out.append(f"    Timestamp:        {ctime(module.timestamp)} ({module.timestamp:08X})")
    out.append(f"    ImageSize:        {module.size:08X}")
    if module.key == "nt":
        v = session.target.profile.version
        number = f"{v.major}.{v.minor}.{v.build}.{v.qfe}"
        out += [f"    File version:     {number}", f"    Product version:  {number}"]
    return out


def _list_modules(session, args: str) -> str:
    opts = set()
    addr = pattern = path_pattern = None
    sort_by_name = names_only = False
    i, n = 0, len(args)
    while i < n:
        c = args[i]
        if c in " \t":
            i += 1
        elif args.startswith("1m", i):
            names_only, i = True, i + 2
        elif args[i:i + 2] == "sm":
            sort_by_name, i = True, i + 2
        elif c == "a":
            addr, i = session.evaluator().parse(args, i + 1)
        elif c in "mM":
            i += 1
            while i < n and args[i] in " \t":
                i += 1
            j = i
            while j < n and args[j] not in " \t":
                j += 1
            if j == i:
                raise ExprError("syntax", i)
            if c == "m":
                pattern = args[i:j]
            else:
                path_pattern = args[i:j]
            i = j
        elif c in _LM_FLAGS:
            opts.add(c)
            i += 1
        elif c in _LM_UNSUPPORTED:
            raise CommandError(f"kdsim: lm option {c} is not supported\n")
        else:
            raise ExprError("syntax", i)
    mods = loaded_modules(session)
    # The name column: as wide as the longest loaded module's name, at least 8, then
    # three spaces (MSD-lm's samples pad to 11 and 13 characters).
    name_width = max([8] + [len(m.name) for m in mods])
    if addr is not None:
        addr &= (1 << 8 * session.target.pointer_size) - 1
        mods = [m for m in mods if m.base <= addr < m.end]
    if pattern is not None:
        mods = [m for m in mods if wildcard(pattern).fullmatch(m.name)]
    if path_pattern is not None:
        mods = [m for m in mods if wildcard(path_pattern).fullmatch(m.image_path)]
    states = {m.entry: _symbol_state(session, m) for m in mods}
    if "l" in opts:                               # symbols loaded
        mods = [m for m in mods if states[m.entry][0] not in ("(no symbols)", "(deferred)")]
    if "e" in opts:                               # symbol problems
        mods = [m for m in mods if states[m.entry][0] == "(no symbols)"]
    if "u" in opts and "k" not in opts:           # user-mode modules only
        mods = [m for m in mods if m.user]
    elif "k" in opts and "u" not in opts:         # kernel-mode modules only
        mods = [m for m in mods if not m.user]
    if sort_by_name:
        mods = sorted(mods, key=lambda m: (m.key, m.base))
    else:
        mods = sorted(mods, key=lambda m: m.base)
    if names_only:
        return "".join(m.name + "\n" for m in mods)
    ptr = session.target.pointer_size
    w = 2 * ptr + (1 if ptr == 8 else 0)
    out = [f"{'start':<{w}} {'end':<{w}}   module name"]
    for m in mods:
        state, pdb = states[m.entry]
        # the state 22 wide and a space (both kept when no symbol file follows, as
        # WinDbg prints them)
        out.append(f"{pointer(m.base, ptr)} {pointer(m.end, ptr)}   {m.name:<{name_width}}   "
                   f"{state:<22} {pdb}")
        if "v" in opts:
            out += _verbose(session, m)
    return "".join(line + "\n" for line in out)


_LM_HELP = ("Modules from PsLoadedModuleList in guest memory, and the implicit process's "
            "user modules from its PEB.Ldr (after .process /r), by address.  Options: v "
            "(verbose), m Pattern (module name), M Pattern (image path), a Address, l "
            "(symbols loaded), e (no symbols), k (kernel modules), u (user modules), o, sm "
            "(sort by name), 1m (names only).  User modules show (deferred): kdsim has no "
            "symbols for them.")

def _lm(session, args: str, offset: int) -> str:
    """``lm`` with its option letters, glued to the name or not (``lmvm nt``)."""
    return _list_modules(session, args)


REGISTRY.add(Command(("lm",), "lm[Options] [a Address] [m Pattern | M Pattern]",
                     "list the loaded modules", _lm, _LM_HELP, glued=True))


# -- vertarget / version ------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(t: datetime) -> str:
    # Host locale never enters: the names are spelled out here.
    return f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"


def ctime(stamp: int) -> str:
    """A link timestamp (seconds since 1970) as lmv prints it.  WinDbg shows the debugger
    host's local time; kdsim shows UTC so every host prints the same."""
    t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=stamp)
    return f"{_date(t)} {t.year}"


def _ksystem_time(session, va: int, field: str) -> int | None:
    """A KSYSTEM_TIME in KUSER_SHARED_DATA (100 ns units), None if unreadable."""
    ts = session.target.types
    low = ts.field("_KUSER_SHARED_DATA", field + ".LowPart").offset
    high = ts.field("_KUSER_SHARED_DATA", field + ".High1Time").offset
    lo, hi = session._read_int(va + low, 4), session._read_int(va + high, 4)
    return None if lo is None or hi is None else hi << 32 | lo


@REGISTRY.command(
    "vertarget", "version", syntax="vertarget", summary="show the target computer's version",
    help="The build from the target's profile; processors, the system time and the uptime "
         "from guest memory (KeNumberProcessors; KUSER_SHARED_DATA SystemTime and "
         "InterruptTime).  Times are shown in UTC.  kdsim's version prints the same "
         "target lines (it is not Microsoft's debugger, so the debugger's own lines are "
         "left out).")
def vertarget(session, args: str, offset: int) -> str:
    t = session.target
    v, ptr = t.profile.version, t.pointer_size
    nt = t.symbols("nt")
    procs = session._read_int(t.kernel_base + nt["KeNumberProcessors"], 4) or 1
    lines = [v.banner(procs), v.product_line, v.built_by,
             "Machine Name:",            # kdsim does not model a computer name
             f"Kernel base = 0x{pointer(t.kernel_base, ptr)} PsLoadedModuleList = "
             f"0x{pointer(t.kernel_base + nt['PsLoadedModuleList'], ptr)}"]
    shared = t.profile.address_space.shared_user_data_va
    now = _ksystem_time(session, shared, "SystemTime")
    if now:
        # FILETIME: 100 ns since 1601; WinDbg adds the host's zone, kdsim prints UTC
        when = datetime(1601, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=now // 10)
        lines.append(f"Debug session time: {_date(when)}.{when.microsecond // 1000:03d} "
                     f"{when.year} (UTC + 0:00)")
    up = _ksystem_time(session, shared, "InterruptTime")
    if up is None:
        lines.append("System Uptime: not available")
    else:
        ms = up // 10_000
        s, ms = divmod(ms, 1000)
        m, s = divmod(s, 60)
        h, m = divmod(m, 60)
        d, h = divmod(h, 24)
        lines.append(f"System Uptime: {d} days {h}:{m:02d}:{s:02d}.{ms:03d}")
    return "".join(line + "\n" for line in lines)
