"""`sutro-sim score FILE.ir --problem NAME`: a sutro-problems submission checked and priced.

Exit status: 0 when the program solves the problem (or no problem was named), 1 when it runs
but is wrong (the report is printed, the reason too), 2 when it is malformed (an error naming
the line).
"""

from __future__ import annotations

import sys

import numpy as np

from simulator.errors import SimError
from simulator.report import energy, table
from sutro_ir.dally.baselines import BASELINES
from sutro_ir.dally.isa import VERSIONS
from sutro_ir.dally.problems import PROBLEMS
from sutro_ir.dally.score import Score, score
from .schema import dumps

EXIT_WRONG = 1
HIST_ROWS = 12


def add_parser(sub) -> None:
    s = sub.add_parser("score", help="check and price an address-IR program on a sutro-problems "
                       "benchmark", description="Parse an address-IR program as the problem's "
                       "scorer does, check it on the problem's test data and print its cost "
                       "(Model 1: every operand read costs ceil(sqrt(address)), every output "
                       "one read at exit) with the breakdown, and Model 2's energy and time. "
                       "Problems: " + ", ".join(PROBLEMS) + ".")
    s.add_argument("program", help="address-IR file (.ir, see docs/dally.md)")
    s.add_argument("--problem", metavar="NAME", help="the benchmark (list: sutro-sim problems); "
                   "without one the program is priced, not checked")
    s.add_argument("--isa", choices=VERSIONS,
                   help="instruction set, when no --problem fixes it (default v4)")
    s.add_argument("--model", choices=("1", "2"), default="1",
                   help="the model of the headline cost: 1, the address cost (default), or 2, "
                   "Model 2's energy (fJ) and time (ps) on the spiral")
    s.add_argument("--seed", type=int, help="seed the fresh random instances (sparse parity), "
                   "for a repeatable check; the scorers draw fresh ones every time")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--plot", metavar="DIR", help="write the reads-by-distance histogram (PNG)")
    s.set_defaults(func=cmd_score)
    p = sub.add_parser("problems", help="list the sutro-problems benchmarks `score` knows")
    p.set_defaults(func=cmd_problems)
    b = sub.add_parser("baseline", help="write a sutro-problems baseline program (IR)",
                       description="Write one of the published baselines, generated from its "
                       "stated layout: " + ", ".join(BASELINES) + ".")
    b.add_argument("name", help="the baseline (its problem's name; -tiled for the tiled matmul)")
    b.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    b.set_defaults(func=cmd_baseline)
    a = sub.add_parser("allocate", help="re-place an address-IR program's values at cheaper "
                       "cells (Model 1)", description="Address allocation: every value placed "
                       "so the most-read ones sit at the cheapest cells, with dead code and "
                       "useless copies dropped; the instructions and their order are kept, so "
                       "the outputs are the same for every input (checked). See docs/dally.md.")
    a.add_argument("program", help="address-IR file (.ir)")
    a.add_argument("--problem", metavar="NAME", help="parse as this problem's scorer does, and "
                   "check the result on its test data")
    a.add_argument("--isa", choices=VERSIONS,
                   help="instruction set, when no --problem fixes it (default v4)")
    a.add_argument("-o", "--output", metavar="FILE", help="write the allocated program here")
    a.add_argument("--search-seconds", type=float, default=0.0, metavar="N",
                   help="then search placement orders for N seconds (default 0)")
    a.add_argument("--seed", type=int, default=0, help="seed of the search and of the check")
    a.add_argument("--json", action="store_true", help="print the result as JSON")
    a.set_defaults(func=cmd_allocate)
    lo = sub.add_parser("lower", help="lower a .sir program's step to the address IR",
                        description="Lower the solve (or train) block of a .sir program of "
                        "integer and bit values to the address IR, one instruction per scalar "
                        "operation: inputs are the example (X, then Y) and the parameters the "
                        "step reads, outputs the parameters it writes. Then the allocation "
                        "pass places the values. See docs/dally.md.")
    lo.add_argument("program", help=".sir program (see docs/language.md)")
    lo.add_argument("--target", choices=("dally-v0", "dally-v3"), default="dally-v3",
                    help="dally-v0: add, sub, mul, copy, unbounded values (the matmul "
                    "scorer's); dally-v3 (default): 8-bit cells, every instruction")
    lo.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", nargs="+",
                    help="override a config constant (as in run)")
    lo.add_argument("-o", "--output", metavar="FILE", help="write the IR here")
    lo.add_argument("--problem", metavar="NAME", help="check the result on this problem")
    lo.add_argument("--search-seconds", type=float, default=0.0, metavar="N",
                    help="search placement orders for N seconds after allocating")
    lo.add_argument("--no-allocate", dest="allocate", action="store_false",
                    help="write the SSA form, every value in its own cell")
    lo.add_argument("--seed", type=int, default=0, help="seed of the search and of the check")
    lo.add_argument("--json", action="store_true", help="print the result as JSON")
    lo.set_defaults(func=cmd_lower)


def cmd_baseline(args) -> int:
    from simulator.errors import SimError

    if args.name not in BASELINES:
        raise SimError(f"unknown baseline '{args.name}' (known: {', '.join(BASELINES)})",
                       "baseline")
    text = BASELINES[args.name]()
    if args.output is None:
        print(text, end="")
        return 0
    write_text(args.output, text)
    print(f"wrote {args.output} ({text.count(chr(10)):,} lines)")
    return 0


def write_text(path: str, text: str) -> None:
    from simulator.inputs import write_file
    write_file(path, text, "-o")


def cmd_allocate(args) -> int:
    from sutro_ir.dally import problems
    from sutro_ir.dally.score import load_for

    check_job(args)
    prog = load_for(args.program, args.problem, args.isa)
    prob = problems.get(args.problem) if args.problem else None
    return allocate_and_report(prog, prob, args, before_allocation=None)


def allocate_and_report(prog, prob, args, before_allocation) -> int:
    """Allocate `prog`, check it (the same outputs on random inputs; the problem's data), write
    it and report. `before_allocation`: the cost of the program as lowered, if it was."""
    import random

    from sutro_ir.dally.allocate import allocate, check_same
    from sutro_ir.dally.text import to_text

    limit = prob.max_lines if prob else None
    result = allocate(prog, args.search_seconds, args.seed, max_lines=limit)
    same = check_same(prog, result.prog, None if prog.isa == "v0" else 8, seed=args.seed)
    if same is False:
        raise RuntimeError("allocate changed what the program computes (a bug in sutro-sim)")
    verdict = prob.check(result.prog, random.Random(args.seed)) if prob else None
    if args.output is not None:
        write_text(args.output, to_text(result.prog))
    d = {"before": result.before, "cost": result.cost, "placement": result.how,
         "cells": result.cells, "orders_tried": result.tried,
         "correct": None if verdict is None else verdict.correct, "output": args.output,
         "same_on_random_inputs": same}
    if before_allocation is not None:
        d["cost_ssa"] = before_allocation
    if args.json:
        print(dumps(d))
        return 0 if verdict is None or verdict.correct else EXIT_WRONG
    print(f"cost      {result.before:,} -> {result.cost:,} (Model 1; "
          f"{100 * (result.before - result.cost) / max(result.before, 1):.1f}% less)")
    print(f"placement {result.how}; {result.cells:,} cells; {result.tried:,} orders tried")
    if same is None:
        print("checked   not on random inputs: the program reads a tape, or divides by zero "
              "on them")
    if verdict is not None:
        print(f"correct   {'yes' if verdict.correct else 'NO'}: {verdict.detail}")
    print(f"wrote     {args.output}" if args.output else "(give -o FILE to write it)")
    return 0 if verdict is None or verdict.correct else EXIT_WRONG


def check_job(args) -> None:
    """The options of allocate and lower, before any work."""
    if not 0 <= args.search_seconds <= 86_400:
        raise SimError(f"give 0 to 86,400 seconds, got {args.search_seconds:g}",
                       "--search-seconds")
    if not 0 <= args.seed < 2 ** 63:
        raise SimError(f"the seed is an integer from 0 to 2^63 - 1, got {args.seed}", "--seed")
    if args.output is not None:
        check_output(args.output)


def check_output(path: str) -> None:
    from simulator.inputs import check_writable
    check_writable(path, "-o")


def cmd_lower(args) -> int:
    import random

    from sutro_ir.compile import compile_file
    from sutro_ir.dally import problems
    from sutro_ir.dally.lowering import lower_program
    from sutro_ir.dally.score import model1
    from sutro_ir.dally.text import to_text
    from sutro_sim.cli import _overrides

    check_job(args)
    prob = problems.get(args.problem) if args.problem else None
    program = compile_file(args.program, _overrides(args.set))
    prog = lower_program(program, args.target, args.program)
    if prob:
        prob.check_shape(prog)
        if prob.max_lines is not None and len(prog) + 2 > prob.max_lines:
            raise SimError(f"lowered to {len(prog) + 2:,} lines; {prob.name} takes at most "
                           f"{prob.max_lines:,}", args.program)
    print(f"lowered   {args.program} to {args.target}: {len(prog):,} instructions, "
          f"{len(prog.inputs):,} inputs, {len(prog.outputs):,} outputs", file=sys.stderr)
    if args.allocate:
        return allocate_and_report(prog, prob, args, before_allocation=model1(prog).cost)
    verdict = prob.check(prog, random.Random(args.seed)) if prob else None
    if args.output is not None:
        write_text(args.output, to_text(prog))
    cost = model1(prog).cost
    if args.json:
        print(dumps({"cost": cost, "output": args.output,
                          "correct": None if verdict is None else verdict.correct}))
    else:
        print(f"cost      {cost:,} (Model 1, every value in its own cell)")
        if verdict is not None:
            print(f"correct   {'yes' if verdict.correct else 'NO'}: {verdict.detail}")
    return 0 if verdict is None or verdict.correct else EXIT_WRONG


def cmd_problems(args) -> int:
    rows = [[p.name, p.isa, f"{p.n_inputs:,}", f"{p.n_outputs:,}",
             "-" if p.max_lines is None else f"{p.max_lines:,}", p.about]
            for p in PROBLEMS.values()]
    print(table(["problem", "isa", "inputs", "outputs", "max lines", "what"], rows,
                left=(0, 1, 5)))
    return 0


def cmd_score(args) -> int:
    if args.seed is not None and not args.problem:
        raise SimError("--seed seeds a problem's test instances; give --problem too", "--seed")
    result = score(args.program, args.problem, args.seed, args.isa)
    if args.model == "2" and result.model2 is None:
        raise SimError(f"Model 2 cannot price this program: {result.model2_note}", "--model")
    paths = write_plot(result, args.plot, args.program) if args.plot else []
    if args.json:
        d = result.to_dict()
        if args.model == "2":
            d["cost"] = result.model2.energy_fj
        d["model"] = int(args.model)
        print(dumps(d))
    else:
        print(render(result, args.program, args.model))
        if paths:
            print("\nplot: " + ", ".join(paths))
    return 0 if result.verdict is None or result.verdict.correct else EXIT_WRONG


def render(r: Score, path: str, model: str = "1") -> str:
    m1, m2 = r.model1, r.model2
    ops = "  ".join(f"{k} {v:,}" for k, v in r.ops.items())
    lines = [f"program   {path}", f"problem   {r.problem or '- (priced, not checked)'}",
             f"size      {r.instructions:,} instructions ({ops}); cells up to "
             f"{r.max_address:,}"]
    if r.verdict is not None:
        lines.append(f"correct   {'yes' if r.verdict.correct else 'NO'}: {r.verdict.detail}")
    head = (f"cost      {m1.cost:,}  (Model 1)" if model == "1" or m2 is None else
            f"cost      {energy(m2.energy_fj)} ({m2.energy_fj:,} fJ), {m2.time_ps:,.1f} ps  "
            "(Model 2)")
    lines += ["", head, ""]
    rows = [["operand reads", f"{m1.operand_reads:,}", f"{m1.operand_cost:,}"],
            ["exit reads", f"{m1.exit_reads:,}", f"{m1.exit_cost:,}"],
            ["total", f"{m1.operand_reads + m1.exit_reads:,}", f"{m1.cost:,}"]]
    lines.append(table(["Model 1", "reads", "cost"], rows))
    lines.append("  by op: " + "  ".join(f"{k} {v:,}" for k, v in m1.cost_by_op.items()))
    lines += ["", histogram(m1.by_distance), ""]
    if m2 is None:
        lines.append(f"Model 2   not available: {r.model2_note}")
    else:
        lines.append(f"Model 2   {m2.energy_fj:,} fJ, {m2.time_ps:,.1f} ps on the spiral "
                     f"({m2.reads:,} reads, {m2.writes:,} writes"
                     + (f", {m2.tape_accesses:,} tape accesses free" if m2.tape_accesses else "")
                     + ")")
    lines.append(f"tape-v0   (a) {m1.tape_a:,} if a tape write replaces the exit read, "
                 f"(b) {m1.tape_b:,} if it adds to it (proposal; 1 a tape byte)")
    return "\n".join(lines)


def histogram(by_distance: tuple, rows: int = HIST_ROWS, width: int = 40) -> str:
    """Reads and their cost by distance ceil(sqrt(address)), in at most `rows` ranges."""
    dist, reads = by_distance
    if not len(dist):
        return "reads by distance: none"
    lo, hi = int(dist[0]), int(dist[-1])
    step = max(1, -(-(hi - lo + 1) // rows))
    group = (dist - lo) // step
    out = []
    for g in np.unique(group).tolist():
        a, b = lo + g * step, min(lo + g * step + step - 1, hi)
        sel = group == g
        out.append((f"{a:,}" if a == b else f"{a:,}-{b:,}", int(reads[sel].sum()),
                    int((reads[sel] * dist[sel]).sum())))
    top = max(c for _, _, c in out) or 1
    body = [[d, f"{n:,}", f"{c:,}", "#" * round(width * c / top)] for d, n, c in out]
    return table(["distance", "reads", "cost", ""], body, left=(3,))


def write_plot(r: Score, folder: str, path: str) -> list[str]:
    import os

    from simulator.plots import write_figures

    def draw(score: Score, ax) -> None:
        dist, reads = score.model1.by_distance
        ax.bar(dist, reads * dist, width=1.0, color="#4477aa")
        ax.set_xlabel("distance ceil(sqrt(address))")
        ax.set_ylabel("cost (reads x distance)")
        ax.set_title(f"{os.path.basename(path)}: Model 1 cost {score.model1.cost:,}"
                     + (f" ({score.problem})" if score.problem else ""), fontsize=9)
    return write_figures(folder, r, (7, 3.5), [("cost_by_distance", draw)])
