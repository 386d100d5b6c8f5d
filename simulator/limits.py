"""How much memory a job may use: one definition for the compiler (buffers, datasets), the run
(a step's trace) and the simulator (cache state, saved proof states, trace chunks).

The memory is the machine's RAM, or less when the process is held to less: a cgroup's
`memory.max` (a container) or an address-space limit (`ulimit -v`, of which what the process has
mapped already is spent). Work whose estimate passes MEMORY_FRACTION of it is refused before it
starts, with the estimate in the message."""

from __future__ import annotations

import os
import resource

MEMORY_FRACTION = 0.8      # refuse work whose memory would pass this share of the memory


def physical_memory() -> int:
    """Bytes of RAM (16 GiB if the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def _cgroup_limit() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _address_space_left() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return max(soft - mapped, 0)


def memory() -> tuple[int, str]:
    """(bytes this process may use, how to say which limit that is)."""
    found = [(physical_memory(), "this machine's {} of memory")]
    cgroup = _cgroup_limit()
    if cgroup is not None:
        found.append((cgroup, "the {} its cgroup (memory.max) allows"))
    left = _address_space_left()
    if left is not None:
        found.append((left, "the {} left under this process's address-space limit (ulimit -v)"))
    size, phrase = min(found, key=lambda f: f[0])
    return size, phrase.format(f"{size / 2**30:,.1f} GiB")


def allowance() -> tuple[int, str]:
    """(MEMORY_FRACTION of memory(), a phrase for messages: '80% of this machine's 23.5 GiB
    of memory')."""
    size, phrase = memory()
    return int(MEMORY_FRACTION * size), f"{MEMORY_FRACTION:.0%} of {phrase}"
