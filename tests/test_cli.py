"""The command line: results, the JSON contract, plots, and exit status 2 for user mistakes."""

import json
from pathlib import Path

import pytest

from sutro_sim.cli import main

ROOT = Path(__file__).parent.parent
SEED_STEP = str(ROOT / "examples" / "seed_mlp_step.npz")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_json_follows_the_contract(capsys):
    code, out, err = run(capsys, "simulate", SEED_STEP, "--hierarchy", "cpu-like", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert set(d["accesses"]) == {"reads", "writes", "read_bytes", "write_bytes"}
    assert d["accesses"]["reads"] == 19_013 and d["accesses"]["writes"] == 15_009
    assert {"ard", "ard_bytes", "cold_reads", "histogram"} <= set(d["reuse"])
    assert round(d["reuse"]["ard"]) == 5424  # reference/cost-models.md, element replay
    assert [lv["name"] for lv in d["levels"]] == ["L1", "L2", "L3", "DRAM"]
    for lv in d["levels"]:
        assert {"name", "capacity", "hits", "misses", "hit_rate"} <= set(lv)
    e = d["energy_fj"]
    assert {"total", "by_level", "arithmetic", "wire"} <= set(e)
    assert e["total"] == pytest.approx(sum(e["by_level"].values()) + e["arithmetic"])
    assert {b["name"] for b in d["buffers"]} >= {"W1", "dW2"}
    assert {"name", "bytes", "reads", "ard"} <= set(d["buffers"][0])


def test_simulate_table_and_plots(capsys, tmp_path):
    code, out, _ = run(capsys, "simulate", SEED_STEP, "--plot", str(tmp_path / "plots"))
    assert code == 0
    assert "ARD 5,424.2 elements" in out and "registers" in out and "dW2" in out
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["energy_by_buffer.png", "energy_by_level.png", "reuse_cdf.png",
                    "reuse_histogram.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_cost_models_on_the_seed_step(capsys):
    code, out, _ = run(capsys, "simulate", SEED_STEP, "--cost-models", "--json")
    m = json.loads(out)["memtracker"]
    assert round(m["per_read_ard_elements"]) == 9716 and round(m["per_element_ard_elements"]) == 10640


@pytest.mark.parametrize("argv, message", [
    (["simulate", "nope.npz"], "nope.npz: error: no such trace file"),
    (["simulate", SEED_STEP, "--hierarchy", "nope"],
     "nope: error: no hierarchy preset named 'nope' (presets: cpu-like, h100-like, sutro-tiers)"),
    (["simulate", SEED_STEP, "--energy", "nope"], "unknown energy preset 'nope'"),
    (["simulate", SEED_STEP, "--hierarchy", "h100-like", "--energy", "horowitz-45nm"],
     "--energy: error: level 'HBM3' is off-chip 'hbm'"),
])
def test_user_mistakes_exit_2_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_bad_hierarchy_file_names_file_level_and_field(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[level]]\nname = "L1"\ncapacity = -64\nline = 64\n'
                   '[memory]\nname = "DRAM"\noffchip = "dram"\n')
    code, _, err = run(capsys, "simulate", SEED_STEP, "--hierarchy", str(bad))
    assert code == 2
    assert str(bad) in err and "'L1'" in err and "capacity" in err


def test_listings(capsys):
    code, out, _ = run(capsys, "hierarchies")
    assert code == 0 and all(n in out for n in ("sutro-tiers", "cpu-like", "h100-like"))
    code, out, _ = run(capsys, "energies", "--json")
    names = [p["name"] for p in json.loads(out)]
    assert names == ["dally-2020", "dally-2022", "horowitz-45nm", "modern-5nm-hbm3"]
