"""An address-IR program as an access trace, so hierarchies, reuse distance, ByteDMD, the address
cost (Model 1), the grid (Model 2) and the plots all read it (docs/trace-format.md).

One byte per cell, cell a at byte a - 1 (declared in the meta as `address_cells`, so the cost
models number cells by address). Instruction i is instr id i and the kernel of its op: its
reads in operand order (a repeated operand twice), then its write. The program's straight line
does not depend on the data, so the trace is the program's, not a run's.

Buffers are runs of consecutive cells: the input line's runs in its order (`in 1..16`), the
output line's (`out 33..48`, declared as the outputs, in order, a repeated one again), and the
runs of the other cells (`cells 49..49`). A cell that is an input and an output belongs to its
input run; the output runs overlap, so every access carries its buffer id.
"""

from __future__ import annotations

import numpy as np

from simulator.trace import CHUNK_ACCESSES, Buffer, Kernel, Trace, make_chunk

from .isa import BY_CODE, TAPE_OPS
from .text import Program

ARITH = {"add": "add", "sub": "add", "mul": "mul", "div": "div", "and": "and", "or": "or",
         "xor": "xor", "not": "not", "abs": "add", "cmp": "add"}
"""The arithmetic each op does, priced by the energy presets as 8-bit integer ops; copy, set,
select and the tape ops move values only."""


def to_trace(prog: Program, chunk_accesses: int = CHUNK_ACCESSES) -> Trace:
    addr, is_write, instr, op = _columns(prog)
    buffers, owner, outputs, args = _buffers(prog)
    used = np.unique(prog.op)
    kernel_of = np.full(len(BY_CODE), -1, np.int32)
    kernel_of[used] = np.arange(len(used))
    counts = np.bincount(prog.op, minlength=len(BY_CODE))
    kernels = [Kernel(BY_CODE[c].name, (BY_CODE[c].name,), "",
                      {f"{ARITH[BY_CODE[c].name]}.i8": int(counts[c])}
                      if BY_CODE[c].name in ARITH else {}) for c in used.tolist()]
    buf = owner(addr + 1)
    kern = kernel_of[op]
    chunks = [make_chunk(0, addr[s:s + chunk_accesses], 1, is_write[s:s + chunk_accesses],
                         kern[s:s + chunk_accesses], instr[s:s + chunk_accesses],
                         buf[s:s + chunk_accesses], where=prog.where)
              for s in range(0, len(addr), chunk_accesses)]
    meta = {"source": f"address IR {prog.where} ({prog.isa})", "outputs": outputs,
            "args": args, "address_cells": {"cell_bytes": 1, "origin": -1}}
    tape = [k.name for k in kernels if k.name in TAPE_OPS]
    if tape:
        meta["tape_kernels"] = tape
    return Trace(buffers, kernels, len(chunks), chunks.__getitem__, meta, where=prog.where)


def _columns(prog: Program):
    """(byte address, is_write, instr id, op code) of every access, in order."""
    n = len(prog)
    cells = np.concatenate([prog.src, prog.dst[:, None]], axis=1)     # reads, then the write
    mask = cells > 0
    writes = np.zeros_like(mask)
    writes[:, 3] = True
    rows = np.repeat(np.arange(n, dtype=np.int64), 4).reshape(n, 4)
    return cells[mask] - 1, writes[mask], rows[mask], prog.op.astype(np.int64)[rows[mask]]


def _runs(addresses: np.ndarray) -> list[tuple[int, int]]:
    """(first, length) of each run of consecutive addresses, in the given order."""
    if not len(addresses):
        return []
    breaks = np.flatnonzero(np.diff(addresses) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(addresses)]])
    return [(int(addresses[s]), int(e - s)) for s, e in zip(starts, ends)]


def _name(kind: str, first: int, length: int) -> str:
    return f"{kind} {first}" if length == 1 else f"{kind} {first}..{first + length - 1}"


def _buffers(prog: Program):
    """The buffer table, a function cell -> owning buffer row, the output names in order and
    the input names in order. A cell is owned by its input run, else by the first output run
    holding it, else by its run of other cells."""
    table: dict[str, int] = {}
    buffers: list[Buffer] = []
    cells = prog.addresses()
    owner_row = np.full(len(cells), -1, np.int32)

    def add(kind: str, runs, role: str) -> list[str]:
        names = []
        for first, length in runs:
            name = _name(kind, first, length)
            if name not in table:
                table[name] = len(buffers)
                buffers.append(Buffer(name, first - 1, length, "i8", role))
                span = np.searchsorted(cells, np.arange(first, first + length))
                free = span[owner_row[span] < 0]
                owner_row[free] = table[name]
            names.append(name)
        return names

    args = add("in", _runs(prog.inputs), "data")
    outputs = add("out", _runs(prog.outputs), "other")
    rest = cells[owner_row < 0]
    add("cells", _runs(rest), "temp")

    def owner(addr: np.ndarray) -> np.ndarray:
        return owner_row[np.searchsorted(cells, addr)]
    return buffers, owner, outputs, args
