"""Command-line features, checked by their values against oracles written here.

- `run --seed`: the parameters are the draws of numpy's generator seeded with it, in declaration
  order (docs/language.md), recomputed here; `--seed` also sets config `seed` when there is one.
- `run --energy`: every level's energy is its bytes x 8 x its per-bit energy, and arithmetic is
  the op counts x per-op energies, both recomputed from the reference constants
  (../shared/reference/energy-model.md, docs/energy.md), so presets change energies by the
  ratio of their constants.
- `run --hierarchy FILE.toml`: the report has the file's levels; a level that holds everything
  misses once per line touched (the buffers' bytes / line), and energies are the given ones.
- `simulate --cost-models`: the worked numbers of ../shared/reference/cost-models.md, and a
  brute-force ByteDMD and address cost written here from its rules.
- `hierarchies --json`: the preset TOML files read with tomllib.
- `graph --set`: the printed shapes follow the new constant.
- the extrapolated whole-run energy: derived from runs that trace 1, 2, 3 and all steps.
- the README's `simulate` command agrees with the Python API.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from test_costmodels import ceil_sqrt
from test_energy_oracle import level_fj_per_bit, op_fj

import sutro_ir.execute
from simulator import TraceBuilder
from simulator.hierarchy import Level, load_hierarchy
from simulator.report import energy as fmt_energy
from simulator.simulate import simulate
from simulator.trace import load
from sutro_sim.cli import main

ROOT = Path(__file__).resolve().parent.parent

# No `seed` constant; the data has its own seed. Per step: d = w - x (2 subs), lr * d (2 muls),
# the update w - lr * d (2 subs).
SMALL = """config lr = 0.5, epochs = 3
data train, test = xor(train=4, test=4, seed=3, encoding="pm1")
param w: f32[2] = normal(std=1.0)
train (x, y) in train for epochs epochs {
  d = w - x
  w -= lr * d
}
eval (x, y) in test {
  predict sign(w @ x)
}
"""

# No `seed` constant either; every kind of initializer.
NOSEED = """config lr = 0.1, epochs = 2
data train, test = xor(train=8, test=8, seed=3, encoding="pm1")
param W1: f32[4, 2] = normal(std=1.0)
param b1: f32[4] = uniform(low=-0.5, high=0.5)
param w2: f32[4] = normal(mean=0.1, std=0.5)
param b2: f32[] = zeros()
train (x, y) in train for epochs epochs {
  h = relu(W1 @ x + b1)
  out = w2 @ h + b2
  dout = -y * (out * y < 1)
  w2 -= lr * dout * h
  b2 -= lr * dout
}
eval (x, y) in test {
  predict sign(w2 @ relu(W1 @ x + b1) + b2)
}
"""


def cli(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def cli_json(capsys, *argv) -> dict:
    return json.loads(cli(capsys, *argv, "--json"))


@pytest.fixture
def program(tmp_path):
    def write(text: str, name: str = "p.sir") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


# ----------------------------------------------------------------------------- --seed

@pytest.fixture
def inits(monkeypatch):
    """Every init_params call: (seed, the initial values, the live arrays that training updates)."""
    calls = []
    real = sutro_ir.execute.init_params

    def spy(prog, seed):
        arrays = real(prog, seed)
        calls.append((seed, {k: v.copy() for k, v in arrays.items()}, arrays))
        return arrays
    monkeypatch.setattr(sutro_ir.execute, "init_params", spy)
    return calls


def noseed_draws(seed: int) -> dict:
    """NOSEED's parameters: one generator, declaration order, each initializer's numpy draw."""
    rng = np.random.default_rng(seed)
    values = {"W1": rng.normal(0.0, 1.0, (4, 2)), "b1": rng.uniform(-0.5, 0.5, (4,)),
              "w2": rng.normal(0.1, 0.5, (4,)), "b2": np.zeros(())}
    return {k: v.astype(np.float32) for k, v in values.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def test_seed_option_seeds_the_parameters(capsys, program, inits):
    path = program(NOSEED)
    for seed in (7, 7, 8):
        cli_json(capsys, "run", path, "--seed", seed, "--trace-steps", 1)
    cli_json(capsys, "run", path, "--trace-steps", 1)
    assert [c[0] for c in inits] == [7, 7, 8, 0]        # no config `seed`: the default is 0
    for seed, initial, _ in inits:
        assert_same(initial, noseed_draws(seed))
    final = [c[2] for c in inits]
    assert_same(final[0], final[1])                      # the same seed trains the same bits
    assert final[1]["W1"].tobytes() == inits[1][1]["W1"].tobytes()   # W1 is not trained,
    assert final[1]["w2"].tobytes() != inits[1][1]["w2"].tobytes()   # w2 is
    assert final[1]["w2"].tobytes() != final[2]["w2"].tobytes()      # another seed, another run


def test_seed_defaults_to_the_config_seed_and_sets_it(capsys, inits):
    xor = ROOT / "programs/xor.sir"                     # config seed = 1; data seed = seed
    small = ["--set", "epochs=1", "--trace-steps", "1"]
    runs = [cli_json(capsys, "run", xor, *small),
            cli_json(capsys, "run", xor, *small, "--set", "seed=4"),
            cli_json(capsys, "run", xor, *small, "--seed", 9)]
    assert [c[0] for c in inits] == [1, 4, 9]
    assert [r["config"]["seed"] for r in runs] == [1, 4, 9]
    rng = np.random.default_rng(9)                      # W1 is the first parameter, normal(1.0)
    assert inits[2][1]["W1"].tobytes() == rng.normal(0, 1.0, (8, 2)).astype(np.float32).tobytes()


def test_the_python_api_takes_a_seed_without_touching_the_config(inits):
    from sutro_sim.run import run

    r = run(str(ROOT / "programs/xor.sir"), {"epochs": "1"}, seed=5, trace_steps="1")
    assert inits[-1][0] == 5 and r.config["seed"] == 1


# ----------------------------------------------------------------------------- --energy

PRESETS = ("dally-2020", "modern-5nm-hbm3")
CPU_LIKE = {"L1": 32 << 10, "L2": 1 << 20, "L3": 16 << 20}


def fj_per_bit(preset: str, level: str) -> float:
    """A cpu-like level's per-bit energy from the published constants (test_energy_oracle)."""
    if level == "DRAM":
        return level_fj_per_bit(Level(level, None, 64, offchip="dram"), preset)[0]
    return level_fj_per_bit(Level(level, CPU_LIKE[level], 64), preset)[0]


def small_arith_fj(preset: str) -> float:
    """SMALL's arithmetic per step: 4 f32 subtractions (priced as adds) and 2 f32 multiplies."""
    return 4 * op_fj("sub.f32", preset) + 2 * op_fj("mul.f32", preset)


def test_energy_preset_prices_levels_and_arithmetic_by_its_constants(capsys, program):
    path = program(SMALL)
    runs = {p: cli_json(capsys, "run", path, "--hierarchy", "cpu-like", "--energy", p, "--no-eval")
            for p in PRESETS}
    for preset, r in runs.items():
        e = r["energy_fj"]
        assert e["preset"] == preset and r["traced"]["arith_ops_per_step"] == 6
        assert e["arithmetic"] == pytest.approx(r["steps"] * small_arith_fj(preset), rel=1e-12)
        for lv in r["levels"]:
            bits = 8 * (lv["read_bytes"] + lv["write_bytes"])
            want = bits * fj_per_bit(preset, lv["name"])
            assert e["by_level"][lv["name"]] == pytest.approx(want, rel=1e-12), lv["name"]
    a, b = runs["dally-2020"], runs["modern-5nm-hbm3"]
    assert a["levels"] == b["levels"]                   # the preset prices, it does not simulate
    assert b["energy_fj"]["by_level"]["L1"] / a["energy_fj"]["by_level"]["L1"] == pytest.approx(
        fj_per_bit("modern-5nm-hbm3", "L1") / fj_per_bit("dally-2020", "L1"), rel=1e-12)


def test_given_level_energies_do_not_depend_on_the_preset(capsys, program):
    path = program(SMALL)
    runs = [cli_json(capsys, "run", path, "--energy", p, "--no-eval")       # sutro-tiers
            for p in PRESETS]
    assert runs[0]["energy_fj"]["by_level"] == runs[1]["energy_fj"]["by_level"]
    ratio = runs[1]["energy_fj"]["arithmetic"] / runs[0]["energy_fj"]["arithmetic"]
    assert ratio == pytest.approx(small_arith_fj("modern-5nm-hbm3") / small_arith_fj("dally-2020"),
                                  rel=1e-12)


# ----------------------------------------------------------------------------- --hierarchy FILE

TINY = """name = "tiny"
description = "a 2-way register file, a scratchpad that holds everything, DRAM"

[[level]]
name = "near"
capacity = "64 B"
line = 4
ways = 2
energy_fj_per_bit = 10.0

[[level]]
name = "far"
capacity = "4 KiB"
line = 4
policy = "fifo"
energy_fj_per_bit = 100.0

[memory]
name = "dram"
offchip = "dram"
energy_fj_per_bit = 1000.0
"""


def test_hierarchy_file_sets_the_levels(capsys, program, tmp_path):
    toml = tmp_path / "tiny.toml"
    toml.write_text(TINY)
    r = cli_json(capsys, "run", program(NOSEED), "--hierarchy", toml, "--no-eval")
    assert r["hierarchy"] == "tiny"
    near, far, dram = r["levels"]
    assert [(lv["name"], lv["capacity_bytes"], lv["line_bytes"], lv["ways"], lv["policy"])
            for lv in (near, far)] == [("near", 64, 4, 2, "lru"), ("far", 4096, 4, None, "fifo")]
    assert dram["name"] == "dram" and dram["capacity_bytes"] is None
    accesses = r["accesses"]["reads"] + r["accesses"]["writes"]
    assert near["accesses"] == near["hits"] + near["misses"] == accesses
    lines = sum(-(-b["bytes"] // 4) for b in r["buffers"])   # buffers are 64-byte aligned
    assert 0 < far["misses"] == lines                   # everything fits: one miss per line
    assert near["misses"] > lines                       # 16 lines cannot hold the step
    given = {"near": 10.0, "far": 100.0, "dram": 1000.0}
    for lv in r["levels"]:
        bits = 8 * (lv["read_bytes"] + lv["write_bytes"])
        assert r["energy_fj"]["by_level"][lv["name"]] == bits * given[lv["name"]]


# ----------------------------------------------------------------------------- --cost-models

def columns(trace) -> list[tuple]:
    """(address, bytes, is_write, instr, buffer) per access, in trace order."""
    out = []
    for chunk in trace:
        bufs = trace.buffer_ids(chunk)
        out += [(int(a), int(n), bool(w), int(i), int(b)) for a, n, w, i, b in
                zip(chunk.addr, chunk.nbytes, chunk.is_write, chunk.instr, bufs)]
    return out


def address_cost(trace, outputs=(), dense=True) -> int:
    """cost-models.md section 4: each read costs ceil(sqrt(cell)), each output element one more.
    Dense cells: the k-th buffer element in address order is cell k. By address: cells are
    element-sized (the smallest element) and the lowest buffer's first element is cell 1."""
    starts = sorted({b.base + i * b.elem_bytes for b in trace.buffers
                     for i in range(b.nbytes // b.elem_bytes)})
    cell_size = min(b.elem_bytes for b in trace.buffers)
    first = min(b.base for b in trace.buffers)

    def cell(a):
        return starts.index(a) + 1 if dense else (a - first) // cell_size + 1
    exits = [b.base + i * b.elem_bytes for b in trace.buffers if b.name in outputs
             for i in range(b.nbytes // b.elem_bytes)]
    reads = [a for a, _, w, _, _ in columns(trace) if not w] + exits
    return sum(ceil_sqrt(cell(a)) for a in reads)


def bytedmd(trace) -> int:
    """cost-models.md section 3 by brute force: a list as the LRU stack of live values."""
    instrs: dict[int, list] = {}
    for a in columns(trace):
        instrs.setdefault(a[3], []).append(a)
    version, ops = {}, []       # (value, bytes, is_write, buffer); a value is (address, version)
    for i in instrs.values():
        for a, n, w, _, b in sorted(i, key=lambda x: x[2]):      # an instruction reads first
            version[a] = version.get(a, 0) + w
            ops.append(((a, version[a]), n, w, b))
    last = {v: k for k, (v, _, w, _) in enumerate(ops) if not w}
    size: dict = {}
    for v, n, _, _ in ops:
        size.setdefault(v, n)                                  # its first access's size
    stack = []                                                 # top last
    for buf in reversed(range(len(trace.buffers))):            # arguments: version 0
        stack += sorted({v for v, _, _, b in ops if v[1] == 0 and b == buf}, key=lambda v: v[0])
    cost, k = 0, 0
    for i in instrs.values():
        here, k = ops[k:k + len(i)], k + len(i)
        reads = [v for v, _, w, _ in here if not w]
        for v in reads:                                        # all priced before any moves
            above = sum(size[u] for u in stack[stack.index(v) + 1:])
            cost += sum(ceil_sqrt(j) for j in range(above + 1, above + size[v] + 1))
        for v in reads:
            stack.remove(v)
            stack.append(v)
        stack = [v for v in stack if last[v] >= k]             # dead after their last read
        stack += [v for v, _, w, _ in here if w and last.get(v, -1) >= k]
    return cost


def save(trace, tmp_path, name) -> str:
    path = tmp_path / name
    trace.save(path)
    return str(path)


def add3(dtype: str):
    """(a + b) + c, the result in t: cost-models.md's first ByteDMD example."""
    b = TraceBuilder(align=1)
    for n in "abct":
        b.buffer(n, 1, dtype=dtype)
    for k, (x, y) in enumerate([("a", "b"), ("t", "c")]):
        b.read(x, 0, instr=k)
        b.read(y, 0, instr=k)
        b.write("t", 0, instr=k)
    return b.build()


def dally_example():
    """a*b + c*d + e with a..e at addresses 1..5: mul 1,1,2; mul 2,3,4; add 1,1,2; add 1,1,5."""
    b = TraceBuilder(align=1)
    for n in "abcde":
        b.buffer(n, 1, dtype="u8")
    for k, (out, x, y) in enumerate(["aab", "bcd", "aab", "aae"]):
        b.read(x, 0, instr=k)
        b.read(y, 0, instr=k)
        b.write(out, 0, instr=k)
    return b.build()


@pytest.mark.parametrize("make, bytedmd_cost, address", [
    (lambda: add3("u8"), 6, 7), (lambda: add3("f16"), 14, 7),
    (dally_example, None, 15 - 1)])     # the reference also reads the output once: see below
def test_cost_models_of_the_worked_examples(capsys, tmp_path, make, bytedmd_cost, address):
    trace = make()
    path = save(trace, tmp_path, "t.npz")
    d = cli_json(capsys, "simulate", path, "--cost-models")
    assert d["address_cost"]["cost"] == address_cost(trace) == address
    assert d["bytedmd"]["cost"] == bytedmd(trace)
    if bytedmd_cost is not None:
        assert d["bytedmd"]["cost"] == bytedmd_cost
    text = cli(capsys, "simulate", path, "--cost-models")
    assert f"address cost (Model 1)     {address:,}  (" in text
    assert f"ByteDMD                    {d['bytedmd']['cost']:,}" in text


def test_the_address_cost_reads_the_outputs_at_exit(capsys, tmp_path):
    """cost-models.md section 4's worked example is 15 with its output declared."""
    path = save(dally_example(), tmp_path, "t.npz")
    d = cli_json(capsys, "simulate", path, "--cost-models", "--outputs", "a")
    assert d["address_cost"]["cost"] == address_cost(dally_example(), ("a",)) == 15
    assert (d["address_cost"]["output_cost"], d["address_cost"]["output_reads"]) == (1, 1)


def test_bytedmd_examples_from_the_command_line(capsys):
    """The examples declare their arguments and outputs: ByteDMD's worked numbers print."""
    for name, want in (("matvec", 26), ("my_add", 6)):
        text = cli(capsys, "simulate", ROOT / f"examples/{name}.npz", "--cost-models")
        assert f"ByteDMD                    {want}\n" in text
    d = cli_json(capsys, "simulate", ROOT / "examples/matvec.npz", "--cost-models",
                 "--outputs", "t")            # y no longer kept live: its reads are shallower
    assert d["bytedmd"]["cost"] < 26


def test_cost_models_of_the_matvec_example(capsys):
    path = ROOT / "examples/matvec.npz"
    trace = load(str(path))
    d = cli_json(capsys, "simulate", path, "--cost-models")
    assert d["bytedmd"]["reads"] == 12 and d["bytedmd"]["instructions"] == 6
    assert d["address_cost"]["cost"] == address_cost(trace, ("y",))
    text = cli(capsys, "simulate", path, "--cost-models")
    assert f"address cost (Model 1)     {address_cost(trace, ('y',)):,}  (" in text


def padded():
    """Two f32 buffers 64-byte aligned: 4 and 3 elements, 48 bytes of padding between them."""
    b = TraceBuilder()
    b.buffer("u", 4)
    b.buffer("v", 3)
    b.read("v", instr=0)
    b.read("u", [3], instr=1)
    return b.build()


def test_address_cells_are_dense_unless_asked(capsys, tmp_path):
    """Dense: v's elements are cells 5..7 and u[3] cell 4. By address (f32 cells from u's
    first byte): v starts at cell 17, the padding counted."""
    path = save(padded(), tmp_path, "p.npz")
    dense = cli_json(capsys, "simulate", path, "--model", "1")["address_cost"]
    assert dense["cost"] == 3 + 3 + 3 + 2 == address_cost(padded())
    assert dense["cells"] == "dense"
    by_address = cli_json(capsys, "simulate", path, "--model", "1", "--cells", "address")
    assert by_address["address_cost"]["cost"] == 5 + 5 + 5 + 2 == \
        address_cost(padded(), dense=False)


def test_cost_models_without_instruction_ids_say_so(capsys, tmp_path):
    b = TraceBuilder()
    b.read(b.buffer("W", 4))
    d = cli_json(capsys, "simulate", save(b.build(), tmp_path, "w.npz"), "--cost-models")
    assert d["bytedmd"] is None and d["address_cost"]["cost"] == 1 + 2 + 2 + 2


# ----------------------------------------------------------------------------- hierarchies --json

UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def size_of(text) -> int:
    if isinstance(text, int):
        return text
    number, unit = text.split()
    return int(float(number) * UNITS[unit])


def expected_levels(doc: dict) -> list[dict]:
    """Levels as the TOML file writes them, with the format's defaults."""
    levels = [{"name": t["name"], "capacity_bytes": size_of(t["capacity"]),
               "line_bytes": t["line"], "ways": t.get("ways"), "policy": t.get("policy", "lru"),
               "energy_fj_per_bit": t.get("energy_fj_per_bit"), "offchip": t.get("offchip")}
              for t in doc["level"]]
    m = doc["memory"]
    levels.append({"name": m["name"], "capacity_bytes": None,
                   "line_bytes": m.get("line", levels[-1]["line_bytes"]),
                   "energy_fj_per_bit": m.get("energy_fj_per_bit"), "offchip": m.get("offchip")})
    return levels


def test_hierarchies_json_is_the_preset_files(capsys):
    files = sorted((ROOT / "simulator/presets/hierarchies").glob("*.toml"))
    docs = [tomllib.loads(f.read_text()) for f in files]
    got = cli_json(capsys, "hierarchies")
    assert [h["name"] for h in got] == [d["name"] for d in docs] == \
        ["cpu-like", "h100-like", "sutro-tiers"]
    for h, doc in zip(got, docs):
        assert h["description"] == doc["description"]
        want = expected_levels(doc)
        assert len(h["levels"]) == len(want)
        for lv, w in zip(h["levels"], want):
            assert {k: lv[k] for k in w} == w


# ----------------------------------------------------------------------------- graph --set

def test_graph_set_changes_the_printed_shapes(capsys):
    xor = ROOT / "programs/xor.sir"
    default = cli(capsys, "graph", xor)
    changed = cli(capsys, "graph", xor, "--set", "hidden=5", "lr=0.25")
    assert "config hidden = 8, lr = 0.1" in default and "param W1: f32[8,2]" in default
    assert "config hidden = 5, lr = 0.25" in changed
    for line in ("param W1: f32[5,2]", "param b1: f32[5]", "param w2: f32[5]",
                 "h_pre: f32[4,5] =", "dh_pre: f32[4,5] =", "dW1: f32[5,2] =",
                 "db1: f32[5] ="):
        assert line in changed, line
    assert "f32[8" not in changed and "f32[4,8]" not in changed


# ----------------------------------------------------------------------------- extrapolation

def test_extrapolated_energy_is_energy_per_traced_step_times_steps(capsys, program):
    """SMALL's steps make the same accesses; after step 0 (which follows the parameters' first
    writes) they cost the same, E. Tracing the first k of N steps gives T_k = T_1 + (k-1) E and
    the extrapolation N T_k / k, which misses the exact total T_N = T_1 + (N-1) E by
    (N/k - 1)(T_1 - E)."""
    path = program(SMALL)
    runs = {k: cli_json(capsys, "run", path, "--trace-steps", k, "--no-eval")
            for k in ("1", "2", "3", "all")}
    total = {k: r["energy_fj"]["total"] for k, r in runs.items()}
    n = runs["all"]["steps"]
    step = total["2"] - total["1"]
    assert n == 12 and total["3"] - total["2"] == pytest.approx(step, rel=1e-12)
    assert total["all"] == pytest.approx(total["1"] + (n - 1) * step, rel=1e-12)
    for k in (1, 2, 3):
        got = runs[str(k)]["traced"]["extrapolated_total_energy_fj"]
        assert got == pytest.approx(n * (total["1"] + (k - 1) * step) / k, rel=1e-12)
        assert got - total["all"] == pytest.approx((n / k - 1) * (total["1"] - step), rel=1e-9)
        assert runs[str(k)]["traced"]["energy_per_step_fj"] == pytest.approx(total[str(k)] / k)
        assert not runs[str(k)]["traced"]["all_steps"]
    assert runs["all"]["traced"]["all_steps"]
    assert runs["all"]["traced"]["extrapolated_total_energy_fj"] == pytest.approx(total["all"])
    text = cli(capsys, "run", path, "--trace-steps", "2")
    extrapolated = runs["2"]["traced"]["extrapolated_total_energy_fj"]
    assert (f"whole run, NOT EXACT, extrapolated from the sample: {fmt_energy(extrapolated)}"
            in text)
    assert "NOT EXACT" not in cli(capsys, "run", path)


# ----------------------------------------------------------------------------- the README

def readme_command() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("sutro-sim simulate examples/"))
    assert line == ("sutro-sim simulate examples/seed_mlp_step_fused.npz --hierarchy cpu-like "
                    "--energy modern-5nm-hbm3")
    return line.split()[1:]


def test_readme_simulate_command_agrees_with_the_python_api(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)                             # the README runs from the repository
    argv = readme_command()
    text = cli(capsys, *argv)
    d = cli_json(capsys, *argv)
    api = simulate(load("examples/seed_mlp_step_fused.npz"), load_hierarchy("cpu-like"),
                   "modern-5nm-hbm3").to_dict()
    for key in ("wall_s",):
        d.pop(key), api.pop(key)
    assert d.pop("schema_version") == 1
    assert d == api
    assert f"accesses   {api['accesses']['reads'] + api['accesses']['writes']:,}: " \
           f"{api['accesses']['reads']:,} reads" in text
    assert f"ARD {api['reuse']['ard']:,.1f} elements" in text
    assert f"energy     {fmt_energy(api['energy_fj']['total'])} total" in text
    for lv in api["levels"][:-1]:
        row = next(x for x in text.splitlines() if x.startswith(lv["name"] + " "))
        assert f" {lv['hits']:,} " in row and f" {lv['misses']:,} " in row, row
    assert "hierarchy  cpu-like    energy preset  modern-5nm-hbm3" in text


def test_bytedmd_keeps_only_the_declared_outputs_live(capsys, tmp_path):
    """A temporary written and read early, last in the buffer table: dead after its read, so
    the later reads of a and b are shallower than if it stayed on the stack."""
    b = TraceBuilder(align=1)
    for n in ("a", "b", "c", "tmp"):
        b.buffer(n, 1, dtype="u8")
    steps = [("a", "b", "tmp"), ("tmp", "c", "c"), ("a", "b", "c")]
    for k, (x, y, out) in enumerate(steps):
        b.read(x, 0, instr=k)
        b.read(y, 0, instr=k)
        b.write(out, 0, instr=k)
    trace = b.build()
    path = save(trace, tmp_path, "t.npz")
    d = cli_json(capsys, "simulate", path, "--cost-models")
    assert d["bytedmd"]["cost"] == bytedmd(trace)


def test_the_report_and_json_keep_each_passs_options(capsys):
    """A pipeline step's options are part of what ran: the header and the JSON give each step
    as written, and it parses back to the same pipeline (they were dropped before)."""
    from sutro_ir.passes import parse_pipeline
    pipeline = "layer-local-update{approximate=true},recompute{policy=sqrt},fuse"
    assert main(["run", str(ROOT / "programs/xor.sir"), "--passes", pipeline, "--json"]) == 0
    passes = json.loads(capsys.readouterr().out)["passes"]
    assert passes == ["layer-local-update{approximate=true}", "recompute{policy=sqrt}", "fuse"]
    assert parse_pipeline(",".join(passes)) == parse_pipeline(pipeline)
    assert main(["run", str(ROOT / "programs/xor.sir"), "--passes", pipeline]) == 0
    assert "passes layer-local-update{approximate=true}, recompute{policy=sqrt}, fuse" in \
        capsys.readouterr().out.splitlines()[0]


def test_options_may_come_before_the_program(capsys):
    """`--set` takes every word after it; a program written after it is still the program."""
    xor = str(ROOT / "programs/xor.sir")
    assert main(["run", "--set", "epochs=1", "hidden=2", xor, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["program"], out["config"]["epochs"], out["config"]["hidden"]) == (xor, 1, 2)
    assert main(["graph", "--set", "epochs=1", xor]) == 0
    assert "epochs = 1" in capsys.readouterr().out
    for argv in (["run"], ["run", "--set", "a=1"], ["run", "--set", "a", "b"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "the program is required" in capsys.readouterr().err


def test_every_plot_says_what_it_is_of(tmp_path, monkeypatch, capsys):
    """Each figure of run --plot and compare --plot carries the program, the hierarchy, the
    energy preset and the traced steps above it."""
    import matplotlib.figure
    titles = []
    real = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda fig, text, **kw: titles.append(text) or real(fig, text, **kw))
    xor = str(ROOT / "programs/xor.sir")
    assert main(["run", xor, "--hierarchy", "cpu-like", "--trace-steps", "3",
                 "--plot", str(tmp_path / "run")]) == 0
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert len(titles) == len(written) >= 4
    assert set(titles) == {"xor.sir  |  hierarchy cpu-like  |  energy dally-2020  |  steps 0-2"}
    titles.clear()
    assert main(["compare", xor, "-p", "fuse", "--trace-steps", "2",
                 "--plot", str(tmp_path / "cmp")]) == 0
    assert titles and set(titles) == {
        "xor.sir  |  hierarchy sutro-tiers  |  energy dally-2020  |  steps 0-1"}
    capsys.readouterr()


def test_compare_plots_tell_identical_rows_apart_and_show_capacities():
    """Two identical pipelines: their CDF curves get different line styles, the level
    capacities are drawn as in the single-run CDF, and each energy bar is labelled with its
    total."""
    import matplotlib.pyplot as plt
    from simulator import plots
    from sutro_sim.compare import compare
    c = compare(str(ROOT / "programs/xor.sir"), ["", "dce"], trace_steps="2")
    results = [(row.label, row.result.sim) for row in c.rows]
    fig, ax = plt.subplots()
    plots._cdf_overlay(results, ax)
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(curves) == 2 and curves[0].get_linestyle() != curves[1].get_linestyle()
    levels = results[0][1].levels
    assert len(ax.get_lines()) - len(curves) == len(levels) - 1       # capacity lines
    fig2, ax2 = plt.subplots()
    plots._energy_bars(results, ax2)
    assert [t.get_text() for t in ax2.texts] == [fmt_energy(r.energy.total) for _, r in results]
    plt.close(fig)
    plt.close(fig2)
