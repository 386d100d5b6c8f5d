"""Scoring an address-IR program on a sutro-problems benchmark: parse it as that problem's scorer
does, check it on the problem's test data, and price it.

The price comes from the program's trace (trace.py) through the simulator's cost models, the
same code that prices any trace: Model 1 (simulator/costmodels.address_cost: every operand read
ceil(sqrt(a)), every output read once at exit) and Model 2 (simulator/grid.py: energy and time
on the spiral). Model 1's cost never depends on the data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from simulator.cells import cell_map
from simulator.costmodels import AddressCostResult, address_cost
from simulator.errors import SimError
from simulator.grid import GridResult, grid_cost
from simulator.inputs import decode_utf8, read_bytes

from . import problems
from .text import Program, parse
from .trace import to_trace

MAX_IR_BYTES = 64 << 20
"""A 2,000,000-line program (mask32's limit) of distinct cells was 31 MB of text (2026-11-29)."""


def read_ir(path: str) -> str:
    """The text of an IR file (UTF-8; `\\r\\n` and `\\r` end lines as `\\n` does)."""
    what = "program in the address IR"
    text = decode_utf8(read_bytes(path, what, MAX_IR_BYTES), what, path)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load(path: str, isa: str = "v4", max_lines: int | None = None,
         skip_empty: bool = True) -> Program:
    """Read and parse an IR file; `max_lines` None: the largest limit any scorer has."""
    return parse(read_ir(path), path, isa, 2_000_000 if max_lines is None else max_lines,
                 skip_empty)


def load_for(path: str, problem: str | None, isa: str | None = None) -> Program:
    """Read an IR file as `problem`'s scorer reads it (its instruction set, line limit and item
    rules; its input and output counts), or with no problem as instruction set `isa`."""
    if not problem:
        return load(path, isa or "v4")
    prob = problems.get(problem)
    if isa and isa != prob.isa:
        raise SimError(f"the problem {problem} fixes the instruction set ({prob.isa}); leave "
                       "--isa out", "--isa")
    prog = parse(read_ir(path), path, prob.isa, prob.max_lines, prob.skip_empty_items)
    prob.check_shape(prog)
    return prog


@dataclass(frozen=True)
class Model1:
    """The address cost with its breakdown. `tape_a`/`tape_b`: the tape-v0 proposal's two
    billings (one unit a tape byte): a, the tape write replaces the exit read; b, it adds to it."""

    cost: int
    operand_reads: int
    operand_cost: int
    exit_reads: int
    exit_cost: int
    cost_by_op: dict
    by_distance: tuple = field(repr=False)     # (distances, reads at each), ascending
    tape_a: int = 0
    tape_b: int = 0

    def to_dict(self) -> dict:
        return {"cost": self.cost, "operand_reads": self.operand_reads,
                "operand_cost": self.operand_cost, "exit_reads": self.exit_reads,
                "exit_cost": self.exit_cost, "cost_by_op": dict(self.cost_by_op),
                "reads_by_distance": {int(d): int(n) for d, n in zip(*self.by_distance)},
                "tape_v0": {"a_replaces_exit_reads": self.tape_a,
                            "b_adds_to_exit_reads": self.tape_b}}


def model1(prog: Program, trace=None) -> Model1:
    trace = trace or to_trace(prog)
    r: AddressCostResult = address_cost(trace, outputs=trace.meta["outputs"],
                                        cells=cell_map(trace))
    by_op = dict(r.cost_by_kernel)
    tape = len(prog.inputs) + len(prog.outputs)
    return Model1(r.cost, r.reads, r.read_cost, r.output_reads, r.output_cost, by_op,
                  r.by_distance, r.read_cost + tape, r.cost + tape)


@dataclass(frozen=True)
class Score:
    problem: str | None
    lines: int
    instructions: int
    ops: dict
    max_address: int
    model1: Model1
    model2: GridResult | None
    verdict: problems.Verdict | None
    model2_note: str = ""        # why Model 2 is missing

    @property
    def cost(self) -> int:
        return self.model1.cost

    def to_dict(self) -> dict:
        d = {"problem": self.problem, "cost": self.cost,
             "correct": None if self.verdict is None else self.verdict.correct,
             "lines": self.lines, "instructions": self.instructions, "ops": self.ops,
             "max_address": self.max_address, "model1": self.model1.to_dict(),
             "model2": None if self.model2 is None else self.model2.to_dict()}
        if self.model2_note:
            d["model2_not_available"] = self.model2_note
        if self.verdict is not None:
            d["check"] = self.verdict.to_dict()
        return d


def score(path: str, problem: str | None, seed: int | None = None, isa: str | None = None,
          model2: bool = True) -> Score:
    """Parse `path` as `problem`'s scorer does (or, with no problem, as instruction set `isa`,
    default v4), check it on the problem's data and price it."""
    prob = problems.get(problem) if problem else None
    prog = load_for(path, problem, isa)
    trace = to_trace(prog)
    m1 = model1(prog, trace)
    m2, note = None, ""
    if model2:
        try:
            m2 = grid_cost(trace)
        except SimError as e:        # a cell past the grid: Model 1 still prices it
            note = e.message
    verdict = None
    if prob:
        rng = random.SystemRandom() if seed is None else random.Random(seed)
        verdict = prob.check(prog, rng)
    return Score(problem, len(prog) + 2, len(prog), prog.op_counts(),
                 int(prog.addresses().max()), m1, m2, verdict, note)
