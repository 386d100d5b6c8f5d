"""How much of the machine a job may use: one definition for the compiler (buffers, datasets),
the run (a step's trace) and the simulator (cache state, saved proof states)."""

from __future__ import annotations

import os

MEMORY_FRACTION = 0.8      # refuse work whose memory would pass this share of the machine's RAM


def physical_memory() -> int:
    """Bytes of RAM (16 GiB if the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30
