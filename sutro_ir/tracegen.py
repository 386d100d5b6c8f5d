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

from simulator.trace import CHUNK_ACCESSES, Buffer, Chunk, Kernel, Trace

from .graph import Node, compute_dtype
from .ops import OPS, arith_counts, n_elements
from .schedule import BufferSlot, Schedule


def kernel_accesses(node: Node, sched: Schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(addr, nbytes, is_write) of one execution of a one-op kernel."""
    out = sched.slot(node.buffer)
    ins = [sched.slot(sched.graph[a].buffer) if isinstance(a, str) else None for a in node.args]
    kind = OPS[node.op].kind
    cols, slots = PATTERNS[kind](node, [s for s in ins if s is not None], out)
    return _interleave(cols, slots)


def _interleave(cols: list[np.ndarray], slots: list[BufferSlot]):
    """cols[j][r] is the r-th iteration's j-th access; the last column is the write."""
    rows = cols[0].shape[0]
    addr = np.empty((rows, len(cols)), np.int64)
    for j, (c, s) in enumerate(zip(cols, slots)):
        addr[:, j] = s.base + c * s.elem_bytes
    sizes = np.array([s.elem_bytes for s in slots], np.int32)
    writes = np.zeros(len(cols), bool)
    writes[-1] = True
    return addr.ravel(), np.tile(sizes, rows), np.tile(writes, rows)


def _elementwise(node: Node, ins: list[BufferSlot], out: BufferSlot):
    cols = [np.broadcast_to(np.arange(n_elements(s.shape)).reshape(s.shape), node.shape).ravel()
            for s in ins]
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


def n_accesses(node: Node, graph) -> int:
    """How many accesses one execution of the node's kernel makes (without building them)."""
    kind = OPS[node.op].kind
    n_out = n_elements(node.shape)
    shapes = [graph[a].shape for a in node.operands]
    if kind == "elementwise":
        return n_out * (len(shapes) + 1)
    if kind == "matmul":
        return n_out * (2 * shapes[1][0] + 1)
    if kind == "outer":
        return 3 * n_out
    if kind == "reduce":
        return n_elements(shapes[0]) + n_out
    return 2 * n_out


PATTERNS = {"elementwise": _elementwise, "matmul": _matmul, "outer": _outer,
            "transpose": _transpose, "reduce": _reduce, "index": _index}


# ----------------------------------------------------------------------------- the step's columns

class StepTrace:
    """The columns of one training step (and of step 0's parameter initialization), computed
    once from the schedule; `trace(steps)` replays them for the traced steps."""

    def __init__(self, sched: Schedule, x: str, y: str, params: list[str]):
        self.sched = sched
        order = sorted(range(len(sched.buffers)), key=lambda i: sched.buffers[i].base)
        self._order = np.array(order, np.int32)      # buffer ids by base address
        self._bases = np.array([sched.buffers[i].base for i in order], np.int64)
        parts = [self._writes([x, y], 1)]
        self.per_step_arith = []
        for kid, k in enumerate(sched.kernels, start=2):
            addr, nbytes, is_write = kernel_accesses(k.node, sched)
            parts.append(self._columns(addr, nbytes, is_write, kid))
            self.per_step_arith.append(self._arith(k.node))
        self.step = _concat(parts)
        self.init = self._writes(params, 0)

    def _writes(self, buffers: list[str], kid: int) -> dict:
        parts = []
        for name in buffers:
            s = self.sched.slot(name)
            n = n_elements(s.shape)
            parts.append(self._columns(s.base + np.arange(n) * s.elem_bytes,
                                       np.full(n, s.elem_bytes, np.int32), np.ones(n, bool), kid))
        return _concat(parts)

    def _columns(self, addr, nbytes, is_write, kid: int) -> dict:
        bids = np.searchsorted(self._bases, addr, side="right") - 1
        return {"addr": addr, "nbytes": nbytes, "is_write": is_write,
                "kernel": np.full(len(addr), kid, np.int32),
                "buffer": self._order[bids].astype(np.int32)}

    def _arith(self, node: Node) -> dict:
        g = self.sched.graph
        return arith_counts(OPS[node.op], compute_dtype(node, g), node.shape,
                            [g[a].shape for a in node.operands], dict(node.attrs))

    @property
    def accesses_per_step(self) -> int:
        return len(self.step["addr"])

    def trace(self, steps: list[int], meta: dict, chunk: int = CHUNK_ACCESSES) -> Trace:
        """The trace of the given steps (ascending), chunks made on demand."""
        buffers = [Buffer(b.name, b.base, b.nbytes, b.dtype, b.role) for b in self.sched.buffers]
        n = len(steps)
        kernels = [Kernel("init", ("init",), "parameter initialization"),
                   Kernel("load", ("load",), "the example written into x and y")]
        for k, arith in zip(self.sched.kernels, self.per_step_arith):
            node = k.node
            kernels.append(Kernel(k.name, tuple(m.op for m in k.nodes),
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
