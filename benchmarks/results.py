"""The tables of docs/results.md, computed: `python benchmarks/results.py` prints them all.

tests/test_results.py recomputes every table and checks that docs/results.md contains it as
printed here, so the document cannot drift from what the code measures. Deterministic: every
figure is a count or a simulated energy, never a time.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.report import energy, size  # noqa: E402
from sutro_ir.compile import compile_file  # noqa: E402
from sutro_ir.datasets import describe  # noqa: E402
from sutro_ir.passes.recompute import candidates, recomputed_values  # noqa: E402
from sutro_sim.compare import Comparison  # noqa: E402
from sutro_sim.compare import compare as _run_compare  # noqa: E402

MLP = str(ROOT / "programs/mlp_backprop_always.sir")
MLP4 = str(ROOT / "programs/mlp4_backprop.sir")
SEED_3BIT = {"n_bits": "3", "hidden": "1000", "lr": "0.5"}
PIPELINES = ["layer-local-update", "fuse", "layer-local-update,fuse",
             "layer-local-update,fuse,liveness-layout"]
RECOMPUTE = ["store-all", "sqrt", "all", "auto"]
STEPS = "3"


def compare(path: str, pipelines: list[str], overrides: dict | None = None,
            trace_steps: str = STEPS, cost_models: bool = False) -> Comparison:
    """sutro_sim.compare.compare, each distinct comparison run once per process."""
    return _cached(path, tuple(pipelines), tuple(sorted((overrides or {}).items())),
                   trace_steps, cost_models)


@functools.lru_cache(maxsize=None)
def _cached(path, pipelines, overrides, trace_steps, cost_models) -> Comparison:
    return _run_compare(path, list(pipelines), dict(overrides), trace_steps=trace_steps,
                        cost_models=cost_models)


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pct(new: float, old: float) -> str:
    return f"{100 * (new - old) / old:+.1f}%"


def seed_measure() -> str:
    """The seed's 3-bit setup, first step, under the seed's memtracker (op-level events)."""
    c = compare(MLP, ["", "layer-local-update"], SEED_3BIT, trace_steps="1", cost_models=True)
    none, llu = (r.result.memtracker for r in c.rows)
    d0, d1 = (m["buffers"]["dW2"]["read_distances_elements"][0] for m in (none, llu))
    rows = [["seed, standard backprop (published)", "9,716", "10,640", "24", "16,005"],
            ["seed, fused layer-wise update (published)", "8,174", "10,219", "24", "3,002"],
            ["seed: change", "-15.9%", "-4.0%", "", "5.3x closer"]]
    for label, m, d in (("sutro-sim, unscheduled", none, d0),
                        ("sutro-sim, layer-local-update", llu, d1)):
        rows.append([label, f"{m['per_read_ard_elements']:,.1f}",
                     f"{m['per_element_ard_elements']:,.1f}", f"{m['reads']}", f"{d:,}"])
    rows.append(["sutro-sim: change", pct(llu["per_read_ard_elements"],
                                          none["per_read_ard_elements"]),
                 pct(llu["per_element_ard_elements"], none["per_element_ard_elements"]), "",
                 f"{d0 / d1:.1f}x closer"])
    # fuse without hoisting makes each SGD update one op, as the seed's instrumentation counts it
    seedlike = compare(MLP, ["fuse{hoist=false}"], SEED_3BIT, trace_steps="1",
                       cost_models=True).rows[0].result.memtracker
    rows.append(["sutro-sim, fuse{hoist=false} (one op per update, like the seed)",
                 f"{seedlike['per_read_ard_elements']:,.1f}",
                 f"{seedlike['per_element_ard_elements']:,.1f}", f"{seedlike['reads']}",
                 f"{seedlike['buffers']['dW2']['read_distances_elements'][0]:,}"])
    return table(["memtracker, 3-bit seed setup, step 0", "per-read ARD", "per-element ARD",
                  "reads", "dW2 distance"], rows)


def element_lru() -> str:
    """The same runs under exact element-level LRU stack distance."""
    c = compare(MLP, ["", "layer-local-update"], SEED_3BIT, trace_steps="1")
    none, llu = (r.result.sim.reuse for r in c.rows)
    dw2 = [next(b for b in r.buffers if b.name == "dW2").ard for r in (none, llu)]
    rows = [["seed events replayed element by element (reference)", "5,424", "4,897", "-9.7%",
             "9,004", "3,001"],
            ["sutro-sim, the program's own trace", f"{none.ard:,.1f}", f"{llu.ard:,.1f}",
             pct(llu.ard, none.ard), f"{dw2[0]:,.0f}", f"{dw2[1]:,.0f}"]]
    return table(["element LRU, 3-bit seed setup, step 0", "read ARD, standard",
                  "read ARD, layer-local", "change", "dW2 ARD, standard",
                  "dW2 ARD, layer-local"], rows)


def energy_table(path: str) -> tuple[str, str]:
    """Every pipeline on a program at its defaults: first three steps, sutro-tiers."""
    c = compare(path, [""] + PIPELINES)
    base = c.rows[0].result
    rows = []
    for row in c.rows:
        r = row.result
        e = r.sim.energy
        rows.append([row.label, "yes" if row.exact else "no",
                     f"{100 * r.train.test_accuracy:.1f}%", f"{row.kernels:,.0f}",
                     f"{r.sim.reuse.reads:,}", f"{r.sim.reuse.writes:,}",
                     f"{r.sim.reuse.ard:,.1f}", energy(e.by_level["HBM"]), energy(e.total),
                     "" if row is c.rows[0] else pct(e.total, base.sim.energy.total)])
    main = table(["pipeline", "exact", "test", "kernels", "reads", "writes", "ARD", "HBM",
                  "energy", "change"], rows)
    best = min(c.rows, key=lambda row: row.result.sim.energy.total)
    before, after = base.sim.energy.by_buffer, best.result.sim.energy.by_buffer
    top = sorted(before, key=lambda b: -before[b])[:8]
    buffers = table([f"buffer (unscheduled vs {best.label})", "energy before", "energy after"],
                    [[b, energy(before[b]), energy(after[b]) if b in after else "not stored"]
                     for b in top])
    return main, buffers


def recompute_runs(path: str, before: str = ""):
    """(policy, the candidates, the values recomputed, the run, store-all's run) for each
    policy of `{before,}recompute{policy=P},fuse` on a program at its defaults."""
    prefix = f"{before}," if before else ""
    c = compare(path, [f"{prefix}recompute{{policy={p}}},fuse" for p in RECOMPUTE])
    graph = compile_file(path, {}, before).train.graph
    for policy, row in zip(RECOMPUTE, c.rows):
        after = compile_file(path, {}, row.pipeline.removesuffix(",fuse")).train.graph
        yield (policy, candidates(graph), recomputed_values(graph, after), row.result,
               c.rows[0].result)


def recompute_table() -> str:
    """The recompute trade-off on the 4-layer MLP, after layer-local-update, before fuse."""
    rows = [[policy, ", ".join(v for v in cands if v not in again) or "none",
             ", ".join(again) or "none", f"{r.arith_ops:,.0f}",
             f"{r.arith_ops - base.arith_ops:+,.0f}", size(r.peak_live_bytes),
             energy(r.sim.energy.total), pct(r.sim.energy.total, base.sim.energy.total)]
            for policy, cands, again, r, base in recompute_runs(MLP4, "layer-local-update")]
    return table(["policy", "stored", "recomputed", "ops/step", "extra ops",
                  "peak live bytes", "energy", "vs store-all"], rows)


def facts() -> list[str]:
    """The figures docs/results.md quotes in its prose, formatted as it quotes them."""
    lru = compare(MLP, ["", "layer-local-update"], SEED_3BIT, trace_steps="1")
    dw2 = [next(b for b in r.result.sim.reuse.buffers if b.name == "dW2").ard for r in lru.rows]
    mlp = compare(MLP, [""] + PIPELINES)
    none, fused = mlp.rows[0].result, mlp.rows[3].result
    l2 = [r.sim.energy.by_level["L2"] for r in (none, fused)]
    w1_chain = compile_file(MLP).train.graph
    chain_bytes = {4 * w1_chain[b].shape[0] * w1_chain[b].shape[1]
                   for b in ("dW1", "%14", "%15", "%16")}
    rec = compare(MLP4, [f"layer-local-update,recompute{{policy={p}}},fuse" for p in RECOMPUTE])
    store, sqrt_, every = (r.result for r in rec.rows[:3])
    mlp4 = compare(MLP4, [""] + PIPELINES).rows[0].result
    alone = {row.label: row for row in compare(MLP, [""] + ALONE).rows}
    rec_h, plain = alone["recompute{values=h}"], alone["none"]
    return [f"adds {rec_h.result.arith_ops - plain.result.arith_ops:,.0f} operations and "
            f"{'one kernel' if rec_h.kernels == plain.kernels + 1 else '?'}",
            f"({alone['layer-local-update{approximate=true}'].result.train.train_accuracy:.1%}"
            " train)",
            f"dW2 comes {dw2[0] / dw2[1]:.1f}x closer, against the reference's "
            f"{9004 / 3001:.1f}x",
            f"{none.train.train_accuracy:.1%} train, {none.train.test_accuracy:.1%} test",
            f"{next(iter(chain_bytes)) // 1000} KB each",
            f"{none.sim.levels[-1].hits + none.sim.levels[-1].misses:,} HBM accesses in "
            "three steps",
            f"L2 energy from {energy(l2[0])} to {energy(l2[1])}",
            f"{mlp4.train.steps:,} steps, {mlp4.train.test_accuracy:.1%}",
            f"saves {store.peak_live_bytes - sqrt_.peak_live_bytes} bytes of peak live memory "
            f"for {sqrt_.arith_ops - store.arith_ops:,.0f} extra operations",
            f"`all` saves {store.peak_live_bytes - every.peak_live_bytes} bytes for "
            f"{(every.arith_ops - store.arith_ops) / store.arith_ops:.0%} more arithmetic and "
            f"{every.sim.energy.total / store.sim.energy.total - 1:.0%} more energy",
            f"extra operations and {sqrt_.sim.energy.total / store.sim.energy.total - 1:.0%} "
            "more energy"] + attention_facts()


ALONE = ["dce", "cse", "fuse", "layer-local-update", "recompute{values=h}",
         "recompute{policy=auto}", "liveness-layout", "layer-local-update{approximate=true}"]


def each_pass_table() -> str:
    """Every pass alone on mlp_backprop_always.sir at its defaults, first three steps."""
    c = compare(MLP, [""] + ALONE)
    base = c.rows[0].result
    rows = []
    for row in c.rows:
        r = row.result
        rows.append([row.label, "yes" if row.exact else "no",
                     f"{100 * r.train.train_accuracy:.1f}%", f"{row.kernels:,.0f}",
                     f"{r.arith_ops:,.0f}", size(r.peak_live_bytes), f"{r.sim.reuse.reads:,}",
                     f"{r.sim.reuse.ard:,.1f}", energy(r.sim.energy.total),
                     "" if row is c.rows[0] else pct(r.sim.energy.total, base.sim.energy.total)])
    return table(["pass alone", "exact", "train", "kernels", "ops/step", "peak live", "reads",
                  "ARD", "energy", "change"], rows)


ATTENTION = str(ROOT / "programs/char_attention.sir")
ATTENTION_PASSES = ["", "fuse", "layer-local-update", "layer-local-update,fuse"]


def attention_passes_table() -> str:
    """char_attention.sir at its defaults under the exact passes: the first three steps."""
    c = compare(ATTENTION, ATTENTION_PASSES)
    base = c.rows[0].result
    rows = []
    for row in c.rows:
        r = row.result
        rows.append([row.label, "yes" if row.exact else "no", f"{r.train.loss['test']:.4f}",
                     f"{100 * r.train.test_accuracy:.1f}%", f"{row.kernels:,.0f}",
                     f"{r.sim.reuse.reads:,}", size(r.peak_live_bytes),
                     energy(r.sim.energy.total),
                     "" if row is c.rows[0] else pct(r.sim.energy.total, base.sim.energy.total)])
    return table(["pipeline", "exact", "test loss", "test", "kernels", "reads", "peak live",
                  "energy", "change"], rows)


def attention_recompute_table() -> str:
    """The recompute trade-off on char_attention.sir, before fuse: the first three steps."""
    runs = list(recompute_runs(ATTENTION))
    rows = [[policy, str(len(again)), f"{r.arith_ops:,.0f}",
             f"{r.arith_ops - base.arith_ops:+,.0f}", size(r.peak_live_bytes),
             energy(r.sim.energy.total), pct(r.sim.energy.total, base.sim.energy.total)]
            for policy, _, again, r, base in runs]
    return table(["policy", f"recomputed (of {len(runs[0][1])})", "ops/step", "extra ops",
                  "peak live bytes", "energy", "vs store-all"], rows)


def attention_facts() -> list[str]:
    none = compare(ATTENTION, ATTENTION_PASSES).rows[0].result
    rec = compare(ATTENTION, [f"recompute{{policy={p}}},fuse" for p in RECOMPUTE])
    store, sqrt_ = rec.rows[0].result, rec.rows[1].result
    sizes = describe(compile_file(ATTENTION).data).sizes
    sample = run_sample(ATTENTION)
    return [f"test loss {none.train.loss['test']:.4f} nats per character against the "
            f"bigram's {none.baseline['bigram_test_loss']:.4f}",
            f"the corpus's entropy, {none.baseline['entropy']:.4f}",
            f"({none.config['length']:,} characters: {sizes['train']:,} training and "
            f"{sizes['test']:,} test windows)",
            f"({len(sample.traced)} of its {sample.train.steps:,} steps)",
            f"its {store.peak_live_bytes:,} bytes of live values fit in the 64 KiB L1",
            f"`sqrt` cuts {1 - sqrt_.peak_live_bytes / store.peak_live_bytes:.0%} of the peak "
            f"live memory for {sqrt_.arith_ops / store.arith_ops - 1:.0%} more arithmetic "
            f"and {sqrt_.sim.energy.total / store.sim.energy.total:.1f} times the energy"]


@functools.lru_cache(maxsize=None)
def run_sample(path: str):
    """A run at the program's own sample (its config trace_steps)."""
    from sutro_sim.run import run
    return run(path)


def all_tables() -> dict[str, str]:
    mlp, mlp_buffers = energy_table(MLP)
    mlp4, mlp4_buffers = energy_table(MLP4)
    return {"seed measure": seed_measure(), "element LRU": element_lru(),
            "mlp_backprop energy": mlp, "mlp_backprop buffers": mlp_buffers,
            "mlp4 energy": mlp4, "mlp4 buffers": mlp4_buffers,
            "recompute": recompute_table(), "each pass": each_pass_table(),
            "char_attention passes": attention_passes_table(),
            "char_attention recompute": attention_recompute_table()}


def main() -> int:
    for name, text in all_tables().items():
        print(f"## {name}\n\n{text}\n")
    print("## quoted in the prose\n\n" + "\n".join(f"- {f}" for f in facts()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
