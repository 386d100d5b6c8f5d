"""The distance cost models of one trace, side by side (what `--cost-models` prints): ByteDMD,
the address cost (Model 1) and the grid (Model 2), with one set of outputs, argument order and
cell numbering for all three."""

from __future__ import annotations

from typing import Sequence

from .cells import cell_map
from .costmodels import address_cost, bytedmd
from .grid import grid_cost
from .trace import Trace


def distance_models(trace: Trace, outputs: Sequence[str] = (), args: Sequence[str] | None = None,
                    cells: str = "auto", models: Sequence[str] = ("bytedmd", "1", "2")) -> dict:
    """{"bytedmd": ..., "address_cost": ..., "model2": ...} for the models asked (ByteDMD is
    None when the trace has no instruction ids). `outputs` are read once at exit (Model 1) and
    kept live (ByteDMD); `args` orders ByteDMD's initial stack. An unknown buffer name is the
    cost models' own SimError."""
    numbering = cell_map(trace, cells)
    out: dict = {}
    if "bytedmd" in models:
        has_instr = any(c.instr is not None for c in trace)
        out["bytedmd"] = bytedmd(trace, args, outputs).to_dict() if has_instr else None
    if "1" in models:
        out["address_cost"] = dict(address_cost(trace, outputs=outputs, cells=numbering)
                                   .to_dict(), outputs=list(outputs))
    if "2" in models:
        out["model2"] = grid_cost(trace, numbering).to_dict()
    return out
