"""softmax, log_softmax, cross_entropy, gelu and layernorm: not kernels of their own but the
ops a library would write them in, so each step is traced, fused and differentiated like any
other op (`sutro-sim graph` shows them).

The shift by the maximum that keeps exp finite is a stop_grad: softmax does not change with
it, so the reverse sweep skips it. cross_entropy picks each target's log-probability with a
one-hot mask (`reshape(target, [..., 1]) == arange(C)`): it reads every class, and the trace
does not depend on the targets' values (a gather would make every step a control path of its
own). gelu is the tanh form of Hendrycks and Gimpel (2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .graph import Node
from .ops import INTS, OpError, n_elements

COMPOSITES = {   # name -> (usage, options, number of arrays)
    "softmax": ("an array and axis= (the last by default): softmax(s, axis=-1)", ("axis",), 1),
    "log_softmax": ("an array and axis= (the last by default): log_softmax(s, axis=-1)",
                    ("axis",), 1),
    "cross_entropy": ("logits and integer targets: cross_entropy(logits, target)", (), 2),
    "gelu": ("an array: gelu(h)", (), 1),
    "layernorm": ("an array, axis= and eps=: layernorm(h, axis=-1, eps=1e-5)",
                  ("axis", "eps"), 1),
}

Op = Callable[..., str]          # op(name, *operands, **attrs) -> the new node's name


def write_out(fn: str, args: list[Node], kwargs: dict, op: Op) -> str:
    """The nodes of fn(*args, **kwargs), made by `op`; the name of the result. The caller has
    checked the arguments' number and that the first is a float array."""
    x = args[0]
    axis = kwargs.get("axis", -1)
    if "axis" in COMPOSITES[fn][1]:
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise OpError(f"axis is an integer, got {axis!r}")
        if not -len(x.shape) <= axis < len(x.shape):
            raise OpError(f"axis {axis} is out of range for {x.type}")

    def shifted(v: str) -> str:                 # v - max(v), the max not differentiated
        return op("sub", v, op("stop_grad", op("max", v, axis=axis, keepdims=True)))

    def total(v: str) -> str:
        return op("sum", v, axis=axis, keepdims=True)

    if fn == "softmax":
        e = op("exp", shifted(x.name))
        return op("div", e, total(e))
    if fn == "log_softmax":
        z = shifted(x.name)
        return op("sub", z, op("log", total(op("exp", z))))
    if fn == "gelu":
        cube = op("mul", op("mul", x.name, x.name), x.name)
        inner = op("mul", math.sqrt(2 / math.pi), op("add", x.name, op("mul", 0.044715, cube)))
        return op("mul", op("mul", 0.5, x.name), op("add", 1.0, op("tanh", inner)))
    if fn == "layernorm":
        eps = kwargs.get("eps", 1e-5)
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
            raise OpError(f"eps is a positive number, got {eps!r}")
        centered = op("sub", x.name, op("mean", x.name, axis=axis, keepdims=True))
        var = op("mean", op("mul", centered, centered), axis=axis, keepdims=True)
        return op("div", centered, op("sqrt", op("add", var, float(eps))))
    return _cross_entropy(x, args[1], op)


def _cross_entropy(x: Node, target: Node, op: Op) -> str:
    """The mean over positions of log(sum(exp(logits))) - logits[target], logits [..., C] and
    integer targets [...]; a target outside [0, C) matches no class and adds 0."""
    if target.dtype not in INTS or target.shape != x.shape[:-1] or not x.shape:
        raise OpError(f"takes logits [..., classes] and integer targets [...] of the leading "
                      f"shape: got {x.type} and {target.type}")
    lsm = write_out("log_softmax", [x], {}, op)
    classes = op("arange", start=0, stop=x.shape[-1], step=1, dtype="i32")
    column = op("reshape", target.name, shape=target.shape + (1,))
    picked = op("where", op("eq", column, classes), lsm, 0.0)
    return op("div", op("neg", op("sum", picked)), float(n_elements(target.shape)))
