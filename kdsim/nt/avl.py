"""The VAD AVL tree (``_MM_AVL_TABLE`` of ``_MMADDRESS_NODE``), kept in guest memory.

    vads = AvlTable(ts, mem, eprocess + ts.offset_of("_EPROCESS", "VadRoot"))
    vads.init()                                  # an empty table, as MiInitializeVadTableAvl
    vads.insert(vad)                             # the caller wrote StartingVpn/EndingVpn
    vads.find(0x7ffe0)  -> vad address or None
    vads.remove(vad)                             # the caller frees the VAD's pool block
    assert vads.check() == []

The algorithms follow the WRK's ``base/ntos/mm/addrsup.c`` (MiInsertNode, MiRemoveNode,
MiRebalanceNode, MiPromoteNode), so a sequence of operations leaves the same links, balances,
depth and sentinel bits that Windows leaves:

* ``BalancedRoot`` is a sentinel whose ``u1.Parent`` is itself; the real root hangs at
  ``BalancedRoot.RightChild`` and the root's parent is ``&BalancedRoot``.
* ``u1`` packs the parent with a 2-bit signed balance (``MI_MAKE_PARENT(p, b) = p | (b & 3)``,
  ``SANITIZE_PARENT_NODE(p) = p & ~3``), so nodes must be 4-byte aligned.
* Balance convention (Knuth's): balance = height(right) - height(left); -1 = 0b11 left-heavy,
  +1 = 0b01 right-heavy. MiInsertNode sets a parent to -1 when the new node is its left child.
* Windows uses the sentinel's balance as scratch: insertion sets it to -1 and it returns to 0
  only when the tree grew a level; deletion zeroes it and it becomes -1 when the tree lost a
  level. So after an operation the sentinel's balance is 0 or -1 (0b11), and ``check`` accepts
  both. ``init`` writes 0.
* ``DepthOfTree`` is the height counting the root as 1 (0 when empty), adjusted exactly where
  MiInsertNode/MiRemoveNode adjust it; kdsim caps it at 31, the largest its 5 bits hold.
* ``NodeHint`` is the node last inserted (MiInsertVad) or found (MiLocateAddress); a removed
  hint becomes the root, or NULL when the table empties. ``NodeFreeHint`` stays NULL (nothing
  in the WRK tree code sets it) and is cleared if it names a removed node.
* Keys are StartingVpn; ranges are inclusive ``[StartingVpn, EndingVpn]`` and never overlap.

Each operation reads a node's header (u1, LeftChild, RightChild, StartingVpn, EndingVpn) with
one ``mem.read``, keeps the links it changes in a small write-back cache and writes each
touched node's links with one ``mem.write`` at the end, so a failed operation writes nothing.
"""
from __future__ import annotations

import operator
import struct
from typing import Iterator, List, Optional, Tuple

__all__ = ["AvlTable", "AvlError", "VadOverlapError", "DEPTH_MAX"]

NODE = "_MMADDRESS_NODE"
TABLE = "_MM_AVL_TABLE"
DEPTH_MAX = 31                  # DepthOfTree is a 5-bit field
_PW, _L, _R, _S, _E, _DIRTY = range(6)
_MAX_PATH = 128                 # deeper than any AVL tree a 56-bit count allows


class AvlError(Exception):
    """The table cannot do what was asked (node not in the tree, table full, corrupt links)."""


class VadOverlapError(AvlError, ValueError):
    """The node's range overlaps a node already in the table."""

    def __init__(self, node: int, start: int, end: int, other: int, ostart: int, oend: int):
        super().__init__("VAD %#x [%#x-%#x] overlaps VAD %#x [%#x-%#x]"
                         % (node, start, end, other, ostart, oend))
        self.node, self.other = node, other


def _balance(pw: int) -> int:
    b = pw & 3
    return b - 4 if b & 2 else b         # 0b11 -> -1; 0b10 (-2) never valid


class AvlTable:
    """An ``_MM_AVL_TABLE`` at ``table_addr`` in ``mem``; nodes are ``_MMADDRESS_NODE``-headed
    structures (``_MMVAD_SHORT``/``_MMVAD``/``_MMVAD_LONG``) already written by the caller."""

    def __init__(self, ts, mem, table_addr: int):
        self.ts, self.mem, self.table = ts, mem, table_addr
        self.ptr_size = ps = ts.pointer_size
        f = ts.field
        parent, bal = f(NODE, "u1.Parent"), f(NODE, "u1.Balance")
        if (bal.offset, bal.bit_pos, bal.bit_width) != (parent.offset, 0, 2):
            raise AvlError("%s: u1.Balance is not bits 0-1 of u1.Parent" % ts.target)
        hdr = [parent, f(NODE, "LeftChild"), f(NODE, "RightChild"),
               f(NODE, "StartingVpn"), f(NODE, "EndingVpn")]
        # One struct for the whole header, built from the profile's offsets.
        order = sorted(range(5), key=lambda i: hdr[i].offset)
        fmt, pos = "<", 0
        for i in order:
            fl = hdr[i]
            if fl.offset < pos or fl.size not in (4, 8):
                raise AvlError("%s: unexpected %s layout" % (ts.target, NODE))
            fmt += "%dx%s" % (fl.offset - pos, "I" if fl.size == 4 else "Q")
            pos = fl.offset + fl.size
        self._hdr = struct.Struct(fmt)
        self._hdr_size = self._hdr.size
        back = [order.index(i) for i in range(5)]
        self._canon = operator.itemgetter(*back)            # struct order -> (pw,l,r,s,e)
        self._o_links = [hdr[i].offset for i in range(3)]
        self._ptr = struct.Struct("<I" if ps == 4 else "<Q")
        self._links3 = (self._o_links == [self._o_links[0] + k * ps for k in range(3)]
                        and struct.Struct("<3" + ("I" if ps == 4 else "Q")))
        self.sentinel = table_addr + ts.offset_of(TABLE, "BalancedRoot")
        self._f_depth = f(TABLE, "DepthOfTree")
        self._f_count = f(TABLE, "NumberGenericTableElements")
        self._f_hint = f(TABLE, "NodeHint")
        self._f_free = f(TABLE, "NodeFreeHint")
        self._table_size = ts.sizeof(TABLE)
        self._tail = min(x.offset for x in (self._f_depth, self._f_hint, self._f_free))
        self.max_count = self._f_count.mask
        self._c: dict = {}

    def __repr__(self) -> str:
        return "AvlTable(%s, %#x)" % (self.ts.target, self.table)

    def _too_deep(self) -> AvlError:
        return AvlError("%r: a path longer than %d nodes (corrupt links?)" % (self, _MAX_PATH))

    # -- table fields ------------------------------------------------------------------
    def init(self) -> None:
        """Write an empty table: everything zero but BalancedRoot.u1.Parent = &BalancedRoot."""
        self.mem.write(self.table, self.ts.pack(TABLE, {"BalancedRoot.u1.Parent": self.sentinel}))

    @property
    def count(self) -> int:
        return self._f_count.read(self.mem, self.table)

    @property
    def depth(self) -> int:
        return self._f_depth.read(self.mem, self.table)

    @property
    def node_hint(self) -> int:
        return self._f_hint.read(self.mem, self.table)

    @property
    def root(self) -> Optional[int]:
        """The real root (BalancedRoot.RightChild), or None when the table is empty."""
        return self.read_header(self.sentinel)[_R] or None

    def read_header(self, node: int) -> Tuple[int, int, int, int, int]:
        """``(u1 word, LeftChild, RightChild, StartingVpn, EndingVpn)`` of ``node``."""
        return self._canon(self._hdr.unpack(self.mem.read(node, self._hdr_size)))

    def parent_of(self, node: int) -> int:
        return self.read_header(node)[_PW] & ~3

    def balance_of(self, node: int) -> int:
        return _balance(self.read_header(node)[_PW])

    # -- look-ups (read only, except find's NodeHint) ----------------------------------
    def find(self, vpn: int, update_hint: bool = True) -> Optional[int]:
        """The node whose [StartingVpn, EndingVpn] contains ``vpn`` (MiLocateAddress), which
        becomes NodeHint unless ``update_hint`` is false."""
        node = self.read_header(self.sentinel)[_R]
        for _ in range(_MAX_PATH):
            if not node:
                return None
            _, left, right, start, end = self.read_header(node)
            if vpn < start:
                node = left
            elif vpn > end:
                node = right
            else:
                if update_hint and self.node_hint != node:
                    self._f_hint.write(self.mem, self.table, node)
                return node
        raise self._too_deep()

    def find_first_overlap(self, start_vpn: int, end_vpn: int) -> Optional[int]:
        """The lowest node overlapping [start_vpn, end_vpn] (inclusive), or None."""
        node, best = self.read_header(self.sentinel)[_R], None
        for _ in range(_MAX_PATH):
            if not node:
                break
            _, left, right, start, end = self.read_header(node)
            if end < start_vpn:
                node = right
            else:                   # every node after this one ends above start_vpn too
                best = (node, start)
                node = left
        else:
            raise self._too_deep()
        return best[0] if best is not None and best[1] <= end_vpn else None

    def __iter__(self) -> Iterator[int]:
        for node, _, _ in self.ranges():
            yield node

    def nodes_in_order(self) -> List[int]:
        return list(self)

    def ranges(self, from_vpn: Optional[int] = None, reverse: bool = False,
               ) -> Iterator[Tuple[int, int, int]]:
        """``(node, StartingVpn, EndingVpn)`` in address order: forward from the first node
        ending at or above ``from_vpn``; ``reverse=True`` goes down from the last node
        starting at or below ``from_vpn``. ``None``: from the first (or last) node."""
        rd = self.read_header
        near, far = (_R, _L) if reverse else (_L, _R)
        limit = self.count
        stack: list = []
        node = rd(self.sentinel)[_R]
        while node:                         # the path to the bound
            h = rd(node)
            if from_vpn is None or ((h[_S] <= from_vpn) if reverse else (h[_E] >= from_vpn)):
                stack.append((node, h))
                node = h[near]
            else:
                node = h[far]
            if len(stack) > _MAX_PATH:
                raise self._too_deep()
        done = 0
        while stack:
            node, h = stack.pop()
            done += 1
            if done > limit:
                raise AvlError("%r: more nodes than NumberGenericTableElements (%d)"
                               % (self, limit))
            yield node, h[_S], h[_E]
            child = h[far]
            while child:
                ch = rd(child)
                stack.append((child, ch))
                child = ch[near]
                if len(stack) > _MAX_PATH:
                    raise self._too_deep()

    def first_free_range(self, size_vpns: int, lowest_vpn: int, highest_vpn: int,
                         top_down: bool = False, alignment_vpns: int = 1) -> Optional[int]:
        """The lowest (or with ``top_down`` the highest) StartingVpn ``s``, a multiple of
        ``alignment_vpns`` (16 = the 64 KB allocation granularity), such that
        [s, s + size_vpns - 1] lies inside [lowest_vpn, highest_vpn] and overlaps no node;
        None if there is none."""
        if size_vpns < 1 or alignment_vpns < 1:
            raise ValueError("size_vpns and alignment_vpns must be positive")
        a = alignment_vpns
        if not top_down:
            lo = lowest_vpn
            for _, start, end in self.ranges(lowest_vpn):
                if start > highest_vpn:
                    break
                s = -(-lo // a) * a
                if s + size_vpns <= start:          # the gap is [lo, start - 1]
                    return s if s + size_vpns - 1 <= highest_vpn else None
                lo = max(lo, end + 1)
            s = -(-lo // a) * a
            return s if s + size_vpns - 1 <= highest_vpn else None
        hi = highest_vpn
        for _, start, end in self.ranges(highest_vpn, reverse=True):
            if end < lowest_vpn:
                break
            s = (hi - size_vpns + 1) // a * a
            if s > end:                             # the gap is [end + 1, hi]
                return s if s >= lowest_vpn else None
            hi = min(hi, start - 1)
        s = (hi - size_vpns + 1) // a * a
        return s if s >= lowest_vpn else None

    # -- the per-operation link cache --------------------------------------------------
    def _n(self, node: int) -> list:
        e = self._c.get(node)
        if e is None:
            e = self._c[node] = list(self.read_header(node)) + [False]
        return e

    def _flush(self) -> None:
        w, links3 = self.mem.write, self._links3
        o = self._o_links
        for node, e in self._c.items():
            if e[_DIRTY]:
                if links3:
                    w(node + o[0], links3.pack(e[_PW], e[_L], e[_R]))
                else:
                    for k in range(3):
                        w(node + o[k], self._ptr.pack(e[k]))
        self._c = {}

    def _bal(self, n: int) -> int:
        return _balance(self._n(n)[_PW])

    def _set_bal(self, n: int, b: int) -> None:
        e = self._n(n)
        e[_PW] = (e[_PW] & ~3) | (b & 3)
        e[_DIRTY] = True

    def _parent(self, n: int) -> int:
        return self._n(n)[_PW] & ~3

    def _set_parent(self, n: int, p: int) -> None:          # MI_MAKE_PARENT(p, n.Balance)
        e = self._n(n)
        e[_PW] = p | (e[_PW] & 3)
        e[_DIRTY] = True

    def _set(self, n: int, side: int, child: int) -> None:
        e = self._n(n)
        e[side] = child
        e[_DIRTY] = True

    def _promote(self, c: int) -> None:
        """MiPromoteNode: rotate ``c`` above its parent; balances are the caller's job."""
        p = self._parent(c)
        g = self._parent(p)
        ce, pe = self._n(c), self._n(p)
        if pe[_L] == c:
            self._set(p, _L, ce[_R])
            if pe[_L]:
                self._set_parent(pe[_L], p)
            self._set(c, _R, p)
        else:
            self._set(p, _R, ce[_L])
            if pe[_R]:
                self._set_parent(pe[_R], p)
            self._set(c, _L, p)
        self._set_parent(p, c)
        self._set(g, _L if self._n(g)[_L] == p else _R, c)
        self._set_parent(c, g)

    def _rebalance(self, s: int) -> bool:
        """MiRebalanceNode (Knuth A7-A10 plus the delete-only case 3); True for case 3,
        where the subtree kept its height."""
        a = self._bal(s)
        r = self._n(s)[_R if a == 1 else _L]
        if self._bal(r) == a:                               # case 1: single rotation
            self._promote(r)
            self._set_bal(r, 0)
            self._set_bal(s, 0)
            return False
        if self._bal(r) == -a:                              # case 2: double rotation
            p = self._n(r)[_L if a == 1 else _R]
            self._promote(p)
            self._promote(p)
            self._set_bal(s, 0)
            self._set_bal(r, 0)
            if self._bal(p) == a:
                self._set_bal(s, -a)
            elif self._bal(p) == -a:
                self._set_bal(r, a)
            self._set_bal(p, 0)
            return False
        self._promote(r)                                    # case 3 (delete only)
        self._set_bal(r, -a)
        return True

    def _read_table(self) -> bytearray:
        return bytearray(self.mem.read(self.table, self._table_size))

    def _write_table(self, t: bytearray, count: int, depth: int, hint: int, free: int) -> None:
        if depth > DEPTH_MAX:
            depth = DEPTH_MAX
        self._f_count.pack_into(t, count)
        self._f_depth.pack_into(t, depth)
        self._f_hint.pack_into(t, hint)
        self._f_free.pack_into(t, free)
        self.mem.write(self.table + self._tail, bytes(t[self._tail:]))

    # -- insert / remove ---------------------------------------------------------------
    def insert(self, node: int) -> None:
        """MiInsertNode + MiInsertVad's NodeHint; raises VadOverlapError before writing
        anything if the node's range overlaps one in the table."""
        if node & 3 or not node:
            raise AvlError("node %#x is not 4-byte aligned (u1 keeps the balance in bits 0-1)"
                           % node)
        self._c = {}
        t = self._read_table()
        count, depth = self._f_count.unpack_from(t), self._f_depth.unpack_from(t)
        ne = self._n(node)
        start, end = ne[_S], ne[_E]
        if start > end:
            raise ValueError("node %#x: StartingVpn %#x > EndingVpn %#x" % (node, start, end))
        if count >= self.max_count:
            raise AvlError("%r is full (%d nodes)" % (self, count))
        sent = self.sentinel
        parent, side, cur = 0, _R, self._n(sent)[_R]
        for _ in range(_MAX_PATH):
            if not cur:
                break
            ce = self._n(cur)
            if end < ce[_S]:
                parent, side, cur = cur, _L, ce[_L]
            elif start > ce[_E]:
                parent, side, cur = cur, _R, ce[_R]
            else:
                self._c = {}
                raise VadOverlapError(node, start, end, cur, ce[_S], ce[_E])
        else:
            raise self._too_deep()
        ne[_L] = ne[_R] = 0
        ne[_PW] = (parent or sent)                          # balance 0
        ne[_DIRTY] = True
        if not parent:                                      # empty tree
            self._set(sent, _R, node)
            depth = 1
        else:
            self._set(parent, side, node)
            self._set_bal(sent, -1)         # scratch: returns to 0 iff the tree grows a level
            r, s = node, parent
            while True:
                a = -1 if self._n(self._parent(r))[_L] == r else 1
                b = self._bal(s)
                if b == 0:
                    self._set_bal(s, a)
                    r, s = s, self._parent(s)
                elif b != a:
                    self._set_bal(s, 0)
                    if self._bal(sent) == 0:
                        depth += 1
                    break
                else:
                    self._rebalance(s)
                    break
        free = self._f_free.unpack_from(t)
        self._flush()
        self._write_table(t, count + 1, depth, node, free)

    def remove(self, node: int) -> None:
        """MiRemoveNode. The node's memory keeps its (now stale) links; the caller frees it."""
        self._c = {}
        t = self._read_table()
        count, depth = self._f_count.unpack_from(t), self._f_depth.unpack_from(t)
        sent = self.sentinel
        self._require_member(node)
        ne = self._n(node)
        if not ne[_L] or not ne[_R]:
            easy = node
        elif _balance(ne[_PW]) >= 0:                        # delete from the longer side
            easy = ne[_R]
            while self._n(easy)[_L]:
                easy = self._n(easy)[_L]
        else:
            easy = ne[_L]
            while self._n(easy)[_R]:
                easy = self._n(easy)[_R]
        ee = self._n(easy)
        parent = self._parent(easy)
        child = ee[_R] if not ee[_L] else ee[_L]
        if self._n(parent)[_L] == easy:
            self._set(parent, _L, child)
            a = -1
        else:
            self._set(parent, _R, child)
            a = 1
        if child:
            self._set_parent(child, parent)
        self._set_bal(sent, 0)              # scratch: becomes -1 iff the tree loses a level
        shrank = False
        p = parent
        while True:
            b = self._bal(p)
            if b == a:
                self._set_bal(p, 0)
            elif b == 0:
                self._set_bal(p, -a)
                if self._bal(sent) != 0:
                    shrank = True
                break
            else:
                if self._rebalance(p):
                    break
                p = self._parent(p)
            a = 1 if self._n(self._parent(p))[_R] == p else -1
            p = self._parent(p)
        if easy != node:    # VADs differ in size: relink the easy node in place of the node
            ne, ee = self._n(node), self._n(easy)
            ee[_PW], ee[_L], ee[_R], ee[_DIRTY] = ne[_PW], ne[_L], ne[_R], True
            gp = ne[_PW] & ~3
            self._set(gp, _L if self._n(gp)[_L] == node else _R, easy)
            for side in (_L, _R):
                if ee[side]:
                    self._set_parent(ee[side], easy)
        hint, free = self._f_hint.unpack_from(t), self._f_free.unpack_from(t)
        if hint == node:
            hint = self._n(sent)[_R]
        if free == node:
            free = 0
        self._flush()
        if shrank:
            depth = self._height() if depth >= DEPTH_MAX else depth - 1
        self._write_table(t, count - 1, depth, hint, free)

    def _require_member(self, node: int) -> None:
        start = self._n(node)[_S]
        cur = self._n(self.sentinel)[_R]
        for _ in range(_MAX_PATH):
            if not cur or cur == node:
                break
            ce = self._n(cur)
            cur = ce[_L] if start < ce[_S] else ce[_R]
        if cur != node:
            self._c = {}
            raise AvlError("node %#x is not in %r" % (node, self))

    def _height(self) -> int:
        """The tree's height by walking it (used only once DepthOfTree is at its cap)."""
        best, stack = 0, [(self.read_header(self.sentinel)[_R], 1)]
        while stack:
            node, d = stack.pop()
            if node:
                h = self.read_header(node)
                best = max(best, d)
                stack += [(h[_L], d + 1), (h[_R], d + 1)]
        return best

    # -- validation ----------------------------------------------------------------------
    def check(self) -> List[str]:
        """Every broken invariant, found by reading memory only; [] when the table is sound.
        The validator is :func:`kdsim.nt.vadtree.check_table`, which shares no code with
        the operations above."""
        from .vadtree import check_table
        return check_table(self.ts, self.mem, self.table)
