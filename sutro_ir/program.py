"""A compiled program: configuration, dataset, parameters and the two loop bodies as graphs.

Everything here is plain frozen data with every configuration constant already evaluated, so
that two programs that mean the same thing compare equal (the printer's round-trip test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import NOWHERE, Loc
from .graph import Graph


@dataclass(frozen=True)
class Init:
    kind: str                    # normal | uniform | zeros | ones | constant
    kwargs: tuple = ()           # ((name, value), ...)


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str
    shape: tuple
    init: Init
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Data:
    names: tuple[str, str]       # (train, test)
    generator: str
    kwargs: tuple                # ((name, value), ...), every value given
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


UNTIL_NAMES = ("train_accuracy", "test_accuracy", "epoch", "step")
UNTIL_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "and": "and",
             "or": "or"}


@dataclass(frozen=True)
class Until:
    """`until EXPR`, checked after each epoch: training stops when it holds. The expression is a
    tree of tuples: ("num", v), ("name", n) for n in UNTIL_NAMES, (op, a, b) for op in
    UNTIL_OPS, ("not", a)."""

    expr: tuple

    @property
    def names(self) -> set[str]:
        def walk(e):
            if e[0] == "name":
                yield e[1]
            elif e[0] != "num":
                for sub in e[1:]:
                    yield from walk(sub)
        return set(walk(self.expr))

    def holds(self, env: dict) -> bool:
        def ev(e):
            op = e[0]
            if op == "num":
                return e[1]
            if op == "name":
                return env[e[1]]
            if op == "not":
                return not ev(e[1])
            if op == "and":
                return ev(e[1]) and ev(e[2])
            if op == "or":
                return ev(e[1]) or ev(e[2])
            a, b = ev(e[1]), ev(e[2])
            return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b,
                    "ne": a != b}[op]
        return bool(ev(self.expr))

    def text(self) -> str:
        def show(e, top=False):
            op = e[0]
            if op == "num":
                v = e[1]
                return "true" if v is True else "false" if v is False else repr(v)
            if op == "name":
                return e[1]
            if op == "not":
                return f"not {show(e[1])}"
            inner = f"{show(e[1])} {UNTIL_OPS[op]} {show(e[2])}"
            return inner if top else f"({inner})"
        return show(self.expr, top=True)


@dataclass(frozen=True)
class Loop:
    """A training loop (`epochs` set), a solve block (kind "solve": one step over the whole
    training set as arrays), or the evaluation loop."""

    x: str
    y: str
    dataset: str
    graph: Graph
    batch: int | None = None
    epochs: int | None = None
    until: Until | None = None   # checked after each epoch; training stops when it holds
    kind: str = "train"


@dataclass(frozen=True)
class Program:
    config: tuple                # ((name, value), ...) in source order, after --set
    data: Data
    params: tuple[Param, ...]
    train: Loop
    eval: Loop
    file: str = field(default="<program>", compare=False)

    @property
    def config_dict(self) -> dict:
        return dict(self.config)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)
