"""The machine model of docs/machine-model.md written as plain Python loops, one access at a time:
the oracle that tests/test_trace_oracle.py compares sutro_ir/tracegen.py with.

It shares nothing with tracegen but the schedule it is given (the kernels in order and the
buffer slots): the loop nests, the broadcasting, the register rule of fused kernels, which
values a kernel stores, element sizes and kernel ids are written again here from the docs.

The rules, from docs/machine-model.md:
- a kernel is one loop nest over the output index space of its first node (the anchor), in
  row-major order; per iteration: the anchor's reads, then each later node's reads of values
  from outside the kernel, then one write per stored value, in node order;
- elementwise ops (casts, copies, where too) read each array operand's element, broadcast the
  numpy way, on every iteration; constants are immediates (no access);
- `a @ b`: for each output element, for k: read a's element, read b's element (`A.T @ x`, ta=1,
  reads A[k,i]); `outer(a, b)`: read a[i], read b[j]; transpose: read A[j,i]; a reduction:
  every input element of the output element, in order; `a[i]`: the row's element;
- a value that leaves its kernel is stored: read by another kernel, predicted, a parameter's
  new version, and the value of a one-op kernel; the others live in registers;
- a later node's read of an element already read in this iteration is not made again (it is in
  a register). What counts as already read: the elements that earlier nodes of the kernel read
  from outside it, and the anchor's reads when the anchor is elementwise. The reads of a
  matmul, outer product, transpose, reduction or index anchor do not count (they belong to
  its own inner loop);
- a step: the `load` kernel writes every element of x, then of y; then the schedule's kernels;
  step 0 starts with `init`, which writes every parameter. Kernel ids are rows of the trace's
  kernel table: init 0, load 1, then the schedule's kernels from 2.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

ELEM_BYTES = {"f32": 4, "f16": 2, "i8": 1, "bool": 1}      # bytes per element
ELEMENTWISE = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt", "le", "gt", "ge",
               "eq", "ne", "neg", "relu", "sign", "abs", "exp", "log", "sqrt", "sigmoid",
               "hinge", "logistic_loss", "where", "cast", "copy"}
REDUCTIONS = {"sum", "mean", "max"}
INIT, LOAD, FIRST_KERNEL = 0, 1, 2


# ----------------------------------------------------------------------------- indices

def indices(shape: tuple):
    """Every index of the shape, row-major (one empty index for a scalar)."""
    return itertools.product(*(range(d) for d in shape))


def flat(index: tuple, shape: tuple) -> int:
    """The row-major element number of index in shape (checked in range)."""
    assert len(index) == len(shape) and all(0 <= i < d for i, d in zip(index, shape)), \
        (index, shape)
    out = 0
    for i, d in zip(index, shape):
        out = out * d + i
    return out


def broadcast(index: tuple, shape: tuple) -> tuple:
    """The element of an operand of `shape` that numpy pairs with output `index`: trailing dims
    aligned, a dim of 1 always 0."""
    lead = len(index) - len(shape)
    return tuple(0 if d == 1 else index[lead + p] for p, d in enumerate(shape))


# ----------------------------------------------------------------------------- one kernel

def anchor_reads(node, graph, index: tuple) -> list[tuple[str, int]]:
    """(buffer, element) the anchor reads for its output element `index`, in order."""
    args = [graph[a] for a in node.operands]
    attrs = dict(node.attrs)
    if node.op in ELEMENTWISE:
        return [(a.buffer, flat(broadcast(index, a.shape), a.shape)) for a in args]
    if node.op == "matmul":
        return _matmul_reads(args, attrs.get("ta", 0), index)
    if node.op == "outer":
        a, b = args
        return [(a.buffer, index[0]), (b.buffer, index[1])]
    if node.op == "transpose":
        (a,) = args
        return [(a.buffer, flat(index[::-1], a.shape))]
    if node.op in REDUCTIONS:
        return _reduce_reads(args[0], attrs.get("axis"), index)
    if node.op == "index":
        (a,) = args
        return [(a.buffer, flat((attrs["i"] % a.shape[0],) + index, a.shape))]
    raise KeyError(f"the oracle has no loop nest for op '{node.op}'")


def _matmul_reads(args, ta: int, index: tuple) -> list[tuple[str, int]]:
    a, b = args
    logical = a.shape[::-1] if ta else a.shape      # the left operand as the product sees it
    i = index[:1] if len(logical) == 2 else ()      # output row, if a has rows
    j = index[-1:] if len(b.shape) == 2 else ()     # output column, if b has columns
    out = []
    for k in range(b.shape[0]):
        a_index = i + (k,)
        out.append((a.buffer, flat(a_index[::-1] if ta else a_index, a.shape)))
        out.append((b.buffer, flat((k,) + j, b.shape)))
    return out


def _reduce_reads(a, axis, index: tuple) -> list[tuple[str, int]]:
    if axis is None:
        return [(a.buffer, e) for e in range(math.prod(a.shape))]
    axis %= len(a.shape)
    return [(a.buffer, flat(index[:axis] + (t,) + index[axis:], a.shape))
            for t in range(a.shape[axis])]


def stored(kernel, sched) -> list[str]:
    """The members whose values leave the kernel, in node order: read by another kernel,
    predicted, a parameter's new version; a kernel of one op stores its value."""
    elsewhere = {a for k in sched.kernels if k is not kernel for n in k.nodes for a in n.operands}
    return [n.name for n in kernel.nodes if len(kernel.nodes) == 1 or n.version > 0
            or n.name in sched.graph.outputs or n.name in elsewhere]


def kernel_loop(kernel, sched) -> list[tuple[str, int, bool]]:
    """(buffer, element, is_write) of one execution of a kernel, one access at a time."""
    graph, anchor = sched.graph, kernel.nodes[0]
    stores = stored(kernel, sched)
    out = []
    for index in indices(anchor.shape):
        reads = anchor_reads(anchor, graph, index)
        reads += later_reads(kernel, graph, index, reads)
        out += [(b, e, False) for b, e in reads]
        out += [(graph[name].buffer, flat(index, anchor.shape), True) for name in stores]
    return out


def later_reads(kernel, graph, index: tuple, anchor: list) -> list[tuple[str, int]]:
    """The later nodes' reads of values from outside the kernel for output element `index`,
    in node and operand order, without the elements already in registers."""
    members = {n.name for n in kernel.nodes}
    in_registers = set(anchor) if kernel.nodes[0].op in ELEMENTWISE else set()
    out = []
    for a in [a for n in kernel.nodes[1:] for a in n.operands if a not in members]:
        value = graph[a]
        element = (value.buffer, flat(broadcast(index, value.shape), value.shape))
        if element not in in_registers:
            in_registers.add(element)
            out.append(element)
    return out


# ----------------------------------------------------------------------------- a step

def writes_of(buffers, sched) -> list[tuple[str, int, bool]]:
    """Every element of each buffer written once, buffer after buffer (load, init)."""
    shapes = {b.name: b.shape for b in sched.buffers}
    return [(b, e, True) for b in buffers for e in range(math.prod(shapes[b]))]


def step_loop(sched, x: str, y: str) -> list[tuple[str, int, bool, int]]:
    """(buffer, element, is_write, kernel id) of one training step."""
    out = [a + (LOAD,) for a in writes_of([x, y], sched)]
    for kid, kernel in enumerate(sched.kernels, start=FIRST_KERNEL):
        out += [a + (kid,) for a in kernel_loop(kernel, sched)]
    return out


def init_loop(sched, params: list[str]) -> list[tuple[str, int, bool, int]]:
    return [a + (INIT,) for a in writes_of(params, sched)]


def columns(accesses, sched) -> dict[str, np.ndarray]:
    """The trace columns of (buffer, element, is_write[, kernel]) accesses: the address is the
    buffer slot's base plus element times element size; `buffer` is the slot's row."""
    row = {b.name: i for i, b in enumerate(sched.buffers)}
    slots = sched.buffers
    addr, nbytes = [], []
    for acc in accesses:
        s = slots[row[acc[0]]]
        assert 0 <= acc[1] < math.prod(s.shape), (acc, s)
        addr.append(s.base + acc[1] * ELEM_BYTES[s.dtype])
        nbytes.append(ELEM_BYTES[s.dtype])
    out = {"addr": np.array(addr, np.int64), "nbytes": np.array(nbytes, np.int64),
           "is_write": np.array([a[2] for a in accesses], bool),
           "buffer": np.array([row[a[0]] for a in accesses], np.int64)}
    if accesses and len(accesses[0]) == 4:
        out["kernel"] = np.array([a[3] for a in accesses], np.int64)
    return out
