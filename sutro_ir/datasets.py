"""Built-in dataset generators: xor, parity, sparse_parity. Seeded, so a run is reproducible.

Each example is a vector x of n inputs and a scalar label y in {-1, +1}: +1 when an odd number
of the relevant bits are 1 (the parity rule), -1 otherwise. Encodings of a bit:
- "pm1": bit 1 -> +1, bit 0 -> -1;
- "signed-random" (the seed's task): bit 1 -> a random positive number, bit 0 -> a random
  negative number, magnitudes uniform in [0.5, 1.5).
For sparse_parity the k relevant bits are drawn from the n inputs with the seed; parity and xor
use every bit (xor is parity with n = 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import Loc, SirError

ENCODINGS = ("signed-random", "pm1")
GENERATORS = {
    "sparse_parity": {"n": None, "k": None, "train": None, "test": None, "seed": 0,
                      "encoding": "signed-random"},
    "parity": {"n": None, "train": None, "test": None, "seed": 0, "encoding": "pm1"},
    "xor": {"train": None, "test": None, "seed": 0, "encoding": "pm1"},
}
MAGNITUDE = (0.5, 1.5)


@dataclass(frozen=True)
class DataInfo:
    names: tuple[str, str]
    sizes: dict
    x_dtype: str
    x_shape: tuple
    y_dtype: str
    y_shape: tuple


def check(generator: str, kwargs: dict, loc: Loc) -> dict:
    """Every argument given and of the right kind; returns them with defaults filled in."""
    if generator not in GENERATORS:
        raise SirError(f"unknown dataset generator '{generator}' (known: "
                       f"{', '.join(GENERATORS)})", loc)
    spec = GENERATORS[generator]
    for key in kwargs:
        if key not in spec:
            raise SirError(f"{generator}() takes {', '.join(spec)}; got '{key}'", loc)
    full = {k: kwargs.get(k, default) for k, default in spec.items()}
    missing = [k for k, v in full.items() if v is None]
    if missing:
        raise SirError(f"{generator}() needs {', '.join(f'{k}=...' for k in missing)}", loc)
    for key in ("n", "k", "train", "test", "seed"):
        if key in full and (not isinstance(full[key], int) or isinstance(full[key], bool)
                            or full[key] < (0 if key == "seed" else 1)):
            raise SirError(f"{generator}(): '{key}' must be a "
                           f"{'non-negative' if key == 'seed' else 'positive'} integer, "
                           f"got {full[key]!r}", loc)
    if full["encoding"] not in ENCODINGS:
        raise SirError(f"{generator}(): encoding must be one of {', '.join(ENCODINGS)}, got "
                       f"{full['encoding']!r}", loc)
    if generator == "sparse_parity" and full["k"] > full["n"]:
        raise SirError(f"sparse_parity(): k={full['k']} relevant bits out of n={full['n']} "
                       "inputs is impossible", loc)
    return full


def n_inputs(data) -> int:
    kwargs = dict(data.kwargs)
    return 2 if data.generator == "xor" else kwargs["n"]


def describe(data) -> DataInfo:
    kwargs = dict(data.kwargs)
    sizes = {data.names[0]: kwargs["train"], data.names[1]: kwargs["test"]}
    return DataInfo(data.names, sizes, "f32", (n_inputs(data),), "f32", ())


def nbytes(data) -> int:
    kwargs = dict(data.kwargs)
    return (kwargs["train"] + kwargs["test"]) * (n_inputs(data) + 1) * 4


def relevant_bits(data) -> np.ndarray:
    kwargs = dict(data.kwargs)
    n = n_inputs(data)
    if data.generator != "sparse_parity":
        return np.arange(n)
    rng = np.random.default_rng([kwargs["seed"], 1])
    return np.sort(rng.choice(n, kwargs["k"], replace=False))


def generate(data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) as float32 arrays."""
    kwargs = dict(data.kwargs)
    rng = np.random.default_rng([kwargs["seed"], 2])
    n, idx = n_inputs(data), relevant_bits(data)
    out = []
    for m in (kwargs["train"], kwargs["test"]):
        bits = rng.integers(0, 2, size=(m, n))
        y = np.where(bits[:, idx].sum(axis=1) % 2 == 1, 1.0, -1.0).astype(np.float32)
        out += [_encode(bits, kwargs["encoding"], rng), y]
    return tuple(out)


def _encode(bits: np.ndarray, encoding: str, rng) -> np.ndarray:
    sign = np.where(bits == 1, 1.0, -1.0)
    if encoding == "pm1":
        return sign.astype(np.float32)
    return (sign * rng.uniform(*MAGNITUDE, size=bits.shape)).astype(np.float32)
