"""The sutro-problems baselines, generated here from the layouts their README and reports state
(docs/dally.md lists the published cost each reproduces). Each returns IR text.

- matmul naive(n): A at 1..n^2, B next, C next, one temporary after C; C[i][j] gets its first
  product by a `mul` straight into C, each later one by `mul tmp` then `add C,tmp`.
- matmul tiled(n, t): scratch tiles sA, sB, sC of t*t cells at 1.., a temporary, then A, B, C;
  for each output tile and each k tile: copy the A tile and the B tile in, multiply into sC
  (a copy for the first product, adds after); copy sC out to C.
- sparse parity (try each candidate): for every k-subset T of the columns, is T consistent with
  every training row; each test label is the OR over T of (T consistent AND the row's parity
  over T).
- symmetry(n): compare x[i] with x[n-1-i] in place, AND the results into cell 1.
"""

from __future__ import annotations

import itertools

from .problems import MEDIUM, SMALL, ParitySpec


def _text(inputs, body, outputs) -> str:
    return "\n".join([",".join(map(str, inputs)), *body, ",".join(map(str, outputs))]) + "\n"


def matmul_naive(n: int) -> str:
    A = lambda i, k: 1 + i * n + k                     # noqa: E731
    B = lambda k, j: n * n + 1 + k * n + j             # noqa: E731
    C = lambda i, j: 2 * n * n + 1 + i * n + j         # noqa: E731
    tmp = 3 * n * n + 1
    body = []
    for i in range(n):
        for j in range(n):
            body.append(f"mul {C(i, j)},{A(i, 0)},{B(0, j)}")
            for k in range(1, n):
                body += [f"mul {tmp},{A(i, k)},{B(k, j)}", f"add {C(i, j)},{tmp}"]
    inputs = list(range(1, 2 * n * n + 1))
    return _text(inputs, body, [C(i, j) for i in range(n) for j in range(n)])


def matmul_tiled(n: int, t: int) -> str:
    if n % t:
        raise ValueError(f"the tile size {t} does not divide n = {n}")
    sA = lambda i, k: 1 + i * t + k                    # noqa: E731
    sB = lambda k, j: t * t + 1 + k * t + j            # noqa: E731
    sC = lambda i, j: 2 * t * t + 1 + i * t + j        # noqa: E731
    tmp = 3 * t * t + 1
    A = lambda i, k: tmp + 1 + i * n + k               # noqa: E731
    B = lambda k, j: tmp + 1 + n * n + k * n + j       # noqa: E731
    C = lambda i, j: tmp + 1 + 2 * n * n + i * n + j   # noqa: E731
    body = []
    blocks = range(n // t)
    for bi, bj in itertools.product(blocks, blocks):
        for bk in blocks:
            body += [f"copy {sA(i, k)},{A(bi * t + i, bk * t + k)}"
                     for i in range(t) for k in range(t)]
            body += [f"copy {sB(k, j)},{B(bk * t + k, bj * t + j)}"
                     for k in range(t) for j in range(t)]
            for i, j, k in itertools.product(range(t), range(t), range(t)):
                body.append(f"mul {tmp},{sA(i, k)},{sB(k, j)}")
                first = bk == 0 and k == 0
                body.append(f"copy {sC(i, j)},{tmp}" if first else f"add {sC(i, j)},{tmp}")
        body += [f"copy {C(bi * t + i, bj * t + j)},{sC(i, j)}"
                 for i in range(t) for j in range(t)]
    inputs = [A(i, k) for i in range(n) for k in range(n)] + \
             [B(k, j) for k in range(n) for j in range(n)]
    return _text(inputs, body, [C(i, j) for i in range(n) for j in range(n)])


def sparse_parity(spec: ParitySpec) -> str:
    """Try each candidate: the predictions sit at 1..m_test (the outputs), then the inputs, then
    the constant 1, two temporaries, the per-row matches, the per-candidate indicators, and the
    per-candidate terms."""
    n, k, m, mt = spec.n, spec.k, spec.m_train, spec.m_test
    cands = list(itertools.combinations(range(n), k))
    pred = lambda j: 1 + j                             # noqa: E731
    X = lambda i, c: 1 + mt + i * n + c                # noqa: E731
    y = lambda i: 1 + mt + n * m + i                   # noqa: E731
    Xt = lambda j, c: 1 + mt + n * m + m + j * n + c   # noqa: E731
    one = 1 + mt + n * m + m + n * mt
    tmp, parity = one + 1, one + 2
    matched = lambda T, i: one + 3 + T * m + i         # noqa: E731
    ind = lambda T: one + 3 + len(cands) * m + T       # noqa: E731
    predt = ind(len(cands))
    term = lambda T: predt + 1 + T                     # noqa: E731
    body = [f"set {one},1"]
    for T, cols in enumerate(cands):
        for i in range(m):
            body.append(f"xor {tmp},{y(i)},{X(i, cols[0])}")
            body += [f"xor {tmp},{X(i, c)}" for c in cols[1:-1]]
            body += [f"xor {parity},{tmp},{X(i, cols[-1])}", f"xor {matched(T, i)},{parity},{one}"]
        body.append(f"and {ind(T)},{matched(T, 0)},{matched(T, 1)}")
        body += [f"and {ind(T)},{matched(T, i)}" for i in range(2, m)]
    for j in range(mt):
        for T, cols in enumerate(cands):
            body.append(f"xor {predt},{Xt(j, cols[0])},{Xt(j, cols[1])}")
            body += [f"xor {predt},{Xt(j, c)}" for c in cols[2:]]
            body.append(f"and {term(T)},{ind(T)},{predt}")
        body.append(f"or {pred(j)},{term(0)},{term(1)}")
        body += [f"or {pred(j)},{term(T)}" for T in range(2, len(cands))]
    inputs = [X(i, c) for i in range(m) for c in range(n)] + [y(i) for i in range(m)] + \
             [Xt(j, c) for j in range(mt) for c in range(n)]
    return _text(inputs, body, [pred(j) for j in range(mt)])


def symmetry(n: int) -> str:
    """Written with a space after each comma, as the published file is."""
    body = [f"cmp {i + 1}, {i + 1}, {n - i}, eq" for i in range(n // 2)]
    body += [f"and 1, {i}" for i in range(2, n // 2 + 1)]
    return _text(range(1, n + 1), body, [1])


BASELINES = {
    "matmul-2": lambda: matmul_naive(2), "matmul-4": lambda: matmul_naive(4),
    "matmul-16": lambda: matmul_naive(16), "matmul-16-tiled": lambda: matmul_tiled(16, 4),
    "matmul-4-tiled": lambda: matmul_tiled(4, 2),
    "sparse-parity-small": lambda: sparse_parity(SMALL),
    "sparse-parity-medium": lambda: sparse_parity(MEDIUM),
    "symmetry-6": lambda: symmetry(6), "symmetry-8": lambda: symmetry(8),
}
"""name -> generator; a name is its problem's, with `-tiled` for the tiled matmul."""
