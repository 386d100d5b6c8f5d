"""Lowering a schedule to the access trace of the machine model (docs/machine-model.md).

Each kernel's accesses come from numpy index arithmetic over its loop nest, never a Python loop
per element:
- elementwise (and casts, copies, where): for each output element in row-major order, read each
  array operand's element (broadcast operands are read again on every iteration), then write;
- matmul `a @ b`: for i, for j, for k: read a[i,k], read b[k,j]; then write out[i,j];
- outer: for i, for j: read a[i], read b[j], write out[i,j];
- transpose: for each output element: read the input element, write;
- reductions (argmax too): for each output element, read its inputs in order, then write once;
- einsum: for each output element, for each combination of the summed indices (row-major):
  read each operand's element in operand order; then write;
- `a[at]`: first read each run-time index (one scalar each), then for each selected element:
  read it, write it; reshape, concat, stack: for each output element, read its source element,
  write it; zeros/ones/full/eye/arange: write each element;
- `a[at] op= v`: read the run-time indices, then for each element written: read a's element
  (unless `:=`), read v's element, write a's element;
- an if: read the condition, then the kernels of the taken block only.
Constants are immediates and cost nothing; values inside a kernel live in registers.

A step starts with the `load` kernel, which writes the example into x and y (the data arrives
from outside the simulated memory). Step 0 starts with `init`, which writes every parameter.
Addresses depend only on the schedule and the step's control path (Step.path: each if's
choice and each run-time index, in program order), so a path's columns are computed once and
every traced step on that path replays them.
"""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np

from simulator.trace import CHUNK_ACCESSES, Buffer, Chunk, StepPlan, Trace
from simulator.trace import Kernel as TraceKernel

from .graph import Node, compute_dtype, dynamic_operands, index_values
from .ops import OPS, arith_counts, check_spec, n_elements, parse_einsum, selected
from .schedule import BufferSlot, Kernel, Schedule


def dynamic_count(kernel: Kernel, graph) -> int:
    """How many run-time index values one execution of the kernel takes from the path."""
    return sum(index_values(n, graph) for n in kernel.nodes)



def _index_arrays(slots: list, dyn: tuple) -> tuple[list, tuple]:
    """The prefix reads of a kernel's run-time indices ((slot, every element number), in
    order) and the index values regrouped by operand (an index array as an array)."""
    prefix, values, k = [], [], 0
    for s in slots:
        n = n_elements(s.shape)
        prefix.append((s, np.arange(n)))
        values.append(np.asarray(dyn[k:k + n]).reshape(s.shape) if s.shape else dyn[k])
        k += n
    return prefix, tuple(values)


def kernel_accesses(kernel: Kernel, sched: Schedule, dyn: tuple = ()):
    """(addr, nbytes, is_write, buffer) of one execution of a kernel (buffer: the row of
    sched.buffers that each access touches); `dyn`: its run-time index values. One loop nest over
    the anchor's output index space; per iteration: the anchor's reads, then each later node's
    reads of values from outside the kernel (an element already read in this iteration is in a
    register), then the writes of the values the kernel stores, in node order. The anchor's
    run-time indices are read once, before the loop."""
    anchor = kernel.anchor
    graph = sched.graph
    ins = [sched.slot(graph[a].buffer) for a in anchor.operands]
    prefix, cols = PATTERNS[OPS[anchor.op].kind](anchor, ins, tuple(dyn), sched)
    if OPS[anchor.op].kind == "setindex":       # never fused: its own write is its column
        return _finish(prefix, cols, 1, sched)
    cols = cols[:-1]
    for a in outside_reads(kernel, graph):
        s = sched.slot(graph[a].buffer)
        cols.append(_col(s, _broadcast_index(s, anchor.shape)))
    for name in kernel.stores:
        cols.append(_col(sched.slot(graph[name].buffer), np.arange(n_elements(anchor.shape))))
    return _finish(prefix, cols, len(kernel.stores), sched)


def outside_reads(kernel: Kernel, graph) -> list[str]:
    """The values a fused kernel's later nodes read from outside it, each buffer once per
    iteration (an element already read in this iteration, by the anchor of an elementwise
    kernel or an earlier node, is in a register)."""
    anchor, members = kernel.anchor, {m.name for m in kernel.nodes}
    buffer = lambda a: graph[a].buffer      # noqa: E731  (a parameter's versions: one buffer)
    seen = {buffer(a) for a in anchor.operands} if OPS[anchor.op].kind == "elementwise" else set()
    out = []
    for n in kernel.nodes[1:]:
        for a in n.operands:
            if a not in members and buffer(a) not in seen:
                seen.add(buffer(a))
                out.append(a)
    return out


def _broadcast_index(s: BufferSlot, shape: tuple) -> np.ndarray:
    return np.broadcast_to(np.arange(n_elements(s.shape)).reshape(s.shape), shape).ravel()


def _col(s: BufferSlot, index: np.ndarray):
    """One access per iteration: (element numbers, slot)."""
    return (index, s)


def _finish(prefix: list, cols: list, n_writes: int, sched: Schedule):
    """Interleave the loop's columns after the prefix accesses (reads). An entry of `cols` is
    (index, slot): index[r] (or the row index[r, :], several columns at once) gives iteration r's
    element numbers; the slot is one BufferSlot, or (slots, pick) with pick the slot number of
    each iteration (a 1-D index: a gather from several arrays) or of each column (a 2-D index:
    operands read in turn). The last n_writes columns are writes. Whole blocks are filled at
    once: no Python loop per element."""
    rows = len(cols[0][0]) if cols else 0
    addr, size, which = [], [], []
    for index, s in cols:
        idx = index if index.ndim == 2 else index[:, None]
        if isinstance(s, BufferSlot):
            base, eb, row = s.base, s.elem_bytes, sched.index(s.name)
        else:                          # (slots, slot number per iteration or per column)
            slots, pick = s
            pick = pick if index.ndim == 2 else pick[:, None]
            base = np.array([t.base for t in slots], np.int64)[pick]
            eb = np.array([t.elem_bytes for t in slots], np.int32)[pick]
            row = np.array([sched.index(t.name) for t in slots], np.int32)[pick]
        addr.append(base + idx.astype(np.int64) * eb)
        size.append(np.broadcast_to(np.asarray(eb, np.int32), idx.shape))
        which.append(np.broadcast_to(np.asarray(row, np.int32), idx.shape))
    addr = np.concatenate(addr, axis=1) if cols else np.empty((0, 0), np.int64)
    width = addr.shape[1]
    writes = np.zeros(width, bool)
    writes[width - n_writes:] = True
    a = addr.ravel()
    n = np.concatenate(size, axis=1).ravel() if cols else np.empty(0, np.int32)
    b = np.concatenate(which, axis=1).ravel() if cols else np.empty(0, np.int32)
    w = np.tile(writes, rows)
    if not prefix:
        return a, n, w, b
    # prefix: (slot, element numbers) read before the loop, in order
    counts = [np.size(i) for _, i in prefix]
    pa = np.concatenate([s.base + np.atleast_1d(i).astype(np.int64) * s.elem_bytes
                         for s, i in prefix])
    pn = np.repeat(np.array([s.elem_bytes for s, _ in prefix], np.int32), counts)
    pb = np.repeat(np.array([sched.index(s.name) for s, _ in prefix], np.int32), counts)
    return (np.concatenate([pa, a]), np.concatenate([pn, n]),
            np.concatenate([np.zeros(len(pa), bool), w]), np.concatenate([pb, b]))


def _out(node: Node, sched: Schedule):
    """The write column of a one-node kernel (a fused kernel drops it: its anchor's value may
    live in registers, with no slot)."""
    buffer = sched.graph[node.name].buffer
    slot = sched.slot(buffer) if buffer in sched._index else None
    return _col(slot, np.arange(n_elements(node.shape)))


def _elementwise(node: Node, ins, dyn, sched):
    cols = [_col(s, _broadcast_index(s, node.shape)) for s in ins]
    return [], cols + [_out(node, sched)]


def _matmul(node: Node, ins, dyn, sched):
    a, b = ins
    ta = dict(node.attrs).get("ta", 0)
    a_shape = a.shape[::-1] if ta else a.shape
    I = a_shape[0] if len(a_shape) == 2 else 1
    K = b.shape[0]
    J = b.shape[1] if len(b.shape) == 2 else 1
    i, j, k = np.meshgrid(np.arange(I), np.arange(J), np.arange(K), indexing="ij")
    a_idx = ((k * I + i) if ta else (i * K + k)).reshape(I * J, K)
    b_idx = (k * J + j).reshape(I * J, K)
    reads = np.stack([a_idx, b_idx], axis=-1).reshape(I * J, 2 * K)   # a, b, a, b, ...
    return [], [(reads, ((a, b), np.tile([0, 1], K))), _out(node, sched)]


def _outer(node: Node, ins, dyn, sched):
    a, b = ins
    i, j = np.meshgrid(np.arange(a.shape[0]), np.arange(b.shape[0]), indexing="ij")
    return [], [_col(a, i.ravel()), _col(b, j.ravel()), _out(node, sched)]


def _transpose(node: Node, ins, dyn, sched):
    (a,) = ins
    src = np.arange(n_elements(a.shape)).reshape(a.shape).T.ravel()
    return [], [_col(a, src), _out(node, sched)]


def _reduce(node: Node, ins, dyn, sched):
    (a,) = ins
    idx = np.arange(n_elements(a.shape)).reshape(a.shape)
    axis = dict(node.attrs).get("axis")
    rows = idx.reshape(1, -1) if axis is None else np.moveaxis(idx, axis, -1).reshape(
        -1, a.shape[axis])
    return [], [_col(a, rows), _out(node, sched)]


def _index(node: Node, ins, dyn, sched):
    a, *idx = ins
    at = dict(node.attrs).get("at", ())
    prefix, dyn = _index_arrays(idx, dyn)
    return prefix, [_col(a, selected(at, dyn, a.shape)), _out(node, sched)]


def _setindex(node: Node, ins, dyn, sched):
    graph = sched.graph
    attrs = dict(node.attrs)
    target, *rest = ins
    at = attrs.get("at", ())
    v = node.args[1]
    if isinstance(v, str):
        s, rest = sched.slot(graph[v].buffer), rest[1:]
    prefix, dyn = _index_arrays(rest, dyn)
    where = selected(at, dyn, target.shape)
    part = check_spec(at, target.shape, [r.shape for r in rest])
    cols = [] if attrs.get("acc", "set") == "set" else [_col(target, where)]
    if isinstance(v, str):
        cols.append(_col(s, _broadcast_index(s, part)))
    return prefix, cols + [_col(target, where)]


def _construct(node: Node, ins, dyn, sched):
    return [], [_out(node, sched)]


def _gather(node: Node, ins, dyn, sched):
    if node.op == "reshape":
        return [], [_col(ins[0], np.arange(n_elements(node.shape))), _out(node, sched)]
    sizes = [n_elements(s.shape) for s in ins]
    offset = np.cumsum([0] + sizes)
    ids = [np.arange(n).reshape(s.shape) + o for n, s, o in zip(sizes, ins, offset)]
    axis = dict(node.attrs).get("axis", 0)
    joined = (np.concatenate(ids, axis=axis) if node.op == "concat"
              else np.stack(ids, axis=axis)).ravel()
    pick = np.searchsorted(offset, joined, side="right") - 1
    return [], [(joined - offset[pick], (tuple(ins), pick)), _out(node, sched)]


def _einsum(node: Node, ins, dyn, sched):
    subs, out, sizes = parse_einsum(dict(node.attrs)["spec"], [s.shape for s in ins])
    summed = list(dict.fromkeys(c for sub in subs for c in sub if c not in out))
    letters = list(out) + summed
    grids = np.indices([sizes[c] for c in letters]).reshape(len(letters), -1) if letters \
        else np.zeros((0, 1), np.int64)          # einsum("->", s): one output, one term
    pos = {c: grids[i] for i, c in enumerate(letters)}
    n_out = n_elements(tuple(sizes[c] for c in out))
    inner = n_elements(tuple(sizes[c] for c in summed))
    flat = []
    for sub, s in zip(subs, ins):
        idx = np.zeros(grids.shape[1], np.int64)
        for c in sub:
            idx = idx * sizes[c] + pos[c]
        flat.append(idx.reshape(n_out, inner))
    reads = np.stack(flat, axis=-1).reshape(n_out, inner * len(ins))   # per term, each operand
    return [], [(reads, (tuple(ins), np.tile(np.arange(len(ins)), inner))), _out(node, sched)]


PATTERNS = {"elementwise": _elementwise, "matmul": _matmul, "outer": _outer,
            "transpose": _transpose, "reduce": _reduce, "index": _index,
            "setindex": _setindex, "construct": _construct, "gather": _gather,
            "einsum": _einsum}


def n_accesses(kernel: Kernel, graph) -> int:
    """How many accesses one execution of a kernel makes (without building them); for an if,
    the read of its condition."""
    anchor = kernel.anchor
    kind = OPS[anchor.op].kind
    if kind == "region":
        return 1
    n_out = n_elements(anchor.shape)
    shapes = [graph[a].shape for a in anchor.operands]
    dyn = index_values(anchor, graph)
    if kind == "elementwise":
        reads = n_out * len(shapes)
    elif kind == "matmul":
        reads = n_out * 2 * shapes[1][0]
    elif kind == "outer":
        reads = 2 * n_out
    elif kind == "reduce":
        reads = n_elements(shapes[0])
    elif kind == "einsum":
        _, out, sizes = parse_einsum(dict(anchor.attrs)["spec"], shapes)
        reads = n_elements(tuple(sizes.values())) * len(shapes)
    elif kind == "construct":
        reads = 0
    elif kind == "setindex":
        attrs = dict(anchor.attrs)
        part = n_elements(check_spec(attrs.get("at", ()), shapes[0],
                                     [graph[a].shape for a in dynamic_operands(anchor)]))
        per = (attrs.get("acc", "set") != "set") + isinstance(anchor.args[1], str) + 1
        return dyn + part * per
    elif kind == "index":
        reads = dyn + n_out
    else:
        reads = n_out
    reads += n_out * len(outside_reads(kernel, graph))
    return reads + n_out * len(kernel.stores)


def representative_path(sched: Schedule) -> tuple:
    """A control path for a step whose values are not known: every if takes its then block and
    every run-time index is 0 (in range of any dimension)."""
    out: list[int] = []

    def visit(kernels):
        for k in kernels:
            if k.is_branch:
                out.append(1)
                visit(k.branches[0])
            else:
                out.extend([0] * dynamic_count(k, sched.graph))
    visit(sched.kernels)
    return tuple(out)


# ----------------------------------------------------------------------------- the step's columns

# the phase of a plan row (StepPlan.phase): what the row is in the run
TRAINING, UNTIL_CHECK, TEST = 0, 1, 2


class StepTrace:
    """The columns of a training step for each control path (and of step 0's parameter
    initialization), each computed once from the schedule; `trace(steps)` replays them for the
    traced steps. Kernel ids: init 0, load 1, then every kernel of the schedule in program
    order (schedule.flat_kernels: an if, its then kernels, its else kernels) from 2."""

    def __init__(self, sched: Schedule, x: str, y: str, params: list[str],
                 paths: tuple = ((),)):
        self.sched = sched
        self.flat = sched.flat
        self.kid = {id(k): i for i, k in enumerate(self.flat, start=2)}
        self.paths = paths
        # the load kernel writes the example, then the step and epoch counters if read
        inputs = [x, y] + [n.name for n in sched.graph.nodes
                           if n.op == "input" and n.name not in (x, y)]
        self.load = self._writes(inputs, 1)
        self.init = self._writes(params, 0)
        self.arith = [self._arith(k) for k in self.flat]
        self._n_accesses = [n_accesses(k, sched.graph) for k in self.flat]
        self._static: dict[int, dict] = {}
        self._count = functools.lru_cache(maxsize=None)(self._count_path)
        self.columns = functools.lru_cache(maxsize=8)(self._columns_of)

    def _writes(self, buffers: list[str], kid: int) -> dict:
        parts = []
        for name in buffers:
            s = self.sched.slot(name)
            n = n_elements(s.shape)
            parts.append(self._cols(s.base + np.arange(n) * s.elem_bytes,
                                    np.full(n, s.elem_bytes, np.int32), np.ones(n, bool), kid,
                                    np.full(n, self.sched.index(name), np.int32)))
        return _concat(parts)

    @staticmethod
    def _cols(addr, nbytes, is_write, kid: int, buffer) -> dict:
        return {"addr": addr, "nbytes": nbytes, "is_write": is_write,
                "kernel": np.full(len(addr), kid, np.int32), "buffer": buffer}

    def _arith(self, kernel: Kernel) -> dict:
        g, total = self.sched.graph, {}
        if kernel.is_branch:
            return total
        for node in kernel.nodes:
            counts = arith_counts(OPS[node.op], compute_dtype(node, g), node.shape,
                                  [g[a].shape for a in node.operands], dict(node.attrs))
            for key, v in counts.items():
                total[key] = total.get(key, 0) + v
        return total

    def _walk(self, path: tuple):
        """(kernel, its run-time index values) for every kernel a step on this path runs, in
        order; an if kernel's value is its choice."""
        it, g = iter(path), self.sched.graph
        out = []

        def visit(kernels):
            for k in kernels:
                if k.is_branch:
                    taken = next(it)
                    out.append((k, (taken,)))
                    visit(k.branches[0] if taken else k.branches[1])
                else:
                    out.append((k, tuple(next(it) for _ in range(dynamic_count(k, g)))))
        visit(self.sched.kernels)
        return out

    def _kernel_columns(self, k: Kernel, dyn: tuple) -> dict:
        kid = self.kid[id(k)]
        if k.is_branch:
            s = self.sched.slot(self.sched.graph[k.anchor.args[0]].buffer)
            return self._cols(np.array([s.base], np.int64), np.array([s.elem_bytes], np.int32),
                              np.zeros(1, bool), kid,
                              np.array([self.sched.index(s.name)], np.int32))
        if not dyn and kid in self._static:
            return self._static[kid]
        addr, nbytes, is_write, buffer = kernel_accesses(k, self.sched, dyn)
        cols = self._cols(addr, nbytes, is_write, kid, buffer)
        if not dyn:
            self._static[kid] = cols
        return cols

    def _columns_of(self, p: int, first: bool = False) -> dict:
        """One step's columns on path number p (step 0: after init)."""
        return _concat([self.init] * first + [self.load] + [
            self._kernel_columns(k, dyn) for k, dyn in self._walk(self.paths[p])])

    def _count_path(self, p: int) -> tuple[int, Counter]:
        """(accesses of one step on path p, how often each kernel runs)."""
        runs = Counter(self.kid[id(k)] for k, _ in self._walk(self.paths[p]))
        n = len(self.load["addr"]) + sum(c * self._n_accesses[kid - 2]
                                         for kid, c in runs.items())
        return n, runs

    @property
    def step(self) -> dict:
        """The columns of a step on path 0 (the only path of a program without ifs and
        run-time indices)."""
        return self.columns(0)

    def accesses(self, p: int = 0) -> int:
        return self._count(p)[0]

    @property
    def accesses_per_step(self) -> int:
        """The most accesses a step makes, over the control paths."""
        return max(self.accesses(p) for p in range(len(self.paths)))

    def mean_per_step(self, steps_per_path) -> tuple[float, float]:
        """(kernels, arithmetic operations) a step runs, averaged over the steps: each path
        weighted by how many steps took it (`steps_per_path[p]`)."""
        steps = sum(steps_per_path)
        kernels = arith = 0
        for p, n in enumerate(steps_per_path):
            runs = self._count(p)[1]
            kernels += n * sum(runs.values())
            arith += n * sum(c * sum(self.arith[kid - 2].values()) for kid, c in runs.items())
        return kernels / max(steps, 1), arith / max(steps, 1)

    def trace(self, steps: list[int], meta: dict, chunk: int = CHUNK_ACCESSES,
              path_of=lambda s: 0, evaluations=(), eval_trace: "StepTrace | None" = None,
              instructions: bool = False) -> Trace:
        """The trace of the given steps (ascending), chunks made on demand; `path_of(step)`:
        the step's row of `paths`. `evaluations` (execute.Evaluation, in the order they ran)
        follow the training step each came after, one plan row per example, with the columns
        of `eval_trace` (the eval loop's StepTrace). Both schedules place the parameters first,
        alike, so the eval loop reads them where training wrote them; an eval buffer with the
        name, place and size of a training buffer is that buffer (the example too, when the two
        loops' examples have one shape), and every other one gets its own row, `eval.NAME`,
        over the addresses its schedule gave it. `instructions`: give every access its
        instruction id (instruction_ids), for ByteDMD."""
        buffers = [Buffer(b.name, b.base, b.nbytes, b.dtype, b.role) for b in self.sched.buffers]
        kernels = [TraceKernel("init", ("init",), "parameter initialization"),
                   TraceKernel("load", ("load",), "the example written into x and y")]
        kernels += self._kernel_table(Counter(path_of(s) for s in steps))
        remap = None
        if eval_trace is not None and evaluations:
            remap = _EvalColumns(eval_trace, buffers, len(kernels) - 1)
            kernels.append(TraceKernel("eval.load", ("load",), "an evaluated example written"))
            kernels += eval_trace._kernel_table(Counter(
                int(p) for e in evaluations for p in e.example_paths), prefix="eval.")
        after: dict[int, list] = {}
        for e in evaluations:
            after.setdefault(e.after, []).append(e)
        kind_of: dict = {}
        kinds: list = []            # per kind: (columns function, accesses, arithmetic)
        rows: list = []             # per plan row: (step, kind, phase)
        phase_of = {"until": UNTIL_CHECK, "test": TEST}
        first = len(self.init["addr"])

        def kind(key) -> int:
            k = kind_of.get(key)
            if k is None:
                k = kind_of[key] = len(kinds)
                if key[0] == "train":
                    kinds.append((functools.partial(self.columns, key[1], key[2]),
                                  self.accesses(key[1]) + first * key[2],
                                  self.path_arith(key[1])))
                else:
                    kinds.append((functools.partial(remap.columns, key[1]),
                                  eval_trace.accesses(key[1]), eval_trace.path_arith(key[1])))
            return k

        def evaluate(e, step: int) -> None:
            phase = phase_of[e.purpose]
            rows.extend((step, kind(("eval", p)), phase) for p in e.example_paths.tolist())

        for e in after.get(-1, ()) if remap else ():
            evaluate(e, 0)
        for s in steps:
            rows.append((s, kind(("train", path_of(s), s == 0)), TRAINING))
            for e in after.get(s, ()) if remap else ():
                evaluate(e, s)
        table = np.array(rows, np.int64).reshape(-1, 3)
        per_kind = np.array([-(-n // chunk) for _, n, _ in kinds], np.int64)
        sizes = per_kind[table[:, 1]] if len(table) else np.zeros(0, np.int64)
        plan = StepPlan(table[:, 0], table[:, 1], sizes, tuple(a for _, _, a in kinds),
                        table[:, 2])
        ends = np.cumsum(sizes)

        local: dict[int, np.ndarray] = {}

        def get(i: int) -> Chunk:
            r = int(np.searchsorted(ends, i, side="right"))
            lo = (i - int(ends[r] - sizes[r])) * chunk
            k = int(table[r, 1])
            cols = kinds[k][0]()
            part = {name: v[lo:lo + chunk] for name, v in cols.items()}
            instr = None
            if instructions:
                if k not in local:
                    local[k] = instruction_ids(cols["kernel"], cols["is_write"])
                instr = local[k][lo:lo + chunk] + (r << ROW_SHIFT)
            return Chunk(int(table[r, 0]), part["addr"], part["nbytes"], part["is_write"],
                         part["kernel"], instr, part["buffer"])
        n_chunks = int(ends[-1]) if len(ends) else 0
        sources = self.sources()
        if remap is not None:
            sources.update({f"eval.{n}": v for n, v in eval_trace.sources().items()
                            if f"eval.{n}" in {b.name for b in buffers}})
        meta = dict(meta, sources=sources, kernel_lines={
            k.name: int(k.source.rsplit(":", 2)[1]) for k in kernels
            if k.source.count(":") >= 2 and k.source.rsplit(":", 2)[1].isdigit()})
        return Trace(buffers, kernels, n_chunks, get, meta, where="run", plan=plan)

    def sources(self) -> dict:
        """Each buffer's place in the program: [line, text], the text being its name, or for
        a temporary (`%N`) the expression that computes it (its op when the expression spans
        lines). The first node that writes the buffer gives it (a parameter: its `param`)."""
        out: dict = {}
        buffers = {b.name for b in self.sched.buffers}
        for node in self.sched.graph.all_nodes:
            b = node.buffer
            if b in out or b not in buffers or not node.loc.line:
                continue
            text = node.loc.source if b.startswith("%") else b
            out[b] = [node.loc.line, text or node.op]
        return out

    def _kernel_table(self, per_path: Counter, prefix: str = "") -> list:
        """The kernel table's rows for this schedule's kernels, each with the arithmetic of
        the steps that ran it (`per_path[p]`: how many steps took path p)."""
        runs: Counter = Counter()
        for p, n in per_path.items():
            for kid, c in self._count(p)[1].items():
                runs[kid] += c * n
        out = []
        for kid, (k, arith) in enumerate(zip(self.flat, self.arith), start=2):
            node = k.nodes[-1]
            out.append(TraceKernel(prefix + k.name, tuple(m.op for m in k.nodes),
                                   str(node.loc) if node.loc.line else "",
                                   {key: v * runs[kid] for key, v in arith.items()}))
        return out

    def path_arith(self, p: int) -> dict:
        """{operation: count} of one step on path p."""
        total: Counter = Counter()
        for kid, c in self._count(p)[1].items():
            for key, v in self.arith[kid - 2].items():
                total[key] += c * v
        return dict(total)


ROW_SHIFT = 32
"""An instruction id is (plan row << 32) + its number within the row's step: unique, rising
through the trace, and computed once per kind of step."""


def instruction_ids(kernel: np.ndarray, is_write: np.ndarray) -> np.ndarray:
    """Instruction numbers of one step's accesses. The machine model (docs/machine-model.md)
    runs a kernel as a loop nest whose iteration reads, then writes, one output element's
    values; so an instruction starts where a kernel starts and where a read follows a write.
    A kernel's run-time index reads open its first iteration's instruction; writes without
    reads (init, load) are one instruction per kernel."""
    if not len(kernel):
        return np.zeros(0, np.int64)
    new = np.ones(len(kernel), bool)
    new[1:] = (kernel[1:] != kernel[:-1]) | (~is_write[1:] & is_write[:-1])
    return np.cumsum(new, dtype=np.int64) - 1


class _EvalColumns:
    """The eval loop's columns in the joint trace: buffer rows and kernel ids renumbered. The
    eval schedule's buffers that the training step has too (same name, place and size: the
    parameters and the example) keep their rows; the others are added, as `eval.NAME`."""

    def __init__(self, st: StepTrace, buffers: list, kernel_offset: int):
        self.st = st
        known = {(b.name, b.base, b.nbytes): i for i, b in enumerate(buffers)}
        rows = []
        for b in st.sched.buffers:
            key = (b.name, b.base, b.nbytes)
            if key not in known:
                known[key] = len(buffers)
                buffers.append(Buffer("eval." + b.name, b.base, b.nbytes, b.dtype, b.role))
            rows.append(known[key])
        self.rows = np.array(rows, np.int32)
        self.offset = kernel_offset
        self._cache: dict[int, dict] = {}

    def columns(self, p: int) -> dict:
        if p not in self._cache:
            cols = dict(self.st.columns(p))
            cols["buffer"] = self.rows[cols["buffer"]]
            cols["kernel"] = (cols["kernel"] + self.offset).astype(np.int32)
            self._cache[p] = cols
        return self._cache[p]


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

