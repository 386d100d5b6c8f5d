"""`sutro-sim log`: the experiment log over the results database. `log` lists runs, `log show
ID` shows one, `log diff A B` says what changed between two (program lines, configuration,
passes, hierarchy, and each metric), `log plot METRIC` draws a metric over the runs, and
`log note ID TEXT` keeps a note with a run: the change-one-thing-measure-log loop, a command
each.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys

from simulator.errors import SimError
from simulator.report import energy, table

from .db import open_for_reading
from ..schema import dumps

COLUMNS = ("accuracy_train", "accuracy_test", "loss_test", "energy_fj", "ard", "steps",
           "wall_s")


def add_parser(sub) -> None:
    g = sub.add_parser("log", help="the experiment log: list, show, diff and plot recorded runs",
                       description="The runs recorded in the results database (run, compare "
                       "and sweep record into it). Without a subcommand: the newest runs.")
    g.add_argument("--db", metavar="PATH", help="the results database (default: "
                   "$SUTRO_SIM_DB, else sutro-results.db in the working directory)")
    g.add_argument("-n", "--last", type=run_id_or_zero, default=20, metavar="N",
                   help="how many of the newest runs to list (default 20; 0: all)")
    g.add_argument("--program", metavar="TEXT", help="only runs whose program path contains TEXT")
    g.add_argument("--group", type=run_id, metavar="ID", help="only the runs of one compare or "
                   "sweep")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.set_defaults(func=cmd_log)
    lsub = g.add_subparsers(dest="log_command", metavar="SUBCOMMAND")
    s = lsub.add_parser("show", help="one run, whole")
    s.add_argument("id", type=run_id)
    s.add_argument("--program-text", action="store_true", help="print the program's text too")
    s.add_argument("--json", action="store_true", help="print the record as JSON")
    d = lsub.add_parser("diff", help="what changed between two runs, and each metric's change")
    d.add_argument("a", type=run_id)
    d.add_argument("b", type=run_id)
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    p = lsub.add_parser("plot", help="a metric over the runs, in the order they were recorded")
    p.add_argument("metric", help="a column (" + ", ".join(COLUMNS) + ") or a path into the "
                   "run's JSON (reuse.ard_bytes, levels.L1.hit_rate, energy_fj.arithmetic)")
    p.add_argument("--out", metavar="FILE", default="log.png",
                   help="the PNG to write (default: log.png)")
    p.add_argument("--program", metavar="TEXT", help="only runs whose program path contains TEXT")
    p.add_argument("--group", type=run_id, metavar="ID", help="only the runs of one group")
    n = lsub.add_parser("note", help="keep a note with a run")
    n.add_argument("id", type=run_id)
    n.add_argument("text")
    for sub_parser in (s, d, p, n):      # --db after the subcommand too
        sub_parser.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                                help="the results database")


def run_id(text: str) -> int:
    """An id of a run or group: 1 to 2^63 - 1 (SQLite's integers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an id (a number from 1)") from None
    if not 0 < value < 1 << 63:
        raise argparse.ArgumentTypeError(f"{text}: ids are numbers from 1 to 2^63 - 1")
    return value


def run_id_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else run_id(text)


def cmd_log(args) -> int:
    db = open_for_reading(args.db, write=args.log_command == "note")
    try:
        return {None: _list, "show": _show, "diff": _diff, "plot": _plot,
                "note": _note}[args.log_command](db, args)
    finally:
        db.close()


# ----------------------------------------------------------------------------- list

def _list(db, args) -> int:
    runs = db.runs(args.last or None, args.program, args.group)
    if args.json:
        print(dumps({"db": db.path, "runs": [
            {k: r[k] for k in ("id", "created", "command", "group_id", "note", "status",
                               "program", "passes", "hierarchy", "energy_preset", "seed",
                               "overrides", *COLUMNS, "exact", "git_commit")}
            for r in runs]}))
        return 0
    if not runs:
        print(f"no runs recorded in {db.path}" + (" match" if args.program or args.group else ""))
        return 0
    body = [[str(r["id"]), r["created"].replace("T", " ")[:19], r["command"] +
             (f" {r['group_id']}" if r["group_id"] else ""), _short(r["program"]),
             r["passes"] or "none", r["hierarchy"], _sets(r), _pct(r["accuracy_test"]),
             "-" if r["energy_fj"] is None else energy(r["energy_fj"]) +
             ("" if r["exact"] else "*"), r["status"] if r["status"] != "ok" else "",
             _one_line(r["note"] or "")] for r in runs]
    print(table(["id", "recorded (UTC)", "by", "program", "passes", "hierarchy", "set", "test",
                 "energy", "", "note"], body, left=(1, 2, 3, 4, 5, 6, 9, 10)))
    if any(not r["exact"] and r["energy_fj"] is not None for r in runs):
        print("* the energy of a sample of steps (--trace-steps), not of the whole run")
    return 0


NOTE_WIDTH = 60     # a note in the listing (log show prints it whole)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= NOTE_WIDTH else text[:NOTE_WIDTH - 3] + "..."


def _short(path: str) -> str:
    return os.path.basename(path)


def _sets(r: dict) -> str:
    parts = [f"{k}={v}" for k, v in r["overrides"].items()]
    return " ".join(parts) or "-"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


# ----------------------------------------------------------------------------- show

FIELDS = ("command", "group_id", "status", "note", "program", "program_sha256", "git_commit",
          "git_dirty", "tool_version", "overrides", "config", "seed", "passes", "hierarchy",
          "energy_preset", "trace_steps", "options", "host", "wall_s")


def _show(db, args) -> int:
    r = db.get(args.id)
    if args.json:
        print(dumps(r))
        return 0
    lines = [f"run {r['id']}, recorded {r['created']}"]
    for k in FIELDS:
        v = r[k]
        if v is None or v == {} or k == "config" and not v:
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        lines.append(f"  {k:<15} {v if v != '' else 'none'}")
    if r["status"] == "diverged":
        lines.append(f"  diverged        {r['result']['diverged']['message']} (step "
                     f"{r['result']['diverged']['step']})")
    metrics = flat_metrics(r)
    if metrics:
        lines.append("")
        lines.append(table(["metric", "value"], [[k, _fmt(k, v)] for k, v in metrics.items()]))
    if args.program_text:
        lines += ["", r["program_text"].rstrip("\n")]
    print("\n".join(lines))
    return 0


def flat_metrics(r: dict) -> dict:
    """The figures a diff compares, by name: accuracy, loss, energy (total, memory,
    arithmetic, each level), accesses, reuse, each level's hit rate, steps, wall time."""
    res = r["result"]
    if not res or "diverged" in res:
        return {}
    e = res["energy_fj"]
    out = {"accuracy.train": res["accuracy"]["train"], "accuracy.test": res["accuracy"]["test"]}
    for k, v in (res.get("loss") or {}).items():
        out[f"loss.{k}"] = v
    out["energy_fj.total"] = e["total"]
    out["energy_fj.arithmetic"] = e["arithmetic"]
    for level, v in e["by_level"].items():
        out[f"energy_fj.{level}"] = v
    out["accesses.reads"] = res["accesses"]["reads"]
    out["accesses.writes"] = res["accesses"]["writes"]
    out["reuse.ard"] = res["reuse"]["ard"]
    for lv in res["levels"]:
        if lv.get("hit_rate") is not None and lv.get("capacity_bytes") is not None:
            out[f"levels.{lv['name']}.hit_rate"] = lv["hit_rate"]
    out["traced.peak_live_bytes"] = res["traced"]["peak_live_bytes"]
    out["traced.kernels_per_step"] = res["traced"]["kernels_per_step"]
    out["steps"] = res["steps"]
    out["wall_s"] = res["wall_s"]
    return out


def _fmt(name: str, v) -> str:
    if v is None:
        return "-"
    if name.startswith("energy_fj"):
        return energy(v)
    if name.startswith("accuracy") or name.endswith("hit_rate"):
        return f"{100 * v:.2f}%"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.1f}"


# ----------------------------------------------------------------------------- diff

INPUTS = ("program", "overrides", "seed", "passes", "hierarchy", "hierarchy_spec",
          "energy_preset", "trace_steps", "options", "tool_version", "git_commit")


def diff(a: dict, b: dict) -> dict:
    """What changed from run a to run b: the program's lines (a unified diff), each input that
    differs, each config constant that differs, and every metric with its relative change."""
    program = list(difflib.unified_diff(
        a["program_text"].splitlines(), b["program_text"].splitlines(),
        f"run {a['id']}: {a['program']}", f"run {b['id']}: {b['program']}", lineterm=""))
    changed = {k: [a[k], b[k]] for k in INPUTS if a[k] != b[k]}
    ca, cb = a["config"], b["config"]      # a diverged run has none: its overrides say it
    config = {} if ca is None or cb is None else {
        k: [ca.get(k), cb.get(k)] for k in dict.fromkeys([*ca, *cb]) if ca.get(k) != cb.get(k)}
    ma, mb = flat_metrics(a), flat_metrics(b)
    metrics = {k: {"a": ma.get(k), "b": mb.get(k), "change": _change(ma.get(k), mb.get(k))}
               for k in dict.fromkeys([*ma, *mb])}
    return {"a": a["id"], "b": b["id"], "program": program, "changed": changed,
            "config": config, "metrics": metrics,
            "status": [a["status"], b["status"]]}


def _change(x, y) -> float | None:
    if x is None or y is None or not x:
        return None
    return (y - x) / abs(x)


def _diff(db, args) -> int:
    a, b = db.get(args.a), db.get(args.b)
    d = diff(a, b)
    if args.json:
        print(dumps(d))
        return 0
    lines = [f"run {a['id']} -> run {b['id']}" + "".join(
        f"\n  note {r['id']}: {r['note']}" for r in (a, b) if r["note"])]
    if d["program"]:
        lines += ["", "program"] + ["  " + line for line in d["program"]]
    elif a["program"] != b["program"]:
        lines += ["", f"program    the same text ({a['program']}, {b['program']})"]
    else:
        lines += ["", "program    unchanged"]
    if d["changed"]:
        lines.append("")
        for k, (x, y) in d["changed"].items():
            if k == "program":
                continue
            if k == "hierarchy_spec":
                if a["hierarchy"] == b["hierarchy"]:
                    lines.append(f"hierarchy  the file {a['hierarchy']} changed its levels")
                continue
            show = (lambda v: "none" if v in ("", None) else
                    ", ".join(f"{p}={q}" for p, q in v.items()) or "-" if isinstance(v, dict)
                    else str(v))
            lines.append(f"{k:<10} {show(x)} -> {show(y)}")
    if d["config"]:
        lines += ["", "config"] + [f"  {k} = {x} -> {y}" for k, (x, y) in d["config"].items()]
    if not d["program"] and not d["changed"] and not d["config"]:
        lines += ["", "inputs     the same (the runs differ only in when and where they ran)"]
    if d["status"][0] != d["status"][1]:
        lines += ["", f"status     {d['status'][0]} -> {d['status'][1]}"]
    if d["metrics"]:
        body = [[k, _fmt(k, m["a"]), _fmt(k, m["b"]),
                 "-" if m["change"] is None else f"{100 * m['change']:+.1f}%"]
                for k, m in d["metrics"].items()]
        lines += ["", table(["metric", f"run {a['id']}", f"run {b['id']}", "change"], body)]
    print("\n".join(lines))
    return 0


# ----------------------------------------------------------------------------- plot

def metric_of(r: dict, metric: str):
    """A column, or a dotted path into the run's JSON (a list of named things, as `levels`,
    is indexed by name); None where the run has no such number."""
    v = raw_metric(r, metric)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def raw_metric(r: dict, metric: str):
    """What the path names in a run, whatever its type (None: nothing)."""
    if metric in COLUMNS:
        return r[metric]
    node = r["result"]
    for part in metric.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list):
            node = next((x for x in node if isinstance(x, dict) and x.get("name") == part),
                        None)
        else:
            return None
        if node is None:
            return None
    return node


def _plot(db, args) -> int:
    from simulator.plots import log_scale      # first: the Agg backend, `$` taken literally
    import matplotlib.pyplot as plt

    if not args.out.lower().endswith(".png"):
        raise SimError(f"{args.out}: the plot is a PNG file (name it .png)", "--out")
    runs = db.runs(None, args.program, args.group)
    if not runs:
        raise SimError(f"no recorded runs{' match' if args.program or args.group else ''} "
                       f"in {db.path}", "log plot")
    points = [(r["id"], metric_of(r, args.metric), r) for r in runs]
    points = [(i, v, r) for i, v, r in points if v is not None and math.isfinite(v)]
    if not points:
        kinds = {type(raw_metric(r, args.metric)).__name__ for r in runs} - {"NoneType"}
        what = (f"is not a number in the runs (it is {', '.join(sorted(kinds))})" if kinds
                else "is in no recorded run")
        raise SimError(f"the metric '{args.metric}' {what}; give a column "
                       f"({', '.join(COLUMNS)}) or a path to a number in a run's JSON, such as "
                       "reuse.ard or levels.L1.hit_rate", "log plot")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise SimError(f"cannot write {args.out}: {folder} is not a directory", "--out")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    by_program: dict[str, list] = {}
    for i, v, r in points:
        by_program.setdefault(_short(r["program"]), []).append((i, v, r))
    for name, pts in by_program.items():
        ax.plot([i for i, _, _ in pts], [v for _, v, _ in pts], marker="o", label=name)
        for i, v, r in pts:
            if r["note"]:
                ax.annotate(r["note"], (i, v), fontsize=6, rotation=20,
                            textcoords="offset points", xytext=(3, 4))
    ax.set_xlabel("run id (the order recorded)")
    ax.set_ylabel(args.metric)
    if args.metric.startswith("energy") and min(v for _, v, _ in points) > 0:
        log_scale(ax, "y")
    ax.set_title(f"{args.metric} over {len(points)} runs of {db.path}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        fig.savefig(args.out, dpi=110)
    except OSError as e:
        raise SimError(f"cannot write {args.out}: {e.strerror}", "--out") from None
    finally:
        plt.close(fig)
    print(f"plot: {args.out} ({len(points)} runs)")
    return 0


def _note(db, args) -> int:
    db.set_note(args.id, args.text)
    print(f"run {args.id}: note kept", file=sys.stderr)
    return 0
