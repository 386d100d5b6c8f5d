"""The machine model of docs/machine-model.md written as plain Python loops, one access at a time:
the oracle that tests/test_trace_oracle.py compares sutro_ir/tracegen.py with.

It shares nothing with tracegen (nor with ops.selected, check_spec, parse_einsum) but the
schedule it is given (the kernels in order, an if kernel's blocks, the buffer slots): the loop
nests, the broadcasting, the selection of an index, the letters of an einsum, the register rule
of fused kernels, which values a kernel stores, element sizes, the walk of a step's control path
and kernel ids are written again here from the docs.

The rules, from docs/machine-model.md:
- a kernel is one loop nest over the output index space of its first node (the anchor), in
  row-major order; per iteration: the anchor's reads, then each later node's reads of values
  from outside the kernel, then one write per stored value, in node order;
- elementwise ops (casts, copies, where, the bit ops, floordiv and mod too) read each array
  operand's element, broadcast the numpy way, on every iteration; constants are immediates
  (no access);
- `a @ b`: for each output element, for k: read a's element, read b's element (`A.T @ x`, ta=1,
  reads A[k,i]); `outer(a, b)`: read a[i], read b[j]; transpose: read A[j,i]; a reduction
  (sum mean max min argmax argmin): every input element of the output element, in order;
- einsum: per output element, for each combination of the summed letters (row-major, letters in
  the order they first appear in the inputs), read each operand's element in operand order;
- `a[at]`: first each run-time index (a scalar, element 0 of its buffer), once, before the loop;
  then per element of the result: read the selected element (an int entry fixes a dimension, a
  slice (start, stop, step) maps a result coordinate c to start + c * step, None takes the
  step's next run-time index value, the trailing dimensions follow the result's);
- reshape: read the element with the same row-major number; concat: the element of the operand
  whose stretch along the axis holds the coordinate; stack: operand number = the coordinate
  along the new axis; each then written;
- fill, eye, arange (zeros ones full eye arange) and the random draws normal (normal_like) and
  bernoulli: write each element, nothing read;
- `A[at] op= v` (setindex, always a kernel of its own): read the run-time indices first, then per
  element of the part, row-major: read A's element (not for acc=set), read v's element (v
  broadcast to the part's shape; nothing for a constant), write A's element (A's own buffer);
- an if kernel: read the condition's element, then the kernels of the block the step's path
  says it took (1: then, 0: else), and nothing of the other block; a merge is not a kernel;
- a step's control path: each if's choice and each run-time index value, in program order;
- a value that leaves its kernel is stored: read by a node of another kernel (an if reads the
  values its blocks capture, a merge the version before its if), predicted, a new version of a
  buffer, and the value of a one-op kernel (every node inside a block is one); the others live
  in registers;
- a later node's read of an element already read in this iteration is not made again (it is in
  a register). What counts as already read: the elements that earlier nodes of the kernel read
  from outside it, and the anchor's reads when the anchor is elementwise. The reads of any other
  anchor (matmul, outer, transpose, reduction, index, einsum, gather, construct) do not count
  (they belong to its own inner loop);
- element sizes: f32 and i32 4 bytes, f16 2, i8, u8 and bool 1;
- a step: the `load` kernel writes every element of x, then of y; then the schedule's kernels
  on the step's path; step 0 starts with `init`, which writes every parameter. Kernel ids are
  rows of the trace's kernel table: init 0, load 1, then every kernel of the schedule in flat
  program order (an if's kernel, its then block's kernels, its else block's) from 2.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

ELEM_BYTES = {"f32": 4, "i32": 4, "f16": 2, "i8": 1, "u8": 1, "bool": 1}   # bytes per element
ELEMENTWISE = {"add", "sub", "mul", "div", "floordiv", "mod", "pow", "maximum", "minimum",
               "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "xor", "not", "shl", "shr",
               "neg", "relu", "sign", "abs", "exp", "log", "sqrt", "sigmoid", "hinge",
               "logistic_loss", "where", "cast", "copy", "tanh"}
REDUCTIONS = {"sum", "mean", "max", "min", "argmax", "argmin"}
GATHERS = {"reshape", "concat", "stack"}
CONSTRUCTS = {"fill", "eye", "arange", "normal", "bernoulli"}
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


def part_shape(at: tuple, shape: tuple, arrays: tuple = ()) -> tuple:
    """The shape a[at] selects: one dim per slice entry (its length), the dims of an index
    array (`arrays`: the run-time indices as (values, shape)), then the dims `at` does not
    reach."""
    out, k = [], 0
    for entry in at:
        if entry is None:
            out += list(arrays[k][1]) if k < len(arrays) else []
            k += 1
        if isinstance(entry, tuple):
            start, stop, step = entry
            n = 0
            i = start
            while (step > 0 and i < stop) or (step < 0 and i > stop):
                n, i = n + 1, i + step
            out.append(n)
    return tuple(out) + tuple(shape[len(at):])


def source_index(at: tuple, dyn: tuple, shape: tuple, index: tuple) -> tuple:
    """The index into a of the element a[at] puts at position `index` of its result."""
    out, coord, k = [], list(index), 0
    for entry in at:
        if entry is None:
            values, ishape = dyn[k]
            if ishape:                  # an index array: its element at the leading coords
                here = tuple(coord[:len(ishape)])
                del coord[:len(ishape)]
                out.append(int(values[flat(here, ishape)]))
            else:
                out.append(int(values[0]))
            k += 1
        elif isinstance(entry, tuple):
            start, _, step = entry
            out.append(start + coord.pop(0) * step)
        else:
            out.append(entry)
    return tuple(out) + tuple(coord)


def dynamic_dims(node, graph) -> list[int]:
    """The size of the dimension each run-time index operand of an index or setindex picks in."""
    if node.op not in ("index", "setindex"):
        return []
    shape = graph[node.args[0]].shape
    dims = [d for entry, d in zip(dict(node.attrs).get("at", ()), shape) if entry is None]
    sizes = [math.prod(graph[a].shape) for a in dynamic_operands(node)]
    return [d for d, n in zip(dims, sizes) for _ in range(n)]     # one per index element


def grouped(node, graph, dyn: tuple) -> tuple:
    """The run-time index values of a node as (values, shape) per index operand."""
    out, k = [], 0
    for a in dynamic_operands(node):
        shape = graph[a].shape
        n = math.prod(shape)
        out.append((tuple(dyn[k:k + n]), shape))
        k += n
    return tuple(out)


def dynamic_operands(node) -> tuple:
    return {"index": node.args[1:], "setindex": node.args[2:]}.get(node.op, ())


# ----------------------------------------------------------------------------- one kernel

def anchor_reads(node, graph, index: tuple, dyn: tuple = ()) -> list[tuple[str, int]]:
    """(buffer, element) the anchor reads for its output element `index`, in order (the
    run-time indices of an index anchor are read before the loop: not here)."""
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
        return _reduce_reads(args[0], attrs.get("axis"), index, attrs.get("keepdims", False))
    if node.op == "index":
        a = args[0]
        dyn = grouped(node, graph, dyn)
        return [(a.buffer, flat(source_index(attrs.get("at", ()), dyn, a.shape, index),
                                a.shape))]
    if node.op == "einsum":
        return _einsum_reads(attrs["spec"], args, index)
    if node.op == "reshape":
        (a,) = args
        return [(a.buffer, flat(index, node.shape))]
    if node.op == "concat":
        return [_concat_read(args, attrs.get("axis", 0) % len(node.shape), index)]
    if node.op == "stack":
        axis = attrs.get("axis", 0) % len(node.shape)
        a = args[index[axis]]
        return [(a.buffer, flat(index[:axis] + index[axis + 1:], a.shape))]
    if node.op in CONSTRUCTS:
        return []
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


def _reduce_reads(a, axis, index: tuple, keepdims: bool) -> list[tuple[str, int]]:
    if axis is None:
        return [(a.buffer, e) for e in range(math.prod(a.shape))]
    axis %= len(a.shape)
    rest = index[axis + 1:] if keepdims else index[axis:]     # keepdims: the kept 1 is skipped
    return [(a.buffer, flat(index[:axis] + (t,) + rest, a.shape))
            for t in range(a.shape[axis])]


def _einsum_reads(spec: str, args, index: tuple) -> list[tuple[str, int]]:
    lhs, out = spec.replace(" ", "").split("->")
    subs = lhs.split(",")
    size = {}
    for sub, a in zip(subs, args):
        for c, d in zip(sub, a.shape):
            size[c] = d
    summed = []
    for sub in subs:                                # in the order of first appearance
        for c in sub:
            if c not in out and c not in summed:
                summed.append(c)
    value = dict(zip(out, index))
    reads = []
    for combo in itertools.product(*(range(size[c]) for c in summed)):
        value.update(zip(summed, combo))
        for sub, a in zip(subs, args):
            reads.append((a.buffer, flat(tuple(value[c] for c in sub), a.shape)))
    return reads


def _concat_read(args, axis: int, index: tuple) -> tuple[str, int]:
    t = index[axis]
    for a in args:
        if t < a.shape[axis]:
            return (a.buffer, flat(index[:axis] + (t,) + index[axis + 1:], a.shape))
        t -= a.shape[axis]
    raise AssertionError(f"concat: {index} is past the end")


def stored(kernel, sched) -> list[str]:
    """The members whose values leave the kernel, in node order: read by a node of another
    kernel (or by an if, or a merge), predicted, a new version of a buffer; a kernel of one op
    stores its value; an if kernel stores nothing."""
    if kernel.nodes[0].op == "if":
        return []
    members = {n.name for n in kernel.nodes}
    readers = _readers(sched.graph)
    return [n.name for n in kernel.nodes if len(kernel.nodes) == 1 or n.version > 0
            or n.name in sched.graph.outputs or readers.get(n.name, set()) - members]


_READERS: dict[int, tuple] = {}


def _readers(graph) -> dict[str, set]:
    """value -> the names of the nodes (in any block) that read it; cached per graph."""
    if id(graph) not in _READERS or _READERS[id(graph)][0] is not graph:
        out: dict[str, set] = {}
        for n in graph.all_nodes:
            for a in n.operands:
                out.setdefault(a, set()).add(n.name)
        if len(_READERS) > 32:
            _READERS.clear()
        _READERS[id(graph)] = (graph, out)       # the graph kept: its id stays its own
    return _READERS[id(graph)][1]


def kernel_loop(kernel, sched, dyn: tuple = ()) -> list[tuple[str, int, bool]]:
    """(buffer, element, is_write) of one execution of a kernel, one access at a time; `dyn`:
    the values of its run-time indices. An if kernel: the read of its condition only."""
    graph, anchor = sched.graph, kernel.nodes[0]
    # the docs: a fused kernel's later nodes are elementwise ops of the anchor's shape; an if,
    # a write into part of an array and a merge never anchor one
    assert len(kernel.nodes) == 1 or anchor.op not in ("if", "merge", "setindex") and all(
        n.op in ELEMENTWISE and n.shape == anchor.shape for n in kernel.nodes[1:]), \
        f"{kernel.name}: {[n.op for n in kernel.nodes]} is not a loop nest the machine runs"
    if anchor.op == "if":
        return [(graph[anchor.args[0]].buffer, 0, False)]
    prefix = [(graph[a].buffer, e, False) for a in dynamic_operands(anchor)
              for e in range(math.prod(graph[a].shape))]     # every element of an index array
    assert len(dyn) == len(prefix), (anchor.name, dyn)
    if anchor.op == "setindex":
        return prefix + _setindex_loop(anchor, graph, dyn)
    stores = stored(kernel, sched)
    out = prefix
    for index in indices(anchor.shape):
        reads = anchor_reads(anchor, graph, index, dyn)
        reads += later_reads(kernel, graph, index, reads)
        out += [(b, e, False) for b, e in reads]
        out += [(graph[name].buffer, flat(index, anchor.shape), True) for name in stores]
    return out


def _setindex_loop(node, graph, dyn: tuple) -> list[tuple[str, int, bool]]:
    attrs = dict(node.attrs)
    target, value = graph[node.args[0]], node.args[1]
    at = attrs.get("at", ())
    out = []
    dyn = grouped(node, graph, dyn)
    part = part_shape(at, target.shape, dyn)
    for index in indices(part):
        e = flat(source_index(at, dyn, target.shape, index), target.shape)
        if attrs.get("acc", "set") != "set":
            out.append((target.buffer, e, False))
        if isinstance(value, str):
            v = graph[value]
            out.append((v.buffer, flat(broadcast(index, v.shape), v.shape), False))
        out.append((node.buffer, e, True))
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

def program_order(kernels) -> list:
    """Every kernel, an if's then block's and else block's after it, in program order."""
    out = []
    for k in kernels:
        out.append(k)
        if k.nodes[0].op == "if":
            then, orelse = k.branches
            out += program_order(then) + program_order(orelse)
    return out


def kernel_ids(sched) -> dict[int, int]:
    """id(kernel) -> its kernel id (row of the trace's kernel table)."""
    return {id(k): i for i, k in enumerate(program_order(sched.kernels), start=FIRST_KERNEL)}


def walk_path(sched, path: tuple) -> list[tuple[object, tuple]]:
    """(kernel, the path values it takes) for every kernel a step on `path` runs, in order: an
    if takes its choice, a kernel with run-time indices their values."""
    rest = list(path)
    out = []

    def run(kernels):
        for k in kernels:
            anchor = k.nodes[0]
            if anchor.op == "if":
                taken = rest.pop(0)
                assert taken in (0, 1), path
                out.append((k, (taken,)))
                run(k.branches[0] if taken else k.branches[1])
            else:
                n = sum(math.prod(sched.graph[a].shape) for m in k.nodes
                        for a in dynamic_operands(m))
                values = tuple(rest[:n])
                del rest[:n]
                assert len(values) == n, ("the path is too short", path)
                out.append((k, values))
    run(sched.kernels)
    assert not rest, ("the path is too long", path)
    return out


def writes_of(buffers, sched) -> list[tuple[str, int, bool]]:
    """Every element of each buffer written once, buffer after buffer (load, init)."""
    shapes = {b.name: b.shape for b in sched.buffers}
    return [(b, e, True) for b in buffers for e in range(math.prod(shapes[b]))]


def step_loop(sched, x: str, y: str, path: tuple = ()) -> list[tuple[str, int, bool, int]]:
    """(buffer, element, is_write, kernel id) of one training step on the control path."""
    kid = kernel_ids(sched)
    out = [a + (LOAD,) for a in writes_of([x, y], sched)]
    for kernel, values in walk_path(sched, path):
        dyn = () if kernel.nodes[0].op == "if" else values
        out += [a + (kid[id(kernel)],) for a in kernel_loop(kernel, sched, dyn)]
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


# ----------------------------------------------------------------------------- control paths

def make_path(sched, choose, value) -> tuple:
    """A control path of the schedule, made up (the trace only needs it valid): `choose(i)` is
    the choice (1 then, 0 else) of the i-th if the step meets, `value(d, i)` the value of the
    i-th run-time index it meets (taken modulo d, the size of the dimension it picks in)."""
    out: list[int] = []
    ifs = [0]

    def run(kernels):
        for k in kernels:
            if k.nodes[0].op == "if":
                taken = 1 if choose(ifs[0]) else 0
                ifs[0] += 1
                out.append(taken)
                run(k.branches[0] if taken else k.branches[1])
            else:
                for d in [d for m in k.nodes for d in dynamic_dims(m, sched.graph)]:
                    out.append(value(d, len(out)) % d)
    run(sched.kernels)
    return tuple(out)


def made_up_paths(sched, n_random: int = 6, seed: int = 0) -> list[tuple]:
    """Every if taken with every run-time index at its last value, no if taken with every
    index at 0, and n_random paths of seeded coin flips and values."""
    rng = np.random.default_rng(seed)
    out = [make_path(sched, lambda i: 1, lambda d, i: d - 1),
           make_path(sched, lambda i: 0, lambda d, i: 0)]
    for _ in range(n_random):
        flips, values = rng.integers(0, 2, 1 << 10), rng.integers(0, 1 << 20, 1 << 10)
        out.append(make_path(sched, lambda i: flips[i % len(flips)],
                             lambda d, i: values[i % len(values)]))
    return list(dict.fromkeys(out))
