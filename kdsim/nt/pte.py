"""The MMPTE codec: every PTE format of a target as pure functions of values.

    codec = PteCodec("win7-x64")
    codec.demand_zero(MM_READWRITE)                 -> 0x80
    codec.valid(0x1234, MM_EXECUTE_READWRITE, owner=True)  -> 0x1234825 (clean: bit 11 only)
    codec.vad_prototype(MM_READWRITE)               -> 0xFFFFFFFF00000480
    codec.decode(0xC182CC1FFDF80400).proto_address  -> 0xFFFFC182CC1FFDF8

Bit positions come from the target's ``_MMPTE_*`` layouts through the TypeSystem
(nt-structures.md §4). What the PDB does not say -- how a prototype or subsection address
is folded into its bit fields -- is written here, with the source cited per scheme. The
codec never touches memory: the nt model writes its values into page tables, and the
debugger decodes what it reads back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

from . import protect
from .profiles import Profile, get_profile
from .types import TypeSystem

__all__ = ["PteCodec", "DecodedPte", "ListEntry", "KINDS"]

KINDS = ("valid", "zero", "demand_zero", "transition", "pagefile", "prototype",
         "vad_prototype", "subsection", "lookup_vad")
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class DecodedPte:
    """One PTE value taken apart. Fields that do not apply to ``kind`` are None/False.

    writable  valid: the software Write bit 11 (MP kernels: "page may be written")
    write     the hardware R/W bit 1 (valid: Dirty1, set with Dirty; transition: Write)
    dirty     valid: the hardware Dirty bit 6
    large     valid: bit 7 (PS in a PDE/PDPTE; PAT in a 4 KB PTE)
    readonly  prototype pointer: its ReadOnly bit
    """

    kind: str
    value: int
    pfn: Optional[int] = None
    protection: Optional[int] = None
    page_file_low: Optional[int] = None
    page_file_high: Optional[int] = None
    proto_address: Optional[int] = None
    subsection_address: Optional[int] = None
    readonly: Optional[bool] = None
    writable: bool = False
    write: bool = False
    dirty: bool = False
    owner: bool = False
    global_: bool = False
    nx: bool = False
    copy_on_write: bool = False
    accessed: bool = False
    large: bool = False
    write_through: bool = False
    cache_disable: bool = False

    @property
    def is_valid(self) -> bool:
        return self.kind == "valid"

    @property
    def page_file_offset(self) -> Optional[int]:
        """Byte offset in the paging file (PageFileHigh pages)."""
        return None if self.kind != "pagefile" else self.page_file_high << 12


class ListEntry(NamedTuple):
    next: int
    one_entry: bool


class PteCodec:
    """Encoders and the decoder for one target's PTEs (a Profile or its name).

    ``nx`` as in :func:`kdsim.nt.protect.pte_mask_table`: None = NX on where the PTE has
    the bit (PAE, x64). Encoders raise ValueError for values the format cannot hold.
    """

    def __init__(self, profile: "Profile | str" = "win7-x64", *, nx: Optional[bool] = None):
        self.profile: Profile = get_profile(profile)
        self.types = ts = TypeSystem(self.profile)
        self.pte_size: int = self.profile.pte_size
        self.value_mask: int = (1 << 8 * self.pte_size) - 1
        self.pte_masks: tuple[int, ...] = protect.pte_mask_table(self.profile, nx)

        def f(type_name, name):
            return ts.field(type_name, name)

        def names(type_name):
            return {x.path for x in ts.fields(type_name)}

        # valid (_MMPTE_HARDWARE); WRK/2003 calls bit 1 "Writable", Win7 "Dirty1"
        hw = names("_MMPTE_HARDWARE")
        self._h_pfn = f("_MMPTE_HARDWARE", "PageFrameNumber")
        self.VALID = self._bit("_MMPTE_HARDWARE", "Valid")
        self.HW_WRITE = self._bit("_MMPTE_HARDWARE", "Dirty1" if "Dirty1" in hw else "Writable")
        self.OWNER = self._bit("_MMPTE_HARDWARE", "Owner")
        self.WRITE_THROUGH = self._bit("_MMPTE_HARDWARE", "WriteThrough")
        self.CACHE_DISABLE = self._bit("_MMPTE_HARDWARE", "CacheDisable")
        self.ACCESSED = self._bit("_MMPTE_HARDWARE", "Accessed")
        self.DIRTY = self._bit("_MMPTE_HARDWARE", "Dirty")
        self.LARGE = self._bit("_MMPTE_HARDWARE", "LargePage")
        self.GLOBAL = self._bit("_MMPTE_HARDWARE", "Global")
        self.COPY_ON_WRITE = self._bit("_MMPTE_HARDWARE", "CopyOnWrite")
        self.WRITE = self._bit("_MMPTE_HARDWARE", "Write")
        # MP HARDWARE_PTE_DIRTY_MASK: MiSetDirtyBit sets hardware R/W and Dirty together.
        self.DIRTY_MASK = self.HW_WRITE | self.DIRTY
        self.NX = protect.hardware_pte_bits(self.profile).nx     # 0 on x86 non-PAE
        # software (_MMPTE_SOFTWARE)
        self._s_pfl = f("_MMPTE_SOFTWARE", "PageFileLow")
        self._s_prot = f("_MMPTE_SOFTWARE", "Protection")
        self._s_pfh = f("_MMPTE_SOFTWARE", "PageFileHigh")
        self.PROTOTYPE = self._bit("_MMPTE_SOFTWARE", "Prototype")
        self.TRANSITION = self._bit("_MMPTE_SOFTWARE", "Transition")
        # MI_PTE_LOOKUP_NEEDED is PageFileHigh with every bit set: 0xFFFFF on x86,
        # 0xFFFFFFFF on PAE and x64 (WRK mi386.h:2445, miamd.h:2608).
        self.lookup_needed: int = self._s_pfh.mask
        # transition (_MMPTE_TRANSITION)
        self._t_pfn = f("_MMPTE_TRANSITION", "PageFrameNumber")
        self._t_prot = f("_MMPTE_TRANSITION", "Protection")
        self._t_write = f("_MMPTE_TRANSITION", "Write")
        self._t_owner = f("_MMPTE_TRANSITION", "Owner")
        self._t_wt = f("_MMPTE_TRANSITION", "WriteThrough")
        self._t_cd = f("_MMPTE_TRANSITION", "CacheDisable")
        # prototype pointer (_MMPTE_PROTOTYPE)
        proto = names("_MMPTE_PROTOTYPE")
        self._p_readonly = f("_MMPTE_PROTOTYPE", "ReadOnly")
        self._p_prot = f("_MMPTE_PROTOTYPE", "Protection") if "Protection" in proto else None
        if "ProtoAddress" in proto:
            self.proto_scheme = "absolute"
            self._p_addr = f("_MMPTE_PROTOTYPE", "ProtoAddress")
        else:
            self.proto_scheme = "paged-pool" if "WhichPool" in proto else "x86"
            self._p_lo = f("_MMPTE_PROTOTYPE", "ProtoAddressLow")
            self._p_hi = f("_MMPTE_PROTOTYPE", "ProtoAddressHigh")
        # WRK MmProtopte_Base is MmPagedPoolStart (mi386.h MiPteToProto)
        self.proto_base: int = self.profile.address_space.paged_pool_start
        # subsection (_MMPTE_SUBSECTION)
        sub = names("_MMPTE_SUBSECTION")
        self._u_prot = f("_MMPTE_SUBSECTION", "Protection") if "Protection" in sub else None
        if "SubsectionAddress" in sub:
            self.subsection_scheme = "absolute"
            self._u_addr = f("_MMPTE_SUBSECTION", "SubsectionAddress")
        else:
            self.subsection_scheme = "nonpaged-pool" if "WhichPool" in sub else "x86"
            self._u_lo = f("_MMPTE_SUBSECTION", "SubsectionAddressLow")
            self._u_hi = f("_MMPTE_SUBSECTION", "SubsectionAddressHigh")
            if self.subsection_scheme == "nonpaged-pool":
                self._u_which = self._bit("_MMPTE_SUBSECTION", "WhichPool")
        space = self.profile.address_space
        # WRK init386.c: MmSubsectionBase = MmNonPagedPoolStart; MmNonPagedPoolEnd exclusive.
        self.subsection_base: int = space.nonpaged_pool_start
        self.nonpaged_pool_end: int = space.nonpaged_pool_end + 1
        # free system-PTE chains (_MMPTE_LIST); MM_EMPTY_PTE_LIST is NextEntry all ones
        self._l_next = f("_MMPTE_LIST", "NextEntry")
        self._l_one = f("_MMPTE_LIST", "OneEntry")
        self.empty_list: int = self._l_next.mask
        self.large_pfn_align = 1 << (self.profile.paging.shift("pde") - 12)

    def __repr__(self) -> str:
        return "PteCodec(%r)" % self.profile.name

    def _bit(self, type_name: str, name: str) -> int:
        fld = self.types.field(type_name, name)
        if fld.bit_width != 1:
            raise ValueError("%s.%s is not a flag" % (type_name, name))
        return 1 << fld.bit_pos

    # -- encoders -----------------------------------------------------------------------
    def valid(self, pfn: int, protection: int, *, owner: bool = False, global_: bool = False,
              dirty: bool = False, accessed: bool = True, large: bool = False) -> int:
        """MI_MAKE_VALID_PTE: PFN | MmProtectToPteMask[protection] | Valid (| Accessed)
        (| Owner for user PTEs, Global for system ones). Clean writable pages carry only
        the software Write bit; ``dirty=True`` adds HARDWARE_PTE_DIRTY_MASK (bits 1 + 6)
        and Accessed, and is refused unless the protection makes the page writable.
        ``large`` sets PS (bit 7) for a 2 MB / 4 MB PDE; its PFN must be aligned to it."""
        _check_prot(protection)
        if protect.is_no_access(protection) or protect.is_guard(protection):
            # no-access and guard protections are kept in invalid PTEs only
            raise ValueError("protection 0x%x cannot be in a valid PTE" % protection)
        if large and pfn % self.large_pfn_align:
            raise ValueError("large-page PFN 0x%x is not %d-page aligned"
                             % (pfn, self.large_pfn_align))
        v = self._h_pfn.insert(0, pfn) | self.pte_masks[protection] | self.VALID
        v |= (self.ACCESSED if accessed else 0) | (self.OWNER if owner else 0)
        v |= (self.GLOBAL if global_ else 0) | (self.LARGE if large else 0)
        return self.make_dirty(v) if dirty else v

    def make_dirty(self, pte: int) -> int:
        """MI_SET_PTE_DIRTY (MiSetDirtyBit): the first write to a writable page sets
        hardware R/W and Dirty (0x42) and Accessed."""
        if not pte & self.VALID or not pte & self.WRITE:
            raise ValueError("0x%x is not a valid writable PTE" % pte)
        return pte | self.DIRTY_MASK | self.ACCESSED

    def make_clean(self, pte: int) -> int:
        """MI_SET_PTE_CLEAN: the modified page writer clears bits 1 and 6 again."""
        if not pte & self.VALID:
            raise ValueError("0x%x is not a valid PTE" % pte)
        return pte & ~self.DIRTY_MASK

    def demand_zero(self, protection: int) -> int:
        """``Protection << 5`` and nothing else (MM_DEMAND_ZERO_WRITE_PTE = 0x80)."""
        if _check_prot(protection) == 0:
            raise ValueError("a demand-zero PTE needs a protection (0 is the zero PTE)")
        return self._s_prot.insert(0, protection)

    def transition(self, pfn: int, protection: int, *, owner: bool = False,
                   write: bool = False) -> int:
        """MI_MAKE_TRANSITION_PTE: the page is on the standby/modified list. ``write``
        keeps the hardware R/W bit of the valid PTE it replaced (set when dirty)."""
        v = self._t_pfn.insert(0, pfn) | self.TRANSITION
        v = self._t_prot.insert(v, _check_prot(protection))
        v = self._t_owner.insert(v, int(owner))
        return self._t_write.insert(v, int(write))

    def pagefile(self, file_number: int, page_offset: int, protection: int) -> int:
        """MI_SET_PAGING_FILE_INFO: paging file #PageFileLow, page PageFileHigh. Page 0 of
        every paging file is never handed out (WRK modwrite.c), nor is LOOKUP_NEEDED."""
        if not 1 <= page_offset < self.lookup_needed:
            raise ValueError("paging-file page 0x%x out of range 1..0x%x"
                             % (page_offset, self.lookup_needed - 1))
        v = self._s_pfl.insert(0, file_number)
        v = self._s_prot.insert(v, _check_prot(protection))
        return self._s_pfh.insert(v, page_offset)

    def lookup_vad(self, protection: int = 0) -> int:
        """A software PTE whose PageFileHigh is MI_PTE_LOOKUP_NEEDED: consult the VAD."""
        return self._s_pfh.insert(self._s_prot.insert(0, _check_prot(protection)),
                                  self.lookup_needed)

    def vad_prototype(self, protection: int) -> int:
        """WRK ``PrototypePte``: Prototype=1, PageFileHigh=MI_PTE_LOOKUP_NEEDED, the
        protection in the software field; the prototype is found through the VAD."""
        return self.lookup_vad(protection) | self.PROTOTYPE

    def prototype(self, proto_pte_va: int, protection: Optional[int] = None,
                  readonly: bool = False) -> int:
        """MiProtoAddressForPte: a pointer to the prototype PTE at ``proto_pte_va``.
        ``protection`` fills the PAE/x64 Proto.Protection field (x86 has none)."""
        va = proto_pte_va
        if va % self.pte_size:
            raise ValueError("prototype PTE address 0x%x is not PTE aligned" % va)
        if self.proto_scheme == "absolute":
            # PAE: the high dword; x64: a signed 48-bit field at 16 (WRK miamd.h:1691)
            v = self._p_addr.insert(0, self._to_field(self._p_addr, va))
        elif self.proto_scheme == "x86":
            # Win7 x86: 0x80000000 | High << 10 | Low << 2, the inverse of MPFS's decode
            # (nt-structures.md §4.4); the PDB gives the field widths, not this folding.
            if not self._x86_top(self._p_lo, self._p_hi, 2) <= va <= 0xFFFFFFFF:
                raise ValueError("prototype PTE 0x%x is not in system space" % va)
            v = self._fold(va, self._p_lo, self._p_hi, 2)
        else:
            # WRK x86 MiProtoAddressForPte: relative to MmProtopte_Base (paged pool), 1 GB
            # max: ((off >> 1) & 0xFE) | ((off << 2) & 0xFFFFF800) (mi386.h:1726-1790).
            off = va - self.proto_base
            limit = 1 << (2 + self._p_lo.bit_width + self._p_hi.bit_width)
            if not (0 <= off < limit and va <= 0xFFFFFFFF):
                raise ValueError("prototype PTE 0x%x is outside paged pool" % va)
            v = self._fold(off, self._p_lo, self._p_hi, 2)
        v |= self.PROTOTYPE
        if readonly:
            v = self._p_readonly.insert(v, 1)
        if protection is not None:
            if self._p_prot is None:
                raise ValueError("%s prototype PTEs have no Protection field"
                                 % self.profile.name)
            v = self._p_prot.insert(v, _check_prot(protection))
        if self._s_pfh.extract(v) == self.lookup_needed:
            raise ValueError("prototype PTE 0x%x would read as MI_PTE_LOOKUP_NEEDED" % va)
        return v

    def subsection(self, subsection_va: int, protection: Optional[int] = None) -> int:
        """MiGetSubsectionAddressForPte, for a PTE inside a prototype-PTE array.
        ``protection`` goes in the Protection field where the layout has one; win7-x86
        has none (the subsection's own flags hold it) and ignores it."""
        va = subsection_va
        if va % 8:
            raise ValueError("subsection 0x%x is not quadword aligned" % va)
        if self.subsection_scheme == "absolute":
            # PAE: (ULONG)(pte >> 32); x64: (LONG64)pte >> 16 (WRK miamd.h)
            v = self._u_addr.insert(0, self._to_field(self._u_addr, va))
        elif self.subsection_scheme == "x86":
            # Win7 x86 non-PAE is not verified (nt-structures.md §4.5, §15.2). kdsim uses
            # the self-consistent scheme the reference suggests: the prototype folding
            # without its ReadOnly bit, i.e. 0x80000000 | High << 10 | Low << 1 (9-bit Low).
            if not self._x86_top(self._u_lo, self._u_hi, 1) <= va <= 0xFFFFFFFF:
                raise ValueError("subsection 0x%x is not in system space" % va)
            v = self._fold(va, self._u_lo, self._u_hi, 1)
        else:
            v = self._wrk_subsection(va)
        v |= self.PROTOTYPE
        if protection is not None and self._u_prot is not None:
            v = self._u_prot.insert(v, _check_prot(protection))
        return v

    def list_entry(self, next_entry: int, *, one_entry: bool = False) -> int:
        """A free system-PTE chain link (_MMPTE_LIST); ``codec.empty_list`` ends a chain."""
        return self._l_one.insert(self._l_next.insert(0, next_entry), int(one_entry))

    # -- decoding -----------------------------------------------------------------------
    def decode(self, value: int, *, in_prototype_array: bool = False) -> DecodedPte:
        """Classify and take apart one PTE value, in the order of nt-structures.md §4.7.
        ``in_prototype_array``: the PTE is in a segment's prototype-PTE array, where an
        invalid Prototype=1 PTE names a subsection instead of a prototype PTE."""
        if not 0 <= value <= self.value_mask:
            raise ValueError("0x%x is not a %d-byte PTE" % (value, self.pte_size))
        if value & self.VALID:
            return self._decode_valid(value)
        if value & self.PROTOTYPE:
            if in_prototype_array:
                return DecodedPte("subsection", value,
                                  subsection_address=self._subsection_address(value),
                                  protection=self._u_prot.extract(value)
                                  if self._u_prot is not None else None)
            if self._s_pfh.extract(value) == self.lookup_needed:
                return DecodedPte("vad_prototype", value,
                                  protection=self._s_prot.extract(value))
            return DecodedPte("prototype", value, proto_address=self._proto_address(value),
                              readonly=bool(self._p_readonly.extract(value)),
                              protection=self._p_prot.extract(value)
                              if self._p_prot is not None else None)
        if value & self.TRANSITION:
            return DecodedPte("transition", value, pfn=self._t_pfn.extract(value),
                              protection=self._t_prot.extract(value),
                              write=bool(self._t_write.extract(value)),
                              owner=bool(self._t_owner.extract(value)),
                              write_through=bool(self._t_wt.extract(value)),
                              cache_disable=bool(self._t_cd.extract(value)))
        if value == 0:
            return DecodedPte("zero", 0)
        low, high = self._s_pfl.extract(value), self._s_pfh.extract(value)
        prot = self._s_prot.extract(value)
        if high == self.lookup_needed:
            kind = "lookup_vad"
        elif high == 0 and low == 0:
            kind = "demand_zero"
        else:
            kind = "pagefile"
        return DecodedPte(kind, value, protection=prot, page_file_low=low,
                          page_file_high=high)

    def decode_list_entry(self, value: int) -> ListEntry:
        return ListEntry(self._l_next.extract(value), bool(self._l_one.extract(value)))

    def _decode_valid(self, v: int) -> DecodedPte:
        return DecodedPte(
            "valid", v, pfn=self._h_pfn.extract(v), writable=bool(v & self.WRITE),
            write=bool(v & self.HW_WRITE), dirty=bool(v & self.DIRTY),
            owner=bool(v & self.OWNER), global_=bool(v & self.GLOBAL),
            nx=bool(v & self.NX), copy_on_write=bool(v & self.COPY_ON_WRITE),
            accessed=bool(v & self.ACCESSED), large=bool(v & self.LARGE),
            write_through=bool(v & self.WRITE_THROUGH),
            cache_disable=bool(v & self.CACHE_DISABLE))

    def _proto_address(self, v: int) -> int:
        if self.proto_scheme == "absolute":
            return self._p_addr.extract(v) & _U64
        if self.proto_scheme == "x86":
            return self._x86_top(self._p_lo, self._p_hi, 2) | self._unfold(
                v, self._p_lo, self._p_hi, 2)
        return (self.proto_base + self._unfold(v, self._p_lo, self._p_hi, 2)) & 0xFFFFFFFF

    def _subsection_address(self, v: int) -> int:
        if self.subsection_scheme == "absolute":
            return self._u_addr.extract(v) & _U64
        if self.subsection_scheme == "x86":
            return self._x86_top(self._u_lo, self._u_hi, 1) | self._unfold(
                v, self._u_lo, self._u_hi, 1)
        # WRK mi386.h MiGetSubsectionAddress: WhichPool (bit 31) picks the base.
        off = self._unfold(v, self._u_lo, self._u_hi, 3)
        base = self.subsection_base + off if v & self._u_which else self.nonpaged_pool_end - off
        return base & 0xFFFFFFFF                 # 32-bit pointer arithmetic wraps

    def _wrk_subsection(self, va: int) -> int:
        # WRK mi386.h MiGetSubsectionAddressForPte: below MmSubsectionBase + 128 MB the
        # offset from the base with WhichPool=1, else the distance below MmNonPagedPoolEnd.
        # Low (bits 1-4) holds offset bits 3-6, High (bits 11-30) bits 7-26.
        limit = 1 << (3 + self._u_lo.bit_width + self._u_hi.bit_width)     # 2^27 = 128 MB
        if va > 0xFFFFFFFF:
            raise ValueError("subsection 0x%x is not a 32-bit address" % va)
        if 0 <= va - self.subsection_base < limit:
            off = va - self.subsection_base
            return self._fold(off, self._u_lo, self._u_hi, 3) | self._u_which
        if 0 < self.nonpaged_pool_end - va < limit:
            return self._fold(self.nonpaged_pool_end - va, self._u_lo, self._u_hi, 3)
        raise ValueError("subsection 0x%x is outside nonpaged pool" % va)

    # -- address folding helpers -----------------------------------------------------------
    @staticmethod
    def _fold(off: int, lo, hi, shift: int) -> int:
        """Low field = address bits shift.., High field = the bits above Low's."""
        v = lo.insert(0, (off >> shift) & lo.mask)
        return hi.insert(v, (off >> (shift + lo.bit_width)) & hi.mask)

    @staticmethod
    def _unfold(v: int, lo, hi, shift: int) -> int:
        return (lo.extract(v) << shift) | (hi.extract(v) << (shift + lo.bit_width))

    @staticmethod
    def _x86_top(lo, hi, shift: int) -> int:
        # The implied top bit: prototype PTEs and subsections live in system space, so
        # Win7 x86 does not store bit 31 (shift + Low + High widths = 2+8+21 = 1+9+21 = 31).
        return 1 << (shift + lo.bit_width + hi.bit_width)

    def _to_field(self, fld, va: int) -> int:
        if not 0 <= va <= _U64:
            raise ValueError("0x%x is not an address of %s" % (va, self.profile.name))
        if fld.signed and va >> 63:
            va -= 1 << 64                      # canonical kernel address -> negative
        return va                              # the field rejects what does not fit


def _check_prot(protection: int) -> int:
    if not isinstance(protection, int) or not 0 <= protection < protect.MM_PROTECTION_LIMIT:
        raise ValueError("MM protection must be 0..0x1f, got %r" % (protection,))
    return protection
