"""Names a person can read, and `run --by-line`: every buffer named from its source (the name,
or a temporary's expression and line), energy, accesses and ARD per source line, and the
lines' sums equal to the run's totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sutro_ir.syntax import source_lines
from sutro_sim.cli import main
from sutro_sim.lines import by_line
from sutro_sim.run import run

ROOT = Path(__file__).resolve().parent.parent


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


CASES = [   # (program, overrides, --trace-steps, pipeline)
    ("programs/xor.sir", {}, None, ""),
    ("programs/xor.sir", {}, None, "fuse"),
    ("programs/mlp_backprop.sir", {"hidden": "32", "epochs": "2"}, None, ""),
    ("programs/mlp_backprop.sir", {"hidden": "32", "epochs": "2"}, None,
     "recompute{policy=all},fuse"),
    ("programs/mlp_autodiff.sir", {}, "3", ""),
    ("programs/char_attention.sir", {"length": "1200"}, "2", "fuse"),
    ("programs/sparse_parity_gf2.sir", {}, None, ""),
    ("programs/matmul.sir", {}, None, ""),
]


@pytest.mark.parametrize("program,overrides,steps,pipeline", CASES)
def test_the_lines_share_out_every_figure_of_the_run(program, overrides, steps, pipeline):
    path = str(ROOT / program)
    r = run(path, overrides, passes=pipeline, trace_steps=steps)
    d = by_line(r.sim, Path(path).read_text())
    assert d["attributed_fraction"] >= 0.99           # the bar
    lines = d["lines"]
    sim = r.sim
    named = [b for b in sim.reuse.buffers if sim.source(b.name)]
    assert sum(x["reads"] for x in lines) == sum(b.reads for b in named)
    assert sum(x["writes"] for x in lines) == sum(b.writes for b in named)
    assert sum(x["energy_fj"] for x in lines) + d["unattributed_fj"] == \
        pytest.approx(sim.energy.total, rel=1e-12)
    assert sum(x["arithmetic_fj"] for x in lines) == pytest.approx(sim.energy.arithmetic,
                                                                    rel=1e-12)
    assert {b for x in lines for b in x["buffers"]} == {b.name for b in named}
    text = source_lines(Path(path).read_text())
    for x in lines:
        assert x["text"] == text[x["line"] - 1]
        ards = [(b.ard, b.reads - b.cold_reads) for b in named
                if b.name in x["buffers"] and b.min is not None]
        if sum(n for _, n in ards):
            assert x["ard"] == pytest.approx(sum(a * n for a, n in ards) / sum(n for _, n in ards))


def test_a_buffer_is_named_by_the_line_that_first_writes_it():
    """Independent of the code: the lines and expressions as the file spells them."""
    path = ROOT / "programs/xor.sir"
    text = path.read_text().splitlines()
    r = run(str(path))             # every step, and the evaluations
    src = {b.name: r.sim.source(b.name) for b in r.sim.reuse.buffers}
    line_of = (lambda start: next(i for i, t in enumerate(text, 1) if t.strip().startswith(start)))
    assert src["W1"] == {"line": line_of("param W1"), "text": "W1"}   # not its update's line
    assert src["h"] == {"line": line_of("h = relu"), "text": "h"}
    assert src["x"]["line"] == line_of("train (x, y)")
    temps = {v["text"]: (k, v["line"]) for k, v in src.items() if k.startswith("%")}
    for expr in ("x @ W1.T", "lr * dW1", "h_pre > 0", "outer(dout, w2)"):
        name, line = temps[expr]
        assert expr in text[line - 1], (expr, line)
    evals = {k: v for k, v in src.items() if k.startswith("eval.%")}
    assert evals and all(v["line"] == line_of("predict") for v in evals.values())
    assert src["eval.x"]["line"] == line_of("eval (x, y)")


def test_by_line_prints_the_program_with_its_figures(capsys):
    path = str(ROOT / "programs/xor.sir")
    code, out, err = cli(capsys, "run", path, "--by-line", "--no-db")
    assert code == 0, err
    table = out.split("by line    ")[1]
    assert "100.00% of" in table.splitlines()[0]
    rows = table.splitlines()[4:]
    program = Path(path).read_text().splitlines()
    assert len(rows) == len(program)
    for number, (row, line) in enumerate(zip(rows, program), start=1):
        assert row.split()[0] == str(number) and line.rstrip()[:60] in row
    update = next(row for row in rows if row.rstrip().endswith("W1 -= lr * dW1"))
    assert "%" in update            # the line of `lr * dW1` is charged
    comment = next(row for row in rows if row.rstrip().endswith("{") and "train" in row)
    assert comment
    code, out, err = cli(capsys, "run", path, "--by-line", "--json", "--no-db")
    d = json.loads(out)["by_line"]
    assert d["attributed_fraction"] == 1.0 and d["lines"][0]["line"] == 6
    code, out, err = cli(capsys, "run", path, "--json", "--no-db")
    assert "by_line" not in json.loads(out)


def test_the_buffer_table_names_temporaries_by_their_expression(capsys):
    code, out, _ = cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--no-db")
    assert code == 0
    table = out.split("\nbuffer ")[1]
    assert "line" in table.splitlines()[0]
    assert any(r.startswith("%") and " = lr * dW1 " in r for r in table.splitlines())
    d = json.loads(cli(capsys, "run", str(ROOT / "programs/xor.sir"), "--no-db", "--json")[1])
    by_name = {b["name"]: b["source"] for b in d["buffers"]}
    assert by_name["W1"]["line"] == 6 and any(
        s and s["text"] == "lr * dW1" for n, s in by_name.items() if n.startswith("%"))


@pytest.mark.parametrize("program", sorted(p.name for p in (ROOT / "programs").glob("*.sir")))
def test_every_program_attributes_at_least_99_percent_to_lines(program):
    """docs/experiments.md: every program in programs/."""
    path = ROOT / "programs" / program
    r = run(str(path), trace_steps="2")
    assert by_line(r.sim, path.read_text())["attributed_fraction"] >= 0.99
