"""`sutro-sim compare`: one row per pipeline on the same traced steps, the unscheduled program
first, approximate rows flagged, --json and --plot, mistakes exit 2 before any run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sutro_sim.cli import main
from sutro_sim.compare import pipelines_of

ROOT = Path(__file__).resolve().parent.parent
XOR = str(ROOT / "programs/xor.sir")


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_pipelines_put_the_unscheduled_program_first():
    assert pipelines_of(["fuse"]) == ["", "fuse"]
    assert pipelines_of(["none", "fuse", "none"]) == ["", "fuse"]
    assert pipelines_of([]) == [""]


def test_compare_json_rows(capsys):
    code, out, _ = cli(capsys, "compare", XOR, "-p", "fuse", "-p",
                       "layer-local-update{approximate=true}", "--json")
    assert code == 0
    d = json.loads(out)
    rows = d["rows"]
    assert [r["pipeline"] for r in rows] == ["none", "fuse",
                                             "layer-local-update{approximate=true}"]
    assert [r["exact"] for r in rows] == [True, True, False]
    assert len({r["run"]["traced"]["steps"] for r in rows}) == 1     # the same steps
    none, fused = rows[0], rows[1]
    assert fused["accuracy"] == none["accuracy"]
    assert fused["kernels"] < none["kernels"]
    assert fused["writes"] < none["writes"]
    assert fused["change"]["energy"] == pytest.approx(
        fused["energy_fj"]["total"] / none["energy_fj"]["total"] - 1)
    assert none["change"]["energy"] == 0.0
    assert set(none["hit_rate"]) == {"registers", "L1", "L2", "HBM"}
    assert none["energy_fj"]["memory"] + none["energy_fj"]["arithmetic"] == \
        pytest.approx(none["energy_fj"]["total"])


def test_compare_table_and_plots(capsys, tmp_path):
    code, out, _ = cli(capsys, "compare", XOR, "-p", "fuse", "-p",
                       "layer-local-update{approximate=true}", "--plot", str(tmp_path),
                       "--cost-models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"program    {XOR}"
    head = next(line for line in lines if line.startswith("pipeline"))
    for column in ("exact", "kernels", "ops/step", "peak live", "ARD", "L1 hit", "energy",
                   "vs first", "memtracker ARD"):
        assert column in head
    assert "approximate (changes the arithmetic; compare its accuracy): " \
           "layer-local-update{approximate=true}" in out
    for name in ("compare_reuse_cdf.png", "compare_energy.png", "compare_tradeoff.png"):
        assert (tmp_path / name).stat().st_size > 5000


@pytest.mark.parametrize("argv, message", [
    (["-p", "fusion"], "unknown pass 'fusion'"),
    (["-p", "fuse{max_ops=-1}"], "max_ops must be a positive integer"),
    (["-p", "fuse", "--trace-steps", "every:0"], "--trace-steps every:0"),

    (["-p", "recompute{values=nope}"], "'nope' is not a forward value"),
    (["-p", "fuse{bogus=1}"], "fuse: unknown option 'bogus' (options: max_ops, updates, anchors, "
                              "hoist)"),
])
def test_compare_mistakes_exit_2(capsys, argv, message):
    code, out, err = cli(capsys, "compare", XOR, *argv)
    assert code == 2 and message in err and out == "" and "Traceback" not in err


def test_cost_models_hold_as_many_first_steps_as_fit(capsys):
    """The memtracker measure keeps every access it measures in memory: over a long run it
    takes the first steps that fit in 20,000,000 accesses, and says so, while the hierarchy
    accounts every step."""
    code, out, err = cli(capsys, "run", str(ROOT / "programs/mlp_backprop_always.sir"),
                         "--cost-models", "--json")
    d = json.loads(out)
    fit = 20_000_000 // d["traced"]["accesses_per_step"]
    assert code == 0 and 10 < fit < 7000 and d["traced"]["all_steps"]
    assert d["memtracker"]["steps"] == f"0-{fit - 1}"

def _figures(row) -> dict:
    """A row's run --json without what may differ between a shared and an own training (the
    times, the profile)."""
    d = dict(row.result.to_dict())
    for key in ("wall_s", "profile_s"):
        d.pop(key)
    return d


SHARED_CASES = [
    # an `if` per step (two control paths); every exact pipeline shares one training
    ("programs/mlp_backprop.sir", {"epochs": "2", "hidden": "64"}, "all",
     ["", "fuse", "cse", "layer-local-update", "recompute{policy=all}",
      "layer-local-update{approximate=true}"], 2),
    # run-time index reads: recompute repeats a gather, so its path has other sites and it
    # trains itself
    ("programs/char_attention.sir", {"length": "1200"}, "every:20",
     ["", "fuse", "recompute{policy=sqrt}", "fuse,cse"], 2),
]


@pytest.mark.parametrize("program,overrides,steps,pipelines,trainings", SHARED_CASES)
def test_a_shared_training_gives_every_figure_a_retraining_gives(program, overrides, steps,
                                                                  pipelines, trainings):
    """The oracle of training once: each row's report equals the one from its own training,
    on two hierarchies (which share every training too)."""
    from sutro_sim.compare import compare
    args = (str(ROOT / program), pipelines, overrides, ["sutro-tiers", "cpu-like"])
    shared = compare(*args, trace_steps=steps)
    own = compare(*args, trace_steps=steps, retrain=True)
    assert shared.trainings == trainings and own.trainings == len(own.rows) == 2 * len(pipelines)
    assert [r.trained_by for r in own.rows] == [None] * len(own.rows)
    for a, b in zip(shared.rows, own.rows):
        assert (a.program, a.pipeline, a.hierarchy) == (b.program, b.pipeline, b.hierarchy)
        assert _figures(a) == _figures(b), (a.pipeline, a.hierarchy)
    by = [r.trained_by for r in shared.rows]
    assert by[:2] == [None, 0]                  # the second hierarchy of the first pipeline


def test_compare_across_programs_and_hierarchies_says_what_it_shared(capsys):
    code, out, err = cli(capsys, "compare", XOR, str(ROOT / "programs/parity3.sir"), "-p",
                         "fuse", "--hierarchy", "sutro-tiers,cpu-like", "--trace-steps", "2")
    assert code == 0, err
    assert "programs   " in out and "xor fuse @cpu-like" in out and "parity3 none @sutro-tiers" in out
    assert "2 trainings for 8 rows" in out
    code, out, err = cli(capsys, "compare", XOR, "--hierarchy", "sutro-tiers,", "--no-db")
    assert code == 2 and "--hierarchy: error: expected comma-separated names" in err
    code, out, err = cli(capsys, "compare", XOR, "-p", "fuse", "--retrain", "--json", "--no-db")
    assert code == 0 and json.loads(out)["trainings"] == 2


def test_compare_plots_name_every_program_and_hierarchy(capsys, tmp_path):
    from simulator.plots import caption_of_many
    from sutro_sim.compare import compare
    c = compare([XOR, str(ROOT / "programs/parity3.sir")], [""], None,
                ["sutro-tiers", "cpu-like"], trace_steps="2")
    text = caption_of_many([row.result.sim for row in c.rows])
    assert text == ("xor.sir, parity3.sir  |  hierarchy sutro-tiers, cpu-like  |  energy "
                    "dally-2020  |  steps 0-1")


def test_a_diverging_row_is_named(capsys):
    code, out, err = cli(capsys, "compare", str(ROOT / "programs/mlp4_backprop.sir"), "-p",
                         "layer-local-update{approximate=true}", "--no-db")
    assert code == 3 and "Traceback" not in err
    assert "mlp4_backprop under layer-local-update{approximate=true}: training diverged" in err
