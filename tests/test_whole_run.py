"""Whole runs, accounted exactly (simulate.py, "Whole runs"): a step of a kind already simulated
from an equal state is counted, not replayed. The oracle is brute force, which simulates every
access of every step (`--brute-force`): every total, every per-level and per-buffer counter and
every step's energy must be equal, on random traces and hierarchies, on random programs with
branches, and on every program in programs/ under every preset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from randgraphs import random_graph
from simulator.hierarchy import Hierarchy, Level, load_hierarchy
from simulator.simulate import simulate
from simulator.trace import Buffer, Kernel, StepPlan, Trace, make_chunk
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import StepTrace
from sutro_sim.cli import main
from sutro_sim.run import run
from test_trace_oracle import all_paths

ROOT = Path(__file__).parent.parent

LEVEL_WAYS = (1, 2, 4, 8, 40)          # 40: above 32, the hash kernel


def random_hierarchy(rng: np.random.Generator, policies=("lru", "fifo")) -> Hierarchy:
    """1-3 small levels (so that lines are evicted and written back every step), any write
    policy, lines that never shrink towards memory."""
    levels, line = [], int(2 ** rng.integers(2, 5))
    for i in range(int(rng.integers(1, 4))):
        line = line * int(2 ** rng.integers(0, 2)) if i else line
        sets, ways = int(2 ** rng.integers(0, 4)), int(rng.choice(LEVEL_WAYS))
        write_back = bool(rng.random() < 0.7)
        levels.append(Level(f"L{i + 1}", sets * ways * line, line, ways,
                            str(rng.choice(policies)), write_back,
                            write_allocate=bool(rng.random() < 0.8)))
    levels.append(Level("MEM", None, line, offchip="hbm"))
    return Hierarchy("random", tuple(levels))


def kind_columns(rng: np.random.Generator, n_buffers: int, span: int):
    """One kind's accesses: 4-byte elements of a few buffers, reads and writes mixed."""
    n = int(rng.integers(20, 400))
    buf = rng.integers(0, n_buffers, n).astype(np.int32)
    addr = buf.astype(np.int64) * span * 4 + rng.integers(0, span, n) * 4
    return addr, np.full(n, 4, np.int32), rng.random(n) < 0.3, buf


def kind_sequence(rng: np.random.Generator, n_kinds: int, n_steps: int) -> np.ndarray:
    """Stretches of one kind, periodic patterns and random kinds: what control paths do."""
    out: list[int] = []
    while len(out) < n_steps:
        form = rng.integers(0, 3)
        if form == 0:
            out += [int(rng.integers(0, n_kinds))] * int(rng.integers(1, 12))
        elif form == 1:
            period = list(rng.integers(0, n_kinds, int(rng.integers(2, 4))))
            out += period * int(rng.integers(1, 5))
        else:
            out.append(int(rng.integers(0, n_kinds)))
    return np.array(out[:n_steps], np.int64)


def random_planned_trace(rng: np.random.Generator) -> Trace:
    n_buffers, span = int(rng.integers(1, 4)), int(rng.integers(8, 200))
    buffers = [Buffer(f"b{i}", i * span * 4, span * 4, "f32") for i in range(n_buffers)]
    kinds = [kind_columns(rng, n_buffers, span) for _ in range(int(rng.integers(1, 4)))]
    seq = kind_sequence(rng, len(kinds), int(rng.integers(5, 60)))
    split = int(rng.integers(0, 2)) + 1           # a step in one or two chunks
    chunks = []
    for step, k in enumerate(seq):
        addr, nbytes, is_write, buf = kinds[k]
        for part in np.array_split(np.arange(len(addr)), split):
            chunks.append(make_chunk(step, addr[part], nbytes[part], is_write[part], 0,
                                     buffer=buf[part]))
    arith = tuple({"fma.f32": int(rng.integers(0, 100))} for _ in kinds)
    plan = StepPlan(np.arange(len(seq)), seq, np.full(len(seq), split), arith)
    return Trace(buffers, [Kernel("k", ("k",))], len(chunks), chunks.__getitem__, plan=plan)


def without_accounting(result) -> dict:
    d = result.to_dict()
    for key in ("wall_s", "accounting"):
        d.pop(key)
    return d


def assert_same_as_brute_force(trace: Trace, hierarchy: Hierarchy):
    proof = simulate(trace, hierarchy)
    brute = simulate(trace, hierarchy, brute_force=True)
    assert without_accounting(proof) == without_accounting(brute)
    assert np.array_equal(proof.account.energy_fj, brute.account.energy_fj)
    a, b = proof.account, brute.account
    assert b.method == "brute force" and b.simulated == len(b.steps) and b.proven == 0
    assert a.simulated + a.proven == len(a.steps)
    return a


# ----------------------------------------------------------------------------- simulator level

@pytest.mark.parametrize("seed", range(60))
def test_random_traces_and_hierarchies(seed):
    rng = np.random.default_rng(seed)
    trace, hierarchy = random_planned_trace(rng), random_hierarchy(rng)
    a = assert_same_as_brute_force(trace, hierarchy)
    assert a.method == "proof"


def test_the_proof_counts_most_steps_of_a_repeating_run():
    """One kind, 50 steps: the state after step 2 equals the state after step 1, so every later
    step is counted, and the first and a steady step differ (a cold cache, then a warm one that
    holds the whole buffer)."""
    rng = np.random.default_rng(1)
    addr, nbytes, is_write, buf = kind_columns(rng, 1, 64)
    chunks = [make_chunk(s, addr, nbytes, is_write) for s in range(50)]
    plan = StepPlan(np.arange(50), np.zeros(50, np.int64), np.ones(50, np.int64), ({},))
    trace = Trace([Buffer("b0", 0, 256, "f32")], [Kernel("k", ("k",))], 50, chunks.__getitem__,
                  plan=plan)
    h = Hierarchy("h", (Level("L1", 512, 4, 4, "lru"), Level("MEM", None, 4, offchip="hbm")))
    a = assert_same_as_brute_force(trace, h)
    assert a.proven >= 47 and a.states <= 4
    assert a.energy_fj[0] > a.energy_fj[-1] == a.energy_fj[10]


@pytest.mark.parametrize("levels", [
    (Level("L1", 40 * 4, 4, 40, "lru"),),                               # the hash kernel
    (Level("L1", 32, 4, 4, "fifo"),),                                   # the fused kernel
    (Level("L1", 32, 4, 4, "lru"), Level("L2", 40 * 8, 8, 40, "lru")),  # scan, then hash
], ids=["hash", "fused", "scan"])
def test_dirty_lines_are_part_of_the_state(levels):
    """Reading and writing the same lines in the same order leaves them in the same order,
    clean or dirty. Which one decides whether the next step that evicts them writes them back:
    read, evict, write, evict must cost two writebacks of every line less than brute force
    says if dirty bits were left out of the state. Likewise the buffer a writeback is charged
    to."""
    n = 64
    lines = np.arange(n, dtype=np.int64) * 4
    kinds = {"read": (lines, False, 0), "write": (lines, True, 0),
             "evict": (lines + 4 * n, False, 0), "write as b1": (lines, True, 1)}
    order = ["read", "evict", "write", "evict", "read", "evict", "write", "evict", "evict",
             "write as b1", "evict", "write", "evict"]
    names = list(kinds)
    chunks = [make_chunk(s, kinds[k][0], 4, kinds[k][1], 0, buffer=kinds[k][2])
              for s, k in enumerate(order)]
    plan = StepPlan(np.arange(len(order)), np.array([names.index(k) for k in order]),
                    np.ones(len(order), np.int64), ({},) * len(kinds))
    # b1 shares b0's addresses (as a liveness layout's buffers do): a writeback is charged to
    # the buffer that dirtied the line, which is part of the state too
    trace = Trace([Buffer("b0", 0, 8 * n, "f32"), Buffer("b1", 0, 4 * n, "f32")],
                  [Kernel("k", ("k",))], len(chunks), chunks.__getitem__, plan=plan)
    h = Hierarchy("h", levels + (Level("MEM", None, levels[-1].line_bytes, offchip="hbm"),))
    a = assert_same_as_brute_force(trace, h)
    assert a.proven > 0 and simulate(trace, h).levels[0].writebacks > 0


def test_random_and_opt_levels_are_replayed_not_proved():
    rng = np.random.default_rng(7)
    trace = random_planned_trace(rng)
    for policy in ("random", "opt"):
        h = Hierarchy("h", (Level("L1", 128, 4, 4, policy), Level("MEM", None, 4, offchip="hbm")))
        a = assert_same_as_brute_force(trace, h)
        assert a.method == "replay" and a.proven == 0


def test_a_plan_that_lies_is_caught_by_brute_force_only():
    """The proof trusts the plan: two steps of one kind must make the same accesses. A plan
    that calls different steps one kind gives a different answer, which brute force shows."""
    rng = np.random.default_rng(3)
    cols = [kind_columns(rng, 1, 64) for _ in range(2)]
    which = rng.integers(0, 2, 20)          # no period for the states to follow
    chunks = [make_chunk(s, *cols[which[s]][:3]) for s in range(20)]
    plan = StepPlan(np.arange(20), np.zeros(20, np.int64), np.ones(20, np.int64), ({},))
    trace = Trace([Buffer("b0", 0, 256, "f32")], [Kernel("k", ("k",))], 20, chunks.__getitem__,
                  plan=plan)
    h = Hierarchy("h", (Level("L1", 64, 4, 2, "lru"), Level("MEM", None, 4, offchip="hbm")))
    assert without_accounting(simulate(trace, h)) != \
        without_accounting(simulate(trace, h, brute_force=True))


# ----------------------------------------------------------------------------- random programs

@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_with_branches_on_random_paths(seed):
    """A random step (with ifs and run-time indices) whose steps take its control paths in a
    random order, as data-dependent branches do."""
    rng = np.random.default_rng(seed)
    sched = schedule(random_graph(seed))
    paths = all_paths(sched)
    inputs = [n.name for n in sched.graph.nodes if n.op == "input"]
    params = [n.name for n in sched.graph.nodes if n.op == "param"]
    step_trace = StepTrace(sched, inputs[0], inputs[-1], params, paths)
    path_of = kind_sequence(rng, len(paths), 40)
    trace = step_trace.trace(list(range(40)), {}, path_of=lambda s: int(path_of[s]))
    for hierarchy in (load_hierarchy("sutro-tiers"), random_hierarchy(rng)):
        assert_same_as_brute_force(trace, hierarchy)


# ----------------------------------------------------------------------------- every program

SMALL = {
    "mlp4_backprop.sir": {"hidden": "16", "epochs": "2", "n_train": "40"},
    "mlp_autodiff.sir": {"hidden": "32", "epochs": "2", "n_train": "40"},
    "mlp_backprop.sir": {"hidden": "32", "epochs": "3", "n_train": "40"},
    "mlp_backprop_always.sir": {"hidden": "32", "epochs": "2", "n_train": "40"},
    "parity3.sir": {"hidden": "8", "epochs": "4"},
    "sparse_parity.sir": {"hidden": "16", "epochs": "2"},
    "sparse_parity_autodiff.sir": {"hidden": "16", "epochs": "2"},
    "sparse_parity_fourier.sir": {"n_samples": "20"},
    "sparse_parity_gf2.sir": {},
    "sparse_parity_local.sir": {"hidden": "32", "epochs": "2", "n_train": "40"},
    "xor.sir": {"epochs": "4"},
    "matmul.sir": {"n": "4", "tile": "2"},
    "sparse_parity_candidates.sir": {"n": "4", "m": "5", "t": "6"},
    "char_attention.sir": {"length": "160", "batch_size": "2", "block": "4", "d": "4",
                           "hidden": "4", "trace_steps": "all"},
}
FIFO = ROOT / "tests/data/whole-run-fifo.toml"


def test_every_program_is_listed():
    assert set(SMALL) == {p.name for p in (ROOT / "programs").glob("*.sir")}


@pytest.mark.parametrize("hierarchy", ["sutro-tiers", "cpu-like", "h100-like", str(FIFO)])
@pytest.mark.parametrize("program", sorted(SMALL))
def test_every_program_proof_equals_brute_force(program, hierarchy):
    path = str(ROOT / "programs" / program)
    proof = run(path, SMALL[program], hierarchy=hierarchy)
    brute = run(path, SMALL[program], hierarchy=hierarchy, brute_force=True)
    p, b = proof.to_dict(), brute.to_dict()
    for d in (p, b):
        for key in ("wall_s", "profile_s", "accounting"):
            d.pop(key)
    assert p == b
    a = proof.account
    assert proof.all_traced and a.simulated + a.proven == len(a.steps) >= proof.train.steps
    if len(a.steps) > 20 and len(proof.paths) < 4:  # (each step of char_attention has its
        assert a.proven > len(a.steps) // 2          # own tokens, so its own path)


def test_a_data_dependent_branch_is_accounted_exactly(capsys):
    """The main job's early exit: steps that learn and steps that skip the backward pass, in
    the order the data decides. Proof and brute force agree on every number they print."""
    path = str(ROOT / "programs/mlp_backprop.sir")
    argv = ["run", path, "--json", "--set", "hidden=32", "epochs=3", "n_train=40"]
    outs = []
    for extra in ([], ["--brute-force"]):
        assert main(argv + extra) == 0
        outs.append(json.loads(capsys.readouterr().out))
    proof, brute = outs
    assert len(proof["traced"]["paths"]) == 2
    assert proof["accounting"]["proven"] > 0 and brute["accounting"]["proven"] == 0
    for d in outs:
        for key in ("wall_s", "profile_s", "accounting", "recorded"):
            d.pop(key)
    assert proof == brute


def test_the_main_job_simulates_20_of_its_14200_steps_and_examples():
    """docs/simulator.md: the main job's 7,000 steps and 7,200 evaluated examples meet 10
    states; 20 are simulated and 14,180 counted. Its training steps alone: 4 states, 7 and
    6,993."""
    path = str(ROOT / "programs/mlp_backprop.sir")
    for evaluate, want in ((True, (14_200, 20, 14_180, 10)), (False, (7_000, 7, 6_993, 4))):
        r = run(path, evaluate=evaluate)
        a = r.account
        assert (len(a.steps), a.simulated, a.proven, a.states) == want
    # the whole run's accesses, as docs/machine-model.md gives them: the training's, counted
    # from its two paths, and the evaluations'
    with_eval = run(path)
    training = sum(n * acc for n, acc in with_eval.paths) + with_eval.init_accesses
    assert training == r.accesses_whole_run == 901_093_293
    assert with_eval.accesses_whole_run == 1_246_887_693
    page = " ".join((ROOT / "docs/machine-model.md").read_text().split())
    assert "every access (1,246,887,693)" in page


def test_the_brute_force_benchmark_trace_is_the_simulator_pages():
    """docs/simulator.md: 10 steps of mlp_backprop_always.sir make 3,412,451 accesses (the
    parameters' first writes and 10 steps of 339,045)."""
    from sutro_ir.compile import compile_file
    from sutro_ir.schedule import schedule

    program = compile_file(str(ROOT / "programs/mlp_backprop_always.sir"))
    st = StepTrace(schedule(program.train.graph), program.train.x, program.train.y,
                   [p.name for p in program.params])
    trace = st.trace(list(range(10)), {})
    assert sum(len(c) for c in trace) == 3_412_451 == 10 * 339_045 + len(st.init["addr"])
    assert "10 steps of the seed's MLP (3,412,451 accesses)" in \
        (ROOT / "docs/simulator.md").read_text()


@pytest.mark.parametrize("overrides", [
    {"n_bits": "3", "hidden": "1000", "lr": "0.5"},        # the seed's 3-bit setup
    {"epochs": "1", "n_train": "50"},                       # 50 steps at 20 bits
], ids=["3-bit", "20-bit-50-steps"])
def test_the_main_job_at_the_issues_sizes_equals_brute_force(overrides):
    path = str(ROOT / "programs/mlp_backprop.sir")
    proof, brute = (run(path, overrides, brute_force=b) for b in (False, True))
    p, b = proof.to_dict(), brute.to_dict()
    for d in (p, b):
        for key in ("wall_s", "profile_s", "accounting"):
            d.pop(key)
    assert p == b and proof.account.proven > 0


# ----------------------------------------------------------------------------- evaluation

def test_evaluations_are_traced_where_they_run():
    """The main job checks `until train_accuracy >= 1.0` after each of its 14 epochs (500
    examples each, never reaching 100%), then tests 200 examples: each evaluated example is a
    row of the account, after the step it followed, with the parameters at the training step's
    addresses and the eval loop's own values in `eval.` buffers."""
    r = run(str(ROOT / "programs/mlp_backprop.sir"), {"epochs": "3", "n_train": "40",
                                                      "hidden": "32"})
    a = r.account
    until = [e for e in r.train.evaluations if e.purpose == "until"]
    assert [e.after for e in until] == [39, 79, 119] and [e.dataset for e in until] == ["train"] * 3
    assert list(np.bincount(a.phase)) == [120, 3 * 40, 200]
    rows = np.nonzero(a.phase == 1)[0]
    assert list(rows[:2]) == [40, 41] and (a.steps[rows[:40]] == 39).all()
    assert (a.phase[-200:] == 2).all()
    names = [b["name"] for b in r.to_dict()["buffers"]]
    assert "W1" in names and names.count("W1") == 1 and any(n.startswith("eval.") for n in names)
    c = r.costs
    assert c["learning_fj"] + c["inference_fj"] == pytest.approx(c["total_fj"], rel=1e-12)
    assert c["inference_per_example_fj"] == pytest.approx(c["inference_fj"] / 200)
    assert c["until_checks_fj"] > 0 and c["test_examples"] == 200


def test_no_eval_leaves_the_evaluations_out():
    path = str(ROOT / "programs/mlp_backprop.sir")
    small = {"epochs": "2", "n_train": "40", "hidden": "32"}
    with_eval, without = run(path, small), run(path, small, evaluate=False)
    assert (without.account.phase == 0).all() and len(without.account.steps) == 80
    assert without.costs["inference_fj"] == 0 and without.costs["until_checks_fj"] == 0
    assert with_eval.accesses_whole_run > without.accesses_whole_run
    # the training steps cost the same either way, except where an evaluation changed the
    # caches: the first epoch's steps, before any evaluation, cost exactly the same
    e0, e1 = (r.account.energy_fj[(r.account.phase == 0) & (r.account.steps < 40)]
              for r in (with_eval, without))
    assert np.array_equal(e0, e1)


# ----------------------------------------------------------------------------- history

def test_energy_so_far_is_the_learning_cost_of_the_run_cut_there():
    """The learning energy after epoch e of a run is the whole learning cost of the same run
    with `epochs=e` (training is deterministic): an oracle that shares no code with the per-epoch
    split. And the last epoch's test accuracy is the run's."""
    path = str(ROOT / "programs/mlp_backprop.sir")
    small = {"n_train": "40", "hidden": "32", "epochs": "4"}
    whole = run(path, small)
    for e in (1, 3):
        cut = run(path, dict(small, epochs=str(e)))
        assert whole.history[e - 1]["learning_energy_fj"] == pytest.approx(
            cut.costs["learning_fj"], rel=1e-12)
        assert whole.history[e - 1]["test_accuracy"] == cut.train.test_accuracy
    assert [h["epoch"] for h in whole.history] == [1, 2, 3, 4]
    assert [h["train_accuracy"] for h in whole.history] == list(whole.train.history)


def test_the_target_is_the_first_epoch_that_reaches_it(capsys):
    path = str(ROOT / "programs/mlp_backprop.sir")
    small = ["--set", "n_train=40", "hidden=32", "epochs=4"]
    assert main(["run", path, "--json", *small]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    best = max(h["test_accuracy"] for h in history)
    first = next(h for h in history if h["test_accuracy"] >= best)
    assert main(["run", path, "--json", "--target-accuracy", str(best), *small]) == 0
    t = json.loads(capsys.readouterr().out)["target"]
    assert t["reached"] and t["epoch"] == first["epoch"]
    assert t["learning_energy_fj"] == first["learning_energy_fj"]
    assert main(["run", path, "--target-accuracy", "1.0", *small]) == 0
    assert "target     test accuracy 100% not reached in 4 epochs" in capsys.readouterr().out
    assert main(["run", path, "--target-accuracy", "90", *small]) == 2
    assert "--target-accuracy: error: --target-accuracy 90.0: a test accuracy in (0, 1]" in \
        capsys.readouterr().err


def test_the_loss_is_its_mean_over_each_epochs_steps(tmp_path):
    """`loss` = the step counter: its mean over epoch e's n steps is e n + (n - 1) / 2."""
    text = (ROOT / "programs/xor.sir").read_text().replace(
        "  dout = -y", "  loss = f32(step)\n  dout = -y")
    (tmp_path / "l.sir").write_text(text)
    r = run(str(tmp_path / "l.sir"), {"epochs": "3"})
    n = r.train.steps_per_epoch
    assert n == 16 and [h["loss"] for h in r.history] == [e * n + (n - 1) / 2
                                                          for e in range(r.train.epochs)]


def test_an_evaluation_with_a_branch_is_traced_on_each_examples_path(tmp_path):
    """The eval loop's own control paths: an example takes the block only when its first input
    is positive (two of the four pm1 XOR examples), and each is traced on its own path, as
    brute force agrees."""
    text = """config seed = 0
data train, test = xor(train=4, test=4, encoding="pm1")
param w: f32[2] = ones()
train (x, y) in train for 1 epochs {
  w += 0.0 * x
}
eval (x, y) in test {
  p = sum(x) * 0.0
  if x[0] > 0 {
    p := w @ x
  }
  predict sign(p)
}
"""
    (tmp_path / "e.sir").write_text(text)
    path = str(tmp_path / "e.sir")
    r = run(path)
    test = next(e for e in r.train.evaluations if e.purpose == "test")
    taken = [r.train.eval_paths[p] for p in test.example_paths]
    assert sorted(t[:1] for t in taken) == [(0,), (0,), (1,), (1,)]
    brute = run(path, brute_force=True)
    assert r.sim.to_dict()["levels"] == brute.sim.to_dict()["levels"]
    assert r.costs["inference_fj"] == brute.costs["inference_fj"] > 0


def test_the_arrays_decide_even_when_every_fingerprint_collides(monkeypatch):
    """States are found by a fingerprint and decided by their arrays: with every fingerprint
    the same, the proof must still equal brute force. Kept arrays must be copies: a kept
    state that aliased a kernel's live arrays would always equal the machine's current one.
    A scan L1 whose dirty lines differ after kind A (writes) and kind B (reads), over a
    FIFO L2 that holds everything."""
    import simulator.simulate as sim

    n = 64
    sweep = np.arange(n, dtype=np.int64) * 4
    kinds = [(sweep, np.arange(n) >= n - 4), (sweep, np.zeros(n, bool))]
    seq = [0, 1, 0, 0, 0, 0]
    chunks = [make_chunk(s, kinds[k][0], 4, kinds[k][1], 0, buffer=0) for s, k in enumerate(seq)]
    plan = StepPlan(np.arange(len(seq)), np.array(seq), np.ones(len(seq), np.int64), ({}, {}))
    trace = Trace([Buffer("b", 0, 4 * n, "f32")], [Kernel("k", ("k",))], len(seq),
                  chunks.__getitem__, plan=plan)
    h = Hierarchy("h", (Level("L1", 8 * 4, 4, 8, "lru"),
                        Level("L2", 128 * 4, 4, 128, "fifo", write_back=False),
                        Level("MEM", None, 4, offchip="hbm")))
    monkeypatch.setattr(sim, "_digest", lambda arrays: ())
    a = assert_same_as_brute_force(trace, h)
    assert a.proven > 0 and simulate(trace, h).levels[0].writebacks > 0


def test_past_the_state_limit_the_rest_is_simulated_in_order_and_said_so(monkeypatch):
    import simulator.simulate as sim

    monkeypatch.setattr(sim, "MAX_STATES", 3)
    for seed in range(6):
        trace = random_planned_trace(np.random.default_rng(200 + seed))
        a = assert_same_as_brute_force(trace, random_hierarchy(np.random.default_rng(seed)))
        assert a.method in ("proof", "proof, then in order")
        if a.method != "proof":
            assert a.states == 3
    path = str(ROOT / "programs/mlp_backprop.sir")
    r = run(path, {"epochs": "2", "n_train": "40", "hidden": "32"})
    assert r.account.method == "proof, then in order" and r.account.states == 3
    from sutro_sim.run import render_run
    assert "counted by proof until it met more than 3 distinct states" in render_run(r)


def test_a_sample_reaches_a_target_without_an_energy(capsys):
    """With --trace-steps N the learning energy of the epochs is not known: the target says
    which epoch reached it and that its energy needs every step; compare shows '-'."""
    path = str(ROOT / "programs/xor.sir")
    assert main(["run", path, "--trace-steps", "5", "--target-accuracy", "0.1"]) == 0
    assert "(its learning energy needs every step: drop --trace-steps)" in \
        capsys.readouterr().out
    assert main(["compare", path, "-p", "fuse", "--trace-steps", "5", "--target-accuracy",
                 "0.1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(r["target"]["reached"] and r["target"]["learning_energy_fj"] is None
               for r in rows)


def test_a_state_past_the_memory_budget_is_simulated_in_order(monkeypatch):
    """Found by the fuzz campaign: an 8 GiB fully associative level was copied for the proof's
    first state before any budget was checked. A machine more than half the budget is now
    simulated in order from the start, with the same totals as brute force."""
    from simulator import simulate as simulate_mod
    monkeypatch.setattr(simulate_mod, "SNAPSHOT_MEMORY_FRACTION", 1e-12)
    rng = np.random.default_rng(7)
    a = assert_same_as_brute_force(random_planned_trace(rng), random_hierarchy(rng))
    assert a.method == "in order" and a.proven == 0 and a.simulated == len(a.steps)


def test_the_report_says_when_every_step_was_simulated_in_order(monkeypatch, capsys):
    from simulator import simulate as simulate_mod
    monkeypatch.setattr(simulate_mod, "SNAPSHOT_MEMORY_FRACTION", 1e-12)
    assert main(["run", str(ROOT / "programs/xor.sir"), "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"every one accounted: all [\d,]+ simulated access by access \(one cache "
                     r"state is larger than the memory budget for keeping states\)", out), out
