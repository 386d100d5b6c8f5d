"""Reverse-mode differentiation on the graph: what `grad(loss, wrt=W)` lowers to.

The first `grad` of a loss emits one reverse sweep, from the loss back to every parameter it
depends on, as ordinary nodes (so passes schedule them like hand-written ones); later `grad`s of
the same loss read the sweep's results. The rules produce the ops a hand-written backward pass
uses: for `out = W2 @ h + b2; loss = hinge(out, y)` the sweep is `dout = -y * (out * y < 1)`,
`dW2 = dout * h`, `dh = dout * W2`, `dh_pre = dh * (h_pre > 0)`, `dW1 = outer(dh_pre, x)`.
A value read more than once gets the sum of its contributions; an operand that was broadcast
gets its contribution summed back to its shape. The seed of the sweep (d loss / d loss = 1) is
never multiplied in.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import Loc, SirError
from .graph import Node

ONE = 1.0           # the adjoint of the loss: multiplying by it is skipped

Emit = Callable[[str, list, dict], str]   # (op, args, attrs) -> name of the new node
ShapeOf = Callable[[str], tuple]          # node name -> its shape (emitted nodes included)


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
        self.adjoint: dict[str, object] = {}
        parts: dict[str, list] = {loss: [ONE]}
        order = [n for n in nodes if n.name in self.depends]
        for n in reversed(order[:order.index(loss_node) + 1]):
            if n.name not in parts:
                continue
            contributions = parts.pop(n.name)
            g = contributions[0] if len(contributions) == 1 else self._sum(contributions)
            self.adjoint[n.name] = g
            if n.op == "input" or n.name in params:
                continue
            for operand, contribution in self._vjp(n, g):
                if operand in self.depends:
                    parts.setdefault(operand, []).append(
                        self._unbroadcast(contribution, self.by_name[operand].shape))

    def of(self, name: str, loc: Loc):
        if name not in self.adjoint:
            raise SirError(f"grad: the loss does not depend on '{name.split('@')[0]}'", loc)
        return self.adjoint[name]

    # ------------------------------------------------------------------ helpers
    def _op(self, op: str, *args, **attrs):
        return self.emit(op, list(args), attrs)

    def _mul(self, a, b):
        if a is ONE:
            return b
        if b is ONE:
            return a
        return self._op("mul", a, b)

    def _neg(self, a):
        return -a if not isinstance(a, str) else self._op("neg", a)

    def _sum(self, parts: list):
        total = parts[0]
        for p in parts[1:]:
            total = self._op("add", total, p)
        return total

    def _unbroadcast(self, g, shape: tuple):
        """Sum a contribution over the dimensions its operand was broadcast along."""
        if not isinstance(g, str):
            return g
        have = self.shape_of(g)
        if have == shape:
            return g
        if shape == ():
            return self._op("sum", g)
        while len(have) > len(shape):
            g, have = self._op("sum", g, axis=0), have[1:]
        if have != shape:
            raise SirError(f"grad: cannot sum a {list(have)} gradient back to the {list(shape)} "
                           "operand it was broadcast from", self.loc)
        return g

    # ------------------------------------------------------------------ rules
    def _vjp(self, n: Node, g) -> list[tuple[str, object]]:
        """(operand, contribution to its adjoint) for the array operands of n."""
        a = n.args[0] if n.args else None
        b = n.args[1] if len(n.args) > 1 else None
        op = n.op
        if op == "add":
            return [(a, g), (b, g)]
        if op == "sub":
            return [(a, g), (b, self._neg(g))]
        if op == "mul":
            return [(a, self._lazy(lambda: self._mul(g, b), a)),
                    (b, self._lazy(lambda: self._mul(g, a), b))]
        if op == "div":
            return [(a, self._lazy(lambda: self._op("div", g, b) if g is not ONE
                                   else self._op("div", 1.0, b), a)),
                    (b, self._lazy(lambda: self._neg(self._op(
                        "div", self._mul(g, n.name), b)), b))]
        if op == "neg":
            return [(a, self._neg(g))]
        if op == "relu":
            return [(a, self._mul(g, self._op("gt", a, 0)))]
        if op in ("maximum", "minimum"):
            keep_a = "ge" if op == "maximum" else "le"
            return [(a, self._lazy(lambda: self._mul(g, self._op(keep_a, a, b)), a)),
                    (b, self._lazy(lambda: self._mul(g, self._op(
                        "lt" if op == "maximum" else "gt", a, b)), b))]
        if op == "hinge":                   # max(0, 1 - a*b)
            return [(a, self._lazy(lambda: self._mul(self._mul(g, self._neg(b)), self._op(
                "lt", self._op("mul", a, b), 1)), a)),
                (b, self._lazy(lambda: self._mul(self._mul(g, self._neg(a)), self._op(
                    "lt", self._op("mul", a, b), 1)), b))]
        if op == "logistic_loss":           # log(1 + exp(-a*b)): -b sigmoid(-a*b)
            return [(a, self._lazy(lambda: self._mul(self._mul(g, self._neg(b)), self._op(
                "sigmoid", self._neg(self._op("mul", a, b)))), a)),
                (b, self._lazy(lambda: self._mul(self._mul(g, self._neg(a)), self._op(
                    "sigmoid", self._neg(self._op("mul", a, b)))), b))]
        if op == "sigmoid":                 # s' = s (1 - s)
            return [(a, self._mul(g, self._op("mul", n.name, self._op("sub", 1.0, n.name))))]
        if op == "transpose":
            return [(a, self._op("transpose", g) if isinstance(g, str) else g)]
        if op in ("copy", "cast"):
            return [(a, g)]
        if op == "outer":                   # out[i,j] = a[i] b[j]
            return [(a, self._lazy(lambda: self._op("matmul", g, b), a)),
                    (b, self._lazy(lambda: self._op("matmul", g, a, ta=1), b))]
        if op == "matmul":
            return self._matmul(n, g)
        raise SirError(f"grad: no derivative rule for '{op}' (in '{n.name}'); rules exist for "
                       "add, sub, mul, div, neg, relu, maximum, minimum, hinge, logistic_loss, "
                       "sigmoid, transpose, copy, cast, outer, matmul", self.loc)

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
