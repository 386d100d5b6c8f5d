"""The mutation check's list stays runnable: every mutant still finds its text exactly once,
still compiles, and still changes something, so benchmarks/mutation.py can be rerun at any time
(running it takes tens of minutes, so CI checks the list, not the outcome)."""

from __future__ import annotations

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
