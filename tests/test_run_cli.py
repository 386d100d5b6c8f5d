"""`sutro-sim run`, `graph` and `passes` from the command line: the JSON contract, the traced
steps, and user mistakes as `file:line:col: error:` with exit status 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sutro_sim.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_follows_the_contract(capsys):
    code, out, _ = run_cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--json", "--no-eval")
    assert code == 0
    d = json.loads(out)
    for key in ("program", "config", "passes", "accuracy", "steps", "wall_s", "accesses",
                "reuse", "levels", "energy_fj", "buffers", "traced"):
        assert key in d
    assert d["accuracy"]["train"] == 1.0
    traced = d["traced"]
    assert traced["n_steps"] == d["steps"] and traced["all_steps"]
    a = d["accesses"]
    params = 8 * 2 + 8 + 8 + 1             # init writes every parameter once
    assert a["reads"] + a["writes"] == d["steps"] * traced["accesses_per_step"] + params
    assert {lv["name"] for lv in d["levels"]} == {"registers", "L1", "L2", "HBM"}
    assert d["energy_fj"]["total"] > 0 and d["energy_fj"]["arithmetic"] > 0
    assert traced["energy_per_step_fj"] == pytest.approx(d["energy_fj"]["total"] / d["steps"])


def test_run_default_accounts_every_step_and_a_sample_is_labelled(capsys):
    path = str(ROOT / "programs/mlp_backprop.sir")
    code, out, _ = run_cli(capsys, "run", path, "--set", "epochs=1", "n_train=20", "--profile")
    assert code == 0 and "NOT EXACT" not in out
    assert re.search(r"whole run  20 steps and 220 evaluated examples \(1 until checks of 20, "
                     r"the test of 200\), [\d,]+ accesses \(init included\), every one "
                     r"accounted: \d+ simulated access by access, \d+ counted by proof", out)
    assert "trace_generation" in out and "simulation" in out
    code, out, _ = run_cli(capsys, "run", path, "--set", "epochs=1", "n_train=20",
                           "--trace-steps", "1")
    assert "sampled    steps 0 (1 of 20; --trace-steps 1): the totals below are of these " \
           "steps only" in out
    assert "whole run, NOT EXACT, extrapolated from the sample:" in out


@pytest.mark.parametrize("argv,message", [
    (["--set", "nbits=3"], "error: --set nbits: the program has no config constant 'nbits'"),
    (["--set", "lr"], "--set: error: --set lr: expected NAME=VALUE"),
    (["--trace-steps", "every:0"], "--trace-steps: error: --trace-steps every:0: expected all"),
    (["--passes", "fusion"], "--passes: error: unknown pass 'fusion' (registered: cse, dce, fuse,"),
    (["--passes", "fuse{max_ops=0}"], "--passes: error: fuse: max_ops must be a positive integer"),
    (["--passes", "fuse,layer-local-update"], "run it before fuse"),
    (["--hierarchy", "nope"], "error:"),
])
def test_bad_options_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, "run", str(ROOT / "programs/xor.sir"), *argv)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_bad_program_exits_2_with_caret(tmp_path):
    bad = tmp_path / "bad.sir"
    bad.write_text((ROOT / "programs/xor.sir").read_text().replace("h = relu(h_pre)",
                                                                    "h = relu(h_pre, 2)"))
    proc = subprocess.run([sys.executable, "-m", "sutro_sim.cli", "run", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == f"{bad}:13:7: error: relu takes 1 operand, got 2"
    assert lines[1] == "      h = relu(h_pre, 2)" and lines[2] == "          ^"


@pytest.mark.snapshot
def test_graph_prints_the_golden_ir(capsys):
    code, out, _ = run_cli(capsys, "graph", str(ROOT / "programs/mlp_backprop.sir"), "-p",
                           "identity")
    assert code == 0 and out == (Path(__file__).parent / "golden/mlp_backprop.ir").read_text()


def test_graph_prints_canonical_ir_and_dot(capsys):
    from sutro_ir.compile import compile_file, compile_program

    path = str(ROOT / "programs/mlp_backprop.sir")
    for pipeline in ("identity", "layer-local-update,fuse"):
        code, out, _ = run_cli(capsys, "graph", path, "-p", pipeline)
        assert code == 0 and compile_program(out, "printed.sir").train.graph.nodes == \
            compile_file(path, {}, pipeline).train.graph.nodes
    code, out, _ = run_cli(capsys, "graph", str(ROOT / "programs/mlp_backprop.sir"), "--dot")
    # the early exit's if reads W2 (its block does) and writes it: W2 -> if -> W2@2 (the
    # merge); the forward pass's read of W2 must come before the if
    assert code == 0 and out.startswith("digraph step {")
    assert '"W2" -> "if:dout";' in out and '"if:dout" -> "W2@2";' in out
    assert '"%3" -> "if:dout" [style=dashed, label="anti"];' in out
    assert '"W2@2" -> "if:dout"' not in out
    always = str(ROOT / "programs/mlp_backprop_always.sir")
    code, out, _ = run_cli(capsys, "graph", always, "--dot")
    assert '"dh" -> "W2@1" [style=dashed, label="anti"];' in out
    code, out, _ = run_cli(capsys, "graph", always, "--dot",
                           "-p", "layer-local-update,fuse")
    assert code == 0 and out.count("subgraph cluster_") == 4
    assert 'subgraph cluster_3 { label="kernel 3"; style=rounded; "dW1"; "%14"; "%15"; ' \
        '"%16"; "W1@1"; }' in out


def test_passes_lists_every_pass_with_its_kind(capsys):
    code, out, _ = run_cli(capsys, "passes")
    assert code == 0 and out.startswith("identity (exact)")
    assert out.count("Preserves:") == out.count("Changes:") == 7
    assert "layer-local-update (exact unless its options say approximate)" in out
    assert "fuse (exact)" in out and "recompute (exact)" in out


def test_the_seeds_3_bit_setup_is_traced_whole_by_default():
    from sutro_sim.run import run

    r = run(str(ROOT / "programs/mlp_backprop.sir"),
            {"n_bits": "3", "hidden": "1000", "lr": "0.5"}, evaluate=False)
    learn = [s for s in range(r.train.steps) if r.train.paths[r.train.path_of(s)] == (1,)]
    assert (r.train.steps, len(learn), r.accesses_per_step) == (24, 6, 84_026)
    assert r.all_traced and r.train.train_accuracy == 1.0
    # every access of every step: init (the parameters' 5,001 elements) + 6 learning steps +
    # 18 early exits, checked against the count the docs give for each path
    assert r.sim.reuse.reads + r.sim.reuse.writes == 761_409 == 5_001 + 6 * 84_026 + 18 * 14_014
    doc = " ".join((ROOT / "docs/machine-model.md").read_text().split())
    assert ("24 steps, 6 that learn (84,026 accesses each) and 18 that exit early (14,014 each), "
            "761,409 accesses in all") in doc


def test_run_writes_plots(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--plot", str(tmp_path))
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert code == 0 and len(pngs) == 5 and "history.png" in pngs
    assert all(str(tmp_path / p) in out.splitlines()[-1] for p in pngs)
    assert all((tmp_path / p).stat().st_size > 1000 for p in pngs)


def test_the_main_jobs_two_paths_as_the_machine_model_page_gives_them():
    """docs/machine-model.md: a learning step 339,043 accesses, an early exit 48,031; 1,941 of
    the 7,000 steps learn."""
    from sutro_ir.compile import compile_file
    from sutro_ir.execute import Executor
    from sutro_ir.schedule import schedule
    from sutro_ir.tracegen import StepTrace

    program = compile_file(str(ROOT / "programs/mlp_backprop.sir"))
    sched = schedule(program.train.graph)
    st = StepTrace(sched, "x", "y", [p.name for p in program.params], ((1,), (0,)))
    assert (st.accesses(0), st.accesses(1)) == (339_043, 48_031)
    result = Executor(program, sched, schedule(program.eval.graph).kernels, 42).train()
    learn = sum(1 for s in range(result.steps) if result.paths[result.path_of(s)] == (1,))
    assert (learn, result.steps) == (1_941, 7_000)
    doc = " ".join((ROOT / "docs/machine-model.md").read_text().split())
    assert ("makes 339,043 accesses when it learns (its margin is under 1: the if's block runs) "
            "and 48,031 when it exits early") in doc and "of the main job's 7,000 steps, 1,941 " \
        "learn" in doc


def test_a_diverging_run_exits_3_naming_the_step_and_line(capsys):
    """The program is valid, its training failed: exit 3, not 2, and the step and line where the
    first NaN was made (found by replaying the run with every value checked)."""
    path = str(ROOT / "programs/mlp4_backprop.sir")
    code, out, err = run_cli(capsys, "run", path, "--set", "lr=100")
    assert code == 3 and out == "" and "Traceback" not in err
    assert err.startswith(f"{path}:22:11: error: training diverged at step 8: the value computed "
                          "here became NaN")
    assert "a3 = W3 @ h2 + b3" in err
    code, out, err = run_cli(capsys, "run", path, "--set", "lr=100", "--json")
    d = json.loads(out)
    assert code == 3 and d["diverged"]["step"] == 8 and d["diverged"]["became"] == "NaN"
    assert d["diverged"]["where"] == f"{path}:22:11"


def test_an_infinite_parameter_is_named(capsys):
    path = str(ROOT / "programs/parity3.sir")
    code, out, err = run_cli(capsys, "run", path, "--set", "lr=1e30")
    assert code == 3 and f"{path}:20:3: error: training diverged at step 2: 'W1' became " \
                         "infinite" in err


def test_a_deliberate_infinity_in_a_value_is_not_divergence(capsys, tmp_path):
    """-inf is a mask value (a causal mask before a softmax): only NaNs and infinite parameters
    stop a run."""
    text = (ROOT / "programs/xor.sir").read_text().replace(
        "  out = h @ w2 + b2", "  mask = log(h * 0.0)\n  out = h @ w2 + b2")
    assert "mask" in text
    (tmp_path / "m.sir").write_text(text)
    code, out, err = run_cli(capsys, "run", str(tmp_path / "m.sir"), "--json")
    assert code == 0, err


def test_a_nan_refused_by_an_integer_cast_is_divergence_too(capsys, tmp_path):
    """A cast to i32 refuses NaN (a run-time error for a finite value out of range, exit 2);
    when training made the NaN, it is divergence (exit 3), named where the NaN was made."""
    text = (ROOT / "programs/mlp_backprop.sir").read_text().replace(
        "  out = W2 @ h + b2\n", "  out = W2 @ h + b2\n  bucket = i32(min(abs(out), 1000.0))\n")
    assert "bucket" in text
    (tmp_path / "c.sir").write_text(text)
    code, out, err = run_cli(capsys, "run", str(tmp_path / "c.sir"), "--set", "hidden=16",
                             "n_train=20", "epochs=2", "lr=1e30")
    assert code == 3 and "c.sir:16:12: error: training diverged at step 1" in err


def test_an_infinite_mean_loss_is_null_in_the_json(capsys, tmp_path):
    text = (ROOT / "programs/xor.sir").read_text().replace(
        "  dout = -y", "  loss = exp(sum(out) * 0.0 + 100.0)\n  dout = -y")
    (tmp_path / "l.sir").write_text(text)
    code, out, _ = run_cli(capsys, "run", str(tmp_path / "l.sir"), "--json", "--set",
                           "epochs=2")
    first = json.loads(out)["history"][0]          # valid JSON: no Infinity
    assert code == 0 and first["loss"] is None and first["loss_not_finite"] == "inf"


# ----------------------------------------------------------------------------- checked up front

@pytest.mark.parametrize("make,target,message", [
    (lambda d: (d / "f").write_text(""), "f", "exists and is not a directory"),
    (lambda d: (d / "f").write_text(""), "f/sub", "is not a directory"),
    (lambda d: None, "", "give a directory for the plots"),
    (lambda d: None, "x" * 300, "longer than 255 bytes"),
], ids=["a file", "under a file", "empty", "long name"])
def test_a_bad_plot_folder_is_refused_before_the_run(capsys, tmp_path, make, target, message):
    make(tmp_path)
    where = str(tmp_path / target) if target else ""
    code, out, err = run_cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--plot", where)
    assert code == 2 and out == "" and "--plot: error:" in err and message in err
    assert "training" not in err


def test_a_plot_that_cannot_be_written_writes_none(capsys, tmp_path):
    (tmp_path / "history.png").mkdir()
    code, out, err = run_cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--set", "epochs=3",
                             "--plot", str(tmp_path))
    assert code == 2 and "history.png is a directory" in err
    assert [p.name for p in tmp_path.iterdir()] == ["history.png"]      # nothing half-way


@pytest.mark.parametrize("capacity,energy,message", [
    ('"1 TiB"', "", "17,179,869,184 lines; simulating the hierarchy's 17,179,869,184 lines takes "
                    "about 1,536.0 GiB (96 bytes a line)"),
    ('"32 KiB"', "energy_fj_per_bit = inf", "energy_fj_per_bit: must be a finite number >= 0, at most 1e30"),
], ids=["capacity", "infinite energy"])
def test_a_hierarchy_past_the_machine_or_with_an_infinite_energy_is_refused(
        capsys, tmp_path, capacity, energy, message):
    (tmp_path / "h.toml").write_text(
        f'name = "h"\n[[level]]\nname = "L1"\ncapacity = {capacity}\nline = 64\nways = 16\n'
        f'{energy}\n[memory]\nname = "DRAM"\noffchip = "dram"\n')
    code, out, err = run_cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--hierarchy",
                             str(tmp_path / "h.toml"))
    assert code == 2 and out == "" and message in err


def test_the_simulator_page_gives_the_hierarchy_limit_the_code_uses():
    from simulator.hierarchy import STATE_BYTES_PER_LINE
    from simulator.limits import MEMORY_FRACTION
    page = " ".join((ROOT / "docs/simulator.md").read_text().split())
    assert (f"more than {MEMORY_FRACTION:.0%} of the machine's memory to simulate (at most "
            f"{STATE_BYTES_PER_LINE} bytes a line)") in page


@pytest.mark.parametrize("value,message", [
    ("lr=inf", "--set lr=inf: a number must be finite"),
    ("lr=nan", "--set lr=nan: a number must be finite"),
    ("lr=1e400", "--set lr=1e400: a number must be finite (this one is inf)"),
    ("hidden=1_000", "'hidden' is an integer (default 1000), got a string"),
    ("hidden=\uff11\uff12", "'hidden' is an integer (default 1000), got a string"),
])
def test_set_takes_numbers_as_the_language_writes_them(capsys, value, message):
    code, out, err = run_cli(capsys, "run", str(ROOT / "programs/mlp_backprop.sir"), "--set",
                             value)
    assert code == 2 and message in err and out == ""


@pytest.mark.parametrize("option,message", [
    (["--trace-steps", "every:0"], "--trace-steps: error: --trace-steps every:0"),
    (["--hierarchy", "H"], "has no capacity, no off-chip kind and no energy_fj_per_bit"),
])
def test_options_are_checked_before_training(capsys, tmp_path, option, message):
    """lr=1e30 makes training diverge at once (exit 3): exit 2 shows the option was refused
    before any training step ran."""
    (tmp_path / "h.toml").write_text('name = "h"\n[[level]]\nname = "L1"\ncapacity = "1 KiB"\n'
                                     'line = 64\n[memory]\nname = "DRAM"\n')
    option = [str(tmp_path / "h.toml") if o == "H" else o for o in option]
    code, out, err = run_cli(capsys, "run", str(ROOT / "programs/mlp4_backprop.sir"), "--set",
                             "lr=1e30", *option)
    assert code == 2 and message in err and "diverged" not in err
