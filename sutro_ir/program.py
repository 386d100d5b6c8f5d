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


@dataclass(frozen=True)
class Loop:
    """A training loop (`epochs` set) or the evaluation loop."""

    x: str
    y: str
    dataset: str
    graph: Graph
    batch: int | None = None
    epochs: int | None = None
    until: float | None = None   # stop after the first epoch whose train accuracy reaches this


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
