"""`sutro-sim run FILE`: compile, train for real, trace the chosen steps, simulate, report.

The one place (with cli.py) where sutro_ir and simulator meet: sutro_ir makes the trace,
simulator prices it.
"""

from __future__ import annotations

import time

import numpy as np
from dataclasses import dataclass, field

from simulator import energy as energy_mod
from simulator.errors import SimError
from simulator.hierarchy import load_hierarchy
from simulator.memtracker import memtracker, op_event_table, with_inputs_written
from simulator.report import access_lines, count, energy, render, table
from simulator.simulate import Result, simulate, step_ranges
from sutro_ir.compile import compile_program, read_source
from sutro_ir.execute import Executor, TrainResult
from sutro_ir.lower import MEMORY_FRACTION, physical_memory
from sutro_ir.passes import parse_pipeline
from sutro_ir.schedule import peak_live_bytes, schedule
from sutro_ir.tracegen import StepTrace, n_accesses

AUTO_ALL = 2_500_000        # `auto` traces every step of a run that makes at most this many accesses,
AUTO_FIRST = 400_000        # and else as many first steps as fit in this many (at least one)


@dataclass(frozen=True)
class RunResult:
    program: str
    config: dict
    passes: tuple
    train: TrainResult
    sim: Result
    trace_policy: str
    traced: tuple
    accesses_per_step: int
    wall_s: float
    profile: dict = field(default_factory=dict)
    kernels: float = 0          # kernels a training step runs, after the passes (mean)
    memtracker: dict | None = None  # the seed's measure over op-level events (cost_models)
    arith_ops: float = 0        # arithmetic operations a training step runs (mean)
    peak_live_bytes: int = 0    # most bytes of step values stored at once (schedule.py)
    pass_notes: tuple = ()      # what passes declined or left alone, and why
    paths: tuple = ()           # per control path: (steps that took it, accesses per step)
    init_accesses: int = 0      # step 0's writes of every parameter

    @property
    def energy_per_step_fj(self) -> float:
        return self.sim.energy.total / max(len(self.traced), 1)

    @property
    def accesses_whole_run(self) -> int:
        """Every access of every step, init included, counted from the paths."""
        return sum(n * a for n, a in self.paths) + self.init_accesses

    @property
    def all_traced(self) -> bool:
        return len(self.traced) == self.train.steps

    def to_dict(self) -> dict:
        d = self.sim.to_dict()
        for key in ("trace", "meta", "steps", "traced_steps", "wall_s"):
            d.pop(key, None)
        traced = {"policy": self.trace_policy, "steps": step_ranges(self.traced),
                  "n_steps": len(self.traced), "accesses_per_step": self.accesses_per_step,
                  "kernels_per_step": self.kernels, "arith_ops_per_step": self.arith_ops,
                  "peak_live_bytes": self.peak_live_bytes,
                  "energy_per_step_fj": self.energy_per_step_fj,
                  "all_steps": self.all_traced,
                  "paths": [{"steps": n, "accesses_per_step": a} for n, a in self.paths],
                  "accesses_whole_run": self.accesses_whole_run,
                  "extrapolated_total_energy_fj": self.energy_per_step_fj * self.train.steps}
        return {"program": self.program, "config": self.config, "passes": list(self.passes),
                "pass_notes": list(self.pass_notes),
                "accuracy": {"train": self.train.train_accuracy, "test": self.train.test_accuracy},
                "steps": self.train.steps, "epochs": self.train.epochs, "wall_s": self.wall_s,
                "traced": traced, **d, "profile_s": dict(self.profile),
                **({"memtracker": self.memtracker} if self.memtracker else {})}


TRACE_BYTES_PER_ACCESS = 64    # one step's columns and the temporaries that build them
COST_MODELS_MAX = 20_000_000   # accesses op_event_table may hold (about 40 bytes each)


def check_trace_memory(sched) -> None:
    """Refuse, before building it, a step whose trace would not fit in memory."""
    per_step = sum(n_accesses(k, sched.graph) for k in sched.flat)
    need = per_step * TRACE_BYTES_PER_ACCESS
    if need > MEMORY_FRACTION * physical_memory():
        raise SimError(f"one training step makes {per_step:,} memory accesses; tracing it needs "
                       f"about {need / 2**30:,.1f} GiB, more than this machine's "
                       f"{physical_memory() / 2**30:,.1f} GiB (make the program smaller)",
                       "trace")


def select_steps(spec: str, total: int, per_step: int, run_accesses: int | None = None
                 ) -> list[int]:
    """`auto` (every step if the run makes at most AUTO_ALL accesses, else as many first steps
    as fit in AUTO_FIRST), `all`, `N` (the first N), or `every:K` (steps 0, K, 2K, ...).
    `per_step`: the most accesses a step makes; `run_accesses`: the run's, when counted."""
    spec = spec.strip()
    if spec == "all":
        return list(range(total))
    if spec == "auto":
        if (total * per_step if run_accesses is None else run_accesses) <= AUTO_ALL:
            return list(range(total))
        return list(range(max(1, min(total, AUTO_FIRST // max(per_step, 1)))))
    if spec.startswith("every:"):
        k = _positive(spec[6:], spec)
        return list(range(0, total, k))
    return list(range(min(_positive(spec, spec), total)))


def _positive(text: str, spec: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise SimError(f"--trace-steps {spec}: expected auto, all, a number of first steps N, or "
                       "every:K", "--trace-steps")
    return n


def run(path: str, overrides: dict | None = None, hierarchy: str = "sutro-tiers",
        energy_preset: str = "dally-2020", passes: str = "", seed: int | None = None,
        trace_steps: str = "auto", progress=None, train_progress=None,
        cost_models: bool = False) -> RunResult:
    t0 = time.perf_counter()
    prof = {}
    hier = load_hierarchy(hierarchy)
    energy_mod.get_preset(energy_preset, where="--energy")
    overrides = dict(overrides or {})
    text = read_source(path)
    pass_names = tuple(name for name, _ in parse_pipeline(passes))
    t = time.perf_counter()
    program = compile_program(text, path, overrides, passes)
    if seed is None:
        seed = program.config_dict.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
        raise SimError(f"the seed is a non-negative integer, got {seed!r} (config constant "
                       "`seed` or --seed)", "seed")
    sched = schedule(program.train.graph)
    eval_sched = schedule(program.eval.graph)
    check_trace_memory(sched)
    prof["compile"] = time.perf_counter() - t
    t = time.perf_counter()
    executor = Executor(program, sched, eval_sched.kernels, seed)
    trained = executor.train(train_progress)
    prof["execute"] = time.perf_counter() - t
    t = time.perf_counter()
    step_trace = StepTrace(sched, program.train.x, program.train.y,
                           [p.name for p in program.params], trained.paths)
    per_path = (np.bincount(trained.step_paths, minlength=len(trained.paths))
                if trained.step_paths is not None else [trained.steps])
    paths = tuple((int(n), step_trace.accesses(p)) for p, n in enumerate(per_path))
    steps = select_steps(trace_steps, trained.steps, step_trace.accesses_per_step,
                         sum(n * a for n, a in paths))
    if cost_models and len(steps) * step_trace.accesses_per_step > COST_MODELS_MAX:
        raise SimError(f"--cost-models keeps every traced access in memory: at most "
                       f"{COST_MODELS_MAX:,} accesses, and {len(steps):,} steps make "
                       f"{len(steps) * step_trace.accesses_per_step:,} (trace fewer steps with "
                       "--trace-steps N)", "--cost-models")
    trace = step_trace.trace(steps, {"program": path}, path_of=trained.path_of)
    kernels, arith = step_trace.mean_per_step(per_path)
    prof["trace_generation"] = time.perf_counter() - t
    t = time.perf_counter()
    sim = simulate(trace, hier, energy_preset, progress=progress)
    prof["simulation"] = time.perf_counter() - t
    seed_measure = None
    if cost_models:
        t = time.perf_counter()
        seed_measure = memtracker(with_inputs_written(op_event_table(trace), trace)).to_dict()
        prof["memtracker"] = time.perf_counter() - t
    return RunResult(path, program.config_dict, pass_names, trained, sim, trace_steps,
                     tuple(steps), step_trace.accesses_per_step, time.perf_counter() - t0, prof,
                     kernels, seed_measure, arith, peak_live_bytes(sched), program.train.graph.notes, paths,
                     len(step_trace.init["addr"]))


# ----------------------------------------------------------------------------- report

def render_run(r: RunResult) -> str:
    head = [f"program    {r.program}" + (f"    passes {', '.join(r.passes)}" if r.passes else ""),
            *(f"note       {note}" for note in r.pass_notes),
            "config     " + ", ".join(f"{k}={v}" for k, v in r.config.items()),
            f"accuracy   train {100 * r.train.train_accuracy:.1f}%, test "
            f"{100 * r.train.test_accuracy:.1f}%",
            f"training   {r.train.steps:,} steps in {r.train.epochs} epochs, "
            f"{r.train.execute_s:.2f} s; wall {r.wall_s:.2f} s",
            _traced_line(r)]
    head += access_lines(r.sim.reuse)
    if r.memtracker:
        head.append(memtracker_line(r.memtracker))
    head.append(f"hierarchy  {r.sim.hierarchy}    energy preset  {r.sim.energy.preset}")
    return "\n".join(head) + "\n\n" + render(r.sim, summary=False)


def memtracker_line(m: dict) -> str:
    return (f"memtracker per-read ARD {m['per_read_ard_elements']:,.1f}, per-element ARD "
            f"{m['per_element_ard_elements']:,.1f} elements over {m['reads']:,} op-level reads "
            "(the seed's buffer-level measure)")


def _traced_line(r: RunResult) -> str:
    per = energy(r.energy_per_step_fj)
    paths = ""
    if len(r.paths) > 1:
        steps_of: dict[int, int] = {}            # paths that differ only in run-time index
        for n, a in r.paths:                     # values make as many accesses: one group
            steps_of[a] = steps_of.get(a, 0) + n
        paths = (f"paths      {len(r.paths):,} control paths over {r.train.steps:,} steps: "
                 + ", ".join(f"{n:,} steps of {a:,} accesses" for a, n in
                             sorted(steps_of.items(), reverse=True))
                 + f"\n           whole run: {r.accesses_whole_run:,} accesses, init "
                 "included (counted exactly)\n")
    line = (f"traced     steps {step_ranges(r.traced)} ({len(r.traced):,} of {r.train.steps:,}; "
            f"--trace-steps {r.trace_policy}), "
            + (f"{r.accesses_per_step:,} accesses and {per} per step" if len(r.paths) < 2 else
               f"at most {r.accesses_per_step:,} accesses and on average {per} per step"))
    if not r.all_traced:
        line += (f"\n           whole run, extrapolated from the traced steps: "
                 f"{energy(r.energy_per_step_fj * r.train.steps)}")
        if len(r.paths) > 1:
            line += " (they do not stand for every path: a rough figure)"
    return paths + line


def render_profile(r: RunResult) -> str:
    rows = [[phase, f"{s:.3f}"] for phase, s in r.profile.items()]
    tg = r.profile.get("trace_generation", 0.0)
    rows.append(["total", f"{r.wall_s:.3f}"])
    text = table(["phase", "seconds"], rows)
    if tg > 0:
        text += (f"\ntrace generation: one step's {count(r.accesses_per_step)} accesses built at "
                 f"{r.accesses_per_step / tg / 1e6:,.1f} M accesses/s, then replayed for "
                 f"{len(r.traced):,} traced steps")
    return text
