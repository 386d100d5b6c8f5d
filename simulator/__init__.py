"""sutro-sim's simulator: access traces in, reuse distances, cache behaviour and energy out.

It never imports `sutro_ir`: the trace (simulator.trace) is the only contract with producers.
"""

import os

# the fused cache kernel's two threads meet once a chunk: between chunks, OpenMP's idle worker
# should sleep, not spin (spinning doubles the CPU time of a one-thread stretch). Set before numba
# loads its OpenMP layer; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import SimError  # noqa: E402
from .trace import Buffer, Chunk, Kernel, Trace, TraceBuilder, load, make_chunk, save  # noqa: E402

__all__ = ["SimError", "Buffer", "Chunk", "Kernel", "Trace", "TraceBuilder", "load", "make_chunk",
           "save"]
