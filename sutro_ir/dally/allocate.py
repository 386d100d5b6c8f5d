"""Address allocation for the address IR: place every value so that the most-read ones sit at
the cheapest cells (Model 1: a read of cell a costs ceil(sqrt(a))). The instructions and their
order are kept; what changes is where each value lives. So the outputs are the same, bit for
bit, for every input a scorer gives: unbounded integers (v0), or values in the 8-bit range
(v3). (An 8-bit `copy` wraps its value and an input is placed as given, so an input outside
-128..127 read through a copy that allocation removes or adds could differ.)

1. Values. Every input, and every instruction's result, is a value (SSA). A value lives from
   its write (an input: from the start) to its last read (an output: to the exit reads). Two
   values may share a cell when one's life ends at or before the instruction that writes the
   other (an instruction reads before it writes).
2. Dead code. An instruction whose result is never read and is not an output is dropped; the
   problem checks the outputs only (a tape op is never dropped).
3. Copies. `copy d,s` makes a second value equal to s. Eliminated, the copy's readers read s
   itself: one read fewer, but s then lives longer. Both ways are tried.
4. Captures (live-range splitting, split_lives): a value read in several stretches of kept
   instructions gets a copy in a fresh value before each stretch with two or more of its reads,
   which those reads use: a hot value can then sit near for a short while and far otherwise,
   as the tiled matmul's hand-written copies do. Stretches of 32 to 512 instructions are tried
   (only 256 past MEDIUM instructions, none past BIG, and none that would pass the problem's
   line limit).
5. Placement. Values are placed one by one, each at the cheapest cell free for its whole life.
   The order is by reads per instruction lived (`density`) or by reads: a value read often
   over a short life gets a cheap cell first. The order whose result is cheapest wins.
6. Order. The instructions as written, or each moved down toward its first reader
   (as_late_as_possible: values live more briefly).
7. Search (`seconds` > 0). Placement orders perturbed at random around the best, each measured
   by the exact cost, the best kept, until the time is up.

Every combination of instruction order, captures (none, or each stretch), copies (kept or
eliminated) and placement order is measured; the cheapest wins.

The result is checked before it is returned: it runs like the original on random inputs
(check_same).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numba as nb
import numpy as np
from numba.typed import List

from simulator.costmodels import _ceil_sqrt

from .isa import OPS
from .text import Program

_COPY, _RECV, _SEND = OPS["copy"].code, OPS["recv"].code, OPS["send"].code


@dataclass(frozen=True)
class Values:
    """The program in SSA form. `src_val[i, j]`: the value read by instruction i's j-th operand
    (-1 none); `dst_val[i]`: the value it writes (-1 none); values 0..n_inputs-1 are the inputs.
    `start`/`end`: the value's life (start: the write's instruction index, -1 for inputs; end:
    the last read's index, len + 1 for an output). `reads`: operand reads plus exit reads."""

    prog: Program
    keep: np.ndarray          # instructions kept (dead code dropped)
    src_val: np.ndarray
    dst_val: np.ndarray
    out_val: np.ndarray
    start: np.ndarray
    end: np.ndarray
    reads: np.ndarray


def values(prog: Program, eliminate_copies: bool = False) -> Values:
    cells = prog.addresses()
    slot = lambda a: np.searchsorted(cells, a)         # noqa: E731
    src_slot = np.where(prog.src > 0, slot(prog.src), -1)
    src_val, dst_val, alias, current = _ssa(
        prog.op.astype(np.int64), slot(prog.dst), src_slot, prog.dst > 0, len(cells),
        slot(prog.inputs), eliminate_copies, _COPY)
    out_val = current[slot(prog.outputs)]
    keep = _live_instructions(prog.op.astype(np.int64), src_val, dst_val, out_val, alias,
                              eliminate_copies, _COPY, _RECV, _SEND)
    return _lives(prog, keep, src_val, dst_val, out_val, alias, len(alias), len(prog.inputs))


@nb.njit(cache=True)
def _ssa(op, dst_slot, src_slot, writes, n_slots, in_slots, eliminate_copies, copy):
    """Value ids: inputs 0.., then one per write. `current[slot]`: the value a cell holds now;
    an eliminated copy's value is its source's (`alias`)."""
    n, n_in = len(op), len(in_slots)
    current = np.full(n_slots, -1, np.int64)
    current[in_slots] = np.arange(n_in)
    src_val = np.full((n, 3), -1, np.int64)
    dst_val = np.full(n, -1, np.int64)
    alias = np.empty(n_in + n, np.int64)
    alias[:n_in] = np.arange(n_in)
    count = n_in
    for i in range(n):
        for j in range(3):
            if src_slot[i, j] >= 0:
                src_val[i, j] = current[src_slot[i, j]]
        if writes[i]:
            alias[count] = src_val[i, 0] if eliminate_copies and op[i] == copy else count
            dst_val[i] = count
            current[dst_slot[i]] = alias[count]
            count += 1
    return src_val, dst_val, alias[:count].copy(), current


@nb.njit(cache=True)
def _live_instructions(op, src_val, dst_val, out_val, alias, eliminate_copies, copy, recv,
                       send):
    """Backward: an instruction is kept when its value is read by a kept instruction or is an
    output (an eliminated copy is never kept: its readers read its source)."""
    needed = np.zeros(len(alias), np.bool_)
    needed[out_val] = True
    keep = np.zeros(len(op), np.bool_)
    for i in range(len(op) - 1, -1, -1):
        v = dst_val[i]
        if eliminate_copies and op[i] == copy:
            if needed[v]:
                needed[alias[v]] = True
            continue
        if op[i] == recv or op[i] == send or (v >= 0 and needed[v]):
            keep[i] = True
            for j in range(3):
                if src_val[i, j] >= 0:
                    needed[src_val[i, j]] = True
    return keep


def _lives(prog, keep, src_val, dst_val, out_val, alias, count, n_in) -> Values:
    n = len(prog)
    start = np.full(count, -1, np.int64)
    end = np.full(count, -1, np.int64)
    reads = np.zeros(count, np.int64)
    rows = np.flatnonzero(keep)
    own = dst_val[rows] >= 0
    start[dst_val[rows][own]] = rows[own]
    for j in range(3):
        v = src_val[rows, j]
        ok = v >= 0
        np.maximum.at(end, v[ok], rows[ok])
        np.add.at(reads, v[ok], 1)
    end[out_val] = n + 1
    np.add.at(reads, out_val, 1)
    end = np.maximum(end, start)                 # a value never read ends where it starts
    return Values(prog, keep, src_val, dst_val, out_val, start, end, reads)


# ----------------------------------------------------------------------------- placement

@nb.njit(cache=True)
def _place_all(order, start, end, live, n_values):
    """Each live value, in `order`, at the lowest cell free for its whole life; returns the
    cells (0: not placed). A cell's lives never overlap, so sorted by start they are sorted by
    end too: a life (s, e) fits when the last life starting before e ends by s (read before
    write). Lives starting at -1 (inputs) never share a cell."""
    starts = List.empty_list(nb.int64[:])
    ends = List.empty_list(nb.int64[:])
    count = np.zeros(16, np.int64)
    cells = np.zeros(n_values, np.int64)
    for v in order:
        if not live[v]:
            continue
        s, e = start[v], end[v]
        chosen = -1
        for c in range(len(starts)):
            k = count[c]
            row = starts[c]
            if s == -1 and k > 0 and row[0] == -1:
                continue
            lo, hi = 0, k
            while lo < hi:
                mid = (lo + hi) // 2
                if row[mid] < e:
                    lo = mid + 1
                else:
                    hi = mid
            if lo == 0 or ends[c][lo - 1] <= s:
                chosen = c
                break
        if chosen == -1:
            chosen = len(starts)
            starts.append(np.empty(4, np.int64))
            ends.append(np.empty(4, np.int64))
            if chosen == len(count):
                count = np.concatenate((count, np.zeros(len(count), np.int64)))
        _insert(starts, ends, count, chosen, s, e)
        cells[v] = chosen + 1
    return cells


@nb.njit(cache=True)
def _insert(starts, ends, count, c, s, e):
    k = count[c]
    if k == len(starts[c]):
        grown_s = np.empty(2 * k, np.int64)
        grown_e = np.empty(2 * k, np.int64)
        grown_s[:k] = starts[c][:k]
        grown_e[:k] = ends[c][:k]
        starts[c] = grown_s
        ends[c] = grown_e
    row_s, row_e = starts[c], ends[c]
    j = k
    while j > 0 and row_s[j - 1] > s:
        row_s[j] = row_s[j - 1]
        row_e[j] = row_e[j - 1]
        j -= 1
    row_s[j] = s
    row_e[j] = e
    count[c] = k + 1


def place(vals: Values, order: np.ndarray) -> np.ndarray:
    """Cell of each value (0: unused), placed in `order`, each at the cheapest free cell."""
    return _place_all(order.astype(np.int64), vals.start, vals.end, _used_values(vals),
                      len(vals.start))


def _used_values(vals: Values) -> np.ndarray:
    live = np.zeros(len(vals.start), bool)
    live[: len(vals.prog.inputs)] = True             # every input needs its own address
    rows = np.flatnonzero(vals.keep)
    w = vals.dst_val[rows]
    live[w[w >= 0]] = True
    live[vals.out_val] = True
    return live


def cost_of(vals: Values, cells: np.ndarray) -> int:
    """Model 1 of a placement: each value's reads (exit reads included) at its cell."""
    dist = np.where(cells > 0, _ceil_sqrt(np.maximum(cells, 1)), 0)
    return int((dist * vals.reads).sum())


def orders(vals: Values) -> dict[str, np.ndarray]:
    """The placement orders tried: by reads per instruction lived, and by reads."""
    life = (vals.end - vals.start).astype(np.float64) + 1
    density = vals.reads / life
    return {"density": np.lexsort((vals.start, -vals.reads, -density)),
            "reads": np.lexsort((vals.start, -density, -vals.reads))}


# ----------------------------------------------------------------------------- the pass

@dataclass(frozen=True)
class Allocation:
    prog: Program
    cost: int
    before: int
    how: str
    cells: int
    tried: int


WINDOWS = (32, 64, 128, 256, 512)
"""The capture windows tried (split_lives): a value read in several of these stretches of
instructions gets a near copy for each."""


MEDIUM, BIG = 20_000, 200_000
"""Each variant takes about a second per 20,000 instructions (2026-11-29, this machine): past
MEDIUM instructions only one capture stretch (256) and one placement order (density) are
tried, past BIG no captures at all."""


def allocate(prog: Program, seconds: float = 0.0, seed: int = 0,
             max_lines: int | None = None) -> Allocation:
    """The cheapest placement found (see the module docstring); never worse than the input.
    `max_lines`: the problem's line limit, which captures (more copies) must respect."""
    from .score import model1

    before = model1(prog).cost
    best = None
    tried = 0
    windows = WINDOWS if len(prog) <= MEDIUM else (256,) if len(prog) <= BIG else ()
    variants = []
    for base, order_name in ((prog, ""), (as_late_as_possible(prog), ", as late as possible")):
        variants += [(base, order_name)] + [(split_lives(base, w),
                                             f"{order_name}, captures every {w}")
                                            for w in windows]
    if max_lines is not None:       # captures add lines; the program's own order stays
        variants = [(p, c) for p, c in variants
                    if len(p) + 2 <= max_lines or "captures" not in c]
    for source, captures in variants:
        for elim in (False, True):
            vals = values(source, elim)
            for name, order in orders(vals).items():
                if name != "density" and len(prog) > MEDIUM:
                    continue
                cells = place(vals, order)
                c = cost_of(vals, cells)
                tried += 1
                if best is None or c < best[0]:
                    best = (c, vals, order, cells,
                            f"{name}{', copies eliminated' * elim}{captures}")
    if seconds > 0:
        best, more = _search(best, seconds, seed)
        tried += more
    c, vals, order, cells, how = best
    if c >= before:
        return Allocation(prog, before, before, "unchanged (no placement found was cheaper)",
                          int(prog.addresses().max()), tried)
    out = rewrite(vals, cells)
    return Allocation(out, c, before, how, int(cells.max()), tried)


def _search(best, seconds: float, seed: int):
    """Perturb the best order (swap a few values' ranks), keep what measures cheaper."""
    rng = random.Random(seed)
    c0, vals, order, cells, how = best
    deadline = time.perf_counter() + seconds
    order = order.copy()
    n = len(order)
    tries = 0
    while time.perf_counter() < deadline and n > 1:
        cand = order.copy()
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(n)
            j = min(n - 1, max(0, i + rng.randint(-50, 50)))
            cand[i], cand[j] = cand[j], cand[i]
        cells_c = place(vals, cand)
        c = cost_of(vals, cells_c)
        tries += 1
        if c < c0:
            c0, order, cells = c, cand, cells_c
            how = how.split(" + ")[0] + " + search"
    return (c0, vals, order, cells, how), tries


def rewrite(vals: Values, cells: np.ndarray) -> Program:
    """The program with every value at its cell, dead code and eliminated copies dropped."""
    p = vals.prog
    rows = np.flatnonzero(vals.keep)
    src = np.where(vals.src_val[rows] >= 0, cells[np.maximum(vals.src_val[rows], 0)], 0)
    dst = np.where(vals.dst_val[rows] >= 0, cells[np.maximum(vals.dst_val[rows], 0)], 0)
    n_in = len(p.inputs)
    return Program(cells[:n_in].copy(), cells[vals.out_val], p.op[rows].copy(), dst, src,
                   p.imm[rows].copy(), p.line[rows].copy(), p.col[rows].copy(), p.isa,
                   p.where, p.lines, p.input_line, p.output_line)


def check_same(a: Program, b: Program, width: int | None, trials: int = 64,
               seed: int = 0) -> bool | None:
    """Do the two programs give the same outputs on random inputs (8-bit values, or small
    integers for unbounded ones)? None when `a` itself traps on every batch tried (a division
    by zero), so there is nothing to compare."""
    from .machine import DivideByZero, run

    if (a.op == OPS["recv"].code).any():
        return None                      # the problems here give no tape to run it on
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if width == 8 else (-1000, 1000)
    for _ in range(8):
        x = rng.integers(lo, hi, size=(trials if width else 4, len(a.inputs)))
        try:
            ra = run(a, x, width)
        except DivideByZero:
            continue
        try:
            rb = run(b, x, width)
        except DivideByZero:
            return False
        return bool((np.asarray(ra) == np.asarray(rb)).all())
    return None


# ----------------------------------------------------------------------------- captures

def split_lives(prog: Program, window: int) -> Program:
    """Live-range splitting ("captures"): a value read in several windows of `window`
    instructions gets, before each window holding two or more of its reads, a `copy` into a
    fresh value that those reads use instead. The copy is one more read of the value; its
    reads can then sit in a cheap cell for a short life while the value itself waits in a far
    one. The result is in SSA form (every value its own cell); `allocate` places it."""
    vals = values(prog)
    rows = np.flatnonzero(vals.keep)
    n_vals = len(vals.start)
    reads: dict[int, list[tuple[int, int]]] = {}
    for pos, i in enumerate(rows.tolist()):
        for j, v in enumerate(vals.src_val[i].tolist()):
            if v >= 0:
                reads.setdefault(v, []).append((pos, j))
    before: dict[int, list[tuple[int, int]]] = {}     # position -> (new value, its source)
    redirect: dict[tuple[int, int], int] = {}
    for v, rs in reads.items():
        groups: dict[int, list] = {}
        for pos, j in rs:
            groups.setdefault(pos // window, []).append((pos, j))
        if len(groups) < 2:
            continue
        for g in groups.values():
            if len(g) < 2:
                continue
            before.setdefault(g[0][0], []).append((n_vals, v))
            for key in g:
                redirect[key] = n_vals
            n_vals += 1
    return _ssa_program(prog, vals, rows, before, redirect)


def _ssa_program(prog, vals, rows, before, redirect) -> Program:
    """The kept instructions with the captures inserted, value v in cell v + 1."""
    op, dst, src, imm, line, col = [], [], [], [], [], []
    copy = OPS["copy"].code
    for pos, i in enumerate(rows.tolist()):
        for new, v in before.get(pos, ()):
            op.append(copy)
            dst.append(new + 1)
            src.append([v + 1, 0, 0])
            imm.append(0)
            line.append(prog.line[i])
            col.append(prog.col[i])
        s = [redirect.get((pos, j), v) + 1 if v >= 0 else 0
             for j, v in enumerate(vals.src_val[i].tolist())]
        op.append(int(prog.op[i]))
        dst.append(int(vals.dst_val[i]) + 1 if vals.dst_val[i] >= 0 else 0)
        src.append(s)
        imm.append(int(prog.imm[i]))
        line.append(prog.line[i])
        col.append(prog.col[i])
    n_in = len(prog.inputs)
    return Program(np.arange(1, n_in + 1, dtype=np.int64), vals.out_val + 1,
                   np.array(op, np.uint8), np.array(dst, np.int64),
                   np.array(src, np.int64).reshape(-1, 3), np.array(imm, np.int64),
                   np.array(line, np.int32), np.array(col, np.int32), prog.isa, prog.where,
                   prog.lines, prog.input_line, prog.output_line)


# ----------------------------------------------------------------------------- order

def as_late_as_possible(prog: Program) -> Program:
    """The same computation with each instruction moved down toward its first reader (its value
    then lives more briefly), in SSA form: instructions sorted by their first reader's place,
    ties in their written order. A source's first reader comes no later than the instruction
    that reads it, so every source still comes first. Tape ops and results nobody reads keep
    their own place (the tape's order is the program's meaning)."""
    vals = values(prog)
    rows = np.flatnonzero(vals.keep)
    n = len(rows)
    deadline = np.arange(n)
    first_reader = np.full(len(vals.start), n, np.int64)
    for pos in range(n - 1, -1, -1):
        for v in vals.src_val[rows[pos]].tolist():
            if v >= 0:
                first_reader[v] = pos
    for pos, i in enumerate(rows.tolist()):
        v = vals.dst_val[i]
        if v >= 0 and prog.op[i] not in (_RECV, _SEND) and first_reader[v] < n:
            deadline[pos] = first_reader[v]
    order = np.lexsort((np.arange(n), deadline))
    return _ssa_program(prog, vals, rows[order], {}, {})
