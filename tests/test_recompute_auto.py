"""`recompute{policy=auto}` judged by a measure it does not use.

What auto promises (recompute.py): starting from store-all, each candidate in forward order is
added to the recomputed set if that lowers the energy of one step of the fused graph. So the
alternatives it weighs are store-all and, for each candidate c, the set chosen so far plus c;
its result must be no worse than any of them. The sets are rebuilt here from auto's final choice
(greedy only adds: the set chosen before c is the final set's candidates before c).

The pass measures with its own helper (`_step_energy`: one step traced alone, cold). The oracle
here is the public path instead: `sutro_sim.run.run` trains, traces and simulates the program
under `recompute{values=...},fuse`, and one step's energy is the run tracing the first two steps
minus the run tracing the first one: the second step, with caches warmed by the first.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from sutro_ir.compile import compile_file
from sutro_ir.passes import run_pipeline
from sutro_ir.passes.recompute import candidates, recomputed_values
from sutro_sim.run import run

ROOT = Path(__file__).resolve().parent.parent
MLP4 = str(ROOT / "programs/mlp4_backprop.sir")
MLP4_SMALL = (("hidden", "32"), ("epochs", "1"), ("n_train", "4"))

# H = outer(a, x) is m x n values from m + n inputs. On sutro-tiers (a 256-byte register level,
# then L1) recomputing it in the backward pass pays: H has left the registers, a and x have not.
# On cpu-like (no register level) it pays only once H no longer fits in the 32 KiB L1 (m=256,
# n=32: 32 KiB of H), and re-reading a and x from L1 beats reading H from L2.
PAYS = """config m = 64, n = 16, lr = 0.01, seed = 1
data train, test = parity(n=n, train=4, test=4, seed=1, encoding="signed-random")
param a: f32[m] = normal(std=0.1)
param v: f32[n] = normal(std=0.1)
train (x, y) in train for 1 epochs {
  H = outer(a, x)
  z = H @ v
  out = sum(z)
  g = -y * (out * y < 1)
  P = H * g
  dv = sum(P, axis=0)
  v -= lr * dv
}
eval (x, y) in test {
  predict sign(sum(outer(a, x) @ v))
}
"""
WIDE = (("m", "256"), ("n", "32"))


@functools.cache
def step_energy(path: str, overrides: tuple, before: str, values: tuple, hierarchy: str) -> float:
    """One warm training step's energy (fJ) with `values` recomputed, then fused."""
    middle = [f"recompute{{values={'+'.join(values)}}}"] if values else []
    pipeline = ",".join([p for p in [before] if p] + middle + ["fuse"])

    def total(steps: str) -> float:
        r = run(path, dict(overrides), hierarchy=hierarchy, passes=pipeline, trace_steps=steps)
        return r.sim.energy.total
    return total("2") - total("1")


def considered(cands: list[str], chosen: list[str]) -> list[tuple]:
    """The sets auto weighed: store-all, and for each candidate the set chosen before it plus
    it."""
    out = [()]
    for i, c in enumerate(cands):
        out.append(tuple(v for v in cands[:i] if v in chosen) + (c,))
    return out


def judge(path: str, overrides: tuple, before: str, hierarchy: str) -> list[str]:
    """auto's choice, after checking it against every set it weighed; returns the choice."""
    graph = compile_file(path, dict(overrides), before).train.graph
    auto = run_pipeline(graph, f"recompute{{policy=auto,hierarchy={hierarchy}}}")
    cands = candidates(graph)
    chosen = recomputed_values(graph, auto)
    same = run_pipeline(graph, f"recompute{{values={'+'.join(chosen)}}}") if chosen else graph
    assert auto == same                 # auto's result is the recompute of what it chose
    mine = step_energy(path, overrides, before, tuple(chosen), hierarchy)
    for alternative in considered(cands, chosen):
        other = step_energy(path, overrides, before, alternative, hierarchy)
        assert mine <= other, (chosen, alternative, mine, other)
    return chosen


def test_auto_is_no_worse_than_what_it_weighed_on_the_deep_mlp():
    chosen = judge(MLP4, MLP4_SMALL, "layer-local-update", "sutro-tiers")
    assert chosen == []          # at hidden=32 every recomputation costs more than it saves


@pytest.fixture(scope="module")
def pays(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("recompute") / "pays.sir"
    path.write_text(PAYS)
    return str(path)


def test_auto_recomputes_a_large_activation_of_cheap_inputs(pays):
    assert judge(pays, (), "", "sutro-tiers") == ["H"]
    store_all = step_energy(pays, (), "", (), "sutro-tiers")
    assert step_energy(pays, (), "", ("H",), "sutro-tiers") < 0.95 * store_all


def test_auto_weighs_on_the_hierarchy_it_is_given(pays):
    assert judge(pays, (), "", "cpu-like") == []
    assert judge(pays, WIDE, "", "cpu-like") == ["H"]
