"""`liveness-layout`: a memory layout that reuses the addresses of dead buffers.

The pass only marks the graph; the schedule lays it out (schedule.liveness_layout). Parameters
and the example keep their own addresses; a step value lives from the kernel that stores it to
the last kernel that reads it, and after that its bytes may go to a value a later kernel stores.
Only addresses change, so results are bit-identical; cache behaviour and the address cost change
with them. Trace chunks carry each access's buffer id, because two buffers may now share bytes.
"""

from __future__ import annotations

import dataclasses

from ..graph import Graph
from . import register


@register("liveness-layout", exact=True)
def liveness_layout_pass(graph: Graph) -> Graph:
    """Lays out step values so that a value may reuse the bytes of one whose last read is over.
    Preserves: every value, bit for bit.
    Changes: addresses, so cache hits, the address cost and the footprint."""
    return dataclasses.replace(graph, layout="liveness")
