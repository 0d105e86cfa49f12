"""``_SECTION_IMAGE_INFORMATION`` and Windows 7's ``_MI_SECTION_IMAGE_INFORMATION``: what an
image section's segment records about the PE image (``_SEGMENT.u2.ImageInformation``).

Not in the reference's layouts (the segment only points at them), so kdsim states them
here from their public definitions (the SECTION_IMAGE_INFORMATION that
NtQuerySection(SectionImageInformation) returns, the same on Server 2003 and Windows 7
but for the byte after ImageContainsCode: Spare1 there, ImageFlags here; Windows 7's
memory manager wraps it with an _MI_EXTRA_IMAGE_INFORMATION of SizeOfHeaders and
SizeOfImage).  Sizes: 0x30 (x86) / 0x40 (x64); the wrapper 0x38 / 0x48.
"""
from __future__ import annotations


def _base(name: str, size: int) -> dict:
    return {"kind": "base", "name": name, "size": size}


def _struct(fields, size: int) -> dict:
    return {"kind": "struct", "size": size,
            "fields": [{"name": n, "offset": o, "type": t} for n, o, t in fields]}


def section_image_information(p: int, vista_or_later: bool) -> dict:
    ulong, ushort, uchar = _base("unsigned long", 4), _base("unsigned short", 2), \
        _base("unsigned char", 1)
    size_t = _base("unsigned long" if p == 4 else "unsigned long long", p)
    o = 2 * p                                        # after TransferAddress and ZeroBits
    fields = [("TransferAddress", 0, {"kind": "pointer", "size": p, "to": {"kind": "void"}}),
              ("ZeroBits", p, ulong), ("MaximumStackSize", o, size_t),
              ("CommittedStackSize", o + p, size_t), ("SubSystemType", o + 2 * p, ulong)]
    o += 2 * p + 4
    fields += [("SubSystemMinorVersion", o, ushort), ("SubSystemMajorVersion", o + 2, ushort),
               ("SubSystemVersion", o, ulong), ("GpValue", o + 4, ulong),
               ("ImageCharacteristics", o + 8, ushort), ("DllCharacteristics", o + 10, ushort),
               ("Machine", o + 12, ushort), ("ImageContainsCode", o + 14, uchar),
               ("ImageFlags" if vista_or_later else "Spare1", o + 15, uchar),
               ("LoaderFlags", o + 16, ulong), ("ImageFileSize", o + 20, ulong),
               ("CheckSum" if vista_or_later else "Reserved", o + 24, ulong)]
    return _struct(fields, o + 28)


def mi_section_image_information(info_size: int) -> dict:
    return _struct([("ImageInformation", 0,
                     {"kind": "struct", "name": "_SECTION_IMAGE_INFORMATION"}),
                    ("InternalImageInformation", info_size,
                     {"kind": "struct", "name": "_MI_EXTRA_IMAGE_INFORMATION"})],
                   info_size + 8)


def mi_extra_image_information() -> dict:
    ulong = _base("unsigned long", 4)
    return _struct([("SizeOfHeaders", 0, ulong), ("SizeOfImage", 4, ulong)], 8)
