"""The mutation check's list stays runnable: every mutant still finds its text exactly once,
still compiles, and still changes something, so benchmarks/mutation.py can be rerun at any time
(running it takes tens of minutes, so CI checks the list, not the outcome)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from mutants import MUTANTS  # noqa: E402


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_mutant_applies_once_and_compiles(mutant):
    text = (ROOT / mutant.file).read_text()
    assert text.count(mutant.old) == 1, f"{mutant.id}: update its text in benchmarks/mutants.py"
    assert mutant.new != mutant.old
    compile(text.replace(mutant.old, mutant.new), mutant.file, "exec")
    for t in mutant.tests:
        assert (ROOT / t).exists(), f"{mutant.id}: no test file {t}"


def test_the_list_covers_both_packages_with_unique_ids():
    ids = Counter(m.id for m in MUTANTS)
    assert not [i for i, n in ids.items() if n > 1]
    files = Counter(m.file.split("/")[0] for m in MUTANTS)
    assert len(MUTANTS) >= 40 and files["simulator"] >= 15 and files["sutro_ir"] >= 15, files


def test_the_testing_page_quotes_the_list():
    """docs/testing.md gives the list's size, its split and its equivalent mutants, and names
    mutants that must stay in it."""
    page = " ".join((ROOT / "docs/testing.md").read_text().split())
    files = Counter(m.file.split("/")[0] for m in MUTANTS)
    assert (f"The list holds {len(MUTANTS)} mutants: {files['simulator']} in `simulator/`, "
            f"{files['sutro_ir']} in `sutro_ir/` and {files['sutro_sim']} in `sutro_sim/`."
            in page)
    equivalent = sum(bool(m.equivalent) for m in MUTANTS)
    assert f"{['No', 'One', 'Two', 'Three', 'Four'][equivalent]} of them are equivalent" in page
    assert f"all {len(MUTANTS) - equivalent} non-equivalent mutants caught" in page
    ids = {m.id for m in MUTANTS}
    for named in re.findall(r"\| `([a-z0-9-]+)`(?:, `([a-z0-9-]+)`)? \|", page):
        assert set(filter(None, named)) <= ids, named
