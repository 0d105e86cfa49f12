"""Random sequences of process and memory operations on every target: after each step the
invariant checker (guest memory only) finds nothing, and every byte a process wrote reads
back the same -- through trims, the modified page writer, repurposing under memory
pressure, the zero page thread, soft and hard faults, protection changes and other
processes."""
import hypothesis.strategies as st
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import kdsim
from kdsim.nt import protect as pr
from kdsim.nt.fault import access, touch
from kdsim.nt.invariants import check
from kdsim.nt.section import file_page

PAGE = 0x1000
PROTECTS = {"rw": pr.PAGE_READWRITE, "ro": pr.PAGE_READONLY, "na": pr.PAGE_NOACCESS,
            "guard": pr.PAGE_READWRITE | pr.PAGE_GUARD}


class Page:
    """What the model expects of one page."""

    def __init__(self):
        self.committed = False
        self.protect = "rw"
        self.guard = False
        self.data = bytearray(PAGE)


class MemoryMachine(RuleBasedStateMachine):
    target = "win7-x64"

    def __init__(self):
        super().__init__()
        self.m = kdsim.boot(self.target, ram="256m", scenario="none")
        self.nt = self.m.nt
        self.procs = []          # [(Process, {region base: [Page, ...]})]
        self.ntdll = {}          # pid -> what that process sees in ntdll's .data
        self.shared = None       # a pagefile-backed section, while some process maps it
        self.shared_data = bytearray(2 * PAGE)
        self.views = {}          # pid -> base of its view of the shared section
        self._spawn()

    def _spawn(self):
        self.procs.append((self.nt.spawn(f"p{len(self.procs)}.exe"), {}))

    def _pick(self, data):
        proc, regions = data.draw(st.sampled_from(self.procs))
        if not regions:
            return proc, regions, None, None
        base = data.draw(st.sampled_from(sorted(regions)))
        index = data.draw(st.integers(0, len(regions[base]) - 1))
        return proc, regions, base, index

    @precondition(lambda self: len(self.procs) < 3)
    @rule()
    def spawn(self):
        self._spawn()

    @precondition(lambda self: len(self.procs) > 1)
    @rule(data=st.data())
    def terminate(self, data):
        i = data.draw(st.integers(0, len(self.procs) - 1))
        proc, _ = self.procs.pop(i)
        self.nt.terminate(proc)
        self._view_gone(proc)

    def _view_gone(self, proc):
        if self.views.pop(proc.pid, None) is not None and not self.views:
            self.shared = None                 # the last view took the section with it
            self.shared_data = bytearray(2 * PAGE)

    @rule(data=st.data())
    def map_shared_memory(self, data):
        proc, _ = data.draw(st.sampled_from(self.procs))
        if proc.pid in self.views:
            return
        if self.shared is None:
            self.shared = self.nt.create_section("Shm", 2)
        self.views[proc.pid] = self.shared.map_view(proc)

    @rule(data=st.data())
    def unmap_shared_memory(self, data):
        proc, _ = data.draw(st.sampled_from(self.procs))
        if proc.pid in self.views:
            self.shared.unmap_view(proc, self.views[proc.pid])
            self._view_gone(proc)

    @rule(data=st.data(), offset=st.integers(0, 2 * PAGE - 8), write=st.booleans(),
          value=st.binary(min_size=1, max_size=8))
    def use_shared_memory(self, data, offset, write, value):
        """What one process writes in the shared section, every other one reads."""
        proc, _ = data.draw(st.sampled_from(self.procs))
        if proc.pid not in self.views:
            return
        va = self.views[proc.pid] + offset
        if write:
            assert access(self.nt, proc, va, value, "w")[0] == 0
            self.shared_data[offset:offset + len(value)] = value
        else:
            assert access(self.nt, proc, va, 8) == (0, bytes(self.shared_data[offset:offset + 8]))

    @rule(data=st.data(), pages=st.integers(1, 6), commit=st.booleans(),
          protect=st.sampled_from(["rw", "ro", "guard"]))
    def allocate(self, data, pages, commit, protect):
        proc, regions = data.draw(st.sampled_from(self.procs))
        r = self.nt.vm.allocate(proc, pages * PAGE, commit=commit, protect=PROTECTS[protect])
        assert r.ok, hex(r.status)
        model = [Page() for _ in range(pages)]
        for pg in model:
            pg.committed, pg.protect, pg.guard = commit, "rw" if protect == "guard" else \
                protect, protect == "guard"
        regions[r.base] = model

    @rule(data=st.data(), protect=st.sampled_from(["rw", "ro"]))
    def commit_page(self, data, protect):
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        pg = regions[base][i]
        r = self.nt.vm.allocate(proc, PAGE, base + i * PAGE, reserve=False,
                                protect=PROTECTS[protect])
        assert r.ok
        if not pg.committed:
            pg.committed, pg.protect, pg.guard = True, protect, False
            pg.data = bytearray(PAGE)

    @rule(data=st.data())
    def decommit_page(self, data):
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        assert self.nt.vm.free(proc, base + i * PAGE, PAGE, release=False).ok
        regions[base][i] = Page()

    @rule(data=st.data())
    def release(self, data):
        proc, regions, base, _ = self._pick(data)
        if base is None:
            return
        assert self.nt.vm.free(proc, base).ok
        del regions[base]

    @rule(data=st.data())
    def release_one_page(self, data):
        """Releasing part of a reservation shrinks or splits its VAD."""
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        pages = regions.pop(base)
        if len(pages) == 1:
            assert self.nt.vm.free(proc, base).ok
            return
        r = self.nt.vm.free(proc, base + i * PAGE, PAGE)
        assert r.ok, hex(r.status)
        if i:
            regions[base] = pages[:i]
        if i + 1 < len(pages):
            regions[base + (i + 1) * PAGE] = pages[i + 1:]

    @rule(data=st.data(), protect=st.sampled_from(["rw", "ro", "na", "guard"]))
    def protect(self, data, protect):
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        pg = regions[base][i]
        r = self.nt.vm.protect(proc, base + i * PAGE, PAGE, PROTECTS[protect])
        if not pg.committed:
            assert r.status == pr.STATUS_NOT_COMMITTED
            return
        assert r.ok
        pg.protect = "rw" if protect == "guard" else protect
        pg.guard = protect == "guard"

    @rule(data=st.data(), offset=st.integers(0, PAGE - 8), value=st.binary(min_size=1,
                                                                          max_size=8))
    def write(self, data, offset, value):
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        pg = regions[base][i]
        status, _ = access(self.nt, proc, base + i * PAGE + offset, value, "w")
        assert status == self._expect(pg, write=True), hex(status)
        if status == 0:
            pg.data[offset:offset + len(value)] = value

    @rule(data=st.data(), offset=st.integers(0, PAGE - 16))
    def read(self, data, offset):
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        pg = regions[base][i]
        status, got = access(self.nt, proc, base + i * PAGE + offset, 16)
        assert status == self._expect(pg, write=False), hex(status)
        if status == 0:
            assert got == bytes(pg.data[offset:offset + 16])

    @rule(data=st.data(), write=st.booleans())
    def touch_region(self, data, write):
        """A range touch stops at the first page whose fault fails, as a loop would."""
        proc, regions, base, _ = self._pick(data)
        if base is None:
            return
        pages = regions[base]
        status, done = touch(self.nt, proc, base, len(pages) * PAGE, "w" if write else "r")
        expected, count = 0, len(pages)
        for i, pg in enumerate(pages):
            expected = self._expect(pg, write)
            if expected:
                count = i
                break
        assert (status, done) == (expected, count)

    @rule(data=st.data())
    def trim(self, data):
        proc, regions, base, i = self._pick(data)
        if base is None:
            return
        self.nt.trim_page(proc, base + i * PAGE)

    @rule(limit=st.integers(1, 8))
    def write_modified_pages(self, limit):
        self.nt.write_modified(limit)

    @rule(count=st.integers(1, 8))
    def memory_pressure(self, count):
        self.nt.repurpose(count)

    @rule(count=st.integers(1, 16))
    def zero_page_thread(self, count):
        self.nt.zero_pages(count)

    @rule(data=st.data(), write=st.booleans(), value=st.binary(min_size=1, max_size=4))
    def use_ntdll_data(self, data, write, value):
        """ntdll's .data is copy-on-write: a writer sees its own bytes, others the file's."""
        proc, _ = data.draw(st.sampled_from(self.procs))
        nd = self.nt.image_section("ntdll.dll")
        va = nd.base + (nd.pages - 1) * PAGE
        mine = self.ntdll.setdefault(proc.pid, bytearray(file_page("ntdll.dll", nd.pages - 1)))
        if write:
            assert access(self.nt, proc, va, value, "w")[0] == 0
            mine[:len(value)] = value
        else:
            assert access(self.nt, proc, va, 8) == (0, bytes(mine[:8]))

    @staticmethod
    def _expect(pg: Page, write: bool) -> int:
        if not pg.committed or pg.protect == "na":
            return pr.STATUS_ACCESS_VIOLATION
        if pg.guard:
            pg.guard = False
            return pr.STATUS_GUARD_PAGE_VIOLATION
        if write and pg.protect == "ro":
            return pr.STATUS_ACCESS_VIOLATION
        return pr.STATUS_SUCCESS

    @invariant()
    def guest_memory_is_consistent(self):
        assert check(self.m.core, self.nt.profile, self.nt.symbols) == []


# No shrinking in the suite: a failure prints its steps as drawn (shrinking a machine this
# size takes minutes); derandomized, so the same steps run everywhere.
SETTINGS = settings(max_examples=6, stateful_step_count=24, deadline=None, derandomize=True,
                    database=None, phases=[Phase.explicit, Phase.generate])


def _case(target):
    cls = type(f"Machine_{target.replace('-', '_')}", (MemoryMachine,), {"target": target})
    case = cls.TestCase
    case.settings = SETTINGS
    return case


TestWin7X64 = _case("win7-x64")
TestWin7X86Pae = _case("win7-x86pae")
TestWin7X86 = _case("win7-x86")
TestWrkX86 = _case("wrk-x86")
