"""The example traces in examples/ are what examples/make_traces.py makes."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator import load

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.snapshot
@pytest.mark.parametrize("name, maker, args", [("seed_mlp_step.npz", "seed_step", ("standard",)),
                                               ("seed_mlp_step_fused.npz", "seed_step", ("fused",)),
                                               ("matvec.npz", "matvec", ())])
def test_committed_examples_are_current(name, maker, args):
    sys.path.insert(0, str(EXAMPLES))
    try:
        make = runpy.run_path(str(EXAMPLES / "make_traces.py"))
    finally:
        sys.path.pop(0)
    fresh, committed = make[maker](*args), load(EXAMPLES / name)
    assert fresh.buffers == committed.buffers and fresh.kernels == committed.kernels
    for a, b in zip(fresh, committed):
        assert all(np.array_equal(col, b.columns()[k]) for k, col in a.columns().items())
