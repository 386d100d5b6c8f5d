"""The README is a contract: its quickstart output, its commands and its example are tested."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def quickstart_commands() -> list[str]:
    block = README.split("## Quickstart")[1].split("```sh\n")[1].split("```")[0]
    return block.strip().splitlines()


def quickstart_output() -> str:
    return README.split("<!-- quickstart-output -->\n```\n")[1].split("```")[0]


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = quickstart_commands()
    assert len(commands) == 2
    for command in commands:
        assert command in ci.splitlines()


def without_times(text: str) -> str:
    """Wall-clock seconds are the only thing allowed to differ between runs."""
    return re.sub(r"\d+\.\d\d s\b", "X s", text)


@pytest.mark.snapshot
def test_quickstart_output_is_what_the_command_prints():
    command = quickstart_commands()[0].split("&& .venv/bin/")[-1].split()
    assert command[:2] == ["sutro-sim", "run"]
    out = subprocess.run([sys.executable, "-m", "sutro_sim", *command[1:]], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert without_times(out) == without_times(quickstart_output())


@pytest.mark.snapshot
def test_prose_numbers_come_from_the_output():
    prose = README.split("<!-- quickstart-output -->")[1].split("```")[2].split("##")[0]
    for number in re.findall(r"\d[\d,]*\.?\d*", prose):
        assert number.rstrip(".") in quickstart_output(), number


def test_python_example_runs():
    code = README.split("## From Python")[1].split("```python\n")[1].split("```")[0]
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert len(out.split()) == 2 + 4  # ARD, energy, four hit rates


def test_the_wheel_ships_every_package():
    """An installed sutro-sim must not miss a subpackage that the editable install hides."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".")
             for top in ("simulator", "sutro_ir", "sutro_sim")
             for p in (ROOT / top).rglob("__init__.py")}
    assert listed == found


def test_the_one_screen_program_compiles_and_learns_something():
    from sutro_ir.compile import compile_program
    from sutro_ir.execute import Executor
    from sutro_ir.schedule import schedule

    text = README.split("## The language in one screen")[1].split("```\n")[1].split("```")[0]
    program = compile_program(text, "readme.sir", {"epochs": "2"})
    assert program.train.graph.has_regions
    result = Executor(program, schedule(program.train.graph),
                      schedule(program.eval.graph).kernels, 42).train()
    assert result.steps == 1000 and result.train_accuracy > 0.5


def test_the_gf2_program_is_as_short_as_the_readme_says():
    lines = (ROOT / "programs/sparse_parity_gf2.sir").read_text().splitlines()
    assert f"GF(2) elimination in {len(lines)} lines" in " ".join(README.split())
