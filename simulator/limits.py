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


def gib(nbytes: int) -> str:
    """`12.3 GiB` for any size, even one past the float range (a shape of 2^4000)."""
    if nbytes < 1 << 1000:
        size = nbytes / 2**30
        return f"{size:,.1f} GiB" if size < 1e6 else f"{size:.3g} GiB"
    return f"more than 2^{nbytes.bit_length() - 1} bytes"


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup: v2 (`memory.max` of its own group, as
    /proc/self/cgroup names it) or v1 (`memory.limit_in_bytes`); None when there is none."""
    candidates = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    candidates.append(f"/sys/fs/cgroup{path}/memory.max")
                elif "memory" in controllers.split(","):
                    candidates.append(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
    except (OSError, ValueError):
        pass
    candidates += ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    for name in candidates:
        try:
            with open(name) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:    # v1 says "no limit" with a huge number
            return int(text)
        if text == "max" or text.isdigit():
            return None
    return None


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
    return size, phrase.format(gib(size))


def allowance() -> tuple[int, str]:
    """(MEMORY_FRACTION of memory(), a phrase for messages: '80% of this machine's 23.5 GiB
    of memory')."""
    size, phrase = memory()
    return int(MEMORY_FRACTION * size), f"{MEMORY_FRACTION:.0%} of {phrase}"
