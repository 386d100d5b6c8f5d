"""`run --save-trace FILE`: a whole run's trace written as its step plan (each kind of step once,
the order of the steps), replayed by `simulate` on another hierarchy to the same figures as a
run on that hierarchy, without retraining; a bad plan in a file is refused, never a traceback."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import SimError
from simulator.trace import load
from sutro_sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("accesses", "reuse", "levels", "traffic", "energy_fj", "buffers", "accounting")


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("program,extra,alike", [
    ("programs/mlp_backprop.sir", ["--set", "hidden=64", "epochs=3"], True),   # two paths
    ("programs/char_attention.sir", ["--set", "length=1200"], False),   # a sample, every step
    ("programs/xor.sir", ["--passes", "fuse", "--no-eval"], True),      # its own kind
])
def test_a_saved_run_replays_on_another_hierarchy_as_a_run_there(capsys, tmp_path, program,
                                                                  extra, alike):
    path, saved = str(ROOT / program), tmp_path / "run.npz"
    code, out, err = cli(capsys, "run", path, *extra, "--save-trace", str(saved), "--json",
                         "--no-db")
    assert code == 0, err
    here = json.loads(out)
    code, out, err = cli(capsys, "run", path, *extra, "--hierarchy", "cpu-like", "--json",
                         "--no-db")
    there = json.loads(out)
    for hierarchy, expected in (("sutro-tiers", here), ("cpu-like", there)):
        code, out, err = cli(capsys, "simulate", str(saved), "--hierarchy", hierarchy, "--json")
        assert code == 0, err
        replayed = json.loads(out)
        for key in FIGURES:
            assert replayed.get(key) == expected.get(key), (hierarchy, key)
    # each kind of step is stored once: far fewer chunks than steps
    with zipfile.ZipFile(saved) as zf:
        header = json.loads(zf.read("meta.json"))
    assert header["version"] == 2
    stored = len(header["chunks"])
    assert stored == sum(k["chunks"] for k in header["plan"]["kinds"])
    plan = load(saved).plan
    assert header["plan"]["steps"] == len(plan.steps)
    assert len(header["plan"]["kinds"]) == len(set(plan.kinds.tolist()))
    if alike:
        assert len(plan.steps) > 10 * len(header["plan"]["kinds"])
    assert header["meta"]["sources"]                   # the names travel with the trace


@pytest.mark.parametrize("target,message", [
    (lambda p: p, "exists and is not a regular file"),
    (lambda p: p / "missing" / "t.npz", "does not exist"),
    (lambda p: p / ("x" * 300 + ".npz"), "longer than 255 bytes"),
])
def test_a_bad_save_trace_target_is_refused_before_the_run(capsys, tmp_path, target, message):
    code, out, err = cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--save-trace",
                         str(target(tmp_path)), "--no-db")
    assert code == 2 and out == "" and message in err and err.startswith("--save-trace: error:")
    assert [p.name for p in tmp_path.iterdir()] == []


def _saved(tmp_path, capsys) -> Path:
    saved = tmp_path / "run.npz"
    assert cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--save-trace", str(saved),
               "--no-db")[0] == 0
    capsys.readouterr()
    return saved


def _rewrite(src: Path, dst: Path, header=None, members=None) -> None:
    """A copy of a trace file with meta.json edited and members replaced or dropped."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        meta = json.loads(zin.read("meta.json"))
        if header:
            header(meta)
        for info in zin.infolist():
            if info.filename == "meta.json":
                zout.writestr("meta.json", json.dumps(meta))
            elif members and info.filename in members:
                if members[info.filename] is not None:
                    zout.writestr(info.filename, members[info.filename])
            else:
                zout.writestr(info, zin.read(info))


def _npy(array) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return buf.getvalue()


@pytest.mark.parametrize("case,message", [
    ("plan missing", "plan: expected"),
    ("kind past the chunks", "kind 0: chunks"),
    ("arith not counts", "kind 0: 'arith' must map operations to counts"),
    ("member missing", "the step plan has no plan_kinds.npy"),
    ("unknown kind", "the step plan names kind 99"),
    ("negative step", "a step number of the plan is out of range"),
    ("short column", "plan_phase.npy has shape"),
    ("float column", "plan_steps.npy holds float64"),
])
def test_a_bad_step_plan_is_refused_with_its_place(capsys, tmp_path, case, message):
    saved = _saved(tmp_path, capsys)
    bad = tmp_path / "bad.npz"
    meta = json.loads(zipfile.ZipFile(saved).read("meta.json"))
    n = meta["plan"]["steps"]
    kinds = np.load(zipfile.ZipFile(saved).open("plan_kinds.npy"))
    edits = {
        "plan missing": dict(header=lambda m: m.pop("plan")),
        "kind past the chunks": dict(header=lambda m: m["plan"]["kinds"][0].update(
            chunks=len(m["chunks"]) + 5)),
        "arith not counts": dict(header=lambda m: m["plan"]["kinds"][0].update(
            arith={"fma.f32": -1})),
        "member missing": dict(members={"plan_kinds.npy": None}),
        "unknown kind": dict(members={"plan_kinds.npy": _npy(np.where(
            np.arange(n) == n - 1, 99, kinds))}),
        "negative step": dict(members={"plan_steps.npy": _npy(-np.ones(n, np.int64))}),
        "short column": dict(members={"plan_phase.npy": _npy(np.zeros(n - 1, np.int64))}),
        "float column": dict(members={"plan_steps.npy": _npy(np.zeros(n))}),
    }[case]
    _rewrite(saved, bad, **edits)
    code, out, err = cli(capsys, "simulate", str(bad))
    assert code == 2 and "Traceback" not in err and message in err, err
    assert err.startswith(f"{bad}: error:")


def test_a_trace_without_a_plan_is_still_written_as_version_1(tmp_path):
    from simulator import TraceBuilder
    b = TraceBuilder()
    a = b.buffer("A", 4)
    b.read(a)
    path = tmp_path / "t.npz"
    b.build().save(path)
    assert json.loads(zipfile.ZipFile(path).read("meta.json"))["version"] == 1
    assert load(path).plan is None
    with pytest.raises(SimError):
        _rewrite(path, tmp_path / "v3.npz", header=lambda m: m.update(version=3))
        load(tmp_path / "v3.npz")


def test_the_main_jobs_plan_is_small_where_its_accesses_are_not(capsys, tmp_path):
    """docs/trace-format.md: more than 20 GB written access by access, less than 20 MB as a
    plan."""
    doc = (ROOT / "docs/trace-format.md").read_text()
    assert "would take more than 20 GB, its plan less than 20 MB" in doc
    saved = tmp_path / "main.npz"
    assert cli(capsys, "run", str(ROOT / "programs/mlp_backprop.sir"), "--save-trace",
               str(saved), "--no-db")[0] == 0
    assert saved.stat().st_size < 20e6
    trace = load(saved)
    first = trace.chunk(0)
    per_access = sum(col.itemsize for col in first.columns().values())
    with zipfile.ZipFile(saved) as zf:
        header = json.loads(zf.read("meta.json"))
    n = {k: sum(c["n"] for c in header["chunks"][kind["first"]:kind["first"] + kind["chunks"]])
         for k, kind in enumerate(header["plan"]["kinds"])}
    accesses = sum(n[int(k)] for k in trace.plan.kinds)
    assert accesses == 1_246_887_693                      # the README's whole run
    assert accesses * per_access > 20e9


def test_a_saved_plan_reads_back_as_the_run_it_was_chunk_for_chunk(tmp_path):
    """Every chunk of the loaded file (the plan expanded) equals the run's own: its step and
    every column."""
    from simulator.trace import save
    from sutro_sim.run import run
    r = run(str(ROOT / "programs/mlp_backprop.sir"), {"hidden": "16", "epochs": "2"},
            keep_trace=True)
    save(r.trace, tmp_path / "t.npz")
    back = load(tmp_path / "t.npz")
    assert back.n_chunks == r.trace.n_chunks > 100
    assert np.array_equal(back.plan.steps, r.trace.plan.steps)
    assert np.array_equal(back.plan.phase, r.trace.plan.phase)
    for i in range(back.n_chunks):
        a, b = back.chunk(i), r.trace.chunk(i)
        assert a.step == b.step, i
        for name, col in b.columns().items():
            assert np.array_equal(a.columns()[name], col), (i, name)
