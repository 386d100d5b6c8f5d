"""`sutro-sim sweep`: a cross product (or a seeded random sample of it) of programs, `--set`
values, seeds, pipelines, hierarchies and energy presets, run on an engine (engines.py),
recorded point by point into the results database, which makes it resumable: a point whose
inputs are already recorded is read back, not run again.
"""

from __future__ import annotations

import os
import math
import random
from dataclasses import dataclass, field

from simulator import energy as energy_mod
from simulator.errors import SimError
from simulator.hierarchy import load_hierarchy
from simulator.report import energy, table
from sutro_ir.compile import compile_program, read_source
from sutro_ir.passes import pipeline_text

from .db import inputs_of, record, run_options


def split_values(text: str, where: str) -> list[str]:
    """'0.01,0.05,[1, 2]' -> ['0.01', '0.05', '[1, 2]']: commas inside brackets or quotes
    belong to the value."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    if not all(out):
        raise SimError(f"an empty value in '{text}' (values are comma-separated)", where)
    return list(dict.fromkeys(out))


def set_axes(groups: list[list[str]]) -> list[tuple[str, list[str]]]:
    """--set NAME=V1,V2 ... -> [(NAME, [V1, V2])], in the order given."""
    axes: dict[str, list[str]] = {}
    for item in (i for g in groups for i in g):
        name, eq, values = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise SimError(f"--set {item}: expected NAME=VALUE[,VALUE...]", "--set")
        if name in axes:
            raise SimError(f"--set {name} is given twice (give its values comma-separated)",
                           "--set")
        axes[name] = split_values(values, f"--set {name}")
    return list(axes.items())


MAX_POINTS = 1_000_000     # a cross product larger than this needs --sample
MAX_SEED = (1 << 63) - 1


def seeds_of(text: str | None) -> list[int | None]:
    """--seeds N (0 .. N-1) or --seeds 3,7,11; none: the programs' own seeds."""
    if text is None:
        return [None]
    try:
        values = [int(v) for v in split_values(text, "--seeds")]
    except ValueError:
        raise SimError(f"--seeds {text}: a count N (seeds 0 to N-1) or comma-separated "
                       "integer seeds", "--seeds") from None
    if len(values) == 1 and "," not in text:
        if not 1 <= values[0] <= MAX_POINTS:
            raise SimError(f"--seeds {text}: from 1 to {MAX_POINTS:,} seeds", "--seeds")
        return list(range(values[0]))
    if any(not 0 <= v <= MAX_SEED for v in values):
        raise SimError(f"--seeds {text}: a seed is an integer from 0 to 2^63 - 1", "--seeds")
    return values


@dataclass(frozen=True)
class Point:
    """One run of the sweep: which value each axis takes."""
    program: str
    sets: tuple            # ((name, value), ...) of the --set axes
    seed: int | None
    passes: str
    hierarchy: str
    energy_preset: str

    def label(self, axes: "Axes") -> dict:
        """The values of the axes that vary, by column name."""
        out = {}
        if len(axes.programs) > 1:
            out["program"] = self.program
        out.update({name: v for name, v in self.sets if len(dict(axes.sets)[name]) > 1})
        if len(axes.seeds) > 1:
            out["seed"] = str(self.seed)
        if len(axes.pipelines) > 1:
            out["passes"] = self.passes or "none"
        if len(axes.hierarchies) > 1:
            out["hierarchy"] = self.hierarchy
        if len(axes.energies) > 1:
            out["energy"] = self.energy_preset
        return out


@dataclass(frozen=True)
class Axes:
    programs: list[str]
    sets: list[tuple[str, list[str]]]
    seeds: list[int | None]
    pipelines: list[str]
    hierarchies: list[str]
    energies: list[str]

    @property
    def size(self) -> int:
        return math.prod([len(self.programs), *(len(v) for _, v in self.sets), len(self.seeds),
                          len(self.pipelines), len(self.hierarchies), len(self.energies)])

    def points(self, sample: int | None = None, sample_seed: int = 0) -> list[Point]:
        """The cross product, in axis order; or `sample` of its points, drawn without
        replacement by a generator seeded with `sample_seed` (the same sample every time).
        A sample is drawn by index: the product is never built."""
        size = self.size
        if sample is None or sample >= size:
            if size > MAX_POINTS:
                raise SimError(f"the sweep has {size:,} points; run at most {MAX_POINTS:,}, "
                               "or a sample of them (--sample N)", "sweep")
            chosen = range(size)
        else:
            chosen = sorted(random.Random(sample_seed).sample(range(size), sample))
        axes = [self.programs, *(v for _, v in self.sets), self.seeds, self.pipelines,
                self.hierarchies, self.energies]
        names = [n for n, _ in self.sets]
        out = []
        for index in chosen:         # mixed radix, the last axis fastest (as the product)
            picks = []
            for values in reversed(axes):
                index, i = divmod(index, len(values))
                picks.append(values[i])
            p, *vals, s, pipe, h, e = picks[::-1]
            out.append(Point(p, tuple(zip(names, vals)), s, pipe, h, e))
        return out

    def varying(self) -> list[str]:
        return list(Point(self.programs[0], tuple((n, v[0]) for n, v in self.sets),
                          self.seeds[0], self.pipelines[0], self.hierarchies[0],
                          self.energies[0]).label(self))


@dataclass
class Outcome:
    point: Point
    run_id: int | None
    status: str              # new | recorded | diverged | diverged (recorded) | error
    result: dict = field(default_factory=dict)
    error: str = ""


def check(axes: Axes, points: list[Point]) -> tuple[dict, dict]:
    """Every point's program, values and options checked before the first run (each
    distinct program, values and pipeline compiled once): each program's text, read once,
    and each hierarchy, loaded once, which the points then run."""
    hierarchies = {h: load_hierarchy(h) for h in axes.hierarchies}
    for hier in hierarchies.values():
        for e in axes.energies:
            energy_mod.level_energies(hier, e)
    texts = {p: read_source(p) for p in axes.programs}
    for program, sets, pipe in dict.fromkeys((q.program, q.sets, q.passes) for q in points):
        compile_program(texts[program], program, dict(sets), pipe)
    return texts, hierarchies


def job_of(point: Point, trace_steps: str | None, options: dict, texts: dict,
           hierarchies: dict) -> dict:
    """What the engine runs and the database keeps for a point."""
    from sutro_sim.run import with_seed

    text = texts[point.program]
    overrides = with_seed(dict(point.sets), point.program, point.seed, text)
    return inputs_of(point.program, text, overrides, point.seed, pipeline_text(point.passes),
                     point.hierarchy, hierarchies[point.hierarchy], point.energy_preset,
                     trace_steps, options)


class Group:
    """The sweep's row of `groups`, made when its first point is recorded (a sweep refused
    before it runs, or with every point recorded already, leaves none)."""

    def __init__(self, db, spec: dict, note: str | None):
        self.db, self.spec, self.note, self.id = db, spec, note, None

    def __call__(self) -> int:
        if self.id is None:
            self.id = self.db.add_group("sweep", self.spec, self.note)
        return self.id


def sweep(axes: Axes, db=None, group: Group | None = None, trace_steps: str | None = None,
          options: dict | None = None, engine: str = "local", jobs: int | None = None,
          address: str | None = None, sample: int | None = None, sample_seed: int = 0,
          rerun: bool = False, note: str | None = None, progress=None) -> list[Outcome]:
    """Run the points not recorded yet (all with `rerun`), recording each as it finishes;
    the points' outcomes in point order."""
    from .engines import execute

    options = options or run_options()
    points = axes.points(sample, sample_seed)
    texts, hierarchies = check(axes, points)
    inputs = [job_of(p, trace_steps, options, texts, hierarchies) for p in points]
    known = db.recorded([i["point"] for i in inputs]) if db is not None and not rerun else {}
    outcomes: list[Outcome | None] = [None] * len(points)
    todo = []
    for k, (p, i) in enumerate(zip(points, inputs)):
        if i["point"] in known:
            row = db.get(known[i["point"]])
            diverged = row["status"] == "diverged"
            outcomes[k] = Outcome(p, row["id"], "diverged (recorded)" if diverged else
                                  "recorded", row["result"])
        else:
            todo.append(k)
    done = len(points) - len(todo)
    if progress:
        progress(done, len(points))
    finished = execute([inputs[k] for k in todo], engine, jobs, address)
    try:
        _record_each(finished, todo, points, inputs, outcomes, db, note, group, progress, done)
    finally:
        close = getattr(finished, "close", None)
        if close:               # the engine's workers stopped now, on an interrupt too
            close()
    return outcomes


def _record_each(finished, todo, points, inputs, outcomes, db, note, group, progress,
                 done) -> None:
    for j, out in finished:
        k = todo[j]
        if "error" in out:
            outcomes[k] = Outcome(points[k], None, "error", {}, out["error"])
        else:
            diverged = out.get("diverged")
            rec = record("sweep", inputs[k], out.get("result"), diverged, note,
                         group() if group is not None else None)
            run_id = db.add(rec) if db is not None else None
            outcomes[k] = Outcome(points[k], run_id, "diverged" if diverged else "new",
                                  rec["result"])
        done += 1
        if progress:
            progress(done, len(points))


# ----------------------------------------------------------------------------- report

def metrics(result: dict) -> dict:
    """The figures a sweep table shows, from a `run --json` object."""
    if not result or "diverged" in result:
        return {}
    loss = (result.get("loss") or {}).get("test")
    return {"accuracy_train": result["accuracy"]["train"],
            "accuracy_test": result["accuracy"]["test"],
            "loss_test": loss, "energy_fj": result["energy_fj"]["total"],
            "exact": result["traced"]["all_steps"], "ard": result["reuse"]["ard"],
            "steps": result["steps"]}


def render(axes: Axes, outcomes: list[Outcome]) -> str:
    cols = axes.varying()
    has_loss = any(metrics(o.result).get("loss_test") is not None for o in outcomes)
    head = ["run", *cols, "train", "test", *(["test loss"] if has_loss else []), "energy",
            "ARD", "status"]
    body = []
    for o in outcomes:
        m, label = metrics(o.result), o.point.label(axes)
        pct = (lambda v: f"{100 * v:.1f}%")
        body.append(["-" if o.run_id is None else str(o.run_id), *[label[c] for c in cols],
                     *([pct(m["accuracy_train"]), pct(m["accuracy_test"])] if m else ["-", "-"]),
                     *([("-" if m.get("loss_test") is None else f"{m['loss_test']:.4f}")]
                       if has_loss else []),
                     (energy(m["energy_fj"]) + ("" if m["exact"] else " (sample)")) if m
                     else "-", f"{m['ard']:,.1f}" if m else "-",
                     o.status + (f": {o.error}" if o.error else "") + _diverged(o)])
    lines = [table(head, body, left=tuple(range(1, 1 + len(cols))) + (len(head) - 1,))]
    if len(axes.seeds) > 1:
        lines += ["", f"over {len(axes.seeds)} seeds (mean, and the smallest and largest):",
                  seed_summary(axes, outcomes)]
    new = sum(o.status in ("new", "diverged") for o in outcomes)
    lines.append(f"\n{len(outcomes)} point{'s' if len(outcomes) != 1 else ''}: {new} run now, "
                 f"{sum(o.status.endswith('(recorded)') or o.status == 'recorded' for o in outcomes)}"
                 f" already recorded, {sum(o.status.startswith('diverged') for o in outcomes)} "
                 f"diverged, {sum(o.status == 'error' for o in outcomes)} refused")
    return "\n".join(lines)


def _diverged(o: Outcome) -> str:
    d = o.result.get("diverged") if o.result else None
    return f" at step {d['step']} ({d['where']})" if d else ""


def groups_over_seeds(axes: Axes, outcomes: list[Outcome]) -> dict[tuple, list[Outcome]]:
    cols = [c for c in axes.varying() if c != "seed"]
    groups: dict[tuple, list[Outcome]] = {}
    for o in outcomes:
        label = o.point.label(axes)
        groups.setdefault(tuple(label[c] for c in cols), []).append(o)
    return groups


def seed_summary(axes: Axes, outcomes: list[Outcome]) -> str:
    cols = [c for c in axes.varying() if c != "seed"]
    body = []
    for key, group in groups_over_seeds(axes, outcomes).items():
        ms = [metrics(o.result) for o in group]
        ms = [m for m in ms if m]
        if not ms:
            body.append([*key, "0", "-", "-"])
            continue
        test = [m["accuracy_test"] for m in ms]
        e = [m["energy_fj"] for m in ms]
        body.append([*key, str(len(ms)),
                     f"{100 * sum(test) / len(test):.1f}% ({100 * min(test):.1f}-"
                     f"{100 * max(test):.1f})",
                     f"{energy(sum(e) / len(e))} ({energy(min(e))}-{energy(max(e))})"])
    return table([*cols, "runs", "test", "energy"], body, left=tuple(range(len(cols))))


def to_dict(axes: Axes, outcomes: list[Outcome], group: int | None, db_path: str | None) -> dict:
    return {"sweep": group, "db": db_path,
            "axes": {"programs": axes.programs, "set": dict(axes.sets), "seeds": axes.seeds,
                     "passes": axes.pipelines, "hierarchies": axes.hierarchies,
                     "energies": axes.energies},
            "points": [{"run_id": o.run_id, "status": o.status, "error": o.error or None,
                        "program": o.point.program, "set": dict(o.point.sets),
                        "seed": o.point.seed, "passes": o.point.passes,
                        "hierarchy": o.point.hierarchy, "energy": o.point.energy_preset,
                        **({"diverged": o.result["diverged"]} if "diverged" in o.result
                           else {}),
                        **metrics(o.result)} for o in outcomes]}


# ----------------------------------------------------------------------------- plots

def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def write_plots(axes: Axes, outcomes: list[Outcome], folder: str, caption: str) -> list[str]:
    """For each swept numeric --set value: test accuracy and energy against it (a line per
    combination of the other axes, the seeds' mean with their range as error bars); and energy
    against test accuracy for every point."""
    from simulator.plots import write_figures

    plots = []
    for name, values in axes.sets:
        xs = [_number(v) for v in values]
        if len(values) > 1 and all(x is not None for x in xs):
            for metric, title, short in (("accuracy_test", "test accuracy", "test"),
                                         ("energy_fj", "energy (fJ)", "energy")):
                plots.append((f"sweep_{short}_vs_{name}",
                              lambda data, ax, n=name, m=metric, t=title:
                              _against(axes, data, ax, n, m, t)))
    plots.append(("sweep_energy_accuracy", lambda data, ax: _tradeoff(axes, data, ax)))
    return write_figures(folder, outcomes, (7, 4.5), plots, caption)


def _against(axes: Axes, outcomes, ax, name: str, metric: str, title: str) -> None:
    from simulator.plots import log_scale
    from simulator.report import ENERGY_UNITS

    others = [c for c in axes.varying() if c not in (name, "seed")]
    lines: dict[tuple, dict[float, list[float]]] = {}
    for o in outcomes:
        m = metrics(o.result)
        if not m:
            continue
        label = o.point.label(axes)
        x = _number(dict(o.point.sets)[name])
        lines.setdefault(tuple(label[c] for c in others), {}).setdefault(x, []).append(m[metric])
    scale, unit = 1.0, ""
    if metric == "energy_fj":
        top = max((v for by_x in lines.values() for vs in by_x.values() for v in vs), default=0)
        scale, unit = next(((s, u) for s, u in ENERGY_UNITS if top >= s), (1.0, "fJ"))
        title = f"energy ({unit})"
    for k, (key, by_x) in enumerate(sorted(lines.items())):
        xs = sorted(by_x)
        mean = [sum(by_x[x]) / len(by_x[x]) / scale for x in xs]
        low = [mean[i] - min(by_x[x]) / scale for i, x in enumerate(xs)]
        high = [max(by_x[x]) / scale - mean[i] for i, x in enumerate(xs)]
        ax.errorbar(xs, mean, yerr=[low, high], marker="o", capsize=3,
                    ls=("-", "--", "-.", ":")[k % 4], label=_legend(others, key))
    xs = sorted({x for by_x in lines.values() for x in by_x})
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
        log_scale(ax, "x")
    if xs:
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    if metric == "energy_fj":
        log_scale(ax, "y")
    ax.set_xlabel(name)
    ax.set_ylabel(title + (f" (mean of {len(axes.seeds)} seeds; bars: range)"
                           if len(axes.seeds) > 1 else ""))
    ax.set_title(f"{title.split(' (')[0]} against {name}")
    if any(others) and lines:
        ax.legend(fontsize=7)


def _tradeoff(axes: Axes, outcomes, ax) -> None:
    from simulator.plots import log_scale
    others = [c for c in axes.varying() if c != "seed"]
    groups: dict[str, list[tuple[float, float]]] = {}
    for o in outcomes:
        m = metrics(o.result)
        if m:
            label = o.point.label(axes)
            key = _legend(others, tuple(label[c] for c in others)) or ""
            groups.setdefault(key, []).append((m["energy_fj"], m["accuracy_test"]))
    markers = "os^vD<>Px*"
    for k, (key, pts) in enumerate(sorted(groups.items())):
        ax.scatter([e for e, _ in pts], [a for _, a in pts], marker=markers[k % len(markers)],
                   label=key or None)
    log_scale(ax, "x")
    ax.set_xlabel("energy (fJ; the traced steps)")
    ax.set_ylabel("test accuracy")
    ax.set_title("energy against accuracy, every point")
    if len(groups) > 1 and len(groups) <= 20:
        ax.legend(fontsize=6)


def _legend(columns: list[str], values: tuple) -> str | None:
    """'parity3.sir, hierarchy=cpu-like': a program by its file name."""
    parts = [os.path.basename(v) if c == "program" else f"{c}={v}"
             for c, v in zip(columns, values)]
    return ", ".join(parts) or None
