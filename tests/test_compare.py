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