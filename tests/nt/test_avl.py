"""The VAD AVL tree in guest memory (kdsim.nt.avl) and its validator (kdsim.nt.vadtree)."""
import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from kdsim.nt import avl
from kdsim.nt.avl import AvlError, AvlTable, VadOverlapError
from kdsim.nt.profiles import PROFILE_NAMES
from kdsim.nt.types import TypeSystem

NODE = "_MMADDRESS_NODE"
VAD_TYPES = ("_MMVAD_SHORT", "_MMVAD", "_MMVAD_LONG")


class GuestMemory:
    """A bytearray at a kernel-looking base address; reads outside it fail like a bad VA."""

    def __init__(self, base, size):
        self.base, self.data = base, bytearray(size)

    def read(self, addr, n):
        o = addr - self.base
        if o < 0 or o + n > len(self.data):
            raise MemoryError("read outside guest memory: %#x+%#x" % (addr, n))
        return bytes(self.data[o:o + n])

    def write(self, addr, data):
        o = addr - self.base
        if o < 0 or o + len(data) > len(self.data):
            raise MemoryError("write outside guest memory: %#x+%#x" % (addr, len(data)))
        self.data[o:o + len(data)] = data


class Machine:
    """A TypeSystem, guest memory, a bump allocator and a VadRoot inside an EPROCESS."""

    def __init__(self, target, size=1 << 20):
        self.ts = TypeSystem(target)
        base = 0xFFFFFA8000000000 if self.ts.pointer_size == 8 else 0x84000000
        self.mem = GuestMemory(base, size)
        self.next = base + 0x40
        eprocess = self.alloc(self.ts.sizeof("_EPROCESS"))
        self.table_addr = eprocess + self.ts.offset_of("_EPROCESS", "VadRoot")
        self.table = AvlTable(self.ts, self.mem, self.table_addr)
        self.table.init()
        self.made = 0

    def alloc(self, size, align=8):
        addr = -(-self.next // align) * align
        self.next = addr + size
        return addr

    def vad(self, start, end, protection=4):
        """A VAD of the next type in turn (they differ in size), with some flags set."""
        kind = VAD_TYPES[self.made % 3]
        self.made += 1
        addr = self.alloc(self.ts.sizeof(kind))
        self.mem.write(addr, self.ts.pack(kind, {
            "StartingVpn": start, "EndingVpn": end,
            "u.VadFlags.Protection": protection, "u.VadFlags.PrivateMemory": 1}))
        return addr

    def add(self, start, end, **kw):
        addr = self.vad(start, end, **kw)
        self.table.insert(addr)
        return addr

    def header(self, node):
        return self.ts.view(self.mem, "_MMVAD_SHORT", node)   # every VAD type starts so

    def snapshot(self):
        return bytes(self.mem.data)


def link(m, node, name):
    return m.ts.field(NODE, name).read(m.mem, node)


# -- brute-force models ---------------------------------------------------------------
def free_starts(model, size, lo, hi, align):
    used = [(s, e) for s, e in model.values()]
    return [s for s in range(-(-lo // align) * align, hi - size + 2, align)
            if all(s + size - 1 < a or s > b for a, b in used)]


def overlapping(model, start, end):
    hits = sorted((s, a) for a, (s, e) in model.items() if not (e < start or s > end))
    return hits[0][1] if hits else None


def containing(model, vpn):
    return next((a for a, (s, e) in model.items() if s <= vpn <= e), None)


def avl_height_bound(n):
    return 1.44 * math.log2(n + 2)


# -- layout ---------------------------------------------------------------------------
def test_empty_table_layout(target):
    m = Machine(target)
    ts, t, ta = m.ts, m.table, m.table_addr
    raw = m.mem.read(ta, ts.sizeof("_MM_AVL_TABLE"))
    want = ts.pack("_MM_AVL_TABLE", {"BalancedRoot.u1.Parent": ta})
    assert raw == want
    fields = ts.unpack("_MM_AVL_TABLE", raw)
    assert fields["BalancedRoot.u1.Parent"] == ta and fields["BalancedRoot.u1.Balance"] == 0
    assert fields["BalancedRoot.LeftChild"] == fields["BalancedRoot.RightChild"] == 0
    assert fields["DepthOfTree"] == fields["NumberGenericTableElements"] == 0
    assert fields["NodeHint"] == fields["NodeFreeHint"] == 0
    assert t.sentinel == ta and t.root is None and t.count == 0 and list(t) == []
    assert t.find(5) is None and t.find_first_overlap(0, 1 << 19) is None
    assert t.check() == []


def test_root_parent_is_table_and_sentinel_points_to_itself(target):
    m = Machine(target)
    t = m.table
    first = m.add(0x100, 0x10F)
    assert t.root == first and t.parent_of(first) == m.table_addr
    assert link(m, m.table_addr, "u1.Parent") == m.table_addr           # sentinel -> itself
    assert link(m, m.table_addr, "RightChild") == first
    assert (t.count, t.depth, t.node_hint) == (1, 1, first)
    for i in range(1, 40):
        m.add(0x100 + 0x10 * i, 0x10F + 0x10 * i)
    assert t.parent_of(t.root) == m.table_addr
    assert t.parent_of(m.table_addr) == m.table_addr
    assert t.check() == []


def test_balance_is_knuth_signed_in_parent_bits(target):
    m = Machine(target)
    root = m.add(10, 10)
    m.add(5, 5)                                             # left child: left-heavy
    assert link(m, root, "u1.Parent") & 3 == 0b11
    assert m.header(root).u1.Balance == -1 and m.table.balance_of(root) == -1
    m2 = Machine(target)
    root = m2.add(10, 10)
    m2.add(20, 20)                                          # right child: right-heavy
    assert link(m2, root, "u1.Parent") & 3 == 0b01 and m2.table.balance_of(root) == 1
    assert m2.table.parent_of(root) == m2.table_addr        # sanitized parent


def test_sentinel_balance_is_windows_scratch(target):
    m = Machine(target)
    sent = m.table_addr
    m.add(10, 10)
    m.add(20, 20)                   # the tree grew a level: MiInsertNode zeroes the scratch
    assert m.table.balance_of(sent) == 0 and m.table.depth == 2
    m.add(5, 5)                     # no growth: the scratch -1 stays (0b11)
    assert link(m, sent, "u1.Parent") == sent | 3 and m.table.depth == 2
    assert m.table.check() == []


def test_single_rotation(target):
    m = Machine(target)
    a, b, c = m.add(1, 1), m.add(2, 2), m.add(3, 3)
    t = m.table
    assert t.root == b and link(m, b, "LeftChild") == a and link(m, b, "RightChild") == c
    assert [t.balance_of(x) for x in (a, b, c)] == [0, 0, 0]
    assert t.parent_of(a) == t.parent_of(c) == b and t.depth == 2 and t.check() == []


def test_double_rotation(target):
    m = Machine(target)
    c, a, b = m.add(30, 30), m.add(10, 10), m.add(20, 20)
    t = m.table
    assert t.root == b and link(m, b, "LeftChild") == a and link(m, b, "RightChild") == c
    assert t.parent_of(b) == m.table_addr and t.check() == []


def test_remove_two_children_relinks_successor_and_keeps_its_fields(target):
    m = Machine(target)
    two = m.add(2, 2, protection=1)
    one, three = m.add(1, 1, protection=2), m.add(3, 3, protection=3)
    m.table.remove(two)             # balance 0: MiRemoveNode takes the subtree successor
    t = m.table
    assert t.root == three and link(m, three, "LeftChild") == one
    assert link(m, three, "RightChild") == 0 and t.balance_of(three) == -1
    assert t.parent_of(three) == m.table_addr and t.parent_of(one) == three
    assert m.header(three).u.VadFlags.Protection == 3 and m.header(one).u.VadFlags.Protection == 2
    assert (t.count, t.depth, t.node_hint) == (2, 2, three)
    assert t.check() == []


def test_remove_last_node_empties_table(target):
    m = Machine(target)
    only = m.add(7, 9)
    m.table.remove(only)
    t = m.table
    assert t.root is None and (t.count, t.depth, t.node_hint) == (0, 0, 0)
    assert t.parent_of(m.table_addr) == m.table_addr and t.check() == []
    again = m.add(7, 9)
    assert t.root == again and t.check() == []


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("start,end", [(0x10, 0x1F), (0x1F, 0x20), (0x0, 0x10),
                                       (0x0, 0x100), (0x14, 0x15)])
def test_overlap_is_rejected_and_writes_nothing(target, start, end):
    m = Machine(target)
    old = m.add(0x10, 0x1F)
    m.add(0x40, 0x4F)
    new = m.vad(start, end)
    before = m.snapshot()
    with pytest.raises(VadOverlapError, match="overlaps VAD %#x" % old):
        m.table.insert(new)
    assert m.snapshot() == before and m.table.check() == []


def test_bad_nodes_are_rejected(target):
    m = Machine(target)
    m.add(0x10, 0x1F)
    with pytest.raises(AvlError, match="aligned"):
        m.table.insert(m.vad(0x30, 0x3F) + 2)
    with pytest.raises(ValueError, match="StartingVpn"):
        m.table.insert(m.vad(0x50, 0x4F))
    stranger = m.vad(0x60, 0x6F)
    before = m.snapshot()
    with pytest.raises(AvlError, match="not in"):
        m.table.remove(stranger)
    assert m.snapshot() == before and m.table.check() == []


# -- hints ----------------------------------------------------------------------------
def test_node_hint_follows_insert_find_and_remove(target):
    m = Machine(target)
    t = m.table
    a, b, c = m.add(0x10, 0x1F), m.add(0x20, 0x2F), m.add(0x30, 0x3F)
    assert t.node_hint == c
    assert t.find(0x15) == a and t.node_hint == a
    before = m.snapshot()
    assert t.find(0x25, update_hint=False) == b and m.snapshot() == before
    assert t.find_first_overlap(0x2F, 0x30) == b and m.snapshot() == before
    t.remove(a)                                     # the hint was removed: it becomes the root
    assert t.node_hint == t.root == b
    t.remove(c)
    t.remove(b)
    assert t.node_hint == 0 and t.check() == []


def test_node_free_hint_naming_a_removed_node_is_cleared(target):
    m = Machine(target)
    a, b = m.add(0x10, 0x1F), m.add(0x20, 0x2F)
    m.ts.field("_MM_AVL_TABLE", "NodeFreeHint").write(m.mem, m.table_addr, a)
    assert m.table.check() == []
    m.table.remove(a)
    assert m.ts.field("_MM_AVL_TABLE", "NodeFreeHint").read(m.mem, m.table_addr) == 0
    assert m.table.check() == [] and list(m.table) == [b]


# -- gap search -----------------------------------------------------------------------
def test_gap_search_examples(target):
    m = Machine(target)
    t = m.table
    m.add(0x10, 0x1F)          # 0x10000-0x1ffff
    m.add(0x7FFE0, 0x7FFEF)    # KUSER_SHARED_DATA-like
    m.add(0x7FFD0, 0x7FFD0)
    assert t.first_free_range(0x10, 0x10, 0x7FFEF, False, 16) == 0x20
    assert t.first_free_range(0x10, 0x10, 0x7FFEF, True, 16) == 0x7FFC0
    assert t.first_free_range(1, 0x10, 0x7FFEF, True, 1) == 0x7FFDF
    assert t.first_free_range(0x11, 0x7FFC0, 0x7FFEF, True, 1) is None
    assert t.first_free_range(0xF, 0x7FFC0, 0x7FFEF, True, 1) == 0x7FFD1
    assert t.first_free_range(0x10, 0x7FFC0, 0x7FFEF, True, 1) == 0x7FFC0
    assert t.first_free_range(0xF, 0x7FFC0, 0x7FFEF, False, 1) == 0x7FFC0
    assert t.first_free_range(0x10, 0x0, 0x1F, False, 16) == 0x0
    assert t.first_free_range(0x11, 0x0, 0x2F, False, 1) is None
    with pytest.raises(ValueError):
        t.first_free_range(0, 0, 10)


def test_ranges_walk_from_a_bound_both_ways(target):
    m = Machine(target)
    spans = [(i * 8, i * 8 + 3) for i in range(50)]
    nodes = {m.add(s, e): (s, e) for s, e in random.Random(4).sample(spans, len(spans))}
    rows = sorted((s, e, a) for a, (s, e) in nodes.items())
    for bound in (0, 3, 4, 9, 200, 395, 396, 500):
        fwd = [(s, e, a) for s, e, a in rows if e >= bound]
        rev = [(s, e, a) for s, e, a in reversed(rows) if s <= bound]
        assert [(s, e, a) for a, s, e in m.table.ranges(bound)] == fwd
        assert [(s, e, a) for a, s, e in m.table.ranges(bound, reverse=True)] == rev
    assert [(s, e, a) for a, s, e in m.table.ranges(reverse=True)] == rows[::-1]
    assert [(s, e, a) for a, s, e in m.table.ranges()] == rows


# -- random sequences against a Python model -------------------------------------------
UNIVERSE = 400


def check_against_model(m, model, rnd):
    t = m.table
    assert t.check() == []
    assert [(s, e) for _, s, e in t.ranges()] == sorted(model.values())
    assert t.nodes_in_order() == sorted(model, key=lambda a: model[a][0])
    assert t.count == len(model)
    assert t.depth <= avl_height_bound(len(model))
    for _ in range(3):
        vpn = rnd.randrange(UNIVERSE + 20)
        assert t.find(vpn, update_hint=False) == containing(model, vpn)
        lo = rnd.randrange(UNIVERSE)
        hi = lo + rnd.randrange(30)
        assert t.find_first_overlap(lo, hi) == overlapping(model, lo, hi)
    size, align = rnd.randrange(1, 40), rnd.choice((1, 2, 4, 16))
    lo = rnd.randrange(UNIVERSE // 2)
    hi = lo + rnd.randrange(UNIVERSE)
    fits = free_starts(model, size, lo, hi, align)
    assert t.first_free_range(size, lo, hi, False, align) == (fits[0] if fits else None)
    assert t.first_free_range(size, lo, hi, True, align) == (fits[-1] if fits else None)


@pytest.mark.parametrize("target", PROFILE_NAMES)
@settings(derandomize=True, max_examples=20, deadline=None)
@given(data=st.data())
def test_random_inserts_and_removes_keep_every_invariant(target, data):
    m = Machine(target, size=1 << 16)
    model = {}
    seed = data.draw(st.integers(0, 1 << 30), label="probe seed")
    rnd = random.Random(seed)
    for _ in range(data.draw(st.integers(1, 90), label="steps")):
        if model and data.draw(st.integers(0, 99)) < 30:
            node = data.draw(st.sampled_from(sorted(model)))
            m.table.remove(node)
            del model[node]
        else:
            start = data.draw(st.integers(0, UNIVERSE - 1))
            end = start + data.draw(st.integers(0, 7))
            node = m.vad(start, end)
            if overlapping(model, start, end) is not None:
                before = m.snapshot()
                with pytest.raises(VadOverlapError):
                    m.table.insert(node)
                assert m.snapshot() == before
            else:
                m.table.insert(node)
                model[node] = (start, end)
                assert m.table.node_hint == node
        check_against_model(m, model, rnd)


class RecordingTable(AvlTable):
    cases: set

    def _rebalance(self, s):
        a = self._bal(s)
        r = self._n(s)[avl._R if a == 1 else avl._L]
        rb = self._bal(r)
        self.cases.add((self.phase, 1 if rb == a else 2 if rb == -a else 3))
        return super()._rebalance(s)


@pytest.mark.parametrize("target", ["win7-x64", "wrk-x86"])
def test_long_random_sequence_hits_every_rotation_case(target):
    m = Machine(target, size=1 << 20)
    t = m.table = RecordingTable(m.ts, m.mem, m.table_addr)
    t.cases = set()
    rnd = random.Random(1234)
    model = {}
    for step in range(1500):
        if model and rnd.random() < 0.45:
            t.phase = "remove"
            node = rnd.choice(sorted(model))
            t.remove(node)
            del model[node]
        else:
            t.phase = "insert"
            start = rnd.randrange(1 << 16)
            end = start + rnd.randrange(4)
            if overlapping(model, start, end) is None:
                model[m.add(start, end)] = (start, end)
        if step < 300 or step % 50 == 0:
            assert t.check() == []
    assert t.check() == []
    assert [(s, e) for _, s, e in t.ranges()] == sorted(model.values())
    assert t.depth <= avl_height_bound(len(model))
    assert {("insert", 1), ("insert", 2), ("remove", 1), ("remove", 2),
            ("remove", 3)} <= t.cases
    assert ("insert", 3) not in t.cases                 # Knuth: impossible on insert


def test_other_vad_fields_survive_rebalancing(target):
    m = Machine(target)
    rnd = random.Random(7)
    prot = {}
    for i in rnd.sample(range(200), 120):
        prot[m.add(i * 4, i * 4 + 1, protection=i % 32)] = i % 32
    for node in rnd.sample(sorted(prot), 60):
        m.table.remove(node)
        del prot[node]
    for node, p in prot.items():
        v = m.header(node)
        assert v.u.VadFlags.Protection == p and v.u.VadFlags.PrivateMemory == 1
    assert m.table.check() == []


def test_ascending_inserts_build_a_perfect_tree(target):
    m = Machine(target)
    for i in range(127):                    # WRK: collated order gives best-case fill
        m.add(i * 2, i * 2)
    assert m.table.depth == 7 and m.table.check() == []


# -- the validator catches corruption --------------------------------------------------
def corruptible(target):
    m = Machine(target)
    for i in random.Random(9).sample(range(40), 30):
        m.add(i * 16, i * 16 + 7)
    assert m.table.check() == []
    return m


def expect(m, fragment):
    errs = m.table.check()
    assert errs, "check() missed the corruption"
    assert any(fragment in e for e in errs), errs


def leaf(m):
    return next(a for a in m.table if not link(m, a, "LeftChild")
                and not link(m, a, "RightChild"))


def test_check_catches_corrupted_balance(target):
    m = corruptible(target)
    node = leaf(m)
    m.ts.field(NODE, "u1.Balance").write(m.mem, node, 1)
    expect(m, "balance 1 but height(right) - height(left) = 0")


def test_check_catches_invalid_balance_bits(target):
    m = corruptible(target)
    m.ts.field(NODE, "u1.Balance").write(m.mem, m.table.root, -2)
    expect(m, "0b10")


def test_check_catches_broken_parent_link(target):
    m = corruptible(target)
    node = leaf(m)
    bal = m.table.balance_of(node)
    m.ts.field(NODE, "u1.Parent").write(m.mem, node, m.table.root | (bal & 3))
    expect(m, "node %#x: u1.Parent is %#x" % (node, m.table.root))


def test_check_catches_root_parent_not_table(target):
    m = corruptible(target)
    m.ts.field(NODE, "u1.Parent").write(m.mem, m.table.root, 0)
    expect(m, "hangs under %#x" % m.table_addr)


def test_check_catches_overlapping_ranges(target):
    m = corruptible(target)
    first, second = m.table.nodes_in_order()[:2]
    m.ts.field(NODE, "EndingVpn").write(m.mem, first, m.header(second).StartingVpn)
    expect(m, "nodes overlap")


def test_check_catches_out_of_order_keys(target):
    m = corruptible(target)
    first, second = m.table.nodes_in_order()[:2]
    m.ts.field(NODE, "StartingVpn").write(m.mem, second, 0)
    m.ts.field(NODE, "EndingVpn").write(m.mem, second, 0)
    expect(m, "not increasing")


def test_check_catches_wrong_count(target):
    m = corruptible(target)
    m.ts.field("_MM_AVL_TABLE", "NumberGenericTableElements").write(m.mem, m.table_addr, 31)
    expect(m, "NumberGenericTableElements is 31 but the tree holds 30 nodes")


def test_check_catches_wrong_depth(target):
    m = corruptible(target)
    depth = m.table.depth
    m.ts.field("_MM_AVL_TABLE", "DepthOfTree").write(m.mem, m.table_addr, depth + 1)
    expect(m, "DepthOfTree is %d" % (depth + 1))


def test_check_catches_broken_sentinel(target):
    m = corruptible(target)
    m.ts.field("_MM_AVL_TABLE", "BalancedRoot.u1.Parent").write(m.mem, m.table_addr, 0)
    expect(m, "not the sentinel itself")
    m = corruptible(target)
    m.ts.field("_MM_AVL_TABLE", "BalancedRoot.LeftChild").write(m.mem, m.table_addr, leaf(m))
    expect(m, "sentinel LeftChild")


def test_check_catches_cycles_and_wild_pointers(target):
    m = corruptible(target)
    m.ts.field(NODE, "LeftChild").write(m.mem, leaf(m), m.table.root)
    expect(m, "already reached")
    m = corruptible(target)
    wild = m.mem.base + len(m.mem.data) + 0x1000
    m.ts.field(NODE, "RightChild").write(m.mem, leaf(m), wild)
    expect(m, "unreadable")
    m = corruptible(target)
    m.ts.field(NODE, "RightChild").write(m.mem, leaf(m), m.table.root + 2)
    expect(m, "not 4-byte aligned")


def test_check_catches_a_stale_node_hint(target):
    m = corruptible(target)
    m.ts.field("_MM_AVL_TABLE", "NodeHint").write(m.mem, m.table_addr, m.vad(0x900, 0x901))
    expect(m, "NodeHint")
