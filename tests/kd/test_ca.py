"""!ca: a control area, its segment and subsections, read from guest memory; found, as a
user would, through the VAD of an image view."""
import pytest

import kdsim

CA_X64 = """\
ControlArea @ fffffa80030046f0
  Segment      fffff8a000000280  Flink         0000000000000000  Blink        0000000000000000
  Section Ref                 1  Pfn Ref                      1  Mapped Views                a
  User Ref                    a  WaitForDel                   0  Flush Count                 0
  File Object  fffffa8003004890  ModWriteCount                0  System Views                0
  WritableRefs                0
  Flags (a0) Image File

      \\Windows\\System32\\kernel32.dll

Segment @ fffff8a000000280
  ControlArea       fffffa80030046f0  BasedAddress  000007fefefc0000
  Total Ptes                      12
  Segment Size                 12000  Committed                    0
  Image Commit                     1  Image Info    fffff8a000000358
  ProtoPtes         fffff8a0000002c8
  Flags (0)

Subsection 1 @ fffffa8003004770
  ControlArea  fffffa80030046f0  Starting Sector                0  Number Of Sectors                8
  Base Pte     fffff8a0000002c8  Ptes In Subsect                1  Unused Ptes                      0
  Flags                       2  Sector Offset                  0  Protection                       1

Subsection 2 @ fffffa80030047a8
  ControlArea  fffffa80030046f0  Starting Sector                8  Number Of Sectors               78
  Base Pte     fffff8a0000002d0  Ptes In Subsect                f  Unused Ptes                      0
  Flags                       6  Sector Offset                  0  Protection                       3

Subsection 3 @ fffffa80030047e0
  ControlArea  fffffa80030046f0  Starting Sector               80  Number Of Sectors                8
  Base Pte     fffff8a000000348  Ptes In Subsect                1  Unused Ptes                      0
  Flags                       2  Sector Offset                  0  Protection                       1

Subsection 4 @ fffffa8003004818
  ControlArea  fffffa80030046f0  Starting Sector               88  Number Of Sectors                8
  Base Pte     fffff8a000000350  Ptes In Subsect                1  Unused Ptes                      0
  Flags                       a  Sector Offset                  0  Protection                       5
"""

CA_X86 = """\
ControlArea @ 86000c88
  Segment      89000180  Flink         00000000  Blink        00000000
  Section Ref         1  Pfn Ref              1  Mapped Views        a
  User Ref            a  WaitForDel           0  Flush Count         0
  File Object  86000d78  ModWriteCount        0  System Views        0
  WritableRefs        0
  Flags (a0) Image File

      \\Windows\\System32\\kernel32.dll

Segment @ 89000180
  ControlArea       86000c88  BasedAddress  77fc0000
  Total Ptes              12
  Segment Size         12000  Committed            0
  Image Commit             1  Image Info    890001f4
  ProtoPtes         890001ac
  Flags (0)

Subsection 1 @ 86000cd8
  ControlArea  86000c88  Starting Sector        0  Number Of Sectors        8
  Base Pte     890001ac  Ptes In Subsect        1  Unused Ptes              0
  Flags               2  Sector Offset          0  Protection               1

Subsection 2 @ 86000cf8
  ControlArea  86000c88  Starting Sector        8  Number Of Sectors       78
  Base Pte     890001b0  Ptes In Subsect        f  Unused Ptes              0
  Flags               6  Sector Offset          0  Protection               3

Subsection 3 @ 86000d18
  ControlArea  86000c88  Starting Sector       80  Number Of Sectors        8
  Base Pte     890001ec  Ptes In Subsect        1  Unused Ptes              0
  Flags               2  Sector Offset          0  Protection               1

Subsection 4 @ 86000d38
  ControlArea  86000c88  Starting Sector       88  Number Of Sectors        8
  Base Pte     890001f0  Ptes In Subsect        1  Unused Ptes              0
  Flags               a  Sector Offset          0  Protection               5
"""

DATA_FILE_X86 = """\
ControlArea @ 860077c0
  Segment      89000a70  Flink         00000000  Blink        00000000
  Section Ref         1  Pfn Ref              1  Mapped Views        1
  User Ref            1  WaitForDel           0  Flush Count         0
  File Object  86007850  ModWriteCount        0  System Views        0
  WritableRefs        0
  Flags (80) File

      \\Users\\Public\\desktop.ini

Segment @ 89000a70
  ControlArea       860077c0  ExtendInfo    00000000
  Total Ptes               2
  Segment Size          2000  Committed            0
  ProtoPtes         89000a9c
  Flags (0)

Subsection 1 @ 86007810
  ControlArea  860077c0  Starting Sector        0  Number Of Sectors        2
  Base Pte     89000a9c  Ptes In Subsect        2  Unused Ptes              0
  Flags               8  Sector Offset          0  Protection               4
"""

EXPECTED = {"win7-x64": CA_X64, "win7-x86": CA_X86}


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86"])
def m(request):
    return kdsim.boot(request.param, ram="256m", scenario="default")


def image_view_control_area(m, process: str, image: str):
    """The control area behind a process's view of ``image``, found through its VAD: the
    view's _MMVAD names its first subsection, whose ControlArea is the one (§9.1)."""
    nt = m.nt
    proc = nt.scenario["processes"][process]
    section, node = proc.views[nt.sections[image.lower()].base]
    subsection = nt.ts.field("_MMVAD", "Subsection").read(nt.kmem, node)
    ca = nt.ts.field("_SUBSECTION", "ControlArea").read(nt.kmem, subsection)
    return section, node, ca


def test_ca_of_kernel32_found_through_explorers_vad(m):
    section, _, ca = image_view_control_area(m, "explorer", "kernel32.dll")
    assert ca == section.ca
    assert m.debugger.execute(f"!ca {ca:x}") == EXPECTED[m.target]


def test_ca_agrees_with_the_section_the_memory_manager_built(m):
    nt, ptr = m.nt, m.nt.ptr
    for process, image in (("notepad", "comdlg32.dll"), ("explorer", "shell32.dll"),
                           ("services", "services.exe")):
        section, node, ca = image_view_control_area(m, process, image)
        out = m.debugger.execute(f"!ca {ca:x}").splitlines()
        p = lambda v: f"{v:0{2 * ptr}x}"  # noqa: E731
        assert out[0] == f"ControlArea @ {p(ca)}"
        assert out[1].split()[1] == p(section.segment)
        assert out[2].split()[-1] == f"{section.views:x}"              # Mapped Views
        assert f"Segment @ {p(section.segment)}" in out
        assert f"  ProtoPtes         {p(section.proto)}" in out
        first_proto = nt.ts.field("_MMVAD", "FirstPrototypePte").read(nt.kmem, node)
        assert first_proto == section.proto
        headers = [line for line in out if line.startswith("Subsection ")]
        assert headers == [f"Subsection {i + 1} @ {p(va)}"
                           for i, (va, *_rest) in enumerate(section.subsections)]
        for number, (va, first, n, prot) in enumerate(section.subsections, 1):
            block = out[out.index(f"Subsection {number} @ {p(va)}"):]
            assert block[1].split()[1] == p(ca)                          # ControlArea
            assert block[2].split()[2] == p(section.proto_va(first))     # Base Pte
            assert block[2].split()[6] == f"{n:x}"                       # Ptes In Subsect
            assert block[3].split()[-1] == f"{prot:x}"                   # Protection


def test_ca_of_a_data_file_and_of_shared_memory(m):
    nt = m.nt
    data = m.debugger.execute(f"!ca {nt.sections['desktop.ini'].ca:x}")
    if m.target == "win7-x86":
        assert data == DATA_FILE_X86
    assert "  Flags (80) File\n" in data and "Image Commit" not in data
    shm = nt.sections["servicessharedmemory"]
    out = m.debugger.execute(f"!ca {shm.ca:x}").splitlines()
    assert "  Flags (2000) Commit" in out
    size_line = next(x for x in out if x.startswith("  Segment Size"))
    assert size_line.split()[-1] == f"{shm.pages:x}"                    # Committed


def test_ca_flags_select_the_segment_or_the_subsections(m):
    ca = m.nt.sections["kernel32.dll"].ca
    full = m.debugger.execute(f"!ca {ca:x}")
    only_segment = m.debugger.execute(f"!ca {ca:x} 1")
    only_subsections = m.debugger.execute(f"!ca {ca:x} 2")
    assert "Segment @" in only_segment and "Subsection" not in only_segment
    assert "Segment @" not in only_subsections and "Subsection 4 @" in only_subsections
    assert full == only_segment.rstrip("\n") + "\n" + \
        only_subsections[only_subsections.index("\nSubsection 1 @"):]
    assert m.debugger.execute(f"!ca {ca:x} 3") == full


def test_ca_reports_an_unreadable_segment_and_subsection():
    b = kdsim.boot("win7-x64", ram="256m", scenario="default")
    d, ts = b.debugger, b.nt.ts
    section = b.nt.sections["kernel32.dll"]
    d.execute(f"eq {section.ca:x} 1230")                       # Segment
    second = section.subsections[1][0]
    next_field = ts.offset_of("_SUBSECTION", "NextSubsection")
    d.execute(f"eq {second + next_field:x} 4560")
    out = d.execute(f"!ca {section.ca:x}").splitlines()
    assert out[1].startswith("  Segment      0000000000001230  Flink")
    i = out.index("Unable to read _SEGMENT @ 0000000000001230")
    assert out[i - 1] == "" and out[i + 2].startswith("Subsection 1 @")
    assert out[-1] == "Unable to read _SUBSECTION @ 0000000000004560"
    assert [line for line in out if line.startswith("Subsection")] == [
        f"Subsection 1 @ {section.subsections[0][0]:016x}",
        f"Subsection 2 @ {second:016x}"]


@pytest.mark.parametrize("line, expected", [
    ("!ca", "kdsim: !ca needs the address of a control area (!vad shows it for a mapped view)\n"),
    ("!ca 0", "kdsim: !ca 0 (every control area) and !ca -1 (the unused segment list) are not "
              "supported; give a control area address\n"),
    ("!ca -1", "kdsim: !ca 0 (every control area) and !ca -1 (the unused segment list) are not "
               "supported; give a control area address\n"),
    ("!ca 1234", "Unable to read _CONTROL_AREA @ 0000000000001234\n"),
    ("!ca zz", "Couldn't resolve error at 'zz'\n"),
    ("!ca 1234 5 6", "                  ^ Syntax error in '!ca 1234 5 6'\n"),
])
def test_ca_bad_arguments(x64, line, expected):
    assert x64.debugger.execute(line) == expected


def test_ca_bad_address_on_x86(x86):
    assert x86.debugger.execute("!ca 1234") == "Unable to read _CONTROL_AREA @ 00001234\n"
