"""Datasets: the built-in generators xor, parity, sparse_parity (seeded, so a run is
reproducible), and `from_file("data.npz")` for a user's own arrays.

Each generated example is a vector x of n inputs and a label y: the parity of the relevant
bits. Encodings:
- "pm1": bit 1 -> +1, bit 0 -> -1 (f32); label +1 for odd parity, else -1;
- "signed-random" (the seed's task): bit 1 -> a random positive number, bit 0 -> a random
  negative number, magnitudes uniform in [0.5, 1.5) (f32); label +1 or -1 as for pm1;
- "01": the bits themselves, u8 in {0, 1}; label 1 for odd parity, else 0 (u8).
For sparse_parity the k relevant bits are drawn from the n inputs with the seed; parity and xor
use every bit (xor is parity with n = 2). `noise=p` flips each training label with
probability p (seeded); the test labels stay the rule's, so test accuracy measures the rule.

`from_file(path)` reads an .npz with arrays x_train, y_train, x_test, y_test (the path is
relative to the program's folder): x_* of shape [m, ...], y_* of shape [m, ...], one dtype per
key pair, dtypes f32, f16, i32, i8, u8 or bool (float64 is read as f32 and int64 as i32 when
its values fit).
"""

from __future__ import annotations

import functools
import lzma
import math
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from simulator.errors import SimError
from simulator.inputs import check_file, npy_header
from simulator.limits import allowance, gib

from . import chars
from .errors import Loc, SirError

ENCODINGS = ("signed-random", "pm1", "01")
GENERATORS = {
    "sparse_parity": {"n": None, "k": None, "train": None, "test": None, "seed": 0,
                      "encoding": "signed-random", "noise": 0.0},
    "parity": {"n": None, "train": None, "test": None, "seed": 0, "encoding": "pm1",
               "noise": 0.0},
    "xor": {"train": None, "test": None, "seed": 0, "encoding": "pm1", "noise": 0.0},
    "from_file": {"path": None},
    "chars": {"block": None, "vocab": None, "path": "", "length": 20000, "test_fraction": 0.1,
              "seed": 0},
}
MAGNITUDE = (0.5, 1.5)
MAX_BLOCK = 4096                # characters in a chars window
CHARS_BYTES = (2, 4)            # a chars dataset: (block + 2) * 4 bytes a character
FILE_KEYS = ("x_train", "y_train", "x_test", "y_test")
FILE_DTYPES = {"float32": "f32", "float16": "f16", "int32": "i32", "int8": "i8", "uint8": "u8",
               "bool": "bool", "float64": "f32", "int64": "i32"}


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
    if generator == "from_file":
        if not isinstance(full["path"], str) or not full["path"]:
            raise SirError("from_file() takes the path of an .npz file, e.g. "
                           "from_file(\"data.npz\")", loc)
        return full
    if generator == "chars":
        return _check_chars(full, set(kwargs), loc)
    for key in ("n", "k", "train", "test", "seed"):
        if key in full and (not isinstance(full[key], int) or isinstance(full[key], bool)
                            or full[key] < (0 if key == "seed" else 1)):
            raise SirError(f"{generator}(): '{key}' must be a "
                           f"{'non-negative' if key == 'seed' else 'positive'} integer, "
                           f"got {full[key]!r}", loc)
    noise = full["noise"]
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise <= 1:
        raise SirError(f"{generator}(): noise is a probability in [0, 1], got {noise!r}", loc)
    full["noise"] = float(noise)
    if full["encoding"] not in ENCODINGS:
        raise SirError(f"{generator}(): encoding must be one of {', '.join(ENCODINGS)}, got "
                       f"{full['encoding']!r}", loc)
    if generator == "sparse_parity" and full["k"] > full["n"]:
        raise SirError(f"sparse_parity(): k={full['k']} relevant bits out of n={full['n']} "
                       "inputs is impossible", loc)
    return full


def _check_chars(full: dict, given: set, loc: Loc) -> dict:
    for key, low, high in (("block", 1, MAX_BLOCK), ("vocab", 1, 1 << 20),
                           ("length", 2, chars.MAX_LENGTH), ("seed", 0, 2 ** 63 - 1)):
        v = full[key]
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
            raise SirError(f"chars(): '{key}' is an integer from {low:,} to {high:,}, got "
                           f"{v!r}", loc)
    f = full["test_fraction"]
    if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 < f < 1:
        raise SirError(f"chars(): test_fraction is a number between 0 and 1, got {f!r}", loc)
    full["test_fraction"] = float(f)
    if not isinstance(full["path"], str) or "path" in given and not full["path"]:
        raise SirError("chars(): path is the text file's path, e.g. path=\"text.txt\"", loc)
    if full["path"] and "length" in given:
        raise SirError("chars(): length= is the built-in corpus's; a text from path= is read "
                       "whole", loc)
    # only what applies is kept (and printed by `graph`): a text's path, or the corpus's
    # length and seed
    for key in (("length", "seed") if full["path"] else ("path",)):
        del full[key]
    return full


def _folder(data) -> str:
    """The program's folder: a data file's path is relative to it."""
    return os.path.dirname(data.loc.file) if data.loc and data.loc.file else ""


def _chars(data) -> tuple[dict, chars.Text]:
    kwargs = dict(data.kwargs)
    return kwargs, chars.load(kwargs, _folder(data), data.loc)


def baseline(data) -> dict | None:
    """A chars dataset's reference figures (chars.baseline), else None."""
    if data.generator != "chars":
        return None
    return chars.baseline(dict(data.kwargs), _folder(data), data.loc)


def n_inputs(data) -> int:
    kwargs = dict(data.kwargs)
    return 2 if data.generator == "xor" else kwargs["n"]


def describe(data) -> DataInfo:
    kwargs = dict(data.kwargs)
    if data.generator == "from_file":
        xtr, ytr, xte, yte = _read(_path(data), data.loc)
        return DataInfo(data.names, {data.names[0]: len(xtr), data.names[1]: len(xte)},
                        FILE_DTYPES[str(xtr.dtype)], xtr.shape[1:], FILE_DTYPES[str(ytr.dtype)],
                        ytr.shape[1:])
    if data.generator == "chars":
        kwargs, text = _chars(data)
        block = kwargs["block"]
        sizes = {data.names[0]: text.split - block,
                 data.names[1]: len(text.ids) - text.split - block}
        return DataInfo(data.names, sizes, "i32", (block,), "i32", ())
    sizes = {data.names[0]: kwargs["train"], data.names[1]: kwargs["test"]}
    kind = "u8" if kwargs["encoding"] == "01" else "f32"
    return DataInfo(data.names, sizes, kind, (n_inputs(data),), kind, ())


def nbytes(data) -> int:
    if data.generator == "from_file":
        return sum(a.nbytes for a in _read(_path(data), data.loc))
    if data.generator == "chars":        # the windows: block + 1 i32 and the id, a character
        kwargs, text = _chars(data)
        return len(text.ids) * (kwargs["block"] + CHARS_BYTES[0]) * CHARS_BYTES[1]
    kwargs = dict(data.kwargs)
    examples = kwargs["train"] + kwargs["test"]
    return examples * ((n_inputs(data) + 1) * GENERATED_BYTES_PER_BIT + EXAMPLE_BYTES) \
        + BLOCK_BYTES


def relevant_bits(data) -> np.ndarray:
    kwargs = dict(data.kwargs)
    n = n_inputs(data)
    if data.generator != "sparse_parity":
        return np.arange(n)
    rng = np.random.default_rng([kwargs["seed"], 1])
    return np.sort(rng.choice(n, kwargs["k"], replace=False))


def generate(data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), in the dtypes describe() gives."""
    if data.generator == "from_file":
        return _read(_path(data), data.loc)
    if data.generator == "chars":
        kwargs, text = _chars(data)
        return chars.examples(text, kwargs["block"])
    kwargs = dict(data.kwargs)
    rng = np.random.default_rng([kwargs["seed"], 2])
    n, idx = n_inputs(data), relevant_bits(data)
    out = []
    for m in (kwargs["train"], kwargs["test"]):
        bits = _bits(rng, m, n)
        odd = bits[:, idx].sum(axis=1, dtype=np.int64) % 2 == 1
        out += [_encode(bits, kwargs["encoding"], rng), odd]
    if kwargs["noise"]:
        flip = np.random.default_rng([kwargs["seed"], 3]).random(len(out[1])) < kwargs["noise"]
        out[1] = out[1] ^ flip
    kind = np.uint8 if kwargs["encoding"] == "01" else np.float32
    ys = [np.where(odd, 1, 0 if kwargs["encoding"] == "01" else -1).astype(kind)
          for odd in (out[1], out[3])]
    return out[0], ys[0], out[2], ys[1]


BLOCK_ELEMENTS = 1 << 20
"""Examples are drawn and encoded this many bits at a time, so generating a set takes its own
size (4 bytes a bit as f32) plus its int8 bits and one block's float64 temporaries, not whole-array
float64 temporaries. Drawing in blocks gives the same numbers: the generator's stream does not
depend on how the draws are split (tests/test_input_contract.py)."""

GENERATED_BYTES_PER_BIT = 6
EXAMPLE_BYTES = 40          # the parity sum (int64), its remainder and the label temporaries
BLOCK_BYTES = 32 * BLOCK_ELEMENTS
"""What check_memory counts for a generated set: per bit of an example (inputs and label), per
example, and once for a block's float64 temporaries. Measured with tracemalloc (benchmarks/bench_limits.py)
on 10^6 examples of 20 bits: a peak of 5.7 bytes a bit, block included (26.7 before generation
went by blocks, 22.9 for whole arrays alone); tests/test_input_contract.py keeps the peak under this count."""


def _blocks(m: int, n: int):
    rows = max(1, BLOCK_ELEMENTS // max(n, 1))
    return ((i, min(i + rows, m)) for i in range(0, m, rows))


def _bits(rng, m: int, n: int) -> np.ndarray:
    bits = np.empty((m, n), dtype=np.int8)
    for a, b in _blocks(m, n):
        bits[a:b] = rng.integers(0, 2, size=(b - a, n))
    return bits


def _encode(bits: np.ndarray, encoding: str, rng) -> np.ndarray:
    if encoding == "01":
        return bits.view(np.uint8)
    out = np.empty(bits.shape, dtype=np.float32)
    for a, b in _blocks(*bits.shape):
        sign = np.where(bits[a:b] == 1, 1.0, -1.0)
        if encoding != "pm1":
            sign *= rng.uniform(*MAGNITUDE, size=sign.shape)
        out[a:b] = sign
    return out


def _path(data) -> str:
    path, base = dict(data.kwargs)["path"], _folder(data)
    return os.path.join(base, path) if base and not os.path.isabs(path) else path


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime: float, size: int):
    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive (an .npz is one: numpy.savez writes it)")
    need = sum(_member_bytes(path, name) for name in zipfile.ZipFile(path).namelist())
    limit, allowed = allowance()
    if need > limit:
        raise ValueError(f"its arrays would take {gib(need)}, more than {allowed}")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _member_bytes(path: str, name: str) -> int:
    """The bytes an .npy member of the archive says it holds, read from its header only."""
    with zipfile.ZipFile(path) as z, z.open(name) as f:
        shape, dtype = npy_header(f)
    return math.prod(shape) * dtype.itemsize


def _read(path: str, loc: Loc):
    """The four arrays of an .npz, checked; every mistake a SirError at the data line."""
    def fail(what: str):
        raise SirError(f"from_file(\"{path}\"): {what}", loc)
    try:
        check_file(path, "data file")
    except SimError as e:
        fail(e.message)
    try:
        st = os.stat(path)
        arrays = _read_cached(path, st.st_mtime, st.st_size)
    except (OSError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError,
            NotImplementedError, zlib.error, lzma.LZMAError) as e:
        fail(f"cannot read it as an .npz archive ({e})")
    missing = [k for k in FILE_KEYS if k not in arrays]
    if missing:
        fail(f"the archive has no {', '.join(missing)} (it has: "
             f"{', '.join(sorted(arrays)) or 'nothing'}; expected {', '.join(FILE_KEYS)})")
    out = []
    for k in FILE_KEYS:
        a = arrays[k]
        if str(a.dtype) not in FILE_DTYPES:
            fail(f"{k} is {a.dtype}; expected one of {', '.join(FILE_DTYPES)}")
        if a.dtype == np.int64:
            if a.size and (a.min() < -2**31 or a.max() >= 2**31):
                fail(f"{k} has int64 values outside the i32 range")
            a = a.astype(np.int32)
        elif a.dtype == np.float64:
            a = a.astype(np.float32)
        if a.ndim < 1 or a.size == 0:
            fail(f"{k} has shape {list(a.shape)}; expected one example per row (at least one, "
                 "and no dimension of 0)")
        out.append(a)
    xtr, ytr, xte, yte = out
    for x, y, which in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(x) != len(y):
            fail(f"x_{which} has {len(x)} examples but y_{which} has {len(y)}")
    if xtr.shape[1:] != xte.shape[1:] or ytr.shape[1:] != yte.shape[1:]:
        fail(f"train and test shapes differ: x {list(xtr.shape[1:])} vs {list(xte.shape[1:])}, "
             f"y {list(ytr.shape[1:])} vs {list(yte.shape[1:])}")
    if xtr.dtype != xte.dtype or ytr.dtype != yte.dtype:
        fail("x_train and x_test (and y_train and y_test) must have one dtype")
    return tuple(out)
