"""Reverse-mode differentiation on the graph: what `grad(loss, wrt=W)` lowers to.

The first `grad` of a loss emits one reverse sweep, from the loss back to every parameter it
depends on, as ordinary nodes (so passes schedule them like hand-written ones); later `grad`s of
the same loss read the sweep's results. The rules produce the ops a hand-written backward pass
uses: for `out = W2 @ h + b2; loss = hinge(out, y)` the sweep is `dout = -y * (out * y < 1)`,
`dW2 = dout * h`, `dh = dout * W2`, `dh_pre = dh * (h_pre > 0)`, `dW1 = outer(dh_pre, x)`.
A value read more than once gets the sum of its contributions; an operand that was broadcast
gets its contribution summed back to its shape. The seed of the sweep (d loss / d loss = 1) is
never multiplied in. An op without a rule (NO_DERIVATIVE) does not stop the sweep: the values
it reads get a Failure instead of an adjoint, so only a `grad` whose wrt reaches the loss
through it fails, and the nodes no `grad` reads are dropped (lower.py). `stop_grad(v)`'s rule
sends nothing back: the sweep stops there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import Loc, SirError
from .graph import Node
from .ops import normalize_spec, parse_einsum

ONE = 1.0           # the adjoint of the loss: multiplying by it is skipped
FLOATS = ("f32", "f16")
SELECTS = {"where": lambda k: k == 0,    # op -> which operand positions only select: a
           "index": lambda k: k >= 1,    # where's condition, the run-time indices
           "setindex": lambda k: k >= 2}

Emit = Callable[[str, list, dict], str]   # (op, args, attrs) -> name of the new node
ShapeOf = Callable[[str], tuple]          # node name -> its shape (emitted nodes included)


class Failure:
    """The adjoint of a value whose path to the loss crosses an op without a derivative: the
    error a grad with respect to it reports."""

    def __init__(self, error: SirError):
        self.error = error


class Sweep:
    """One reverse sweep: node name -> its adjoint (a node name or a constant)."""

    def __init__(self, nodes: list[Node], loss: str, emit: Emit, shape_of: ShapeOf, loc: Loc):
        self.by_name = {n.name: n for n in nodes}
        self.emit, self.shape_of, self.loc = emit, shape_of, loc
        loss_node = self.by_name[loss]
        if loss_node.shape != () or loss_node.dtype not in ("f32", "f16"):
            raise SirError(f"grad: the loss must be a float scalar, '{loss}' is "
                           f"{loss_node.type}", loc)
        buffers = {n.name for n in nodes if n.op == "param"}
        # a parameter and its versions are leaves; a local written in place (`h += 1`) is
        # differentiated through the op that wrote it
        params = {n.name for n in nodes if n.op == "param" or n.buffer in buffers}
        self.depends = set(params)          # values that depend on a parameter
        for n in nodes:
            if any(a in self.depends for a in n.operands):
                self.depends.add(n.name)
        if loss not in self.depends:
            raise SirError(f"grad: the loss '{loss}' does not depend on any parameter", loc)
        self.reaches = {loss}               # every value the loss is computed from
        for n in reversed(nodes):
            if n.name in self.reaches:
                self.reaches.update(n.operands)
        self.adjoint: dict[str, object] = {}
        parts: dict[str, list] = {loss: [ONE]}
        order = [n for n in nodes if n.name in self.depends]
        for n in reversed(order[:order.index(loss_node) + 1]):
            if n.name not in parts:
                continue
            contributions = parts.pop(n.name)
            failed = [c for c in contributions if isinstance(c, Failure)]
            try:
                g = failed[0] if failed else contributions[0] if len(contributions) == 1 \
                    else self._sum(contributions)
            except SirError as error:
                g = Failure(error)
                failed = [g]
            self.adjoint[n.name] = g
            if n.op == "input" or n.name in params:
                continue
            for operand, contribution in self._contributions(n, g, failed):
                parts.setdefault(operand, []).append(contribution)

    def _contributions(self, n: Node, g, failed: list) -> list[tuple[str, object]]:
        """(operand, its contribution) for n's operands that depend on a parameter. Where no
        derivative exists, a Failure: for an integer or bool operand alone (the others still
        get theirs), for every operand when the rule itself cannot be applied or n's own
        adjoint failed. Only the grads whose wrt reaches the loss through a Failure fail (at
        the grad); the nodes made for the others stay, and what no grad reads is dropped."""
        carriers = [a for k, a in enumerate(n.args) if not self._selects(n, k)
                    and isinstance(a, str) and a in self.depends]
        try:
            if failed:
                raise failed[0].error
            bad = {a: Failure(self._carrier_error(a)) for a in carriers
                   if self.by_name[a].dtype not in FLOATS}
            return [(o, c if isinstance(c, Failure) else
                     self._unbroadcast(c, self.by_name[o].shape))
                    for o, c in self._vjp(n, g) if o in self.depends and o not in bad] \
                + list(bad.items())
        except SirError as error:
            return [(o, Failure(error)) for o in dict.fromkeys(carriers)]

    @staticmethod
    def _selects(n: Node, k: int) -> bool:
        """Operand k of n only selects (a where's condition, a run-time index): it is not
        differentiated."""
        return SELECTS.get(n.op, lambda k: False)(k)

    def _carrier_error(self, a: str) -> SirError:
        """An integer or bool value that depends on a parameter (an argmax, a comparison)
        carries no derivative: the error names where that value is made."""
        v = self.by_name[a]
        where = f" at {v.loc}" if v.loc.line else ""
        article = "an" if v.dtype.startswith("i") else "a"
        return SirError(f"grad: the loss depends on a parameter through {article} {v.dtype} "
                        f"value ('{v.op}'{where}); integer and bool values carry no derivative",
                        self.loc)

    def of(self, name: str, loc: Loc):
        if name not in self.adjoint:
            what = name.split("@")[0]
            if name in self.reaches:
                raise SirError(f"grad: the loss depends on '{what}' only through a value that "
                               "selects (an index, a where's condition) or a stop_grad, which "
                               "carry no derivative", loc)
            if name in self.by_name and any(r.split("@")[0] == what for r in self.reaches):
                raise SirError(f"grad: the loss depends on '{what}' as it was before line "
                               f"{self.by_name[name].loc.line} wrote it: take the grad before "
                               "the update", loc)
            raise SirError(f"grad: the loss does not depend on '{what}'", loc)
        g = self.adjoint[name]
        if isinstance(g, Failure):
            raise SirError(g.error.message, loc)
        return g

    # ------------------------------------------------------------------ helpers
    def _op(self, op: str, *args, **attrs):
        return self.emit(op, list(args), attrs)

    def _mul(self, a, b):
        if a is ONE:
            return b
        if b is ONE:
            return a
        if not isinstance(a, str) and not isinstance(b, str):
            return a * b               # two constant factors (2 * (3 * w @ x)): fold them
        return self._op("mul", a, b)

    def _neg(self, a):
        return -a if not isinstance(a, str) else self._op("neg", a)

    def _sum(self, parts: list):
        total = parts[0]
        for p in parts[1:]:
            both_constant = not isinstance(total, str) and not isinstance(p, str)
            total = total + p if both_constant else self._op("add", total, p)
        return total

    def _unbroadcast(self, g, shape: tuple):
        """Sum a contribution over the dimensions its operand was broadcast along: the leading
        ones it lacks, and those where it has 1 (kept)."""
        if not isinstance(g, str):
            return g
        have = self.shape_of(g)
        if have == shape:
            return g
        if shape == ():
            return self._op("sum", g)
        while len(have) > len(shape):
            g, have = self._op("sum", g, axis=0), have[1:]
        for axis, (h, d) in enumerate(zip(have, shape)):
            if d == 1 and h != 1:
                g = self._op("sum", g, axis=axis, keepdims=True)
        have = self.shape_of(g)
        if have != shape:
            raise SirError(f"grad: cannot sum a {list(have)} gradient back to the {list(shape)} "
                           "operand it was broadcast from", self.loc)
        return g

    # ------------------------------------------------------------------ rules
    def _vjp(self, n: Node, g) -> list[tuple[str, object]]:
        """(operand, contribution to its adjoint) for the array operands of n: RULES[n.op]."""
        rule = RULES.get(n.op)
        if rule is None:
            where = f" at {n.loc}" if n.loc.line else ""
            why = NO_DERIVATIVE.get(n.op, "")
            raise SirError(f"grad: no derivative rule for '{n.op}' (the value computed"
                           f"{where}){': ' + why if why else ''}", self.loc)
        a = n.args[0] if n.args else None
        b = n.args[1] if len(n.args) > 1 else None
        return rule(self, n, g, a, b)

    def _kept(self, value, n: Node, operand: str):
        """A reduction's result (or adjoint) in the operand's rank, the reduced axis kept as 1,
        so that it broadcasts against the operand."""
        shape = self.by_name[operand].shape
        attrs = dict(n.attrs)
        axis = attrs.get("axis")
        if axis is None or attrs.get("keepdims") or not isinstance(value, str):
            return value
        kept = list(shape)
        kept[axis % len(shape)] = 1
        return self._op("reshape", value, shape=tuple(kept))

    def _expand(self, g, n: Node, operand: str):
        """A reduction's adjoint spread back over the operand it reduced (`axis` or all)."""
        shape = self.by_name[operand].shape
        zeros = self._op("fill", shape=shape, value=0, dtype=self.by_name[operand].dtype)
        return self._op("add", zeros, self._kept(g, n, operand))

    def _array(self, g, like: Node):
        """g as an array of like's shape: a constant adjoint (the loss's 1) filled in, for the
        rules whose ops take arrays only."""
        if isinstance(g, str):
            return g
        return self._op("fill", shape=like.shape, value=g, dtype=like.dtype)

    def _lazy(self, make, operand):
        """Emit a contribution only for an operand that needs one."""
        return make() if isinstance(operand, str) and operand in self.depends else None

    def _matmul(self, n: Node, g) -> list[tuple[str, object]]:
        a, b = n.args
        ta = dict(n.attrs).get("ta", 0)
        ra, rb = len(self.by_name[a].shape), len(self.by_name[b].shape)
        if ra == 1 and rb == 1:             # dot: a[k] . b[k]
            return [(a, self._lazy(lambda: self._mul(g, b), a)),
                    (b, self._lazy(lambda: self._mul(g, a), b))]
        g = self._array(g, n)               # (a constant adjoint, through a reshape)
        if ra == 2 and rb == 1:             # A[m,k] b[k] (ta: A[k,m])
            return [(a, self._lazy(lambda: self._op("outer", b, g) if ta
                                   else self._op("outer", g, b), a)),
                    (b, self._lazy(lambda: self._op("matmul", a, g) if ta
                                   else self._op("matmul", a, g, ta=1), b))]
        if ra == 1 and rb == 2:             # a[k] B[k,n]
            return [(a, self._lazy(lambda: self._op("matmul", b, g), a)),
                    (b, self._lazy(lambda: self._op("outer", a, g), b))]
        # A[m,k] B[k,n] (ta: A[k,m])
        return [(a, self._lazy(lambda: self._op("matmul", b, self._op("transpose", g)) if ta
                               else self._op("matmul", g, self._op("transpose", b)), a)),
                (b, self._lazy(lambda: self._op("matmul", a, g) if ta
                               else self._op("matmul", a, g, ta=1), b))]


# ----------------------------------------------------------------------------- the rules
# One entry per op (as JAX keeps a rule per primitive): (sweep, node, adjoint g, first operand
# a, second operand b) -> [(operand, contribution)]; a contribution of None is not needed.

def _count(n: Node, s: Sweep, a: str) -> int:
    shape = s.by_name[a].shape
    axis = dict(n.attrs).get("axis")
    size = 1
    for d in (shape if axis is None else (shape[axis],)):
        size *= d
    return size


def _hinge(s: Sweep, n: Node, g, a, b):                      # max(0, 1 - a*b)
    below = lambda: s._op("lt", s._op("mul", a, b), 1)        # noqa: E731
    return [(a, s._lazy(lambda: s._mul(s._mul(g, s._neg(b)), below()), a)),
            (b, s._lazy(lambda: s._mul(s._mul(g, s._neg(a)), below()), b))]


def _logistic(s: Sweep, n: Node, g, a, b):                   # log(1 + exp(-a*b))
    sig = lambda: s._op("sigmoid", s._neg(s._op("mul", a, b)))   # noqa: E731
    return [(a, s._lazy(lambda: s._mul(s._mul(g, s._neg(b)), sig()), a)),
            (b, s._lazy(lambda: s._mul(s._mul(g, s._neg(a)), sig()), b))]


def _extreme(keep_a: str, keep_b: str):
    def rule(s: Sweep, n: Node, g, a, b):
        return [(a, s._lazy(lambda: s._mul(g, s._op(keep_a, a, b)), a)),
                (b, s._lazy(lambda: s._mul(g, s._op(keep_b, a, b)), b))]
    return rule


def _extreme_of(s: Sweep, n: Node, g, a, b):                 # max/min reductions
    """The adjoint goes to the elements equal to the result, shared equally among ties (as
    JAX's rule for reduce_max does)."""
    at = s._op("eq", a, s._kept(n.name, n, a))
    dtype = s.by_name[a].dtype
    count = s._op("sum", s._op("cast", at, to=dtype), **{
        k: v for k, v in (("axis", dict(n.attrs).get("axis")), ("keepdims", True))
        if v is not None})
    share = s._op("div", s._kept(g, n, a) if isinstance(g, str) else g, count)
    return [(a, s._op("where", at, share, 0.0))]


def _pow(s: Sweep, n: Node, g, a, b):                         # a ** b
    def d_base():
        less = b - 1 if not isinstance(b, str) else s._op("sub", b, 1.0)
        return s._mul(g, s._mul(b, s._op("pow", a, less)))
    return [(a, s._lazy(d_base, a)),
            (b, s._lazy(lambda: s._mul(g, s._mul(n.name, s._op("log", a) if isinstance(a, str)
                                                 else _log_of_base(a, n, s))), b))]


def _log_of_base(c, n: Node, s: Sweep) -> float:
    """log(c) for d(c ** b)/db: defined for a constant base c > 0 only."""
    if not c > 0:
        raise SirError(f"grad: {c} ** b has no derivative with respect to b (it needs log({c})"
                       f"){_at(n)}", s.loc)
    return math.log(c)


def _index(s: Sweep, n: Node, g, a, b):                       # a[at]: a scatter into zeros
    attrs = dict(n.attrs)
    dyn = n.args[1:]
    gather = any(s.by_name[d].shape for d in dyn)               # an index array may repeat
    node = s.by_name[a]
    zeros = s._op("fill", shape=node.shape, value=0, dtype=node.dtype)
    g = s._array(g, n)
    return [(a, s._op("setindex", zeros, g, *dyn, at=attrs["at"],
                      acc="add" if gather else "set"))]


def _setindex(s: Sweep, n: Node, g, a, b):                    # a[at] := b, a[at] += b, -=
    attrs = dict(n.attrs)
    acc, dyn = attrs.get("acc", "set"), n.args[2:]
    if acc not in ("set", "add", "sub"):
        raise SirError(f"grad: no derivative rule for '{acc}' into part of an array"
                       f"{_at(n)}; rules exist for :=, += and -=", s.loc)
    if acc == "set" and any(s.by_name[d].shape for d in dyn):
        raise SirError(f"grad: no derivative rule for := by an index array{_at(n)} (of a "
                       "repeated id only the last write counts); rules exist for += and -=",
                       s.loc)
    g = s._array(g, n)
    part = lambda: s._op("index", g, *dyn, at=attrs["at"])    # noqa: E731
    if acc == "set":                    # the old values under the part are overwritten
        cleared = lambda: s._op("setindex", s._op("copy", g), 0.0, *dyn,   # noqa: E731
                                at=attrs["at"], acc="set")
        return [(a, s._lazy(cleared, a)), (b, s._lazy(part, b))]
    return [(a, g), (b, s._lazy(lambda: part() if acc == "add" else s._neg(part()), b))]


def _concat(s: Sweep, n: Node, g, a, b):                      # each operand's slice of g
    axis = dict(n.attrs).get("axis", 0) % len(n.shape)
    g = s._array(g, n)
    out, start = [], 0
    for x in n.args:
        size = s.by_name[x].shape[axis]
        at = normalize_spec([(None, None, None)] * axis + [(start, start + size, 1)], n.shape)
        out.append((x, s._lazy(lambda at=at: s._op("index", g, at=at) if at else g, x)))
        start += size
    return out


def _stack(s: Sweep, n: Node, g, a, b):                       # each operand's row of g
    axis = dict(n.attrs).get("axis", 0) % len(n.shape)
    g = s._array(g, n)
    return [(x, s._lazy(lambda at=normalize_spec([(None, None, None)] * axis + [k], n.shape):
                        s._op("index", g, at=at), x)) for k, x in enumerate(n.args)]


def _einsum(s: Sweep, n: Node, g, a, b):
    """d/d operand i of einsum("...->out"): einsum of the other operands and g, giving the
    operand's letters; a letter only that operand has (summed away) is broadcast back."""
    args = list(n.args)
    subs, out, _ = parse_einsum(dict(n.attrs)["spec"], [s.by_name[x].shape for x in args])
    result = []
    for i, x in enumerate(args):
        if not (isinstance(x, str) and x in s.depends):
            continue
        sub = subs[i]
        if len(set(sub)) != len(sub):
            result.append((x, Failure(SirError(
                f"grad: no derivative rule for an einsum operand that repeats a letter "
                f"('{sub}'){_at(n)}", s.loc))))
            continue
        others = [(subs[j], args[j]) for j in range(len(args)) if j != i] + [(out, g)]
        have = {c for t, _ in others for c in t}
        keep = "".join(c for c in sub if c in have)
        grad = s._op("einsum", *[s._array(v, n) for _, v in others],
                     spec=",".join(t for t, _ in others) + "->" + keep)
        if keep != sub:                     # letters summed only in x: broadcast back
            shape = s.by_name[x].shape
            kept = tuple(d if c in have else 1 for c, d in zip(sub, shape))
            grad = s._op("add", s._op("fill", shape=shape, value=0, dtype=s.by_name[x].dtype),
                         s._op("reshape", grad, shape=kept))
        result.append((x, grad))
    return result


def _reciprocal(c, n: Node, s: Sweep) -> float:
    """1 / c for d(a / c)/da: a division by the constant 0 has no finite derivative."""
    if c == 0:
        raise SirError(f"grad: a division by the constant 0 has no finite derivative{_at(n)}",
                       s.loc)
    return 1.0 / c


def _at(n: Node) -> str:
    return f" (the value computed at {n.loc})" if n.loc.line else ""


NO_DERIVATIVE = {   # the ops without a rule, and why: a grad through one is an error at the grad
    **dict.fromkeys(("lt", "le", "gt", "ge", "eq", "ne", "argmax", "argmin", "and", "or", "xor",
                     "not", "shl", "shr"), "its result is a bool or an integer"),
    **dict.fromkeys(("sign", "floordiv"), "it is piecewise constant"),
    **dict.fromkeys(("fill", "eye", "arange", "normal", "bernoulli"),
                    "it reads no value: a constant or a random draw"),
    **dict.fromkeys(("if", "merge"), "control flow is not differentiated: use where()"),
}

RULES: dict[str, Callable] = {
    "add": lambda s, n, g, a, b: [(a, g), (b, g)],
    "sub": lambda s, n, g, a, b: [(a, g), (b, s._neg(g))],
    "mul": lambda s, n, g, a, b: [(a, s._lazy(lambda: s._mul(g, b), a)),
                                  (b, s._lazy(lambda: s._mul(g, a), b))],
    "div": lambda s, n, g, a, b: [
        (a, s._lazy(lambda: s._mul(g, _reciprocal(b, n, s)) if not isinstance(b, str)
                    else s._op("div", g, b) if g is not ONE else s._op("div", 1.0, b), a)),
        (b, s._lazy(lambda: s._neg(s._op("div", s._mul(g, n.name), b)), b))],
    "neg": lambda s, n, g, a, b: [(a, s._neg(g))],
    "relu": lambda s, n, g, a, b: [(a, s._mul(g, s._op("gt", a, 0)))],
    "maximum": _extreme("ge", "lt"),
    "minimum": _extreme("le", "gt"),
    "hinge": _hinge,
    "logistic_loss": _logistic,
    "sigmoid": lambda s, n, g, a, b: [                      # s' = s (1 - s)
        (a, s._mul(g, s._op("mul", n.name, s._op("sub", 1.0, n.name))))],
    "exp": lambda s, n, g, a, b: [(a, s._mul(g, n.name))],
    "log": lambda s, n, g, a, b: [(a, s._op("div", g, a) if g is not ONE
                                   else s._op("div", 1.0, a))],
    "sqrt": lambda s, n, g, a, b: [(a, s._op("div", g, s._op("mul", 2.0, n.name)))],
    "abs": lambda s, n, g, a, b: [(a, s._mul(g, s._op("sign", a)))],
    "sum": lambda s, n, g, a, b: [(a, s._expand(g, n, a))],
    "mean": lambda s, n, g, a, b: [(a, s._expand(s._op("div", g, float(_count(n, s, a)))
                                                 if isinstance(g, str)
                                                 else g / _count(n, s, a), n, a))],
    "where": lambda s, n, g, a, b: [                         # where(c, t, f)
        (b, s._lazy(lambda: s._op("where", a, g, 0.0), b)),
        (n.args[2], s._lazy(lambda: s._op("where", a, 0.0, g), n.args[2]))],
    "transpose": lambda s, n, g, a, b: [(a, s._op("transpose", g) if isinstance(g, str)
                                         else g)],
    "copy": lambda s, n, g, a, b: [(a, g)],
    "cast": lambda s, n, g, a, b: [(a, g)],
    "outer": lambda s, n, g, a, b: [                         # out[i,j] = a[i] b[j]
        (a, s._lazy(lambda: s._op("matmul", s._array(g, n), b), a)),
        (b, s._lazy(lambda: s._op("matmul", s._array(g, n), a, ta=1), b))],
    "matmul": lambda s, n, g, a, b: s._matmul(n, g),
    "tanh": lambda s, n, g, a, b: [                         # tanh' = 1 - tanh^2
        (a, s._mul(g, s._op("sub", 1.0, s._op("mul", n.name, n.name))))],
    "pow": _pow,
    "max": _extreme_of,
    "min": _extreme_of,
    "index": _index,
    "setindex": _setindex,
    "reshape": lambda s, n, g, a, b: [(a, s._op("reshape", g, shape=s.by_name[a].shape)
                                       if isinstance(g, str) else g)],
    "concat": _concat,
    "stack": _stack,
    "einsum": _einsum,
    "stop_grad": lambda s, n, g, a, b: [],
    "mod": lambda s, n, g, a, b: [                          # a - b floor(a / b)
        (a, g), (b, s._lazy(lambda: s._mul(g, s._neg(s._op("floordiv", a, b))), b))],
}
