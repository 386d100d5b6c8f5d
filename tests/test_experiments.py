"""Experiments are data: the results database every run records into, `sweep` (locally, on a
Dask cluster, resumed after an interrupt) and the experiment log (`log`, `show`, `diff`,
`plot`, `note`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sutro_sim.cli import main
from sutro_sim.experiments.db import git_state, point_of
from sutro_sim.experiments.sweep import Axes, seeds_of, set_axes, split_values

ROOT = Path(__file__).resolve().parent.parent
XOR = str(ROOT / "programs/xor.sir")
PARITY3 = str(ROOT / "programs/parity3.sir")
MAIN = str(ROOT / "programs/mlp_backprop.sir")


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(db: Path) -> list[dict]:
    """The runs recorded so far (none while the file is being made: it exists a moment
    before its tables do)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        conn.close()


def figures(result: dict) -> dict:
    """A run --json object without what differs between two runs of the same inputs."""
    return {k: v for k, v in result.items()
            if k not in ("wall_s", "profile_s", "recorded", "schema_version")}


# ----------------------------------------------------------------------------- the database

def test_a_run_records_what_reproduces_it_and_every_metric(capsys, tmp_path):
    db = tmp_path / "r.db"
    code, out, err = cli(capsys, "run", XOR, "--passes", "layer-local-update{approximate=true}",
                         "--set", "lr=0.2", "--seed", "7", "--hierarchy", "cpu-like", "--json",
                         "--db", str(db), "--note", "try a larger step")
    assert code == 0, err
    printed = json.loads(out)
    [r] = rows(db)
    assert printed["recorded"] == {"db": str(db), "id": r["id"]}
    assert f"recorded as run {r['id']} in {db} (sutro-sim log --db {db} show {r['id']})" in err
    assert r["command"] == "run" and r["status"] == "ok" and r["note"] == "try a larger step"
    assert r["program"] == XOR and r["program_text"] == Path(XOR).read_text()
    assert json.loads(r["overrides"]) == {"lr": "0.2", "seed": "7"}   # --seed sets config seed
    assert json.loads(r["config"])["lr"] == 0.2 and r["seed"] == 7
    assert r["passes"] == "layer-local-update{approximate=true}"
    spec = json.loads(r["hierarchy_spec"])
    assert r["hierarchy"] == "cpu-like" and [lv["name"] for lv in spec["levels"]] == \
        ["L1", "L2", "L3", "DRAM"] and spec["levels"][0]["capacity_bytes"] == 32 * 1024
    assert r["energy_preset"] == "dally-2020" and r["host"] and r["tool_version"]
    assert figures(json.loads(r["result"])) == figures(printed)      # every metric
    assert (r["accuracy_test"], r["energy_fj"], r["ard"], r["steps"]) == (
        printed["accuracy"]["test"], printed["energy_fj"]["total"], printed["reuse"]["ard"],
        printed["steps"])
    assert r["exact"] == 1


def test_the_point_is_the_inputs_that_decide_the_result():
    args = ("text", {"lr": "0.1"}, None, "fuse", {"levels": []}, "dally-2020", None, {})
    same = point_of(*args)
    assert point_of(*args) == same
    for i, other in enumerate(["text2", {"lr": "0.2"}, 1, "", {"levels": [1]}, "x", "2",
                               {"evaluate": False}]):
        changed = list(args)
        changed[i] = other
        assert point_of(*changed) != same, i


def test_where_runs_are_recorded(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUTRO_SIM_DB")
    assert cli(capsys, "run", XOR, "--trace-steps", "2")[0] == 0
    assert len(rows(tmp_path / "sutro-results.db")) == 1             # the working directory
    monkeypatch.setenv("SUTRO_SIM_DB", str(tmp_path / "env.db"))
    assert cli(capsys, "run", XOR, "--trace-steps", "2")[0] == 0
    assert len(rows(tmp_path / "env.db")) == 1
    assert cli(capsys, "run", XOR, "--trace-steps", "2", "--db", str(tmp_path / "opt.db"))[0] == 0
    assert len(rows(tmp_path / "opt.db")) == 1 and len(rows(tmp_path / "env.db")) == 1
    assert cli(capsys, "run", XOR, "--trace-steps", "2", "--no-db")[0] == 0
    assert [len(rows(tmp_path / f)) for f in ("sutro-results.db", "env.db", "opt.db")] == [1] * 3


def test_a_default_database_that_cannot_be_written_warns_and_the_run_goes_on(capsys, tmp_path,
                                                                              monkeypatch):
    (tmp_path / "sutro-results.db").mkdir()         # in the way
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUTRO_SIM_DB")
    code, out, err = cli(capsys, "run", XOR, "--trace-steps", "2")
    assert code == 0 and "accuracy" in out
    assert "warning: not recording this run" in err and "is not a regular file" in err


@pytest.mark.parametrize("make,message", [
    (lambda p: p.mkdir(), "exists and is not a regular file"),
    (lambda p: p.write_text("not a database\n" * 100), "cannot use"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE other (x)").connection.commit(),
     "not a sutro-sim results database"),
    (lambda p: sqlite3.connect(p).executescript("CREATE TABLE runs (x); "
                                                "PRAGMA user_version = 99;").close(),
     "written by a newer sutro-sim"),
    # another program's `runs` table: refused, and the file left as it was
    (lambda p: sqlite3.connect(p).executescript("CREATE TABLE runs (id, point);").close(),
     "not a sutro-sim results database (it is left as it is)"),
    (lambda p: None, "does not exist"),       # its folder does not exist
])
def test_a_named_database_that_cannot_be_used_is_refused_before_the_run(capsys, tmp_path,
                                                                         make, message):
    path = tmp_path / "db"
    if message == "does not exist":
        path = tmp_path / "missing" / "r.db"
    else:
        make(path)
    before = path.read_bytes() if path.is_file() else None
    code, out, err = cli(capsys, "run", XOR, "--db", str(path))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("--db: error: ") and message in err
    if before is not None:
        assert path.read_bytes() == before                # nothing written into it


def test_a_diverged_run_is_recorded_as_such(capsys, tmp_path):
    db = tmp_path / "r.db"
    code, _, err = cli(capsys, "run", str(ROOT / "programs/mlp4_backprop.sir"), "--set",
                       "lr=50", "--db", str(db))
    assert code == 3
    [r] = rows(db)
    assert r["status"] == "diverged" and r["energy_fj"] is None
    assert json.loads(r["result"])["diverged"]["step"] >= 0
    assert err.rstrip().endswith(f"recorded as run {r['id']} in {db} (sutro-sim log --db "
                                 f"{db} show {r['id']})")


def test_git_state_names_the_commit_and_whether_the_program_changed(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    prog = tmp_path / "p.sir"
    prog.write_text(Path(XOR).read_text())
    subprocess.run([*git, "add", "p.sir"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_state(str(prog)) == (head, 0)
    prog.write_text(Path(XOR).read_text() + "\n")
    assert git_state(str(prog)) == (head, 1)
    outside = tmp_path.parent / "outside-repo.sir"        # pytest's folder: no repository
    assert git_state(str(outside)) == (None, None)


# ----------------------------------------------------------------------------- sweep

def test_values_split_on_commas_outside_brackets_and_quotes():
    assert split_values("0.01, 0.05,0.1", "w") == ["0.01", "0.05", "0.1"]
    assert split_values('[1, 2],[3],"a,b"', "w") == ["[1, 2]", "[3]", '"a,b"']
    assert set_axes([["lr=0.1,0.2"], ["n=3"]]) == [("lr", ["0.1", "0.2"]), ("n", ["3"])]
    assert seeds_of("3") == [0, 1, 2] and seeds_of("4,9") == [4, 9] and seeds_of(None) == [None]


def test_a_sample_is_a_fixed_subset_of_the_cross_product():
    axes = Axes([XOR, PARITY3], [("lr", ["0.1", "0.2", "0.3"])], [0, 1], [""], ["a", "b"], ["e"])
    everything = axes.points()
    assert axes.size == len(everything) == 24 and len(set(everything)) == 24
    sample = axes.points(5, sample_seed=3)
    assert len(sample) == 5 and set(sample) <= set(everything)
    assert axes.points(5, sample_seed=3) == sample and axes.points(5, 4) != sample
    assert axes.points(100) == everything


SWEEP = [XOR, PARITY3, "--set", "lr=0.05,0.1,0.5", "--seeds", "3", "--hierarchy",
         "sutro-tiers,cpu-like"]


def test_a_sweep_runs_every_point_once_and_resumes(capsys, tmp_path):
    """The issue's sweep: 2 programs x 3 learning rates x 3 seeds x 2 hierarchies, on both
    local cores; run again, it runs nothing and reads every point back."""
    db = tmp_path / "s.db"
    code, out, err = cli(capsys, "sweep", *SWEEP, "--db", str(db), "--json", "-j", "2")
    assert code == 0, err
    first = json.loads(out)
    assert len(first["points"]) == 36 and {p["status"] for p in first["points"]} == {"new"}
    recorded = rows(db)
    assert len(recorded) == 36 and {r["command"] for r in recorded} == {"sweep"}
    assert len({r["point"] for r in recorded}) == 36
    # each point is what `run` gives for its inputs
    p = next(p for p in first["points"] if p["program"] == PARITY3 and p["set"] == {"lr": "0.5"}
             and p["seed"] == 2 and p["hierarchy"] == "cpu-like")
    code, out, _ = cli(capsys, "run", PARITY3, "--set", "lr=0.5", "--seed", "2", "--hierarchy",
                       "cpu-like", "--json", "--no-db")
    alone = json.loads(out)
    assert (p["accuracy_test"], p["energy_fj"], p["ard"]) == (alone["accuracy"]["test"],
                                                      alone["energy_fj"]["total"],
                                                      alone["reuse"]["ard"])
    code, out, err = cli(capsys, "sweep", *SWEEP, "--db", str(db))
    assert code == 0 and "36 points: 0 run now, 36 already recorded" in out
    assert len(rows(db)) == 36
    # a grown sweep runs only its new points
    code, out, err = cli(capsys, "sweep", XOR, "--set", "lr=0.05,0.1,0.5,1.0", "--seeds", "3",
                         "--hierarchy", "sutro-tiers,cpu-like", "--db", str(db), "-j", "1")
    assert code == 0 and "24 points: 6 run now, 18 already recorded" in out
    assert len(rows(db)) == 42


def test_an_interrupted_sweep_keeps_its_finished_points_and_resumes(tmp_path):
    db = tmp_path / "s.db"
    argv = [sys.executable, "-m", "sutro_sim", "sweep", *SWEEP, "--set", "epochs=200,400",
            "--db", str(db), "-j", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists() and len(rows(db)) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "the same command resumes" in err
    kept = rows(db)
    assert 3 <= len(kept) < 72
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert f"72 points: {72 - len(kept)} run now, {len(kept)} already recorded" in out
    after = rows(db)
    assert len(after) == 72 and after[:len(kept)] == kept       # nothing finished ran again
    assert len({r["point"] for r in after}) == 72


def test_the_same_sweep_on_a_local_dask_cluster_gives_identical_results(capsys, tmp_path):
    pytest.importorskip("distributed", reason="the cluster extra: pip install 'sutro-sim[test]'")
    local, dask = tmp_path / "local.db", tmp_path / "dask.db"
    assert cli(capsys, "sweep", *SWEEP, "--db", str(local), "-j", "2")[0] == 0
    code, out, err = cli(capsys, "sweep", *SWEEP, "--db", str(dask), "--engine", "dask",
                         "-j", "2")
    assert code == 0, err
    by_point = {r["point"]: r for r in rows(local)}
    remote = rows(dask)
    assert len(remote) == 36 and {r["point"] for r in remote} == set(by_point)
    for r in remote:
        mine = by_point[r["point"]]
        assert figures(json.loads(r["result"])) == figures(json.loads(mine["result"]))


def test_a_dask_scheduler_that_cannot_be_reached_is_an_error(capsys, tmp_path):
    pytest.importorskip("distributed")
    code, out, err = cli(capsys, "sweep", XOR, "--engine", "dask", "--address",
                         "tcp://127.0.0.1:9", "--db", str(tmp_path / "d.db"))
    assert code == 2 and "--address: error: cannot reach the Dask scheduler" in err
    assert not (tmp_path / "d.db").exists()             # nothing recorded, no file made


@pytest.mark.parametrize("argv,message", [
    (["--set", "=0.1"], "--set: error: --set =0.1: expected NAME=VALUE"),
    (["--set", "lr=0.1", "--set", "lr=0.2"], "--set lr is given twice"),
    (["--set", "lr=0.1,,0.2"], "an empty value"),
    (["--seeds", "0"], "--seeds 0: from 1 to 1,000,000 seeds"),
    (["--seeds", "1,99999999999999999999"], "a seed is an integer from 0 to 2^63 - 1"),
    (["--seeds", "4294967296"], "from 1 to 1,000,000 seeds"),
    (["--seeds", "a"], "--seeds a: a count N"),
    (["--jobs", "0"], "--jobs 0: at least 1"),
    (["--sample", "0"], "--sample 0: at least 1 point"),
    (["--set", "lr=0.1,x"], "error"),                  # a value the language refuses
    (["--hierarchy", "sutro-tiers,nope"], "nope"),
    (["--energy", "nope"], "nope"),
    (["--address", "tcp://x:1"], "--address is for a cluster engine"),
])
def test_sweep_mistakes_exit_2_before_any_point_runs(capsys, tmp_path, argv, message):
    db = tmp_path / "s.db"
    code, out, err = cli(capsys, "sweep", XOR, *argv, "--db", str(db))
    assert code == 2 and "Traceback" not in err and message in err
    assert not db.exists() or rows(db) == []


def test_sweep_writes_its_plots(capsys, tmp_path):
    code, out, err = cli(capsys, "sweep", XOR, "--set", "lr=0.05,0.5", "--seeds", "2",
                         "--hierarchy", "sutro-tiers,cpu-like", "--plot", str(tmp_path / "p"),
                         "--no-db", "-j", "1")
    assert code == 0, err
    names = sorted(os.listdir(tmp_path / "p"))
    assert names == ["sweep_energy_accuracy.png", "sweep_energy_vs_lr.png",
                     "sweep_test_vs_lr.png"]
    assert "over 2 seeds" in out


# ----------------------------------------------------------------------------- the log

def test_log_diff_of_the_main_job_with_and_without_fuse(capsys, tmp_path):
    """The issue's check: the program, pass and metric changes between two runs."""
    db = tmp_path / "r.db"
    changed = tmp_path / "mlp_backprop.sir"
    changed.write_text(Path(MAIN).read_text().replace("lr = 0.05", "lr = 0.04"))
    assert cli(capsys, "run", MAIN, "--db", str(db), "--note", "baseline")[0] == 0
    assert cli(capsys, "run", str(changed), "--passes", "fuse", "--db", str(db), "--note",
               "fuse, smaller step")[0] == 0
    code, out, err = cli(capsys, "log", "--db", str(db), "diff", "1", "2", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert "-config n_bits = 20, k = 3, hidden = 1000, lr = 0.05, wd = 0.01, epochs = 14, " \
           "seed = 42" in d["program"]
    assert any(line.startswith("+config") and "lr = 0.04" in line for line in d["program"])
    assert d["changed"]["passes"] == ["", "fuse"] and d["config"]["lr"] == [0.05, 0.04]
    a, b = (json.loads(r["result"]) for r in rows(db))
    e = d["metrics"]["energy_fj.total"]
    assert (e["a"], e["b"]) == (a["energy_fj"]["total"], b["energy_fj"]["total"])
    assert e["change"] == pytest.approx((e["b"] - e["a"]) / e["a"])
    assert d["metrics"]["traced.kernels_per_step"]["b"] < d["metrics"]["traced.kernels_per_step"]["a"]
    code, out, _ = cli(capsys, "log", "--db", str(db), "diff", "1", "2")
    assert "passes     none -> fuse" in out and "  lr = 0.05 -> 0.04" in out
    assert "energy_fj.total" in out and "note 2: fuse, smaller step" in out


def test_log_lists_shows_notes_and_plots(capsys, tmp_path):
    db = tmp_path / "r.db"
    for lr in ("0.05", "0.5"):
        assert cli(capsys, "run", XOR, "--set", f"lr={lr}", "--db", str(db))[0] == 0
    code, out, _ = cli(capsys, "log", "--db", str(db))
    assert code == 0 and out.count("xor.sir") == 2 and "lr=0.5" in out
    assert cli(capsys, "log", "--db", str(db), "note", "2", "larger step")[0] == 0
    code, out, _ = cli(capsys, "log", "--db", str(db), "--json", "-n", "1")
    [last] = json.loads(out)["runs"]
    assert last["id"] == 2 and last["note"] == "larger step"
    code, out, _ = cli(capsys, "log", "--db", str(db), "show", "2", "--program-text")
    assert "note            larger step" in out and Path(XOR).read_text().strip() in out
    assert "energy_fj.total" in out
    png = tmp_path / "energy.png"
    code, out, _ = cli(capsys, "log", "--db", str(db), "plot", "levels.L1.hit_rate", "--out",
                       str(png))
    assert code == 0 and png.stat().st_size > 0 and "(2 runs)" in out
    for argv, message in ((["show", "9"], "no run 9"), (["plot", "nope"], "is in no recorded run"),
                          (["plot", "traced.all_steps"], "is not a number in the runs (it is bool)"),
                          (["show", "99999999999999999999"], "ids are numbers from 1"),
                          (["show", "0"], "ids are numbers from 1"),
                          (["plot", "energy_fj", "--out", str(tmp_path / "x.txt")], ".png"),
                          (["diff", "1", "9"], "no run 9")):
        try:
            code, out, err = cli(capsys, "log", "--db", str(db), *argv)
        except SystemExit as e:             # argparse's own refusal: exit 2 too
            code, (out, err) = e.code, capsys.readouterr()
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
    code, out, err = cli(capsys, "log", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "no results database at" in err
    assert not (tmp_path / "none.db").exists()


def test_compare_records_its_rows_as_a_group(capsys, tmp_path):
    db = tmp_path / "r.db"
    code, out, err = cli(capsys, "compare", XOR, "-p", "fuse", "--db", str(db), "--json")
    assert code == 0
    d = json.loads(out)
    recorded = rows(db)
    assert [r["id"] for r in recorded] == d["recorded"]["ids"] and len(recorded) == 2
    assert {r["group_id"] for r in recorded} == {d["recorded"]["group"]}
    assert [r["passes"] for r in recorded] == ["", "fuse"]
    for r, row in zip(recorded, d["rows"]):
        assert figures(json.loads(r["result"])) == figures(row["run"])
    code, out, _ = cli(capsys, "log", "--db", str(db), "--group", str(d["recorded"]["group"]))
    assert out.count("compare") == 2


# ----------------------------------------------------------------------------- what a hostile
# campaign found (each a traceback, a lost record or a silently wrong figure before)

def test_a_point_runs_the_text_it_records_whatever_the_file_holds_by_then(tmp_path):
    """An edit of the program during a sweep (or a worker reading another file by that path)
    must not put one program's figures under another's text."""
    from sutro_sim.experiments.engines import run_job
    from sutro_sim.experiments.sweep import Axes, check, job_of
    prog = tmp_path / "p.sir"
    prog.write_text(Path(XOR).read_text())
    axes = Axes([str(prog)], [], [None], [""], ["sutro-tiers"], ["dally-2020"])
    [point] = axes.points()
    job = job_of(point, "2", {"evaluate": True, "brute_force": False, "target_accuracy": None,
                              "cost_models": False}, *check(axes, [point]))
    prog.write_text(Path(XOR).read_text().replace("hidden = 8", "hidden = 2"))
    out = run_job(job)
    assert out["result"]["config"]["hidden"] == 8


def test_the_tool_version_changes_with_the_code():
    from sutro_sim.experiments.db import tool_version
    version = tool_version()
    assert re.fullmatch(r".+\+src\.[0-9a-f]{12}", version)


def test_a_refused_command_records_nothing_and_makes_no_file(capsys, tmp_path):
    db = tmp_path / "r.db"
    for argv in (["run", str(tmp_path / "missing.sir")], ["run", XOR, "--hierarchy", "nope"],
                 ["sweep", XOR, "--set", "nosuch=1,2"], ["sweep", str(tmp_path / "x.sir")],
                 ["compare", XOR, "-p", "nosuch"]):
        code, _, err = cli(capsys, *argv, "--db", str(db))
        assert code == 2 and "Traceback" not in err, argv
        assert not db.exists(), argv


def test_log_reads_a_database_it_cannot_write_and_never_changes_it(capsys, tmp_path):
    db = tmp_path / "r.db"
    assert cli(capsys, "run", XOR, "--trace-steps", "2", "--db", str(db))[0] == 0
    before = db.read_bytes()
    db.chmod(0o444)
    try:
        for argv in (["log"], ["log", "show", "1"], ["log", "diff", "1", "1"]):
            code, out, err = cli(capsys, argv[0], "--db", str(db), *argv[1:])
            assert code == 0, (argv, err)
        code, out, err = cli(capsys, "log", "show", "1", "--db", str(db))   # --db after it
        assert code == 0 and "run 1, recorded" in out
    finally:
        db.chmod(0o644)
    assert db.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, out, err = cli(capsys, "log", "--db", str(empty))
    assert code == 2 and "holds no runs" in err and empty.read_bytes() == b""


def test_a_damaged_or_locked_database_is_an_error_not_a_traceback(capsys, tmp_path):
    db = tmp_path / "r.db"
    assert cli(capsys, "run", XOR, "--trace-steps", "2", "--db", str(db))[0] == 0
    conn = sqlite3.connect(db)
    conn.execute("UPDATE runs SET result = '{bad'")
    conn.commit()
    conn.close()
    code, out, err = cli(capsys, "log", "show", "1", "--db", str(db))
    assert code == 2 and "run 1: its `result` is not the JSON sutro-sim wrote" in err
    code, out, err = cli(capsys, "log", "--db", str(db))
    assert code == 2 and "Traceback" not in err
    from sutro_sim.experiments import db as dbmod
    locked = tmp_path / "locked.db"
    assert cli(capsys, "run", XOR, "--trace-steps", "2", "--db", str(locked))[0] == 0
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    old, dbmod.LOCK_WAIT_S = dbmod.LOCK_WAIT_S, 0.2
    try:
        code, out, err = cli(capsys, "run", XOR, "--trace-steps", "2", "--db", str(locked))
    finally:
        dbmod.LOCK_WAIT_S = old
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and "Traceback" not in err and "locked" in err


def test_memory_and_uri_names_are_files(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "run", XOR, "--trace-steps", "2", "--db", ":memory:")[0] == 0
    assert len(rows(tmp_path / ":memory:")) == 1
    code, out, _ = cli(capsys, "log", "--db", ":memory:")
    assert code == 0 and "xor.sir" in out


def test_save_trace_refuses_the_database_and_the_program(capsys, tmp_path):
    db = tmp_path / "r.db"
    prog = tmp_path / "p.sir"
    prog.write_text(Path(XOR).read_text())
    code, _, err = cli(capsys, "run", str(prog), "--db", str(db), "--save-trace", str(db))
    assert code == 2 and "is the results database" in err and not db.exists()
    code, _, err = cli(capsys, "run", str(prog), "--no-db", "--save-trace", str(prog))
    assert code == 2 and "is the program" in err and prog.read_text() == Path(XOR).read_text()


def test_a_huge_sweep_is_refused_or_sampled_without_building_it(capsys, tmp_path):
    values = ",".join(str(v) for v in range(1, 1101))
    code, _, err = cli(capsys, "sweep", XOR, "--set", f"hidden={values}", "--set",
                       f"epochs={values}", "--no-db")
    assert code == 2 and "the sweep has 1,210,000 points" in err
    code, out, err = cli(capsys, "sweep", XOR, "--set", f"hidden={values}", "--set",
                         f"epochs={values}", "--sample", "2", "--no-db", "--trace-steps", "1",
                         "--json", "-j", "1")
    assert code == 0, err
    points = json.loads(out)["points"]
    assert len(points) == 2 and all(p["status"] == "new" for p in points)
    got = {(p["set"]["hidden"], p["set"]["epochs"]) for p in points}
    axes = Axes([XOR], [("hidden", values.split(",")), ("epochs", values.split(","))], [None],
                [""], ["sutro-tiers"], ["dally-2020"])
    assert got == {tuple(v for _, v in p.sets) for p in axes.points(2, 0)}   # the same draw


def test_the_sampled_points_are_those_of_the_built_product():
    axes = Axes([XOR, PARITY3], [("lr", ["0.1", "0.2", "0.3"]), ("n", ["1", "2"])], [0, 1],
                ["", "fuse"], ["a", "b"], ["e"])
    import itertools
    product = [(p, (("lr", a), ("n", b)), s, pipe, h, e) for p, a, b, s, pipe, h, e in
               itertools.product(axes.programs, ["0.1", "0.2", "0.3"], ["1", "2"], [0, 1],
                                 ["", "fuse"], ["a", "b"], ["e"])]
    assert [(q.program, q.sets, q.seed, q.passes, q.hierarchy, q.energy_preset)
            for q in axes.points()] == product
    import random
    keep = sorted(random.Random(5).sample(range(len(product)), 7))
    assert [(q.program, q.sets, q.seed, q.passes, q.hierarchy, q.energy_preset)
            for q in axes.points(7, 5)] == [product[i] for i in keep]


def test_compare_energy_bars_stack_every_rows_levels(tmp_path):
    import matplotlib.pyplot as plt
    from simulator import plots
    from sutro_sim.compare import compare
    c = compare(PARITY3, [""], None, ["sutro-tiers", "cpu-like"], trace_steps="2")
    results = [(label, row.result.sim) for label, row in zip(c.labels(), c.rows)]
    fig, ax = plt.subplots()
    plots._energy_bars(results, ax)
    heights = [0.0, 0.0]
    for patch in ax.patches:
        heights[round(patch.get_x() + patch.get_width() / 2)] += patch.get_height()
    totals = [r.energy.total for _, r in results]
    scale = totals[0] / [t for t in ax.texts][0].get_position()[1]
    assert [h * scale for h in heights] == pytest.approx(totals, rel=1e-9)
    plt.close(fig)


def test_the_experiments_page_gives_the_limits_the_code_uses():
    from sutro_sim.experiments import db, engines, sweep
    page = " ".join((ROOT / "docs/experiments.md").read_text().split())
    assert f"held by another writer for more than {db.LOCK_WAIT_S} s" in page
    assert f"A product of more than {sweep.MAX_POINTS:,} points needs `--sample`" in page
    assert f"does not answer as Dask within {engines.CONNECT_S} s" in page
    from sutro_sim.schema import SCHEMA_VERSION
    assert f"Every `--json` object starts with `schema_version` (now {SCHEMA_VERSION})" in page


def test_a_record_that_fails_keeps_the_report(capsys, tmp_path, monkeypatch):
    """A write that fails after the run (a lock taken meanwhile, a full disk): the figures
    are printed, then the reason, exit 2."""
    from simulator.errors import SimError
    from sutro_sim.experiments import db as dbmod

    def refuse(self, *args):
        raise SimError("cannot record the run: database is locked", self.path)
    monkeypatch.setattr(dbmod.Database, "add", refuse)
    monkeypatch.setattr(dbmod.Database, "add_group", refuse)
    for argv, shown in ((["run", XOR], "accuracy   train"), (["compare", XOR, "-p", "fuse"],
                                                              "pipeline")):
        code, out, err = cli(capsys, *argv, "--trace-steps", "2", "--db",
                             str(tmp_path / "r.db"))
        assert code == 2 and shown in out, (argv, err)
        assert err.rstrip().endswith("database is locked (the run is not recorded)")
        assert "Traceback" not in err
