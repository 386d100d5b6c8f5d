"""Lowering a schedule to the access trace of the machine model (docs/machine-model.md).

Each kernel's accesses come from numpy index arithmetic over its loop nest, never a Python loop
per element:
- elementwise (and casts, copies, where): for each output element in row-major order, read each
  array operand's element (broadcast operands are read again on every iteration), then write;
- matmul `a @ b`: for i, for j, for k: read a[i,k], read b[k,j]; then write out[i,j];
- outer: for i, for j: read a[i], read b[j], write out[i,j];
- transpose: for each output element: read the input element, write;
- reductions: for each output element, read its inputs in order, then write once;
- index `a[i]`: read a[i, ...] element by element, writing each.
Constants are immediates and cost nothing; values inside a kernel live in registers.

A step starts with the `load` kernel, which writes the example into x and y (the data arrives
from outside the simulated memory). Step 0 starts with `init`, which writes every parameter.
Addresses depend only on the schedule, never on values (.sir has no data-dependent control
flow), so one step's columns are computed once and every traced step replays them.
"""

from __future__ import annotations

import numpy as np

from simulator.trace import CHUNK_ACCESSES, Buffer, Chunk, Trace
from simulator.trace import Kernel as TraceKernel

from .graph import Node, compute_dtype
from .ops import OPS, arith_counts, n_elements
from .schedule import BufferSlot, Kernel, Schedule


def kernel_accesses(kernel: Kernel, sched: Schedule):
    """(addr, nbytes, is_write, buffer) of one execution of a kernel (buffer: the row of
    sched.buffers that each access touches). One loop nest over the anchor's
    output index space; per iteration: the anchor's reads, then each later node's reads of values
    from outside the kernel (an element already read in this iteration is in a register), then
    the writes of the values the kernel stores, in node order."""
    anchor = kernel.anchor
    ins = [sched.slot(sched.graph[a].buffer) for a in anchor.operands]
    cols, slots = PATTERNS[OPS[anchor.op].kind](anchor, ins, None)
    cols, slots = cols[:-1], slots[:-1]
    for a in outside_reads(kernel, sched.graph):
        s = sched.slot(sched.graph[a].buffer)
        cols.append(_broadcast_index(s, anchor.shape))
        slots.append(s)
    for name in kernel.stores:
        cols.append(np.arange(n_elements(anchor.shape)))
        slots.append(sched.slot(sched.graph[name].buffer))
    addr, nbytes, is_write, which = _interleave(cols, slots, n_writes=len(kernel.stores))
    rows = np.array([sched.index(s.name) for s in slots], np.int32)
    return addr, nbytes, is_write, rows[which]


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


def _interleave(cols: list[np.ndarray], slots: list[BufferSlot], n_writes: int = 1):
    """cols[j][r] is the r-th iteration's j-th access; the last n_writes columns are writes.
    Returns (addr, nbytes, is_write, slot): slot is the index into `slots` of each access."""
    rows = cols[0].shape[0]
    addr = np.empty((rows, len(cols)), np.int64)
    for j, (c, s) in enumerate(zip(cols, slots)):
        addr[:, j] = s.base + c * s.elem_bytes
    sizes = np.array([s.elem_bytes for s in slots], np.int32)
    writes = np.zeros(len(cols), bool)
    writes[len(cols) - n_writes:] = True
    which = np.tile(np.arange(len(cols), dtype=np.int32), rows)
    return addr.ravel(), np.tile(sizes, rows), np.tile(writes, rows), which


def _elementwise(node: Node, ins: list[BufferSlot], out: BufferSlot):
    cols = [_broadcast_index(s, node.shape) for s in ins]
    return cols + [np.arange(n_elements(node.shape))], ins + [out]


def _matmul(node: Node, ins: list[BufferSlot], out: BufferSlot):
    a, b = ins
    ta = dict(node.attrs).get("ta", 0)
    a_shape = a.shape[::-1] if ta else a.shape
    I = a_shape[0] if len(a_shape) == 2 else 1
    K = b.shape[0]
    J = b.shape[1] if len(b.shape) == 2 else 1
    i, j, k = np.meshgrid(np.arange(I), np.arange(J), np.arange(K), indexing="ij")
    a_idx = (k * I + i) if ta else (i * K + k)
    b_idx = k * J + j
    reads = np.stack([a_idx, b_idx], axis=-1).reshape(I * J, 2 * K)
    cols = [reads[:, c] for c in range(2 * K)] + [np.arange(I * J)]
    return cols, [a, b] * K + [out]


def _outer(node: Node, ins: list[BufferSlot], out: BufferSlot):
    a, b = ins
    i, j = np.meshgrid(np.arange(a.shape[0]), np.arange(b.shape[0]), indexing="ij")
    return [i.ravel(), j.ravel(), np.arange(i.size)], [a, b, out]


def _transpose(node: Node, ins: list[BufferSlot], out: BufferSlot):
    (a,) = ins
    src = np.arange(n_elements(a.shape)).reshape(a.shape).T.ravel()
    return [src, np.arange(src.size)], [a, out]


def _reduce(node: Node, ins: list[BufferSlot], out: BufferSlot):
    (a,) = ins
    idx = np.arange(n_elements(a.shape)).reshape(a.shape)
    axis = dict(node.attrs).get("axis")
    rows = idx.reshape(1, -1) if axis is None else np.moveaxis(idx, axis, -1).reshape(
        -1, a.shape[axis])
    cols = [rows[:, c] for c in range(rows.shape[1])] + [np.arange(rows.shape[0])]
    return cols, [a] * rows.shape[1] + [out]


def _index(node: Node, ins: list[BufferSlot], out: BufferSlot):
    (a,) = ins
    i = dict(node.attrs)["i"] % a.shape[0]
    size = n_elements(a.shape[1:])
    return [i * size + np.arange(size), np.arange(size)], [a, out]


def n_accesses(kernel: Kernel, graph) -> int:
    """How many accesses one execution of a kernel makes (without building them)."""
    anchor = kernel.anchor
    kind = OPS[anchor.op].kind
    n_out = n_elements(anchor.shape)
    shapes = [graph[a].shape for a in anchor.operands]
    if kind == "elementwise":
        reads = n_out * len(shapes)
    elif kind == "matmul":
        reads = n_out * 2 * shapes[1][0]
    elif kind == "outer":
        reads = 2 * n_out
    elif kind == "reduce":
        reads = n_elements(shapes[0])
    else:
        reads = n_out
    reads += n_out * len(outside_reads(kernel, graph))
    return reads + n_out * len(kernel.stores)


PATTERNS = {"elementwise": _elementwise, "matmul": _matmul, "outer": _outer,
            "transpose": _transpose, "reduce": _reduce, "index": _index}


# ----------------------------------------------------------------------------- the step's columns

class StepTrace:
    """The columns of one training step (and of step 0's parameter initialization), computed
    once from the schedule; `trace(steps)` replays them for the traced steps."""

    def __init__(self, sched: Schedule, x: str, y: str, params: list[str]):
        self.sched = sched
        parts = [self._writes([x, y], 1)]
        self.per_step_arith = []
        for kid, k in enumerate(sched.kernels, start=2):
            addr, nbytes, is_write, buffer = kernel_accesses(k, sched)
            parts.append(self._columns(addr, nbytes, is_write, kid, buffer))
            self.per_step_arith.append(self._arith(k))
        self.step = _concat(parts)
        self.init = self._writes(params, 0)

    def _writes(self, buffers: list[str], kid: int) -> dict:
        parts = []
        for name in buffers:
            s = self.sched.slot(name)
            n = n_elements(s.shape)
            parts.append(self._columns(s.base + np.arange(n) * s.elem_bytes,
                                       np.full(n, s.elem_bytes, np.int32), np.ones(n, bool), kid,
                                       np.full(n, self.sched.index(name), np.int32)))
        return _concat(parts)

    @staticmethod
    def _columns(addr, nbytes, is_write, kid: int, buffer) -> dict:
        return {"addr": addr, "nbytes": nbytes, "is_write": is_write,
                "kernel": np.full(len(addr), kid, np.int32), "buffer": buffer}

    def _arith(self, kernel: Kernel) -> dict:
        g, total = self.sched.graph, {}
        for node in kernel.nodes:
            counts = arith_counts(OPS[node.op], compute_dtype(node, g), node.shape,
                                  [g[a].shape for a in node.operands], dict(node.attrs))
            for key, v in counts.items():
                total[key] = total.get(key, 0) + v
        return total

    @property
    def accesses_per_step(self) -> int:
        return len(self.step["addr"])

    def trace(self, steps: list[int], meta: dict, chunk: int = CHUNK_ACCESSES) -> Trace:
        """The trace of the given steps (ascending), chunks made on demand."""
        buffers = [Buffer(b.name, b.base, b.nbytes, b.dtype, b.role) for b in self.sched.buffers]
        n = len(steps)
        kernels = [TraceKernel("init", ("init",), "parameter initialization"),
                   TraceKernel("load", ("load",), "the example written into x and y")]
        for k, arith in zip(self.sched.kernels, self.per_step_arith):
            node = k.nodes[-1]
            kernels.append(TraceKernel(k.name, tuple(m.op for m in k.nodes),
                                       str(node.loc) if node.loc.line else "",
                                       {key: v * n for key, v in arith.items()}))
        pieces = []
        for s in steps:
            cols = _concat([self.init, self.step]) if s == 0 else self.step
            pieces += [(s, cols, lo) for lo in range(0, len(cols["addr"]), chunk)]

        def get(i: int) -> Chunk:
            s, cols, lo = pieces[i]
            part = {k: v[lo:lo + chunk] for k, v in cols.items()}
            return Chunk(s, part["addr"], part["nbytes"], part["is_write"], part["kernel"],
                         None, part["buffer"])
        return Trace(buffers, kernels, len(pieces), get, meta, where="run")


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
