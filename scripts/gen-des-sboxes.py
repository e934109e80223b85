#!/usr/bin/env python3
"""Generates crates/core/src/provider/bitsliced_des/sboxes.rs: the eight DES S-boxes as boolean circuits
for the bitsliced DES in crates/core/src/provider/bitsliced_des/mod.rs.

Each output bit of an S-box is a function of its six input bits. It is split (Shannon
expansion) on three of the inputs into eight functions of the other three; each of those is
written as the smallest expression over AND, OR, XOR, AND-NOT and NOT (found by exhaustive
search over all 256 three-input functions), and the eight are joined by a tree of
multiplexers. Every node is identified by its 64-entry truth table, so a node two outputs need
is computed once. For each S-box the split with the fewest operations is kept.

The circuits are checked here against the S-box tables (FIPS 46-3) before anything is
written, and the Rust tests check the whole cipher against aws-lc and RustCrypto.

    python3 scripts/gen-des-sboxes.py > crates/core/src/provider/bitsliced_des/sboxes.rs
"""
import itertools
import sys

# FIPS 46-3, the eight S-boxes: row = b1 b6, column = b2 b3 b4 b5.
SBOX = [
    [[14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7],
     [0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8],
     [4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0],
     [15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13]],
    [[15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10],
     [3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5],
     [0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15],
     [13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9]],
    [[10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8],
     [13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1],
     [13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7],
     [1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12]],
    [[7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15],
     [13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9],
     [10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4],
     [3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14]],
    [[2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9],
     [14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6],
     [4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14],
     [11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3]],
    [[12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11],
     [10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8],
     [9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6],
     [4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13]],
    [[4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1],
     [13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6],
     [1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2],
     [6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12]],
    [[13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7],
     [1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2],
     [7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8],
     [2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11]],
]
for box in SBOX:
    for row in box:
        assert sorted(row) == list(range(16)), "an S-box row is not a permutation"

FULL = (1 << 64) - 1


def var_tt(i):
    """Truth table of input bit b(i+1) over the 64 inputs; input n has b1 as its top bit."""
    return sum(1 << n for n in range(64) if (n >> (5 - i)) & 1)


VARS = [var_tt(i) for i in range(6)]


def output_tt(box, bit):
    """Truth table of output bit `bit` (0 = most significant) of S-box `box`."""
    tt = 0
    for n in range(64):
        b = [(n >> (5 - i)) & 1 for i in range(6)]
        row, col = b[0] * 2 + b[5], b[1] * 8 + b[2] * 4 + b[3] * 2 + b[4]
        if (SBOX[box][row][col] >> (3 - bit)) & 1:
            tt |= 1 << n
    return tt


# ---- smallest expressions for all 256 functions of three inputs (8-entry truth tables)
A3, B3, C3 = 0xF0, 0xCC, 0xAA  # the three inputs
best = {A3: (0, ("v", 0)), B3: (0, ("v", 1)), C3: (0, ("v", 2)),
        0x00: (0, ("c", 0)), 0xFF: (0, ("c", 1))}
changed = True
while changed:
    changed = False
    items = list(best.items())
    for t, (c, _) in items:
        n = (~t) & 0xFF
        if n not in best or best[n][0] > c + 1:
            best[n] = (c + 1, ("not", t))
            changed = True
    for (t1, (c1, _)), (t2, (c2, _)) in itertools.product(items, items):
        for op, t in (("and", t1 & t2), ("or", t1 | t2), ("xor", t1 ^ t2),
                      ("andnot", t1 & ~t2 & 0xFF)):
            c = c1 + c2 + 1
            if t not in best or best[t][0] > c:
                best[t] = (c, (op, t1, t2))
                changed = True
assert len(best) == 256


class Circuit:
    """Nodes named by their 64-entry truth table. A node is (op, operands), the operands being
    truth tables too; `finish` renders the ones the outputs need as Rust."""

    def __init__(self):
        self.nodes = {VARS[i]: ("in", i) for i in range(6)}
        self.order = []  # truth tables of computed nodes, in the order they were made

    def node(self, tt, op, *args):
        if tt not in self.nodes:
            self.nodes[tt] = (op, *args)
            self.order.append(tt)
        return tt

    def op(self, op, a, b):
        tt = {"and": a & b, "or": a | b, "xor": a ^ b, "andnot": a & ~b & FULL}[op]
        return self.node(tt, op, a, b)

    def inv(self, a):
        return self.node(~a & FULL, "not", a)

    def const(self, one):
        return self.node(FULL if one else 0, "const", one)

    def finish(self, outs):
        """(Rust lines, output expressions, operation count) for the nodes `outs` need."""
        live = set()
        stack = list(outs)
        while stack:
            t = stack.pop()
            if t in live:
                continue
            live.add(t)
            n = self.nodes[t]
            if n[0] not in ("in", "const"):
                stack.extend(n[1:])
        name = {}
        lines = []
        for tt in [VARS[i] for i in range(6)] + self.order:
            n = self.nodes[tt]
            if n[0] == "in":
                name[tt] = f"x[{n[1]}]"
                continue
            if tt not in live:
                continue
            if n[0] == "const":
                name[tt] = "Lanes::splat(!0)" if n[1] else "Lanes::splat(0)"
                continue
            v = f"t{len(lines)}"
            a = name[n[1]]
            b = name[n[2]] if len(n) > 2 else None
            expr = {"not": f"!{a}", "and": f"{a} & {b}", "or": f"{a} | {b}",
                    "xor": f"{a} ^ {b}", "andnot": f"{a}.and_not({b})"}[n[0]]
            lines.append(f"    let {v} = {expr};")
            name[tt] = v
        return lines, [name[o] for o in outs], len(lines)

    def leaf(self, f3, ins):
        """Builds 3-input function `f3` (8-bit table) of the inputs `ins` (6-input tables)."""
        kind = best[f3][1]
        if kind[0] == "v":
            return ins[kind[1]]
        if kind[0] == "c":
            return self.const(kind[1])
        if kind[0] == "not":
            return self.inv(self.leaf(kind[1], ins))
        return self.op(kind[0], self.leaf(kind[1], ins), self.leaf(kind[2], ins))

    def mux(self, s, a, b):
        """s ? b : a, simplified where a or b is special."""
        if a == b:
            return a
        if a == 0:
            return self.op("and", b, s)
        if b == 0:
            return self.op("andnot", a, s)
        if a == FULL:
            return self.op("or", b, self.inv(s))
        if b == FULL:
            return self.op("or", a, s)
        if a == ~b & FULL:
            return self.op("xor", a, s)
        return self.op("xor", a, self.op("and", self.op("xor", a, b), s))


def build(box, split):
    """The circuit of S-box `box`, split on the three inputs in `split`."""
    rest = [i for i in range(6) if i not in split]
    c = Circuit()
    outs = []
    for bit in range(4):
        tt = output_tt(box, bit)
        # Leaves: for each value of the split inputs, the function of the other three.
        leaves = []
        for sel in range(8):
            f3 = 0
            for r in range(8):
                bits = [0] * 6
                for k, i in enumerate(split):
                    bits[i] = (sel >> (2 - k)) & 1
                for k, i in enumerate(rest):
                    bits[i] = (r >> (2 - k)) & 1
                n = sum(bits[i] << (5 - i) for i in range(6))
                if (tt >> n) & 1:
                    # Bit r of an 8-entry table, with A3 (first input) as the top selector.
                    f3 |= 1 << r
            leaves.append(c.leaf(f3, [VARS[i] for i in rest]))
        level = leaves
        for k in (2, 1, 0):  # the last split input selects first
            s = VARS[split[k]]
            level = [c.mux(s, level[2 * j], level[2 * j + 1]) for j in range(len(level) // 2)]
        assert level[0] == tt, "circuit does not compute the S-box"
        outs.append(level[0])
    return c.finish(outs)


def main():
    # The 8-entry tables above number their entries with the first input as the top bit:
    # check that convention once, on the three inputs themselves.
    assert A3 == sum(1 << r for r in range(8) if (r >> 2) & 1)
    out = [
        "//! The eight DES S-boxes as boolean circuits, for the bitsliced DES in `mod.rs`.",
        "//!",
        "//! Generated by `scripts/gen-des-sboxes.py`; do not edit. Input `x[0]` is the",
        "//! S-box's first input bit (b1), output 0 its most significant output bit.",
        "",
        "use super::Lanes;",
        "",
    ]
    total = 0
    for box in range(8):
        lines, outs, ops = min(
            (build(box, split) for split in itertools.combinations(range(6), 3)),
            key=lambda r: r[2])
        total += ops
        out.append(f"/// S{box + 1}: {ops} operations.")
        out.append("#[inline(always)]")
        out.append(f"pub(super) fn s{box + 1}<const L: usize>(x: [Lanes<L>; 6]) -> [Lanes<L>; 4] {{")
        out.extend(lines)
        out.append(f"    [{', '.join(outs)}]")
        out.append("}")
        out.append("")
    print(f"gen-des-sboxes: {total} operations for the eight S-boxes", file=sys.stderr)
    sys.stdout.write("\n".join(out))


main()
