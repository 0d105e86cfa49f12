"""Sections: control areas, segments, subsections and prototype PTEs; views mapped into
processes (nt-structures.md §9).

A section is a ``_CONTROL_AREA`` in nonpaged pool with its ``_SUBSECTION``s right after
it, and a ``_SEGMENT`` in paged pool whose ``ThePtes`` are the prototype PTEs, one per
page.  An image or data-file section starts with subsection PTEs (the page is in the
file); a pagefile-backed section with demand-zero ones.  A view is an ``_MMVAD`` whose
FirstPrototypePte..LastContiguousPte name the slice of prototype PTEs it maps; the
process's PTEs stay zero until a fault resolves them through the prototype PTE.  A page
shared by several processes has one PFN entry whose PteAddress is the prototype PTE
(u4.PrototypePte = 1) and whose ShareCount counts the process PTEs mapping it.

The files themselves live outside guest RAM (as on disk): kdsim generates their
contents deterministically from the file name, an MZ/PE header first.  What the kernel
keeps of a file is in guest RAM: an image or data-file section's control area points at
the file's FILE_OBJECT (fileobject.py), and an image segment records the image's base,
its copy-on-write commitment and its image information.
"""
from __future__ import annotations

import hashlib
import struct

from . import protect as pr
from .fileobject import create_file_object, fast_ref_count, file_path, free_file_object

PAGE = 0x1000
IMAGE_SECTOR = 0x200          # image subsections count 512-byte sectors (VOL3 sector_size)
MM_EXECUTE_WRITECOPY = 7
VAD_IMAGE_MAP = 2             # _MI_VAD_TYPE VadImageMap


# PE header facts of kdsim's images (winnt.h): machines and characteristics, and the
# linker's default stack sizes (the main thread's stack in process.py uses them too).
IMAGE_FILE_MACHINE_I386, IMAGE_FILE_MACHINE_AMD64 = 0x014C, 0x8664
IMAGE_FILE_EXECUTABLE_IMAGE, IMAGE_FILE_LARGE_ADDRESS_AWARE = 0x0002, 0x0020
IMAGE_FILE_32BIT_MACHINE, IMAGE_FILE_DLL = 0x0100, 0x2000
IMAGE_STACK_RESERVE, IMAGE_STACK_COMMIT = 0x100000, 0x1000


def image_information_type(ts) -> str:
    """What _SEGMENT.u2.ImageInformation points at on this build."""
    return "_MI_SECTION_IMAGE_INFORMATION" if ts.has_type("_MI_SECTION_IMAGE_INFORMATION") \
        else "_SECTION_IMAGE_INFORMATION"


def image_layout(name: str) -> list[tuple[str, int, int]]:
    """(section name, pages, MM protection) of kdsim's stand-in for a PE image: the
    headers, code, read-only data and writable (copy-on-write) data.  Sizes come from the
    name, so every run gives the same image."""
    h = hashlib.sha256(name.lower().encode()).digest()
    return [("headers", 1, pr.MM_READONLY), (".text", 4 + h[0] % 12, pr.MM_EXECUTE_READ),
            (".rdata", 1 + h[1] % 4, pr.MM_READONLY), (".data", 1 + h[2] % 3, pr.MM_WRITECOPY)]


def data_page(name: str, index: int) -> bytes:
    """Page ``index`` of a data file: lines of text naming the file and the page."""
    line = f"{name} page {index}\r\n".encode()
    return (line * (PAGE // len(line) + 1))[:PAGE]


def file_page(name: str, index: int) -> bytes:
    """Page ``index`` of the file ``name`` as the disk holds it."""
    if index == 0:
        head = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80)
        head = head.ljust(0x80, b"\0") + b"PE\0\0" + name.encode()[:64]
        return head.ljust(PAGE, b"\0")
    seed = hashlib.sha256(f"{name.lower()}:{index}".encode()).digest()
    return (seed * (PAGE // len(seed)))[:PAGE]


class Section:
    def __init__(self, system, name: str, kind: str, pages: int | None = None,
                 protection: int = pr.MM_READWRITE, base: int = 0):
        self.s, self.name, self.kind, self.base = system, name, kind, base
        ts, k = system.ts, system.kmem
        if kind == "image":
            self.layout = image_layout(name)
        else:
            self.layout = [("data", pages, protection)]
        self.pages = sum(n for _, n, _ in self.layout)
        self.image_commitment = sum(n for _, n, prot in self.layout
                                    if kind == "image" and prot == pr.MM_WRITECOPY)
        sub_size = ts.sizeof("_SUBSECTION")
        self.ca = system.nonpaged_pool.alloc(ts.sizeof("_CONTROL_AREA") +
                                             sub_size * len(self.layout), "MmCa")
        ptes_off = ts.offset_of("_SEGMENT", "ThePtes")
        self.pte_size = system.profile.pte_size
        # An image segment carries its image information right after the prototype PTEs,
        # in the same block (MiCreateImageFileMap sizes the segment for both).
        info_type = image_information_type(ts) if kind == "image" else None
        info_size = ts.sizeof(info_type) if info_type else 0
        self.segment = system.paged_pool.alloc(ptes_off + self.pages * self.pte_size +
                                               info_size, "MmSt")
        self.proto = self.segment + ptes_off
        # An image section is file-backed too: MiCreateImageFileMap sets Image and File.
        flags = {"image": ("u.Flags.Image", "u.Flags.File"), "file": ("u.Flags.File",),
                 "pagefile": ("u.Flags.Commit",)}
        ca_values = {"Segment": self.segment, "NumberOfSectionReferences": 1}
        ca_values.update((flag, 1) for flag in flags[kind])
        self.file_object = self.section_pointers = 0
        self.path = ""
        if kind != "pagefile":
            self.path = file_path(system.profile, name)
            self.file_object, self.section_pointers = create_file_object(system, self.path)
            # Win7's FilePointer is an _EX_FAST_REF: the count sits in the low bits.
            ca_values["FilePointer"] = self.file_object | fast_ref_count(ts)
            which = "ImageSectionObject" if kind == "image" else "DataSectionObject"
            ts.field("_SECTION_OBJECT_POINTERS", which).write(k, self.section_pointers,
                                                             self.ca)
        k.write(self.ca, ts.pack("_CONTROL_AREA", ca_values))
        seg = {"ControlArea": self.ca, "TotalNumberOfPtes": self.pages,
               "SizeOfSegment": self.pages * PAGE, "PrototypePte": self.proto}
        if kind == "pagefile":
            seg["NumberOfCommittedPages"] = self.pages
        elif kind == "image":
            # The pages an image view charges as commit: its copy-on-write ones
            # (MiCreateImageFileMap's ImageCommitment).
            seg["u1.ImageCommitment"] = self.image_commitment
            seg["u2.ImageInformation"] = self.proto + self.pages * self.pte_size
        k.write(self.segment, ts.pack("_SEGMENT", seg)[:ptes_off])
        if info_type:
            k.write(self.proto + self.pages * self.pte_size,
                    ts.pack(info_type, self._image_information(info_type)))
        self.subsections = []
        first = 0
        sector = IMAGE_SECTOR if kind == "image" else PAGE
        for i, (_, n, prot) in enumerate(self.layout):
            va = self.ca + ts.sizeof("_CONTROL_AREA") + i * sub_size
            nxt = va + sub_size if i + 1 < len(self.layout) else 0
            k.write(va, ts.pack("_SUBSECTION", {
                "ControlArea": self.ca, "SubsectionBase": self.proto + first * self.pte_size,
                "NextSubsection": nxt, "PtesInSubsection": n,
                "u.SubsectionFlags.Protection": prot,
                "StartingSector": first * PAGE // sector,
                "NumberOfFullSectors": n * PAGE // sector}))
            self.subsections.append((va, first, n, prot))
            first += n
        codec = system.codec
        raw = bytearray()
        for va, first, n, prot in self.subsections:
            value = codec.demand_zero(prot) if kind == "pagefile" else \
                codec.subsection(va, prot)
            raw += b"".join(value.to_bytes(self.pte_size, "little") for _ in range(n))
        k.write(self.proto, bytes(raw))
        self.views = 0
        self.written: dict[int, bytes] = {}      # data-file pages the writer wrote back

    def _image_information(self, info_type: str) -> dict:
        """What kdsim's stand-in PE image says about itself: the target's machine, an
        executable image (a DLL, 32-bit or large-address-aware as the build is), code, the
        default stack sizes, the file and image sizes and the headers' one page.  No entry
        point (TransferAddress), subsystem or checksum: kdsim's headers carry none."""
        ptr = self.s.ptr
        chars = IMAGE_FILE_EXECUTABLE_IMAGE | (IMAGE_FILE_32BIT_MACHINE if ptr == 4 else
                                               IMAGE_FILE_LARGE_ADDRESS_AWARE)
        if self.name.lower().endswith(".dll"):
            chars |= IMAGE_FILE_DLL
        prefix = "ImageInformation." if info_type == "_MI_SECTION_IMAGE_INFORMATION" else ""
        values = {"MaximumStackSize": IMAGE_STACK_RESERVE,
                  "CommittedStackSize": IMAGE_STACK_COMMIT,
                  "ImageCharacteristics": chars,
                  "Machine": IMAGE_FILE_MACHINE_AMD64 if ptr == 8 else IMAGE_FILE_MACHINE_I386,
                  "ImageContainsCode": 1, "ImageFileSize": self.pages * PAGE}
        values = {prefix + k: v for k, v in values.items()}
        if prefix:
            values["InternalImageInformation.SizeOfHeaders"] = self.layout[0][1] * PAGE
            values["InternalImageInformation.SizeOfImage"] = self.pages * PAGE
        return values

    def set_image_base(self, base: int) -> None:
        """The image's base address: where its views go, and the segment's BasedAddress
        (the PE header's ImageBase)."""
        self.base = base
        self.s.ts.field("_SEGMENT", "BasedAddress").write(self.s.kmem, self.segment, base)

    def protection_of(self, index: int) -> int:
        for _, first, n, prot in self.subsections:
            if first <= index < first + n:
                return prot
        raise IndexError(index)

    def proto_va(self, index: int) -> int:
        return self.proto + index * self.pte_size

    def contents(self, index: int) -> bytes:
        if index in self.written:
            return self.written[index]
        if self.kind == "file":
            return data_page(self.name, index)
        return file_page(self.name, index)

    def count_pfn(self, delta: int) -> None:
        """A page of the section came into memory (+1) or left it (-1): the control
        area's NumberOfPfnReferences, as MiResolveMappedFileFault / MiDeletePfn keep it."""
        f = self.s.ts.field("_CONTROL_AREA", "NumberOfPfnReferences")
        f.write(self.s.kmem, self.ca, max(0, f.read(self.s.kmem, self.ca) + delta))

    def _count_view(self, delta: int) -> None:
        ts, k = self.s.ts, self.s.kmem
        self.views += delta
        for path in ("NumberOfMappedViews", "NumberOfUserReferences"):
            ts.field("_CONTROL_AREA", path).write(k, self.ca, self.views)

    def map_view(self, proc, base: int = 0, protection: int | None = None) -> int:
        """MiMapViewOfSection: a VAD over the whole section; returns the view's base."""
        s, ts = self.s, self.s.ts
        a = s.profile.address_space
        size = self.pages * PAGE
        start = base or self.base
        if start and proc.vads.find_first_overlap(start // PAGE,
                                                  (start + size) // PAGE - 1) is not None:
            start = 0
        if not start:
            found = proc.vads.first_free_range(self.pages, a.lowest_user_address // PAGE,
                                               a.highest_vad_address // PAGE, top_down=True,
                                               alignment_vpns=16)
            if found is None:
                raise MemoryError("no room for the view")
            start = found * PAGE
        prot = protection if protection is not None else (
            MM_EXECUTE_WRITECOPY if self.kind == "image" else pr.MM_READWRITE)
        # MiMapViewOfImageSection charges the image's copy-on-write pages
        # (ImageCommitment) to the process when it maps the view, and the VAD keeps them.
        charge = self.image_commitment
        if charge and not s.vm._charge(proc, charge):
            raise MemoryError("the commit limit leaves no room for the image's view")
        node = s.nonpaged_pool.alloc(ts.sizeof("_MMVAD"), "Vad ")
        values = {"StartingVpn": start // PAGE, "EndingVpn": (start + size) // PAGE - 1,
                  "u.VadFlags.VadType": VAD_IMAGE_MAP if self.kind == "image" else 0,
                  "u.VadFlags.Protection": prot, "u.VadFlags.PrivateMemory": 0,
                  "u.VadFlags.CommitCharge": charge,
                  "FirstPrototypePte": self.proto,
                  "LastContiguousPte": self.proto_va(self.pages - 1)}
        if ts.has_field("_MMVAD", "Subsection"):
            values["Subsection"] = self.subsections[0][0]
        else:                                        # the WRK's _MMVAD names the control area
            values["ControlArea"] = self.ca
        if ts.has_field("_MMVAD", "VadsProcess"):
            values["VadsProcess"] = proc.ep
        s.kmem.write(node, ts.pack("_MMVAD", values))
        proc.vads.insert(node)
        s.vm._account_vsize(proc, size)
        proc.views[start] = (self, node)
        self._count_view(1)
        return start

    def unmap_view(self, proc, start: int) -> None:
        s = self.s
        _, node = proc.views.pop(start)
        for i in range(self.pages):
            s.unmap_page(proc, start + i * PAGE)
        proc.vads.remove(node)
        s.nonpaged_pool.free(node)
        s.vm._account_vsize(proc, -self.pages * PAGE)
        if self.image_commitment:
            s.vm._charge(proc, -self.image_commitment)
        self._count_view(-1)
        if self.views == 0 and self.kind == "pagefile":
            self.delete()     # no handle keeps a kdsim pagefile-backed section alive

    def delete(self) -> None:
        """The section goes: its resident pages to the free list, its paging-file slots
        back, its control area and segment to the pool."""
        from .pagefile import release_backing
        s, codec, k = self.s, self.s.codec, self.s.kmem
        for i in range(self.pages):
            va = self.proto_va(i)
            d = codec.decode(int.from_bytes(k.read(va, self.pte_size), "little"),
                             in_prototype_array=True)
            if d.kind == "transition":
                release_backing(s, int(s.pfn.e["orig"][d.pfn]))
                s.pfn.unlink(d.pfn)
                s.pfn.e["orig"][d.pfn] = 0
                s.pfn.e["pte"][d.pfn] = 0
                s.pfn.release(d.pfn)
            elif d.kind == "pagefile":
                release_backing(s, d.value)
        s.sections.pop(self.name.lower(), None)
        s.paged_pool.free(self.segment)
        s.nonpaged_pool.free(self.ca)
        if self.file_object:
            free_file_object(s, self.file_object)
        s.update_counters()
