"""Running an address-IR program on many instances at once.

Two value worlds, as the group's executors define them:
- `width=8` (sparse parity, symmetry; dally-eval and the Python reference): a cell holds a signed
  8-bit value. The result of a unary or binary op wraps (v & 0xFF, minus 256 from 128 up), so
  127 + 1 = -128 and abs(-128) = -128; `set K` stores K wrapped; `cmp` gives 0 or 1 and `select`
  copies a value, neither wrapped; inputs are placed as given. `div` is floor division and a
  zero divisor traps (a DivideByZero naming the line). Compares are signed.
- `width=None` (the matmul scorer's concrete check): unbounded integers, exact.

Cells are renumbered densely (slot = rank of the address among the program's cells) and held
as a [slots, instances] int64 array, so one instruction is one pass over the instances.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from simulator.limits import allowance

from ..errors import SirError
from .isa import BY_CODE, OPS, PREDICATES
from .text import Program

# op codes and predicates as module constants, which numba compiles in
ADD, SUB, MUL, COPY, AND, OR, XOR, NOT, SET, DIV, CMP, SELECT, ABS = (
    OPS[n].code for n in ("add", "sub", "mul", "copy", "and", "or", "xor", "not", "set", "div",
                          "cmp", "select", "abs"))
EQ, NE, LT, LE, GT = (PREDICATES.index(p) for p in ("eq", "ne", "lt", "le", "gt"))


class DivideByZero(SirError):
    """`div` by a cell holding 0, on instance `instance`."""

    def __init__(self, prog: Program, i: int, instance: int):
        super().__init__(f"division by zero (instance {instance}: cell {int(prog.src[i, 1])} "
                         "holds 0)", prog.loc(i))
        self.instance = instance


def run(prog: Program, inputs: np.ndarray, width: int | None = 8) -> np.ndarray:
    """Outputs [instances, outputs] of the program on each row of `inputs` [instances, inputs]."""
    inputs = np.atleast_2d(np.asarray(inputs))
    if inputs.shape[1] != len(prog.inputs):
        raise SirError(f"the program takes {len(prog.inputs)} inputs; the problem gives "
                       f"{inputs.shape[1]}", prog.loc_at(prog.input_line, 1))
    if (prog.op == OPS["recv"].code).any():
        i = int(np.argmax(prog.op == OPS["recv"].code))
        raise SirError("running 'recv' needs an input tape, which the problems here do not "
                       "define (their inputs are placed by the input line)", prog.loc(i))
    if width is None:
        return _run_exact(prog, inputs)
    cells = prog.addresses()
    slot = lambda a: np.searchsorted(cells, a)      # noqa: E731
    src = np.where(prog.src > 0, slot(prog.src), len(cells))  # slot len(cells): "no cell"
    code, dst, writes = prog.op.astype(np.int64), slot(prog.dst), prog.dst > 0
    per_instance = (len(cells) + 1) * 8
    limit, allowed = allowance()
    if per_instance > limit // 2:
        raise SirError(f"running the program takes {per_instance / 2**30:,.1f} GiB an "
                       f"instance ({len(cells):,} cells), more than half of {allowed}",
                       prog.loc(0) if len(prog) else prog.loc_at(prog.input_line, 1))
    batch = max(1, (limit // 4) // per_instance)     # instances run together
    out = []
    for lo in range(0, len(inputs), batch):
        part = inputs[lo:lo + batch]
        mem = np.zeros((len(cells) + 1, len(part)), np.int64)
        mem[slot(prog.inputs)] = part.T
        bad = _run8(code, dst, src, prog.imm, writes, mem)
        if bad[0] >= 0:
            raise DivideByZero(prog, int(bad[0]), lo + int(bad[1]))
        out.append(mem[slot(prog.outputs)].T.copy())
    return np.concatenate(out) if out else np.zeros((0, len(prog.outputs)), np.int64)


@nb.njit(cache=True)
def _wrap(v):
    v &= 0xFF
    return v - 256 if v >= 128 else v


@nb.njit(cache=True)
def _run8(op, dst, src, imm, writes, mem):
    """Execute in place; returns (instruction, instance) of a division by zero, or (-1, -1)."""
    m = mem.shape[1]
    for i in range(len(op)):
        o, d, a, b, c = op[i], dst[i], src[i, 0], src[i, 1], src[i, 2]
        if not writes[i]:
            continue                             # send: a read, nothing changes
        for j in range(m):
            x, y = mem[a, j], mem[b, j]
            if o == ADD:
                r = _wrap(x + y)
            elif o == SUB:
                r = _wrap(x - y)
            elif o == MUL:
                r = _wrap(x * y)
            elif o == COPY:
                r = _wrap(x)
            elif o == AND:
                r = _wrap(x & y)
            elif o == OR:
                r = _wrap(x | y)
            elif o == XOR:
                r = _wrap(x ^ y)
            elif o == NOT:
                r = _wrap(~x)
            elif o == SET:
                r = _wrap(imm[i])
            elif o == DIV:
                if y == 0:
                    return np.array([i, j])
                r = _wrap(x // y)
            elif o == CMP:
                p = imm[i]
                t = x == y if p == EQ else x != y if p == NE else x < y if p == LT else \
                    x <= y if p == LE else x > y if p == GT else x >= y
                r = 1 if t else 0
            elif o == SELECT:
                r = mem[b, j] if x != 0 else mem[c, j]
            elif o == ABS:
                r = _wrap(abs(x))
            else:                                 # recv: refused before running
                r = mem[d, j]
            mem[d, j] = r
    return np.array([-1, -1])


def _run_exact(prog: Program, inputs: np.ndarray) -> np.ndarray:
    """Unbounded integers, one instance at a time (the matmul scorer's world; programs are
    small)."""
    out = []
    for row in inputs.tolist():
        mem = dict(zip(prog.inputs.tolist(), row))
        for i, (o, d, s) in enumerate(zip(prog.op.tolist(), prog.dst.tolist(),
                                          prog.src.tolist())):
            if d:
                mem[d] = _exact(o, [mem[a] for a in s if a], prog, i)
        out.append([mem[a] for a in prog.outputs.tolist()])
    return np.array(out, dtype=object)


_EXACT = {"copy": lambda v: v[0], "add": lambda v: v[0] + v[1],
          "sub": lambda v: v[0] - v[1], "mul": lambda v: v[0] * v[1]}


def _exact(o: int, v: list, prog: Program, i: int):
    name = BY_CODE[o].name
    if name not in _EXACT:
        raise SirError(f"'{name}' has no meaning for unbounded integers (the matmul scorer's "
                       "instruction set is v0: add, sub, mul, copy)", prog.loc(i))
    return _EXACT[name](v)
