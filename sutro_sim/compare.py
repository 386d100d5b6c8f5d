"""`sutro-sim compare A.sir [B.sir ...] -p PIPELINE ... --hierarchy X,Y`: programs under
several pass pipelines and hierarchies, side by side.

Every row is the whole job (`run`): it trains for real and accounts every step of its run
exactly (or the same sample of steps, with `--trace-steps N`), so that their reads, writes and
energies are comparable. The first row is the baseline for the change column; for each program
the unscheduled pipeline is first unless the first -p says otherwise (`-p none` is the
unscheduled program, anywhere).

A training is shared where that gives bit-identical values: by every hierarchy of a
(program, pipeline), since training does not see the hierarchy, and by the exact pipelines of
a program whose executors record the same control-path sites (run.Prepared.sites), since
exact passes keep every value. Those rows differ only in schedule and trace. `retrain=True`
trains every row itself (the check, and what compare did before).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator import energy as energy_mod
from simulator.hierarchy import load_hierarchy
from simulator.report import energy, size, table
from simulator.simulate import step_ranges
from sutro_ir.errors import TrainingDiverged
from sutro_ir.passes import is_exact

from .run import RunResult, prepare, price, train

NONE = "none"


@dataclass(frozen=True)
class Row:
    pipeline: str
    result: RunResult
    program: str = ""
    hierarchy: str = ""
    trained_by: int | None = None    # the row (index) whose training this one reuses

    @property
    def label(self) -> str:
        return self.pipeline or NONE

    @property
    def exact(self) -> bool:
        return is_exact(self.pipeline)

    @property
    def kernels(self) -> int:
        return self.result.kernels


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    trace_steps: str

    @property
    def programs(self) -> list[str]:
        return list(dict.fromkeys(r.program for r in self.rows))

    @property
    def hierarchies(self) -> list[str]:
        return list(dict.fromkeys(r.hierarchy for r in self.rows))

    @property
    def trainings(self) -> int:
        return sum(r.trained_by is None for r in self.rows)

    def labels(self) -> list[str]:
        """Each row's name: its pipeline, with the program and hierarchy when they vary."""
        many_p, many_h = len(self.programs) > 1, len(self.hierarchies) > 1
        return [" ".join([*([_stem(r.program)] if many_p else []), r.label,
                          *([f"@{r.hierarchy}"] if many_h else [])]) for r in self.rows]

    def to_dict(self) -> dict:
        base = self.rows[0]
        return {"program": base.result.program, "programs": self.programs,
                "hierarchies": self.hierarchies, "config": base.result.config,
                "trace_steps": self.trace_steps,
                "traced_steps": step_ranges(base.result.traced),
                "trainings": self.trainings,
                "rows": [_row_dict(r, base) for r in self.rows]}


def _stem(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".sir") else name


def pipelines_of(args: list[str]) -> list[str]:
    """The rows' pipelines: '' for none, the unscheduled baseline added first if missing."""
    out = ["" if p.strip() in ("", NONE) else p.strip() for p in args]
    if not out or out[0] != "":
        out.insert(0, "")
    return list(dict.fromkeys(out))


def compare(path: str | list[str], pipelines: list[str], overrides: dict | list[dict] | None = None,
            hierarchy: str | list[str] = "sutro-tiers", energy_preset: str = "dally-2020",
            seed: int | None = None, trace_steps: str | None = None, progress=None,
            cost_models: bool = False, brute_force: bool = False, evaluate: bool = True,
            target_accuracy: float | None = None, retrain: bool = False,
            train_progress=None, texts: dict | None = None) -> Comparison:
    """Every program under every pipeline on every hierarchy, each accounting the same steps
    (rows ordered program, pipeline, hierarchy). `overrides`: one dict for every program, or
    one per program. `texts`: each program's text, when the caller has read it."""
    programs = [path] if isinstance(path, str) else list(path)
    names = [hierarchy] if isinstance(hierarchy, str) else list(hierarchy)
    per_program = (overrides if isinstance(overrides, list) else
                   [overrides or {}] * len(programs))
    hiers = [load_hierarchy(h) for h in names]
    for h in hiers:
        energy_mod.level_energies(h, energy_preset)
    texts = texts or {}
    preps = {(p, pipe): prepare(p, o, pipe, seed, trace_steps, target_accuracy, texts.get(p))
             for p, o in zip(programs, per_program) for pipe in pipelines}    # every check first
    rows: list[Row] = []
    trainings: dict[tuple, tuple] = {}   # (program, path sites) -> (training, its first row)
    for p in programs:
        for pipe in pipelines:
            prep = preps[p, pipe]
            key = (p, prep.sites()) if is_exact(pipe) and not retrain else None
            if key in trainings:
                trained, first = trainings[key]
            else:
                bar = train_progress(len(rows), _stem(p) + " " + (pipe or NONE)) \
                    if train_progress else None
                try:
                    trained = train(prep, bar)
                except TrainingDiverged as e:      # which row: the pipeline changes the sums
                    e.message = f"{_stem(p)} under {pipe or NONE}: {e.message}"
                    raise
                first = None
                if key is not None:
                    trainings[key] = (trained, len(rows))
            for k, (name, hier) in enumerate(zip(names, hiers)):
                by = first if k == 0 else (len(rows) - k if first is None else first)
                if retrain and k > 0:
                    trained, by = train(prep), None
                i = len(rows)
                label = f"{_stem(p)} {pipe or NONE}" + (f" @{name}" if len(names) > 1 else "")
                result = price(prep, trained, hier, energy_preset,
                               progress=progress(i, label) if progress else None,
                               cost_models=cost_models, brute_force=brute_force,
                               evaluate=evaluate, shared=by is not None)
                rows.append(Row(pipe, result, p, name, by))
    return Comparison(tuple(rows), rows[0].result.trace_policy if rows else trace_steps or "all")


def _split(r: RunResult) -> dict:
    e = r.sim.energy
    return {"total": e.total, "memory": e.total - e.arithmetic, "arithmetic": e.arithmetic,
            "by_level": dict(e.by_level)}


def _change(new: float, old: float) -> float | None:
    return (new - old) / old if old else None


def _row_dict(row: Row, base: Row) -> dict:
    r, b = row.result, base.result
    reuse = r.sim.reuse
    return {"program": row.program, "pipeline": row.label, "hierarchy": row.hierarchy,
            "exact": row.exact, "trained_by_row": row.trained_by,
            "accuracy": {"train": r.train.train_accuracy, "test": r.train.test_accuracy},
            "steps": r.train.steps, "kernels": row.kernels, "arith_ops_per_step": r.arith_ops,
            "peak_live_bytes": r.peak_live_bytes,
            "accesses_per_step": r.accesses_per_step,
            "reads": reuse.reads, "writes": reuse.writes, "ard": reuse.ard,
            "hit_rate": {s.name: s.hit_rate for s in r.sim.levels},
            "energy_fj": _split(r), "energy_per_step_fj": r.energy_per_step_fj,
            **({"target": r.target(r.target_accuracy)} if r.target_accuracy is not None else {}),
            "change": {"energy": _change(r.sim.energy.total, b.sim.energy.total),
                       "reads": _change(reuse.reads, b.sim.reuse.reads),
                       "ard": _change(reuse.ard, b.sim.reuse.ard)},
            "run": r.to_dict()}


def _mean(v: float) -> str:
    """A per-step mean: an integer when every step runs the same (one control path)."""
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def render_compare(c: Comparison) -> str:
    base = c.rows[0].result
    levels = list(dict.fromkeys(s.name for row in c.rows for s in row.result.sim.levels[:-1]))
    head = ["pipeline" if len(c.programs) == len(c.hierarchies) == 1 else "run", "exact",
            "train", "test", "kernels", "ops/step", "peak live", "reads", "writes", "ARD"]
    head += [f"{name} hit" for name in levels]
    head += ["energy", "memory", "arith", "vs first"]
    target = base.target_accuracy
    if target is not None:
        head.append(f"learning to {100 * target:.0f}% test")
    seed = base.memtracker is not None
    if seed:
        head += ["memtracker ARD", "vs first"]
    rows = []
    for i, (label, row) in enumerate(zip(c.labels(), c.rows)):
        r = row.result
        reuse, e = r.sim.reuse, r.sim.energy
        change = _change(e.total, base.sim.energy.total)
        hits = {s.name: f"{100 * s.hit_rate:.1f}%" for s in r.sim.levels[:-1]}
        rows.append([label, "yes" if row.exact else "NO",
                     f"{100 * r.train.train_accuracy:.1f}%", f"{100 * r.train.test_accuracy:.1f}%",
                     _mean(row.kernels), _mean(r.arith_ops), size(r.peak_live_bytes),
                     f"{reuse.reads:,}", f"{reuse.writes:,}", f"{reuse.ard:,.1f}",
                     *[hits.get(name, "-") for name in levels],
                     energy(e.total), energy(e.total - e.arithmetic), energy(e.arithmetic),
                     "" if row is c.rows[0] else f"{100 * change:+.1f}%"])
        if target is not None:
            t = r.target(target)
            rows[-1].append("not reached" if not t["reached"] else
                            "-" if t["learning_energy_fj"] is None else
                            energy(t["learning_energy_fj"]))
        if seed:
            m, m0 = r.memtracker["per_read_ard_elements"], base.memtracker["per_read_ard_elements"]
            rows[-1] += [f"{m:,.1f}", "" if row is c.rows[0] else f"{100 * _change(m, m0):+.1f}%"]
    programs = c.programs
    lines = [(f"program    {base.program}" if len(programs) == 1 else
              f"programs   {', '.join(programs)}"),
             "config     " + ", ".join(f"{k}={v}" for k, v in base.config.items()),
             ("accounted  every step of each row's run, exactly" if base.all_traced else
              f"sampled    steps {step_ranges(base.traced)} of every row (--trace-steps "
              f"{c.trace_steps}): NOT EXACT, the totals are of these steps only")
             + (f"; hierarchy {base.sim.hierarchy}" if len(c.hierarchies) == 1 else "")
             + f", energy preset {base.sim.energy.preset}",
             *_training_lines(c), ""]
    lines.append(table(head, rows))
    approx = [label for label, row in zip(c.labels(), c.rows) if not row.exact]
    if approx:
        lines.append("\napproximate (changes the arithmetic; compare its accuracy): "
                     + ", ".join(approx))
    notes = dict.fromkeys(n for row in c.rows for n in row.result.pass_notes)
    if notes:
        lines.append("")
        lines += [f"note       {n}" for n in notes]
    return "\n".join(lines)


def _training_lines(c: Comparison) -> list[str]:
    """How many trainings the rows took, and which rows share one."""
    shared: dict[int, list[int]] = {}
    for i, row in enumerate(c.rows):
        if row.trained_by is not None:
            shared.setdefault(row.trained_by, []).append(i)
    if not shared:
        return [f"training   every row trained itself ({len(c.rows)} trainings)"]
    labels = c.labels()
    parts = [f"{', '.join(labels[j] for j in js)} reuse{'s' if len(js) == 1 else ''} "
             f"{labels[i]}'s" for i, js in shared.items()]
    return [f"training   {c.trainings} training{'s' if c.trainings != 1 else ''} for "
            f"{len(c.rows)} rows: {'; '.join(parts)} (bit-identical values: exact passes keep "
            "every value and training does not see the hierarchy; only the schedule and the "
            "trace differ)"]
