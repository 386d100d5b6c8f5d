"""Benchmark traces, made chunk by chunk on demand (never whole in memory).

- passes: repeated sequential passes of 8-byte loads over three arrays sized for the L1, L2 and
  L3 of `cpu-like` (16 KiB, 512 KiB, 8 MiB, 4 KiB apart): each array is swept twice in a row,
  then the next; the three-array round repeats until 10 million accesses (the second sweep of
  an array hits in the level it was sized for, the first partly misses);
- random: uniform random 8-byte-aligned 8-byte loads over 32 MiB, seed 0;
- wide random: 8-byte loads at uniform random addresses anywhere below 2^63 (no buffer table),
  made chunk by chunk from a seeded generator: nearly every access is a new address.
- mlp: the seed's MLP step (standard backprop, reference/cost-models.md section 2) scaled to a
  20-bit input and 1,000 hidden units, element by element, repeated for as many steps as asked:
  the shape of a fully traced 20-bit sparse-parity training run.
"""

from __future__ import annotations

import numpy as np

from simulator.trace import Buffer, Chunk, Trace, TraceBuilder, make_chunk

CHUNK = 1 << 20
ARRAYS = {"A": 16 << 10, "B": 512 << 10, "C": 8 << 20}


def passes_addresses(n: int = 10_000_000) -> np.ndarray:
    base, sweeps = 0, []
    for nbytes in ARRAYS.values():
        sweep = base + np.arange(0, nbytes, 8, dtype=np.int64)
        sweeps += [sweep, sweep]
        base += nbytes + 4096
    return np.resize(np.concatenate(sweeps), n)


def random_addresses(n: int = 10_000_000, span: int = 32 << 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, span // 8, n, dtype=np.int64) * 8


def load_trace(addresses: np.ndarray, buffers: list[Buffer]) -> Trace:
    """A trace of 8-byte loads at the given addresses, in chunks of 2^20."""
    n_chunks = -(-len(addresses) // CHUNK)

    def chunk(i: int) -> Chunk:
        addr = addresses[i * CHUNK:(i + 1) * CHUNK]
        return make_chunk(0, addr, 8, False, kernel=-1)

    return Trace(buffers, [], n_chunks, chunk, {"benchmark": True})


def passes_trace(n: int = 10_000_000) -> Trace:
    base, buffers = 0, []
    for name, nbytes in ARRAYS.items():
        buffers.append(Buffer(name, base, nbytes, "f64", "data"))
        base += nbytes + 4096
    return load_trace(passes_addresses(n), buffers)


def random_trace(n: int = 10_000_000) -> Trace:
    return load_trace(random_addresses(n), [Buffer("M", 0, 32 << 20, "f64", "data")])


def wide_random_trace(n: int = 10_000_000, seed: int = 0) -> Trace:
    n_chunks = -(-n // CHUNK)

    def chunk(i: int) -> Chunk:
        rng = np.random.default_rng([seed, i])
        size = min(CHUNK, n - i * CHUNK)
        return make_chunk(0, rng.integers(0, 1 << 60, size, dtype=np.int64) * 8, 8, False,
                          kernel=-1)

    return Trace([], [], n_chunks, chunk, {"benchmark": True})


MLP_STEP = [  # (kind, buffer, elements) with n = 20 inputs, 1,000 hidden units
    ("R", "x", 20), ("R", "W1", 20_000), ("R", "b1", 1000), ("W", "h_pre", 1000),
    ("R", "h_pre", 1000), ("W", "h", 1000), ("R", "h", 1000), ("R", "W2", 1000), ("R", "b2", 1),
    ("W", "out", 1), ("R", "out", 1), ("R", "y", 1), ("W", "dout", 1), ("R", "dout", 1),
    ("R", "h", 1000), ("W", "dW2", 1000), ("W", "db2", 1), ("R", "W2", 1000), ("R", "dout", 1),
    ("W", "dh", 1000), ("R", "dh", 1000), ("R", "h_pre", 1000), ("W", "dh_pre", 1000),
    ("R", "dh_pre", 1000), ("R", "x", 20), ("R", "W1", 20_000), ("W", "W1", 20_000),
    ("R", "dh_pre", 1000), ("R", "b1", 1000), ("W", "b1", 1000), ("R", "dW2", 1000),
    ("R", "W2", 1000), ("W", "W2", 1000), ("R", "db2", 1), ("R", "b2", 1), ("W", "b2", 1)]


def mlp_trace(n_accesses: int) -> Trace:
    """The scaled seed MLP step repeated until n_accesses; each chunk is one step."""
    b = TraceBuilder()
    sizes: dict[str, int] = {}
    for _, name, n in MLP_STEP:
        sizes[name] = max(sizes.get(name, 0), n)
    ids = {name: b.buffer(name, n) for name, n in sizes.items()}
    for i, (kind, name, _) in enumerate(MLP_STEP):
        k = b.kernel(f"op{i}")
        b.access(ids[name], None, kind == "W", kernel=k)
    (step,) = list(b.build())
    n_steps = -(-n_accesses // len(step))

    def chunk(i: int) -> Chunk:
        return Chunk(i, step.addr, step.nbytes, step.is_write, step.kernel, None, step.buffer)

    return Trace(b.buffers, b.kernels, n_steps, chunk, {"steps": n_steps})
