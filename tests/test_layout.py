"""The memory layouts of the schedule (bump and `liveness-layout`) against liveness computed
here from the kernels, for every program under every exact pipeline and on random graphs.

Oracle (docs/passes.md, liveness-layout; docs/machine-model.md): a buffer is live from the first
kernel that stores it to the last kernel that reads it, both ends included, because a kernel
interleaves its reads and its stores element by element: a buffer whose last read is kernel i and
one that kernel i stores are live together. Parameters and the example are live all the time.
Checked, without `schedule.last_reads` or `peak_live_bytes`:
(a) two buffers live at the same time never share a byte;
(b) no kernel stores into bytes of a buffer it reads (its own buffer aside: an update in place);
(c) every slot is 64-byte aligned, at an address >= 0, sized elements x dtype bytes, of its
    value's type, and every buffer a kernel touches has exactly one slot;
(d) the liveness layout needs no more bytes than the bump layout, and keeps the parameters' and
    the example's addresses.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import traceoracle
from randgraphs import graphs, random_graph, typed_node
from test_passes import EXACT, PROGRAMS, SMALL

from sutro_ir.compile import compile_file
from sutro_ir.graph import Graph, Node, verify
from sutro_ir.ops import OpError
from sutro_ir.passes import run_pipeline
from sutro_ir.schedule import schedule

ALIGN = 64        # docs/machine-model.md: each buffer aligned to 64 bytes
BYTES = {"f64": 8, "f32": 4, "f16": 2, "bf16": 2, "i64": 8, "i32": 4, "i16": 2, "i8": 1,
         "u8": 1, "bool": 1}
FOREVER = (-1, math.inf)
ROOT = Path(__file__).resolve().parent.parent


def program_order(kernels):
    """docs/machine-model.md: an if's kernel, then its then block's kernels, then its else
    block's, in place of the if."""
    for k in kernels:
        yield k
        if k.branches:
            yield from program_order(k.branches[0])
            yield from program_order(k.branches[1])


def live_ranges(sched) -> dict[str, tuple]:
    """Buffer -> (first kernel that stores it, last kernel that reads or stores it), kernels
    numbered in program order."""
    graph = sched.graph
    ranges = {n.buffer: FOREVER for n in graph.nodes if n.op in ("param", "input")}
    for i, k in enumerate(program_order(sched.kernels)):
        touched = [graph[s].buffer for s in traceoracle.stored(k, sched)] + reads(graph, k)
        for b in touched:
            if ranges.get(b) != FOREVER:
                ranges[b] = (ranges.get(b, (i, i))[0], i)
    return ranges


def reads(graph: Graph, kernel) -> list[str]:
    """The buffers a kernel reads: its operands' buffers, less the values it makes itself (a
    later node of a fused kernel reads those from registers)."""
    if kernel.branches:                 # an if reads its condition
        return [graph[kernel.nodes[0].args[0]].buffer]
    made = {n.name for n in kernel.nodes}
    return [graph[a].buffer for n in kernel.nodes for a in n.operands if a not in made]


def overlap(s, t) -> bool:
    return s.base < t.base + t.nbytes and t.base < s.base + s.nbytes and s.nbytes and t.nbytes


def check_no_shared_bytes_while_live(sched) -> int:
    """(a); returns how many pairs of buffers share bytes at different times."""
    ranges = live_ranges(sched)
    slots = [s for s in sched.buffers if s.name in ranges]
    shared = 0
    for i, s in enumerate(slots):
        for t in slots[i + 1:]:
            if not overlap(s, t):
                continue
            (b1, e1), (b2, e2) = ranges[s.name], ranges[t.name]
            assert e1 < b2 or e2 < b1, (f"{s.name} (kernels {b1}..{e1}) and {t.name} (kernels "
                                        f"{b2}..{e2}) share bytes", s, t)
            shared += 1
    return shared


def check_stores_miss_reads(sched) -> None:
    """(b)"""
    graph = sched.graph
    for k in program_order(sched.kernels):
        for stored in {graph[s].buffer for s in traceoracle.stored(k, sched)}:
            for read in set(reads(graph, k)) - {stored}:
                s, r = sched.slot(stored), sched.slot(read)
                assert not overlap(s, r), f"{k.name} stores {stored} over {read}, which it reads"


def check_slots(sched) -> None:
    """(c)"""
    graph = sched.graph
    names = [s.name for s in sched.buffers]
    assert len(names) == len(set(names))
    assert set(names) == set(live_ranges(sched))       # every buffer touched, and only those
    for s in sched.buffers:
        node = graph[s.name]                             # the buffer's first version
        assert (s.dtype, s.shape) == (node.dtype, node.shape)
        assert s.base >= 0 and s.base % ALIGN == 0, s
        assert s.nbytes == math.prod(s.shape) * BYTES[s.dtype], s


def top(sched) -> int:
    return max((s.base + s.nbytes for s in sched.buffers), default=0)


def check_layouts(graph: Graph) -> int:
    """Every check on the bump and the liveness layout of one graph; returns the number of
    buffer pairs the liveness layout lets share bytes."""
    bump = schedule(dataclasses.replace(graph, layout="bump"))
    live = schedule(dataclasses.replace(graph, layout="liveness"))
    for sched in (bump, live):
        check_slots(sched)
        check_stores_miss_reads(sched)
    assert check_no_shared_bytes_while_live(bump) == 0
    shared = check_no_shared_bytes_while_live(live)
    assert top(live) <= top(bump)
    fixed = {n.buffer for n in graph.nodes if n.op in ("param", "input")}
    assert {b: bump.slot(b).base for b in fixed} == {b: live.slot(b).base for b in fixed}
    return shared


def test_live_ranges_by_hand():
    """xor unfused: h_pre is stored by its add and last read by `h_pre > 0` (kernel %14); dh_pre
    lives from its mul to db1's sum; a parameter and the example live all the time."""
    graph = compile_file(str(ROOT / "programs/xor.sir")).train.graph
    sched = schedule(graph)
    ranges = live_ranges(sched)
    order = [k.name for k in sched.kernels]
    assert ranges["W1"] == ranges["x"] == FOREVER
    assert ranges["h_pre"] == (order.index("h_pre"), order.index("%14")) == (2, 14)
    assert ranges["dh_pre"] == (order.index("dh_pre"), order.index("db1")) == (15, 17)
    assert ranges["%24"] == (24, 25)                # made by lr * db2, read by b2's update


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_every_program_under_every_pipeline(path):
    shared = 0
    for pipeline in [""] + EXACT:
        program = compile_file(str(path), SMALL.get(path.name, {}), pipeline)
        shared += check_layouts(program.train.graph)
        shared += check_layouts(program.eval.graph)
    assert shared > 0                   # the liveness layout did reuse bytes: (a) was at stake


@pytest.mark.parametrize("seed", range(30))
def test_random_graphs_under_every_pipeline(seed):
    graph = random_graph(seed)
    for pipeline in [""] + EXACT:
        check_layouts(run_pipeline(graph, pipeline))


def test_random_graphs_reuse_bytes():
    """The random-graph checks are only worth something if the liveness layout reuses bytes."""
    reused = sum(check_layouts(run_pipeline(random_graph(seed), "fuse")) > 0 for seed in range(30))
    assert reused >= 10, reused


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_shrinking_random_graphs(graph):
    for pipeline in ("", "fuse", "layer-local-update,fuse", "recompute{policy=all},fuse"):
        check_layouts(run_pipeline(graph, pipeline))


# The random graphs above hold at most 64 bytes per buffer: one slot each, so a first fit can
# never take a span that is too short. These graphs mix buffers of 4 bytes to 40 KB.

SIZES = (1, 3, 16, 17, 40, 100)
KINDS = ("outer", "sum", "relu", "add", "matmul", "update")


@st.composite
def sized_graphs(draw):
    """A step over vectors of the SIZES and the matrices their outer products make: sums along
    an axis, relu, adds, matrix-vector products and parameter updates at any point, so values
    of many sizes are born and die in every order. Shrinks to fewer, earlier choices."""
    shapes = [(draw(st.sampled_from(SIZES)),) for _ in range(4)]
    nodes = [Node(f"P{i}", "param", dtype="f32", shape=s) for i, s in enumerate(shapes[:3])]
    nodes.append(Node("x", "input", dtype="f32", shape=shapes[3]))
    by_name = {n.name: n for n in nodes}
    values = [n.name for n in nodes]
    for count in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(KINDS))
        a, b = (values[-1 - draw(st.integers(0, len(values) - 1))] for _ in range(2))
        new = _sized_node(f"v{count}", kind, a, b, by_name)
        if new is None:
            continue
        nodes += new
        by_name.update({n.name: n for n in new})
        if new[-1].version:                 # later nodes read the new version only
            values = [v for v in values if by_name[v].buffer != new[-1].buffer]
        values += [n.name for n in new]
    return verify(Graph(tuple(nodes), (values[-1],) if by_name[values[-1]].version == 0 else ()))


def _sized_node(name, kind, a, b, by_name):
    """The nodes of one step (two for an update), or None if the operands do not fit."""
    try:
        if kind == "update":
            return _update(name, a, b, by_name)
        if kind == "sum":
            axis = (("axis", 0),) if len(by_name[a].shape) == 2 else ()
            return [typed_node(name, "sum", [a], by_name, axis)]
        if kind == "relu":
            return [typed_node(name, "relu", [a], by_name)]
        return [typed_node(name, kind, [a, b], by_name)]
    except OpError:
        return None


def _update(name, p, g, by_name):
    """p -= 0.1 * g, when p is the latest version of a parameter and g has its shape."""
    node = by_name[p]
    if not node.buffer.startswith("P") or by_name[g].shape != node.shape or g == p:
        return None
    step = typed_node(f"%{name}", "mul", [0.1, g], by_name)
    new = typed_node(f"{node.buffer}@{node.version + 1}", "sub", [p, step.name],
                {**by_name, step.name: step})
    return [step, new]


@settings(max_examples=80, deadline=None)
@given(sized_graphs())
def test_graphs_with_buffers_of_many_sizes(graph):
    for pipeline in ("", "fuse", "layer-local-update,fuse", "dce,cse,fuse"):
        check_layouts(run_pipeline(graph, pipeline))


def test_the_docs_quote_the_alignment():
    for page in ("docs/testing.md", "docs/machine-model.md"):
        assert f"{ALIGN}-byte aligned" in " ".join((ROOT / page).read_text().split()) or \
            f"aligned to {ALIGN} bytes" in " ".join((ROOT / page).read_text().split()), page


def test_a_buffer_written_after_its_last_read_keeps_its_bytes_until_the_write():
    """A local written whole after its last read (`A := ...` reads nothing of the old A; the
    new version nobody reads again) is live until that write: no value in between may take
    its bytes."""
    from sutro_ir.compile import compile_program
    text = """data train, test = xor(train=4, test=4)
param w: f32[2] = zeros()
train (x, y) in train for 1 epochs {
  A = zeros([64])
  s = sum(A)
  B = ones([64]) * s
  C = B + 1
  A := C * 2
  w += C[0:2]
}
eval (x, y) in test {
  predict sign(w @ x)
}
"""
    graph = compile_program(text, "t.sir", None, "liveness-layout").train.graph
    live = schedule(graph)
    ranges = live_ranges(live)
    assert ranges["A"][1] > ranges["B"][0]             # A's write comes after B is made
    check_layouts(graph)
