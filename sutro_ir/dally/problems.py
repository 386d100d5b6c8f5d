"""The sutro-problems benchmarks: their test data and their correctness rules, each as the newest
scorer of cybertronai/sutro-problems defines it (docs/dally.md says which versions).

- matmul-N (v0, unbounded integers): the IR must compute C = A @ B for every input, checked
  symbolically: each input is a variable, a value is an integer polynomial in commuting
  variables, a `mul` whose operands' degrees add up past two is refused where it happens (unless
  an operand is zero), and output i*n + j must be exactly the sum of A[i][k] * B[k][j].
- sparse-parity-small / -medium / -medium-approx50 (v3, 8-bit): fresh random instances every
  call (the small task covers all three secrets in 64 instances; the medium one draws 8 distinct
  secrets); every predicted test label must be right (approx50: half of them, on every instance).
- sparse-parity-mask32 (v3, 8-bit): recover the 5-bit mask of a 32-bit parity from 18 examples,
  on the fixed 1,024-instance development suite (or a fresh 2,048-instance suite); scored by
  recovery, in bands of 20 %.
- symmetry-6 / symmetry-8 (v3, 8-bit): 1 iff the n bits read the same both ways, on all 2^n
  patterns.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import secrets
from dataclasses import dataclass, field
from math import comb
from typing import Callable

import numpy as np

from simulator.errors import SimError

from ..errors import SirError
from .isa import BY_CODE
from .machine import DivideByZero, run
from .text import Program


@dataclass(frozen=True)
class Verdict:
    """Whether a program solves a problem. `score`: the fraction of instances right (mask32's
    recovery); `detail`: what went wrong, or the band reached."""

    correct: bool
    instances: int
    passed: int
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict({"correct": self.correct, "instances": self.instances,
                     "passed": self.passed, "detail": self.detail}, **self.extra)


def _failed(e: SirError, instances: int) -> "Verdict":
    """A run that stopped (a division by zero, a degree past two) is a wrong program: the
    verdict names the line, as the scorers' errors do."""
    return Verdict(False, instances, 0, f"{e.where}: {e.message}")


@dataclass(frozen=True)
class Problem:
    name: str
    isa: str
    max_lines: int | None
    n_inputs: int
    n_outputs: int
    about: str
    check: Callable[[Program, "random.Random"], Verdict]
    skip_empty_items: bool = True

    def check_shape(self, prog: Program) -> None:
        if len(prog.inputs) != self.n_inputs:
            raise SirError(f"{self.name} gives {self.n_inputs:,} inputs; the input line lists "
                           f"{len(prog.inputs):,}", prog.loc_at(prog.input_line, 1))
        if len(prog.outputs) != self.n_outputs:
            raise SirError(f"{self.name} wants {self.n_outputs:,} outputs; the output line "
                           f"lists {len(prog.outputs):,}", prog.loc_at(prog.output_line, 1))


# ----------------------------------------------------------------------------- matmul

class DegreeError(SirError):
    pass


def _poly_add(a: dict, b: dict, sign: int) -> dict:
    out = dict(a)
    for m, c in b.items():
        v = out.get(m, 0) + sign * c
        if v:
            out[m] = v
        else:
            out.pop(m, None)
    return out


def _poly_mul(a: dict, b: dict, prog: Program, i: int) -> dict:
    if not a or not b:
        return {}
    if max(map(len, a)) + max(map(len, b)) > 2:
        raise DegreeError("this multiplication makes a polynomial of degree "
                          f"{max(map(len, a)) + max(map(len, b))} in the inputs; the matmul "
                          "scorer allows degree two at most", prog.loc(i))
    out: dict = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = tuple(sorted(ma + mb))
            out[m] = out.get(m, 0) + ca * cb
    return {m: c for m, c in out.items() if c}


MAX_SYMBOLIC_WORK = 30_000_000
"""Polynomial terms the symbolic check may visit (an add visits both operands' terms, a
multiplication their product). A matmul program visits a few per instruction: the naive 16x16
baseline 38,656 in all (a test), the 63,290 record 37,421 (measured 2026-11-29). Past the bound
the check stops, a few seconds in (3.7 s for the square of the sum of every input added into
cells, 2026-11-29, this machine), rather than spend an hour and gigabytes on polynomials no
matmul computes."""


def symbolic_outputs(prog: Program) -> list[dict]:
    """Run the program on polynomials: input v is the variable v (A row-major, then B)."""
    mem = {a: {(v,): 1} for v, a in enumerate(prog.inputs.tolist())}
    work = 0
    for i, (o, d, s) in enumerate(zip(prog.op.tolist(), prog.dst.tolist(), prog.src.tolist())):
        name = BY_CODE[o].name
        x = mem[s[0]]
        if name != "copy":
            y = mem[s[1]]
            work += len(x) * len(y) if name == "mul" else len(x) + len(y)
            if work > MAX_SYMBOLIC_WORK:
                raise SirError(f"the symbolic check stops here: the polynomials so far took "
                               f"{work:,} term operations (at most {MAX_SYMBOLIC_WORK:,}); a "
                               "matmul's values are far smaller", prog.loc(i))
        if name == "copy":
            mem[d] = x
        elif name == "mul":
            mem[d] = _poly_mul(x, y, prog, i)
        elif name in ("add", "sub"):
            mem[d] = _poly_add(x, y, 1 if name == "add" else -1)
        else:
            raise SirError(f"'{name}' is not in the matmul scorer's instruction set v0",
                           prog.loc(i))
    return [mem[a] for a in prog.outputs.tolist()]


def _matmul_check(n: int):
    def check(prog: Program, rng) -> Verdict:
        try:
            got = symbolic_outputs(prog)
        except DegreeError as e:
            return _failed(e, 1)
        wrong = [k for k in range(n * n) if got[k] != _expected_entry(n, k)]
        if wrong:
            i, j = divmod(wrong[0], n)
            return Verdict(False, 1, 0, f"output {wrong[0]} (C[{i}][{j}]) is "
                           f"{_show_poly(got[wrong[0]], n)}, not the sum of A[{i}][k]*B[k][{j}]"
                           f"; {len(wrong)} of {n * n} outputs are wrong")
        return Verdict(True, 1, 1, "C = A @ B for every input (checked symbolically)")
    return check


def _expected_entry(n: int, k: int) -> dict:
    i, j = divmod(k, n)
    return {(i * n + t, n * n + t * n + j): 1 for t in range(n)}


def _coef(c: int) -> str:
    """A coefficient for a message; one past 10^30 by its size only (str() of a huge int is
    slow, and refused past 4,300 digits)."""
    if abs(c) < 10 ** 30:
        return str(c)
    return f"({'-' if c < 0 else ''}a {int(abs(c).bit_length() * 0.30103) + 1:,}-digit number)"


def _show_poly(p: dict, n: int, terms: int = 4) -> str:
    if not p:
        return "0"

    def var(v: int) -> str:
        return f"A[{v // n}][{v % n}]" if v < n * n else f"B[{(v - n * n) // n}][{v % n}]"
    parts = [("" if c == 1 else f"{_coef(c)}*") + "*".join(map(var, m))
             for m, c in sorted(p.items())[:terms]]
    return " + ".join(parts) + (f" + ... ({len(p)} terms)" if len(p) > terms else "")


# ----------------------------------------------------------------------------- sparse parity

@dataclass(frozen=True)
class ParitySpec:
    n: int
    k: int
    m_train: int
    m_test: int

    @property
    def n_inputs(self) -> int:
        return self.n * self.m_train + self.m_train + self.n * self.m_test


SMALL, MEDIUM = ParitySpec(3, 2, 4, 32), ParitySpec(8, 3, 8, 64)


def unique_subset(X: np.ndarray, y: np.ndarray, k: int) -> bool:
    """Exactly one k-subset of X's columns has y as its rows' parity."""
    rows = X.shape[0]
    w = np.int64(1) << np.arange(rows, dtype=np.int64)
    cols = w @ X.astype(np.int64)                 # column c as a bit signature over the rows
    target = int(w @ y.astype(np.int64))
    cand = _subsets(X.shape[1], k)
    acc = cols[cand[:, 0]].copy()
    for j in range(1, k):
        acc ^= cols[cand[:, j]]
    return int((acc == target).sum()) == 1


_SUBSETS: dict = {}


def _subsets(n: int, k: int) -> np.ndarray:
    if (n, k) not in _SUBSETS:
        _SUBSETS[n, k] = np.array(list(itertools.combinations(range(n), k)), np.int64)
    return _SUBSETS[n, k]


def parity_instance(seed: int, spec: ParitySpec):
    """(inputs, expected test labels, secret) of one instance: Random(seed) draws the secret,
    then training rows bit by bit until one k-subset alone explains their labels, then the test
    rows."""
    rng = random.Random(seed)
    secret = sorted(rng.sample(range(spec.n), spec.k))

    def rows(m):
        X = np.array([[rng.choice((0, 1)) for _ in range(spec.n)] for _ in range(m)], np.int64)
        return X, np.bitwise_xor.reduce(X[:, secret], axis=1) if m else np.zeros(0, np.int64)
    while True:
        X, y = rows(spec.m_train)
        if unique_subset(X, y, spec.k):
            break
    Xt, yt = rows(spec.m_test)
    return np.concatenate([X.ravel(), y, Xt.ravel()]), yt, tuple(secret)


def covering_seeds(spec: ParitySpec, count: int, rng) -> list[int]:
    """`count` fresh instance seeds whose secrets cover min(count, C(n, k)) distinct secrets: a
    seed is passed over when the places left are only enough for the secrets not yet seen and
    its secret is one already seen."""
    target = min(count, comb(spec.n, spec.k))
    seeds, seen, used = [], set(), set()
    while len(seeds) < count or len(seen) < target:
        seed = rng.randrange(2 ** 256)
        if seed in used:
            continue
        used.add(seed)
        secret = tuple(sorted(random.Random(seed).sample(range(spec.n), spec.k)))
        if count - len(seeds) <= target - len(seen) and secret in seen:
            continue
        seeds.append(seed)
        seen.add(secret)
    return seeds


def _parity_check(spec: ParitySpec, count: int, need: float):
    def check(prog: Program, rng) -> Verdict:
        cases = [parity_instance(s, spec) for s in covering_seeds(spec, count, rng)]
        inputs = np.stack([c[0] for c in cases])
        expected = np.stack([c[1] for c in cases])
        try:
            out = run(prog, inputs, width=8)
        except DivideByZero as e:
            return _failed(e, len(cases))
        right = (out == expected).mean(axis=1)
        ok = right >= need
        secrets_ = len({c[2] for c in cases})
        if ok.all():
            return Verdict(True, len(cases), len(cases), f"{len(cases)} instances, "
                           f"{secrets_} secrets, every one {'right' if need == 1 else 'passed'}")
        bad = int(np.argmin(ok))
        return Verdict(False, len(cases), int(ok.sum()), f"instance {bad} (secret "
                       f"{list(cases[bad][2])}): {int(round(right[bad] * spec.m_test))} of "
                       f"{spec.m_test} test labels right, {need:.0%} needed")
    return check


# ----------------------------------------------------------------------------- mask32

MASK = ParitySpec(32, 5, 18, 0)
SUITE_VERSION = "mask-sparse-parity-v1"
DEV_KEY, DEV_SECRETS, FINAL_SECRETS, REPS = "mask-dev", 128, 256, 8
BANDS = (0.2, 0.4, 0.6, 0.8, 1.0)


def _digest_rng(*parts) -> random.Random:
    text = "|".join(str(p) for p in parts).encode()
    return random.Random(int.from_bytes(hashlib.sha256(text).digest(), "big"))


def mask_suite(key: str = DEV_KEY, n_secrets: int = DEV_SECRETS, reps: int = REPS):
    """(inputs [instances, 594], masks [instances, 32]) of a mask32 suite: n_secrets distinct
    secrets drawn from the key, each with `reps` training sets (18 rows of 32 random bits,
    redrawn until the secret is the only 5-subset explaining the labels)."""
    key_rng = _digest_rng(SUITE_VERSION, key, "secrets", n_secrets)
    found: list[tuple] = []
    while len(found) < n_secrets:
        s = tuple(sorted(key_rng.sample(range(MASK.n), MASK.k)))
        if s not in found:
            found.append(s)
    inputs, masks = [], []
    for s in found:
        mask = np.zeros(MASK.n, np.int64)
        mask[list(s)] = 1
        for r in range(reps):
            rng = _digest_rng(SUITE_VERSION, key, "train", s, r)
            while True:
                X = np.array([[rng.getrandbits(1) for _ in range(MASK.n)]
                              for _ in range(MASK.m_train)], np.int64)
                y = np.bitwise_xor.reduce(X[:, list(s)], axis=1)
                if unique_subset(X, y, MASK.k):
                    break
            inputs.append(np.concatenate([X.ravel(), y]))
            masks.append(mask)
    return np.stack(inputs), np.stack(masks)


_DEV_SUITE: list = []


def _mask_check(suite: str):
    def check(prog: Program, rng) -> Verdict:
        if suite == "dev":
            if not _DEV_SUITE:
                _DEV_SUITE.append(mask_suite())
            inputs, masks = _DEV_SUITE[0]
            key = DEV_KEY
        else:
            key = "fresh-" + (secrets.token_hex(16) if isinstance(rng, random.SystemRandom)
                              else f"{rng.getrandbits(64):016x}")
            inputs, masks = mask_suite(key, FINAL_SECRETS, REPS)
        try:
            out = run(prog, inputs, width=8)
        except DivideByZero as e:
            return _failed(e, len(inputs))
        hits = int((out == masks).all(axis=1).sum())
        recovery = hits / len(inputs)
        band = max((b for b in BANDS if recovery >= b - 1e-9), default=None)
        detail = (f"recovered {hits:,} of {len(inputs):,} masks ({recovery:.2%}) on suite "
                  f"'{key}'; band " + (f"{band:.0%}" if band else "none (below 20%)"))
        return Verdict(band is not None, len(inputs), hits, detail,
                       {"recovery": recovery, "band": band, "suite": key})
    return check


# ----------------------------------------------------------------------------- symmetry

def _symmetry_check(n: int):
    def check(prog: Program, rng) -> Verdict:
        codes = np.arange(2 ** n)
        bits = (codes[:, None] >> np.arange(n)) & 1
        want = np.all(bits[:, :n // 2] == bits[:, ::-1][:, :n // 2], axis=1).astype(np.int64)
        try:
            out = run(prog, bits, width=8)[:, 0]
        except DivideByZero as e:
            return _failed(e, len(codes))
        wrong = np.flatnonzero(out != want)
        if len(wrong):
            c = int(wrong[0])
            return Verdict(False, len(codes), len(codes) - len(wrong),
                           f"pattern {c} (bits {''.join(map(str, bits[c]))}): output "
                           f"{int(out[c])}, expected {int(want[c])}; {len(wrong)} of "
                           f"{len(codes)} patterns wrong")
        return Verdict(True, len(codes), len(codes), f"all {len(codes)} patterns right")
    return check


# ----------------------------------------------------------------------------- the registry

def _registry() -> dict[str, Problem]:
    probs = [Problem(f"matmul-{n}", "v0", None, 2 * n * n, n * n,
                     f"C = A @ B for {n}x{n} matrices (v0, checked symbolically)",
                     _matmul_check(n), skip_empty_items=False) for n in (1, 2, 4, 8, 16)]
    probs += [
        Problem("sparse-parity-small", "v3", 100_000, SMALL.n_inputs, SMALL.m_test,
                "n=3, k=2, 4 training and 32 test rows; 64 fresh instances covering the 3 "
                "secrets; every label right", _parity_check(SMALL, 64, 1.0)),
        Problem("sparse-parity-medium", "v3", 100_000, MEDIUM.n_inputs, MEDIUM.m_test,
                "n=8, k=3, 8 training and 64 test rows; 8 fresh instances with distinct "
                "secrets; every label right", _parity_check(MEDIUM, 8, 1.0)),
        Problem("sparse-parity-medium-approx50", "v3", 100_000, MEDIUM.n_inputs, MEDIUM.m_test,
                "as sparse-parity-medium, at least half the labels right on every instance",
                _parity_check(MEDIUM, 8, 0.5)),
        Problem("sparse-parity-mask32", "v3", 2_000_000, MASK.n * MASK.m_train + MASK.m_train,
                MASK.n, "recover the 5 secret bits of 32 from 18 examples; recovery on the "
                "1,024-instance development suite, in bands of 20%", _mask_check("dev")),
        Problem("sparse-parity-mask32-fresh", "v3", 2_000_000,
                MASK.n * MASK.m_train + MASK.m_train, MASK.n,
                "as sparse-parity-mask32, on a fresh 2,048-instance suite (the adjudication)",
                _mask_check("fresh")),
    ]
    probs += [Problem(f"symmetry-{n}", "v3", 100_000, n, 1,
                      f"1 iff the {n} input bits are a palindrome; all {2 ** n} patterns",
                      _symmetry_check(n)) for n in (6, 8)]
    return {p.name: p for p in probs}


PROBLEMS = _registry()


def get(name: str) -> Problem:
    if name not in PROBLEMS:
        raise SimError(f"unknown problem '{name}' (known: {', '.join(PROBLEMS)})", "--problem")
    return PROBLEMS[name]
