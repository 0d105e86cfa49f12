"""An independent validator of a VAD tree (``_MM_AVL_TABLE``) in guest memory.

It reads memory only, through the profile's field layouts, and shares no code with
:mod:`kdsim.nt.avl`, so a bug in the tree operations cannot hide behind the same bug here.
The project's invariant checker calls :func:`check_table` (via ``AvlTable.check``).

Invariants (see the :mod:`kdsim.nt.avl` docstring for where they come from):

* the sentinel ``BalancedRoot``: ``u1.Parent`` is itself, its scratch balance is 0 or -1,
  LeftChild is NULL, its StartingVpn/EndingVpn are 0;
* every node is 4-byte aligned, readable, reached once, and its sanitized ``u1.Parent`` is the
  node it hangs under (``&BalancedRoot`` for the root);
* balance = height(right) - height(left), encoded as a valid 2-bit value (not 0b10), and
  |difference| <= 1;
* StartingVpn <= EndingVpn; the in-order walk is strictly increasing and non-overlapping;
* NumberGenericTableElements is the node count, DepthOfTree is min(height, 31);
* NodeHint and NodeFreeHint are NULL or nodes of the tree.
"""
from __future__ import annotations

from typing import List

__all__ = ["check_table"]

NODE = "_MMADDRESS_NODE"
TABLE = "_MM_AVL_TABLE"
_DEPTH_MAX = 31


def check_table(ts, mem, table_addr: int) -> List[str]:
    """The list of broken invariants of the table at ``table_addr`` ([] when sound)."""
    errs: List[str] = []
    names = ("u1.Parent", "u1.Balance", "LeftChild", "RightChild", "StartingVpn", "EndingVpn")
    fields = [ts.field(NODE, n) for n in names]
    size = ts.sizeof(NODE)

    def header(addr):
        buf = mem.read(addr, size)
        return tuple(f.unpack_from(buf) for f in fields)

    sent = table_addr + ts.offset_of(TABLE, "BalancedRoot")
    try:
        s_parent, s_bal, s_left, root, s_start, s_end = header(sent)
        count = ts.field(TABLE, "NumberGenericTableElements").read(mem, table_addr)
        depth = ts.field(TABLE, "DepthOfTree").read(mem, table_addr)
        hints = [(n, ts.field(TABLE, n).read(mem, table_addr))
                 for n in ("NodeHint", "NodeFreeHint")]
    except Exception as exc:                                    # noqa: BLE001
        return ["table %#x unreadable (%s)" % (table_addr, exc)]

    if s_parent & ~3 != sent:
        errs.append("sentinel BalancedRoot.u1.Parent is %#x, not the sentinel itself (%#x)"
                    % (s_parent & ~3, sent))
    if s_bal not in (0, -1):
        errs.append("sentinel balance is %d (Windows leaves only 0 or -1 there)" % s_bal)
    if s_left:
        errs.append("sentinel LeftChild is %#x, not NULL" % s_left)
    if s_start or s_end:
        errs.append("sentinel StartingVpn/EndingVpn are %#x/%#x, not 0" % (s_start, s_end))

    # Pass 1: depth-first from the root; every node read once.
    info: dict = {}
    kids: dict = {}
    pre: list = []
    top = [root]                            # a one-slot "kids" list for the sentinel
    stack = [(root, sent, top, 0)] if root else []
    while stack:
        node, parent, owner, side = stack.pop()
        where = "BalancedRoot.RightChild" if parent == sent else (
            "%s of %#x" % ("LeftChild" if side == 0 else "RightChild", parent))
        if node & 3:
            errs.append("%s is %#x, not 4-byte aligned" % (where, node))
            owner[side] = 0
            continue
        if node in info:
            errs.append("%s is %#x, a node already reached (cycle or shared child)"
                        % (where, node))
            owner[side] = 0
            continue
        try:
            h = header(node)
        except Exception as exc:                                # noqa: BLE001
            errs.append("%s is %#x, which is unreadable (%s)" % (where, node, exc))
            owner[side] = 0
            continue
        p, bal, left, right, start, end = h
        info[node] = h
        kids[node] = [left, right]
        pre.append(node)
        if p & ~3 != parent:
            errs.append("node %#x: u1.Parent is %#x but it hangs under %#x"
                        % (node, p & ~3, parent))
        if bal == -2:
            errs.append("node %#x: balance bits are 0b10, not a valid balance" % node)
        if start > end:
            errs.append("node %#x: StartingVpn %#x > EndingVpn %#x" % (node, start, end))
        for s, child in ((1, right), (0, left)):
            if child:
                stack.append((child, node, kids[node], s))

    # Pass 2: heights bottom-up (children come after their parent in `pre`).
    height: dict = {0: 0}
    for node in reversed(pre):
        left, right = kids[node]
        hl, hr = height[left], height[right]
        height[node] = 1 + max(hl, hr)
        bal = info[node][1]
        if abs(hr - hl) > 1:
            errs.append("node %#x: not AVL, right subtree height %d vs left %d"
                        % (node, hr, hl))
        if bal != -2 and bal != hr - hl:
            errs.append("node %#x: balance %d but height(right) - height(left) = %d"
                        % (node, bal, hr - hl))

    # Pass 3: address order.
    order, path, node = [], [], top[0]
    while path or node:
        while node:
            path.append(node)
            node = kids[node][0]
        node = path.pop()
        order.append(node)
        node = kids[node][1]
    for a, b in zip(order, order[1:]):
        sa, ea = info[a][4], info[a][5]
        sb, eb = info[b][4], info[b][5]
        if sb <= sa:
            errs.append("in-order walk not increasing: %#x [%#x-%#x] then %#x [%#x-%#x]"
                        % (a, sa, ea, b, sb, eb))
        elif sb <= ea:
            errs.append("nodes overlap: %#x [%#x-%#x] and %#x [%#x-%#x]"
                        % (a, sa, ea, b, sb, eb))

    if count != len(pre):
        errs.append("NumberGenericTableElements is %d but the tree holds %d nodes"
                    % (count, len(pre)))
    want = min(height[top[0]], _DEPTH_MAX)
    if depth != want:
        errs.append("DepthOfTree is %d but the tree's height is %d" % (depth, height[top[0]]))
    for name, value in hints:
        if value and value not in info:
            errs.append("%s is %#x, not a node of the tree" % (name, value))
    return errs
