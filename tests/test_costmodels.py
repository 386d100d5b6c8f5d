"""ByteDMD, the address cost and ceil_sqrt_sum: the worked numbers of cost-models.md sections 3
and 4, and brute-force definitions on random inputs."""

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import SimError, TraceBuilder, costmodels
from simulator.costmodels import address_cost, bytedmd, ceil_sqrt_sum
from simulator.trace import DTYPE_BYTES


def ceil_sqrt(n):
    r = math.isqrt(n)
    return r if r * r == n else r + 1


# ----------------------------------------------------------------------------- ceil_sqrt_sum

def test_ceil_sqrt_sum_small_ranges_against_brute_force():
    lo, hi = np.meshgrid(np.arange(0, 60), np.arange(-1, 60))
    ok = hi >= lo - 1
    got = ceil_sqrt_sum(lo[ok], hi[ok])
    want = [sum(ceil_sqrt(j) for j in range(a, b + 1)) for a, b in zip(lo[ok], hi[ok])]
    assert got.tolist() == want


@given(st.integers(0, 2**53), st.integers(0, 300))
def test_ceil_sqrt_sum_large_arguments(hi, length):
    lo = max(hi - length, 0)
    assert int(ceil_sqrt_sum(lo, hi)) == sum(ceil_sqrt(j) for j in range(lo, hi + 1))


def test_ceil_sqrt_sum_near_squares_up_to_2_53():
    ks = [2**26, 2**26 + 1, 94906265, 94906266]  # 94906266^2 > 2^53 > 94906265^2
    n = [k * k + d for k in ks for d in (-1, 0, 1) if 0 <= k * k + d <= 2**53] + [2**53]
    assert ceil_sqrt_sum(n, n).tolist() == [ceil_sqrt(x) for x in n]


def test_ceil_sqrt_sum_shapes_and_empty():
    assert ceil_sqrt_sum(5, 4) == 0
    assert np.shape(ceil_sqrt_sum(1, 4)) == ()
    assert ceil_sqrt_sum(np.array([[1, 2]]), 4).tolist() == [[7, 6]]


def test_ceil_sqrt_sum_errors():
    with pytest.raises(SimError, match="hi >= lo - 1, got lo 5, hi 3"):
        ceil_sqrt_sum(5, 3)
    with pytest.raises(SimError, match="lo >= 0"):
        ceil_sqrt_sum(-1, 3)


# ----------------------------------------------------------------------------- building programs

def program(buffers, instrs, start=0, align=64, writes_first=False):
    """A trace from {name: (n_elements, dtype)} and instructions [(reads, writes)], each a list
    of (buffer, index); one instr id per instruction. `writes_first` lists each instruction's
    writes before its reads in the trace (ByteDMD must not care)."""
    b = TraceBuilder(start=start, align=align)
    for name, (n, dtype) in buffers.items():
        b.buffer(name, n, dtype=dtype)
    for k, (reads, writes) in enumerate(instrs):
        accesses = [(el, False) for el in reads] + [(el, True) for el in writes]
        for (name, i), is_write in sorted(accesses, key=lambda a: a[1] != writes_first):
            b.access(name, i, is_write, instr=k)
    return b.build()


def scalars(names, dtype="f32"):
    return {n: (1, dtype) for n in names}


# ----------------------------------------------------------------------------- ByteDMD, worked

def add3(dtype):
    bufs = scalars("abct", dtype)
    return program(bufs, [([("a", 0), ("b", 0)], [("t", 0)]),
                          ([("t", 0), ("c", 0)], [("t", 0)])])


def test_bytedmd_add3():
    r = bytedmd(add3("u8"))
    assert r.read_depths.tolist() == [1, 2, 1, 2]
    assert r.cost == 6


def test_bytedmd_add3_two_bytes_per_element():
    assert bytedmd(add3("f16")).cost == 14


def test_bytedmd_dot2():
    trace = program({"a": (2, "u8"), "b": (2, "u8"), "t": (3, "u8")},
                    [([("a", 0), ("b", 0)], [("t", 0)]),
                     ([("a", 1), ("b", 1)], [("t", 1)]),
                     ([("t", 0), ("t", 1)], [("t", 2)])])
    r = bytedmd(trace)
    assert r.read_depths.tolist() == [2, 4, 2, 3, 2, 1]
    assert r.cost == 11


def matvec_trace():
    instrs = []
    for i in range(2):
        instrs.append(([("A", 2 * i), ("x", 0)], [("t", 0)]))
        instrs.append(([("A", 2 * i + 1), ("x", 1)], [("t", 1)]))
        instrs.append(([("t", 0), ("t", 1)], [("y", i)]))
    return program({"A": (4, "u8"), "x": (2, "u8"), "y": (2, "u8"), "t": (2, "u8")}, instrs)


def test_bytedmd_matvec():
    r = bytedmd(matvec_trace(), args=("A", "x"), outputs=("y",))
    assert r.read_depths.tolist() == [4, 6, 5, 6, 3, 1, 5, 3, 4, 3, 2, 1]
    assert r.cost == 26
    assert r.cost_by_buffer == {"A": 10, "x": 10, "t": 6}
    assert r.to_dict()["max_read_depth_values"] == 6


def test_bytedmd_matvec_without_returned_y():
    """y dead at birth: it never sits on the stack, so the second row reads are shallower."""
    r = bytedmd(matvec_trace(), args=("A", "x"))
    assert r.read_depths.tolist() == [4, 6, 5, 6, 3, 1, 4, 2, 3, 2, 2, 1]


def test_bytedmd_repeated_operand_is_charged_twice_at_one_depth():
    trace = program(scalars("abt"), [([("a", 0), ("a", 0)], [("t", 0)]),
                                     ([("t", 0), ("b", 0)], [("t", 0)])])
    assert bytedmd(trace).read_depths.tolist() == [1, 1, 1, 2]


def test_bytedmd_reads_happen_before_writes_within_an_instruction():
    """t = t + c listed as write-then-reads prices the same as reads-then-write."""
    b = TraceBuilder()
    for name in "abct":
        b.buffer(name, 1, dtype="u8")
    b.read("a", 0, instr=0)
    b.read("b", 0, instr=0)
    b.write("t", 0, instr=0)
    b.write("t", 0, instr=1)
    b.read("t", 0, instr=1)
    b.read("c", 0, instr=1)
    r = bytedmd(b.build())
    assert r.read_depths.tolist() == [1, 2, 1, 2]
    assert r.cost == 6


def test_bytedmd_errors():
    b = TraceBuilder()
    b.buffer("a", 2)
    b.read("a")
    with pytest.raises(SimError, match="needs the 'instr' column"):
        bytedmd(b.build())
    b.read("a", 0, instr=3)
    with pytest.raises(SimError, match="access 0 has no instruction id"):
        bytedmd(b.build())
    trace = program(scalars("ab"), [([("a", 0)], []), ([("b", 0)], [])])
    with pytest.raises(SimError, match="buffer 'b' is read before it is written, so it must be"):
        bytedmd(trace, args=("a",))
    with pytest.raises(SimError, match="no buffer named 'z'"):
        bytedmd(trace, outputs=("z",))


def test_bytedmd_instruction_must_be_consecutive():
    b = TraceBuilder()
    b.buffer("a", 2)
    b.read("a", 0, instr=0)
    b.read("a", 1, instr=1)
    b.read("a", 0, instr=0)
    with pytest.raises(SimError, match="instruction 0 resumes at access 2"):
        bytedmd(b.build())


# ----------------------------------------------------------------------------- ByteDMD, brute force

def first_access(instrs):
    """'R' or 'W': how each element is first touched."""
    first = {}
    for reads, writes in instrs:
        for el in reads:
            first.setdefault(el, "R")
        for el in writes:
            first.setdefault(el, "W")
    return first


def brute_bytedmd(buffers, instrs, args=None, outputs=()):
    """The rules of section 3 on a Python list, bottom of the stack first."""
    size = {name: DTYPE_BYTES[dtype] for name, (_, dtype) in buffers.items()}
    first = first_access(instrs)
    if args is None:
        args = [n for n in buffers if any(first.get((n, i)) == "R" for i in range(buffers[n][0]))]
    stack = [(n, i) for n in reversed(args) for i in range(buffers[n][0]) if first.get((n, i)) == "R"]

    def read_later(el, t):
        for reads, writes in instrs[t + 1:]:
            if el in reads:
                return True
            if el in writes:
                return False
        return el[0] in outputs

    depths, cost = [], 0
    for t, (reads, writes) in enumerate(instrs):
        for el in reads:
            k = stack.index(el)
            above = sum(size[e[0]] for e in stack[k + 1:])
            depths.append(len(stack) - k)
            cost += sum(ceil_sqrt(j) for j in range(above + 1, above + size[el[0]] + 1))
        for el in reads:
            stack.remove(el)
            stack.append(el)
        for el in set(reads):
            if el in writes or not read_later(el, t):
                stack.remove(el)
        for j, el in enumerate(writes):
            if el in writes[j + 1:] or not read_later(el, t):
                continue
            if el in stack:
                stack.remove(el)
            stack.append(el)
    return depths, cost


def random_program(rng, n_instrs, max_elems=4):
    names = rng.sample("abcdefg", rng.randint(1, 4))
    buffers = {n: (rng.randint(1, max_elems), rng.choice(["f32", "f16", "u8", "f64"]))
               for n in names}
    elems = [(n, i) for n in names for i in range(buffers[n][0])]
    instrs = [([rng.choice(elems) for _ in range(rng.randint(0, 3))],
               [rng.choice(elems) for _ in range(rng.randint(0, 2))]) for _ in range(n_instrs)]
    instrs = [ins for ins in instrs if ins[0] or ins[1]]
    outputs = tuple(n for n in names if rng.random() < 0.3)
    return buffers, instrs, outputs


def random_args(rng, buffers, instrs):
    """None (the default) or an explicit order: the needed buffers shuffled, maybe with extras."""
    if rng.random() < 0.5:
        return None
    first = first_access(instrs)
    needed = {n for (n, _), kind in first.items() if kind == "R"}
    args = [n for n in buffers if n in needed or rng.random() < 0.3]
    rng.shuffle(args)
    return tuple(args)


def check_against_brute_force(rng, n_instrs, max_elems=4):
    buffers, instrs, outputs = random_program(rng, n_instrs, max_elems)
    args = random_args(rng, buffers, instrs)
    depths, cost = brute_bytedmd(buffers, instrs, args, outputs)
    trace = program(buffers, instrs, align=rng.choice([1, 8, 64]), writes_first=rng.random() < 0.5)
    r = bytedmd(trace, args, outputs)
    assert r.read_depths.tolist() == depths
    assert r.cost == cost
    assert r.reads == len(depths)


@pytest.mark.parametrize("capacity", [1, 1024])
@settings(max_examples=150, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_bytedmd_against_brute_force(capacity, rng):
    """capacity 1 compacts the stack's positions on almost every push."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(costmodels, "MIN_STACK_CAPACITY", capacity)
        check_against_brute_force(rng, rng.randint(0, 25))


def test_bytedmd_long_trace_against_brute_force():
    """Long enough to compact the stack's positions many times at the default capacity."""
    check_against_brute_force(random.Random(7), 4000, max_elems=40)


# ----------------------------------------------------------------------------- address cost

def test_address_cost_single_reads():
    for addr, want in zip([1, 2, 3, 4, 5, 9, 10, 16, 17], [1, 2, 2, 2, 3, 3, 4, 4, 5]):
        b = TraceBuilder(align=1)
        b.buffer("mem", 18, dtype="u8")
        b.read("mem", addr)
        assert address_cost(b.build()).cost == want


def test_address_cost_cells_of_several_bytes():
    b = TraceBuilder()
    b.buffer("mem", 18, dtype="f32")
    b.read("mem", [1, 5, 17])
    assert address_cost(b.build(), cell_bytes=4).cost == 1 + 3 + 5


def test_address_cost_worked_example():
    """a*b + c*d + e with a..e at addresses 1..5: mul 1,1,2; mul 2,3,4; add 1,1,2; add 1,1,5;
    output at 1."""
    trace = program(scalars("abcde", "u8"),
                    [([("a", 0), ("b", 0)], [("a", 0)]), ([("b", 0), ("c", 0)], [("b", 0)]),
                     ([("a", 0), ("b", 0)], [("a", 0)]), ([("a", 0), ("e", 0)], [("a", 0)])],
                    start=1, align=1)
    r = address_cost(trace, outputs=("a",))
    assert (r.cost, r.read_cost, r.output_cost, r.reads) == (15, 14, 1, 8)
    assert r.cost_by_buffer == {"a": 4, "b": 6, "c": 2, "e": 3}
    assert r.to_dict()["cost"] == 15


def test_address_cost_origin():
    b = TraceBuilder()
    b.buffer("mem", 4, dtype="f32")
    b.read("mem")
    assert address_cost(b.build(), cell_bytes=4, origin=-4).cost == 1 + 2 + 2 + 2


def test_address_cost_cell_zero_is_an_error():
    b = TraceBuilder(align=1)
    b.buffer("mem", 3, dtype="u8")
    b.read("mem", [2, 0])
    with pytest.raises(SimError, match=r"access 1 at address 0 is in cell 0; cells start at 1"):
        address_cost(b.build())
    with pytest.raises(SimError, match="no buffer named 'out'"):
        address_cost(b.build(), outputs=("out",), origin=-1)
