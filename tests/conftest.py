"""What every test module shares: the `snapshot` marker, golden files, the hypothesis profile.

A *snapshot* test compares our output with a stored copy of our own output (a golden IR file,
a table or figure quoted in README or docs). It catches an unintended change, but a regenerated
file would accept any bug, so no behaviour may have a snapshot as its only guard: the mutation
check (benchmarks/mutation.py) runs the suite with `-m "not snapshot"`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

# CI and the mutation check must see the same examples every run: derandomized, no deadline
# (numba compiles on first use), no health check on generation time (a loaded 2-core machine
# must not fail a test for being slow), shrinking kept
settings.register_profile("sutro", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
# the mutation check only needs to know that a test fails, not the smallest failing example
settings.register_profile("mutation", settings.get_profile("sutro"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("SUTRO_HYPOTHESIS_PROFILE", "sutro"))


def pytest_configure(config):
    # every run records into the results database: the suite's records go to a scratch file,
    # never into the working directory (tests of the default location set their own)
    os.environ["SUTRO_SIM_DB"] = os.path.join(tempfile.mkdtemp(prefix="sutro-test-db-"),
                                              "results.db")
    config.addinivalue_line("markers", "snapshot: compares with a stored copy of our own output "
                                       "(golden file, README or docs text)")


def check_golden(path: Path, text: str) -> None:
    """`text` must equal the golden file. With UPDATE_GOLDEN=1 the file is rewritten and the
    test fails, so a rewrite is never mistaken for a pass: review the diff, rerun without it."""
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
        pytest.fail(f"{path.name} rewritten (UPDATE_GOLDEN is set): review the diff with git, "
                    "then rerun without UPDATE_GOLDEN")
    assert text == path.read_text(), f"{path.name} differs; if the change is intended, rerun " \
                                     "with UPDATE_GOLDEN=1 and review the diff"
