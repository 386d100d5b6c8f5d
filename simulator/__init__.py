"""sutro-sim's simulator: access traces in, reuse distances, cache behaviour and energy out.

It never imports `sutro_ir`: the trace (simulator.trace) is the only contract with producers.
"""

from .errors import SimError
from .trace import Buffer, Chunk, Kernel, Trace, TraceBuilder, load, make_chunk, save

__all__ = ["SimError", "Buffer", "Chunk", "Kernel", "Trace", "TraceBuilder", "load", "make_chunk",
           "save"]
