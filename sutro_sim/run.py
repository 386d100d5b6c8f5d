"""`sutro-sim run FILE`: compile, train for real, trace the chosen steps, simulate, report.

The one place (with cli.py) where sutro_ir and simulator meet: sutro_ir makes the trace,
simulator prices it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time

import numpy as np
from dataclasses import dataclass, field

from simulator import energy as energy_mod
from simulator.errors import SimError
from simulator.hierarchy import Hierarchy, load_hierarchy
from simulator.memtracker import memtracker, op_event_table, with_inputs_written
from simulator.models import distance_models
from simulator.report import access_lines, count, energy, render, table
from simulator.simulate import Result, simulate, step_ranges
from sutro_ir import datasets
from sutro_ir.compile import compile_program, read_source
from sutro_ir.execute import Executor, TrainResult, path_sites
from simulator.limits import allowance
from sutro_ir.passes import parse_pipeline, step_text
from sutro_ir.schedule import peak_live_bytes, schedule
from sutro_ir.tracegen import TEST, TRAINING, UNTIL_CHECK, StepTrace, n_accesses

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
    target_accuracy: float | None = None   # --target-accuracy
    distances: dict | None = None   # ByteDMD, Model 1 and Model 2 of the cost-model steps
    baseline: dict | None = None    # a chars dataset's reference losses (chars.baseline)
    trace: object = None            # the trace priced (run --save-trace keeps it)

    @property
    def energy_per_step_fj(self) -> float:
        """A training step's mean energy (the evaluations left out)."""
        if self.all_traced:
            return self.costs["training_steps_fj"] / max(self.train.steps, 1)
        return self.sim.energy.total / max(len(self.traced), 1)

    @property
    def account(self):
        """How each traced step was accounted (simulator.simulate.StepAccount)."""
        return self.sim.account

    @property
    def energy_per_epoch_fj(self) -> list[float]:
        """The learning energy of each epoch (its steps and its `until` check; the first with
        the initialization). Every step accounted only."""
        spe = self.train.steps_per_epoch
        if not self.all_traced or not spe:
            return []
        learning = self.account.phase != TEST
        epoch = self.account.steps[learning] // spe
        return np.bincount(epoch, self.account.energy_fj[learning],
                           minlength=self.train.epochs).tolist()

    @property
    def history(self) -> list[dict]:
        """Per epoch: steps so far, train accuracy (when an until check measured it), test
        accuracy, the mean `loss` (when the program computes one on every step) and the
        learning energy so far (every step accounted only)."""
        per_epoch = self.energy_per_epoch_fj
        so_far = np.cumsum(per_epoch).tolist() if per_epoch else []
        return [dict(e, learning_energy_fj=so_far[i] if i < len(so_far) else None)
                for i, e in enumerate(self.train.epochs_log)]

    @property
    def history_json(self) -> list[dict]:
        """The history with a NaN or infinite mean loss as null (JSON has neither) and the
        value it was as a string."""
        out = []
        for e in self.history:
            loss = e["loss"]
            if loss is not None and not np.isfinite(loss):
                e = dict(e, loss=None, loss_not_finite=str(loss))
            out.append(e)
        return out

    def target(self, accuracy: float) -> dict:
        """The first epoch whose test accuracy reaches `accuracy`, and the learning energy
        spent to get there: what compares algorithms."""
        for e in self.history:
            if e["test_accuracy"] >= accuracy:
                return {"test_accuracy": accuracy, "reached": True, "epoch": e["epoch"],
                        "steps": e["steps"], "learning_energy_fj": e["learning_energy_fj"]}
        return {"test_accuracy": accuracy, "reached": False, "epoch": None, "steps": None,
                "learning_energy_fj": None}

    @property
    def costs(self) -> dict:
        """Learning (training steps and `until` checks), inference (the final test) and the
        whole run's total, in fJ; every step accounted only."""
        if not self.all_traced:
            return {}
        a = self.account
        steps, checks, test = (float(a.energy_fj[a.phase == p].sum())
                               for p in (TRAINING, UNTIL_CHECK, TEST))
        n_test = int((a.phase == TEST).sum())
        return {"learning_fj": steps + checks, "training_steps_fj": steps,
                "until_checks_fj": checks, "inference_fj": test, "test_examples": n_test,
                "inference_per_example_fj": test / n_test if n_test else None,
                "total_fj": self.sim.energy.total}

    @property
    def accesses_whole_run(self) -> int:
        """Every access of every step, init included, counted from the paths; with every step
        accounted, the evaluations traced too."""
        if self.all_traced:
            return self.sim.reuse.reads + self.sim.reuse.writes
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
        if self.all_traced:
            traced["energy_per_epoch_fj"] = self.energy_per_epoch_fj
            traced["evaluations_traced"] = bool((self.account.phase != TRAINING).any())
        return {"program": self.program, "config": self.config, "passes": list(self.passes),
                "pass_notes": list(self.pass_notes),
                "accuracy": {"train": self.train.train_accuracy, "test": self.train.test_accuracy},
                **({"loss": {k: _finite(v) for k, v in self.train.loss.items()}}
                   if self.train.loss else {}),
                **({"baseline": self.baseline} if self.baseline else {}),
                "steps": self.train.steps, "epochs": self.train.epochs, "wall_s": self.wall_s,
                "traced": traced, "costs": self.costs, "history": self.history_json,
                **({"target": self.target(self.target_accuracy)}
                   if self.target_accuracy is not None else {}),
                **d, "profile_s": dict(self.profile),
                **({"memtracker": self.memtracker} if self.memtracker else {}),
                **({"cost_models": self.distances} if self.distances else {})}


TRACE_BYTES_PER_ACCESS = 112
"""Peak memory per access of one traced step: its columns (29 bytes) and the temporaries that
build them. benchmarks/bench_limits.py --large measured 98.6 bytes an access between steps of
13.6 and 101.7 million accesses (docs/input-contract.md); rounded up."""
COST_MODELS_MAX = 20_000_000   # accesses op_event_table may hold (about 40 bytes each)


def check_trace_memory(sched, where: str) -> None:
    """Refuse, before building it, a step whose trace would not fit in memory."""
    per_step = sum(n_accesses(k, sched.graph) for k in sched.flat)
    need = per_step * TRACE_BYTES_PER_ACCESS
    limit, allowed = allowance()
    if need > limit:
        raise SimError(f"one training step makes {per_step:,} memory accesses; tracing it needs "
                       f"about {need / 2**30:,.1f} GiB ({TRACE_BYTES_PER_ACCESS} bytes an "
                       f"access), more than {allowed} (make the program smaller)", where)


def _config_place(text: str, path: str, name: str, overrides: dict) -> str:
    """Where a config constant's value comes from: `--set NAME`, else its line in the file."""
    if name in overrides:
        return f"--set {name}"
    for number, line in enumerate(text.splitlines(), start=1):
        m = re.match(rf"\s*config\b.*?\b({name})\s*=", line)
        if m:
            return f"{path}:{number}:{m.start(1) + 1}"
    return path


def with_seed(overrides: dict, program: str, seed: int | None, text: str | None = None) -> dict:
    """--seed sets the config constant `seed` too, when the program has one. `text`: the
    program's text, when already read."""
    if seed is None or "seed" in overrides:
        return overrides
    names = _config_names(read_source(program) if text is None else text, program)
    return dict(overrides, seed=str(seed)) if "seed" in names else overrides


@functools.lru_cache(maxsize=64)
def _config_names(text: str, path: str) -> frozenset:
    """The config constants a program declares (parsed once per text: a sweep asks for each
    of its points)."""
    from sutro_ir.syntax import ConfigItem, parse

    module = parse(text, path)
    return frozenset(b[0] for item in module.items if isinstance(item, ConfigItem)
                     for b in item.bindings)


def program_sample(program, path: str) -> str:
    """A program's `config trace_steps` (all, N or every:K), the default of --trace-steps;
    `path`: where the value was given, for the error."""
    spec = program.config_dict.get("trace_steps", "all")
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    try:
        if not isinstance(spec, str):
            raise SimError(f"got {spec!r}")
        select_steps(spec, 0)
    except SimError as e:
        raise SimError(f"config trace_steps is the default of --trace-steps: all, a number of "
                       f"first steps N, or \"every:K\" ({e.message})", path) from None
    return spec


def select_steps(spec: str, total: int) -> list[int]:
    """`all` (every step; `auto`, the old default, is the same), `N` (the first N) or `every:K`
    (steps 0, K, 2K, ...)."""
    spec = spec.strip()
    if spec in ("all", "auto"):
        return list(range(total))
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
        raise SimError(f"--trace-steps {spec}: expected all, a number of first steps N, or "
                       "every:K", "--trace-steps")
    return n


@dataclass
class Prepared:
    """A program compiled under one pipeline and scheduled, every option checked: what
    training and pricing start from."""
    path: str
    program: object
    pass_names: tuple
    seed: int
    trace_steps: str
    sched: object
    eval_sched: object
    target_accuracy: float | None
    prof: dict

    def sites(self) -> tuple:
        """Where a step's control path takes its entries, in the order the executor records
        them (sutro_ir.execute.path_sites): two preparations with the same sites read the
        same path the same way, so a training of one serves the other when their values are
        bit-identical (exact passes)."""
        return path_sites(self.sched.kernels, self.program.train.graph), \
            path_sites(self.eval_sched.kernels, self.program.eval.graph)


def prepare(path: str, overrides: dict | None = None, passes: str = "",
            seed: int | None = None, trace_steps: str | None = None,
            target_accuracy: float | None = None, text: str | None = None) -> Prepared:
    """Compile and schedule; every option checked before the long part. `text`: the
    program's text, when the caller has read it (the record keeps that text, so the run must
    be of it, whatever the file holds by now)."""
    t0 = time.perf_counter()
    if target_accuracy is not None and not 0 < target_accuracy <= 1:
        raise SimError(f"--target-accuracy {target_accuracy}: a test accuracy in (0, 1], "
                       "for example 0.9", "--target-accuracy")
    if trace_steps is not None:
        select_steps(trace_steps, 0)
    overrides = dict(overrides or {})
    text = read_source(path) if text is None else text
    pass_names = tuple(step_text(name, options) for name, options in parse_pipeline(passes))
    program = compile_program(text, path, overrides, passes)
    seed_from = "--seed"
    if seed is None:
        seed, seed_from = program.config_dict.get("seed", 0), path
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
        raise SimError(f"the seed is an integer from 0 to 2^63 - 1, got {seed!r} (config "
                       "constant `seed` or --seed)", seed_from)
    if trace_steps is None:     # the program's own sample (config trace_steps), else all
        trace_steps = program_sample(program, _config_place(text, path, "trace_steps",
                                                            overrides))
    sched = schedule(program.train.graph)
    eval_sched = schedule(program.eval.graph)
    check_trace_memory(sched, path)
    return Prepared(path, program, pass_names, seed, trace_steps, sched, eval_sched,
                    target_accuracy, {"compile": time.perf_counter() - t0})


def train(prep: Prepared, progress=None) -> TrainResult:
    """Train for real (sutro_ir.execute)."""
    t = time.perf_counter()
    executor = Executor(prep.program, prep.sched, prep.eval_sched.kernels, prep.seed)
    trained = executor.train(progress)
    prep.prof["execute"] = time.perf_counter() - t
    return trained


def run(path: str, overrides: dict | None = None, hierarchy: str = "sutro-tiers",
        energy_preset: str = "dally-2020", passes: str = "", seed: int | None = None,
        trace_steps: str | None = None, progress=None, train_progress=None,
        cost_models: bool = False, brute_force: bool = False, evaluate: bool = True,
        target_accuracy: float | None = None, keep_trace: bool = False,
        text: str | None = None) -> RunResult:
    """Compile, train for real, trace every step (or the sample `trace_steps` picks) and, with
    `evaluate`, the evaluations the algorithm makes (its `until` checks and the final test),
    simulate and report. `hierarchy`: a name, a TOML file or a Hierarchy; `text`: the
    program's text, when already read."""
    t0 = time.perf_counter()
    hier = hierarchy if isinstance(hierarchy, Hierarchy) else load_hierarchy(hierarchy)
    energy_mod.level_energies(hier, energy_preset)    # every option checked before the long part
    prep = prepare(path, overrides, passes, seed, trace_steps, target_accuracy, text)
    result = price(prep, train(prep, train_progress), hier, energy_preset, progress=progress,
                   cost_models=cost_models, brute_force=brute_force, evaluate=evaluate,
                   keep_trace=keep_trace)
    return dataclasses.replace(result, wall_s=time.perf_counter() - t0)


def price(prep: Prepared, trained: TrainResult, hier, energy_preset: str, progress=None,
          cost_models: bool = False, brute_force: bool = False, evaluate: bool = True,
          shared: bool = False, keep_trace: bool = False) -> RunResult:
    """Trace the chosen steps of a training (and its evaluations), simulate them on `hier`
    and report. `shared`: the training is another row's (compare): none of it is this one's
    time."""
    path, program, sched, eval_sched = prep.path, prep.program, prep.sched, prep.eval_sched
    t0 = time.perf_counter()
    prof = dict(prep.prof)
    if shared:
        prof["execute"] = 0.0
    t = time.perf_counter()
    step_trace = StepTrace(sched, program.train.x, program.train.y,
                           [p.name for p in program.params], trained.paths)
    per_path = (np.bincount(trained.step_paths, minlength=len(trained.paths))
                if trained.step_paths is not None else [trained.steps])
    paths = tuple((int(n), step_trace.accesses(p)) for p, n in enumerate(per_path))
    steps = select_steps(prep.trace_steps, trained.steps)
    cm_steps = _cost_model_steps(steps, step_trace) if cost_models else []
    evaluations = trained.evaluations if evaluate and len(steps) == trained.steps else ()
    eval_trace = StepTrace(eval_sched, program.eval.x, program.eval.y,
                           [p.name for p in program.params], trained.eval_paths)
    trace = step_trace.trace(steps, {"program": path}, path_of=trained.path_of,
                             evaluations=evaluations, eval_trace=eval_trace)
    kernels, arith = step_trace.mean_per_step(per_path)
    prof["trace_generation"] = time.perf_counter() - t
    t = time.perf_counter()
    sim = simulate(trace, hier, energy_preset, progress=progress, brute_force=brute_force)
    prof["simulation"] = time.perf_counter() - t
    seed_measure = distances = None
    if cost_models:
        t = time.perf_counter()
        cm_trace = step_trace.trace(cm_steps, {"program": path}, path_of=trained.path_of,
                                    instructions=True)
        seed_measure = dict(memtracker(with_inputs_written(op_event_table(cm_trace), cm_trace))
                            .to_dict(), steps=step_ranges(tuple(cm_steps)))
        prof["memtracker"] = time.perf_counter() - t
        t = time.perf_counter()
        params = [p.name for p in program.params]
        distances = dict(distance_models(cm_trace, outputs=params),
                         steps=step_ranges(tuple(cm_steps)), outputs=params)
        prof["distance_models"] = time.perf_counter() - t
    wall = prof["compile"] + prof.get("execute", 0.0) + time.perf_counter() - t0
    return RunResult(path, program.config_dict, prep.pass_names, trained, sim,
                     prep.trace_steps, tuple(steps), step_trace.accesses_per_step, wall, prof,
                     kernels, seed_measure, arith, peak_live_bytes(sched),
                     program.train.graph.notes, paths, len(step_trace.init["addr"]),
                     prep.target_accuracy, distances, datasets.baseline(program.data),
                     trace if keep_trace else None)


def _cost_model_steps(steps: list[int], step_trace: StepTrace) -> list[int]:
    """The traced steps the memtracker measure holds in memory: as many first ones as fit in
    COST_MODELS_MAX accesses (every one for a small run)."""
    per_step = step_trace.accesses_per_step
    if per_step > COST_MODELS_MAX:
        raise SimError(f"--cost-models keeps every traced access in memory: at most "
                       f"{COST_MODELS_MAX:,} accesses, and one step makes {per_step:,}",
                       "--cost-models")
    return steps[:max(1, COST_MODELS_MAX // max(per_step, 1))]


# ----------------------------------------------------------------------------- report

def render_run(r: RunResult) -> str:
    head = [f"program    {r.program}" + (f"    passes {', '.join(r.passes)}" if r.passes else ""),
            *(f"note       {note}" for note in r.pass_notes),
            "config     " + ", ".join(f"{k}={v}" for k, v in r.config.items()),
            f"accuracy   train {100 * r.train.train_accuracy:.1f}%, test "
            f"{100 * r.train.test_accuracy:.1f}%",
            *_loss_lines(r),
            f"training   {r.train.steps:,} steps in {r.train.epochs} epochs, "
            f"{r.train.execute_s:.2f} s; wall {r.wall_s:.2f} s",
            *_accounting_lines(r)]
    head += access_lines(r.sim.reuse)
    if r.memtracker:
        head.append(memtracker_line(r.memtracker))
    if r.distances:
        head += distance_lines(r.distances)
    head.append(f"hierarchy  {r.sim.hierarchy}    energy preset  {r.sim.energy.preset}")
    text = "\n".join(head) + "\n\n" + render(r.sim, summary=False)
    if r.all_traced and r.account.outcomes:
        text += "\n\n" + steps_table(r)
    if len(r.history) > 1:
        text += "\n\n" + history_table(r)
    return text


def _finite(v):
    """A number for JSON: inf and NaN (which strict JSON has no words for) become null."""
    return v if v is None or math.isfinite(v) else None


def _loss_lines(r: RunResult) -> list[str]:
    loss, base = r.train.loss, r.baseline
    if not loss:
        return []
    line = f"loss       train {loss['train']:.4f}" + (
        f", test {loss['test']:.4f}" if loss["test"] is not None else "") + " (the eval " + (
        "block's `loss`, per example)" if loss["test"] is not None else
        "block names no `loss`: train is the last epoch's mean training loss)")
    if base:
        line += f"\nbaseline   bigram test loss {base['bigram_test_loss']:.4f}" + (
            f", entropy of the corpus {base['entropy']:.4f}" if "entropy" in base else "") + \
            " (nats per character)"
    return [line]


def history_table(r: RunResult, show: int = 10) -> str:
    """Per epoch (the first and last few of a long run; --json and --plot have all)."""
    rows = r.history
    keep = rows if len(rows) <= show else rows[:show // 2] + [None] + rows[-(show // 2):]
    pct = (lambda v: "-" if v is None else f"{100 * v:.1f}%")
    body = [["..."] * 6 if e is None else
            [str(e["epoch"]), f"{e['steps']:,}", pct(e["train_accuracy"]), pct(e["test_accuracy"]),
             "-" if e["loss"] is None else f"{e['loss']:.4g}",
             "-" if e["learning_energy_fj"] is None else energy(e["learning_energy_fj"])]
            for e in keep]
    return table(["epoch", "steps", "train", "test", "loss", "learning energy so far"], body)


def distance_lines(d: dict) -> list[str]:
    a, b, g = d["address_cost"], d["bytedmd"], d["model2"]
    return [f"ByteDMD    {b['cost']:,} over {b['reads']:,} reads of steps {d['steps']} "
            f"(the parameters returned)",
            f"Model 1    address cost {a['cost']:,} ({a['read_cost']:,} operand reads + "
            f"{a['output_cost']:,} exit reads of the parameters; cells {a['cells']})",
            f"Model 2    {g['energy_fj']:,} fJ, {g['time_ps']:,.1f} ps on the grid"]


def memtracker_line(m: dict) -> str:
    return (f"memtracker per-read ARD {m['per_read_ard_elements']:,.1f}, per-element ARD "
            f"{m['per_element_ard_elements']:,.1f} elements over {m['reads']:,} op-level reads "
            f"of steps {m['steps']} (the seed's buffer-level measure)")


def _accounting_lines(r: RunResult) -> list[str]:
    a, lines = r.account, []
    if len(r.paths) > 1:
        steps_of: dict[int, int] = {}            # paths that differ only in run-time index
        for n, acc in r.paths:                   # values make as many accesses: one group
            steps_of[acc] = steps_of.get(acc, 0) + n
        lines.append(f"paths      {len(r.paths):,} control paths: " + ", ".join(
            f"{n:,} steps of {acc:,} accesses" for acc, n in sorted(steps_of.items(), reverse=True)))
    if r.all_traced:
        c = r.costs
        checks = [e for e in r.train.evaluations
                  if e.purpose == "until" and (r.account.phase == UNTIL_CHECK).any()]
        evaluated = ""
        if (r.account.phase != TRAINING).any():
            parts = ([f"{len(checks):,} until checks of {len(checks[0].example_paths):,}"]
                     if checks else []) + [f"the test of {c['test_examples']:,}"]
            evaluated = (f" and {int((r.account.phase != TRAINING).sum()):,} evaluated examples "
                         f"({', '.join(parts)})")
        how = {"proof": f"{a.simulated:,} simulated access by access, {a.proven:,} counted by "
                        f"proof ({a.states:,} distinct cache and reuse states)",
               "brute force": f"all {a.simulated:,} simulated access by access (--brute-force)",
               "replay": f"all {a.simulated:,} simulated access by access (a random or OPT "
                         "level: no state proof)",
               "in order": f"all {a.simulated:,} simulated access by access (one cache state "
                           "is larger than the memory budget for keeping states)",
               "proof, then in order": f"{a.simulated:,} simulated access by access, "
                                       f"{a.proven:,} counted by proof until it met more than "
                                       f"{a.states:,} distinct states (or its memory budget), "
                                       "the rest simulated in order"}[a.method]
        lines.append(f"whole run  {r.train.steps:,} steps{evaluated}, {r.accesses_whole_run:,} "
                     f"accesses (init included), every one accounted: {how}")
        learning = (f"learning {energy(c['learning_fj'])}" + (
            f" ({energy(c['training_steps_fj'])} in steps, {energy(c['until_checks_fj'])} in "
            "until checks)" if checks else ""))
        if c["test_examples"]:
            learning += (f"; inference {energy(c['inference_per_example_fj'])} per example "
                         f"(the test: {energy(c['inference_fj'])})")
        lines.append(f"cost       {learning}; total {energy(c['total_fj'])}")
        lines += _target_line(r)
        return lines
    per = energy(r.energy_per_step_fj)
    lines.append(f"sampled    steps {step_ranges(r.traced)} ({len(r.traced):,} of "
                 f"{r.train.steps:,}; --trace-steps {r.trace_policy}): the totals below are of "
                 f"these steps only, {per} per step")
    rough = " (the sample does not stand for every path)" if len(r.paths) > 1 else ""
    lines.append(f"           whole run, NOT EXACT, extrapolated from the sample: "
                 f"{energy(r.energy_per_step_fj * r.train.steps)}{rough}; "
                 "drop --trace-steps for the exact figure")
    return lines + _target_line(r)


def _target_line(r: RunResult) -> list[str]:
    if r.target_accuracy is None:
        return []
    t = r.target(r.target_accuracy)
    head = f"target     test accuracy {100 * t['test_accuracy']:.6g}% "
    if not t["reached"]:
        return [head + f"not reached in {r.train.epochs} epochs"]
    spent = (f"with {energy(t['learning_energy_fj'])} of learning"
             if t["learning_energy_fj"] is not None else
             "(its learning energy needs every step: drop --trace-steps)")
    return [head + f"reached after epoch {t['epoch']} ({t['steps']:,} steps) {spent}"]


def steps_table(r: RunResult) -> str:
    """The first step (cold, with the initialization) beside a steady step of each kind."""
    a = r.account
    first = a.outcomes[a.outcome[0]]
    evaluated = set(a.kinds[a.phase != TRAINING].tolist())
    rows, seen = [("first (step 0)", first)], set()
    for o in sorted(a.outcomes, key=lambda o: -o.count):
        if o.kind != first.kind and o.kind not in seen:
            seen.add(o.kind)
            what = "evaluated example" if o.kind in evaluated else "steady step"
            rows.append((f"{what} (x{o.count:,})", o))
    levels = [s.name for s in first.levels[:-1]]
    body = [[label, f"{o.accesses:,}", *[f"{100 * s.hit_rate:.1f}%" for s in o.levels[:-1]],
             energy(o.energy_fj)] for label, o in rows]
    return table(["step (x: how many alike)", "accesses", *[f"{n} hit" for n in levels],
                  "energy"], body)


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
