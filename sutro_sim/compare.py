"""`sutro-sim compare FILE -p PIPELINE -p PIPELINE ...`: one program under several pass
pipelines, side by side.

Every row runs the whole job (`run`): it trains for real and accounts every step of its run
exactly (or the same sample of steps, with `--trace-steps N`), so that their reads, writes and
energies are comparable. The first row is the baseline for the change column; the
unscheduled program is first unless the first -p says otherwise (`-p none` is the unscheduled
program, anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.report import energy, size, table
from simulator.simulate import step_ranges
from sutro_ir.passes import is_exact

from .run import RunResult, run

NONE = "none"


@dataclass(frozen=True)
class Row:
    pipeline: str
    result: RunResult

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

    def to_dict(self) -> dict:
        base = self.rows[0]
        return {"program": base.result.program, "config": base.result.config,
                "trace_steps": self.trace_steps,
                "traced_steps": step_ranges(base.result.traced),
                "rows": [_row_dict(r, base) for r in self.rows]}


def pipelines_of(args: list[str]) -> list[str]:
    """The rows' pipelines: '' for none, the unscheduled baseline added first if missing."""
    out = ["" if p.strip() in ("", NONE) else p.strip() for p in args]
    if not out or out[0] != "":
        out.insert(0, "")
    return list(dict.fromkeys(out))


def compare(path: str, pipelines: list[str], overrides: dict | None = None,
            hierarchy: str = "sutro-tiers", energy_preset: str = "dally-2020",
            seed: int | None = None, trace_steps: str | None = None, progress=None,
            cost_models: bool = False, brute_force: bool = False, evaluate: bool = True,
            target_accuracy: float | None = None) -> Comparison:
    """Run every pipeline, each accounting the same steps."""
    rows = [Row(pipeline, run(path, overrides, hierarchy, energy_preset, pipeline, seed,
                              trace_steps, progress=progress(i, pipeline) if progress else None,
                              cost_models=cost_models, brute_force=brute_force,
                              evaluate=evaluate, target_accuracy=target_accuracy))
            for i, pipeline in enumerate(pipelines)]
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
    return {"pipeline": row.label, "exact": row.exact,
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
    levels = [s.name for s in base.sim.levels]
    head = ["pipeline", "exact", "train", "test", "kernels", "ops/step", "peak live", "reads",
            "writes", "ARD"]
    head += [f"{name} hit" for name in levels[:-1]]
    head += ["energy", "memory", "arith", "vs first"]
    target = base.target_accuracy
    if target is not None:
        head.append(f"learning to {100 * target:.0f}% test")
    seed = base.memtracker is not None
    if seed:
        head += ["memtracker ARD", "vs first"]
    rows = []
    for row in c.rows:
        r = row.result
        reuse, e = r.sim.reuse, r.sim.energy
        change = _change(e.total, base.sim.energy.total)
        rows.append([row.label, "yes" if row.exact else "NO",
                     f"{100 * r.train.train_accuracy:.1f}%", f"{100 * r.train.test_accuracy:.1f}%",
                     _mean(row.kernels), _mean(r.arith_ops), size(r.peak_live_bytes),
                     f"{reuse.reads:,}", f"{reuse.writes:,}", f"{reuse.ard:,.1f}",
                     *[f"{100 * s.hit_rate:.1f}%" for s in r.sim.levels[:-1]],
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
    lines = [f"program    {base.program}",
             "config     " + ", ".join(f"{k}={v}" for k, v in base.config.items()),
             ("accounted  every step of each row's run, exactly" if base.all_traced else
              f"sampled    steps {step_ranges(base.traced)} of every row (--trace-steps "
              f"{c.trace_steps}): NOT EXACT, the totals are of these steps only")
             + f"; hierarchy {base.sim.hierarchy}, energy preset {base.sim.energy.preset}", ""]
    lines.append(table(head, rows))
    approx = [row.label for row in c.rows if not row.exact]
    if approx:
        lines.append("\napproximate (changes the arithmetic; compare its accuracy): "
                     + ", ".join(approx))
    notes = dict.fromkeys(n for row in c.rows for n in row.result.pass_notes)
    if notes:
        lines.append("")
        lines += [f"note       {n}" for n in notes]
    return "\n".join(lines)
