"""The instruction sets of the address IR (reference/dally-ir.md; cybertronai/simplified-dally-model,
instruction-sets/v0..v4), as one table.

Each op has the operand forms its text may take and how many cells it reads and writes. The
sets are cumulative: v0 add sub mul copy; v1 adds and or xor not; v2 adds set; v3 adds div cmp
select abs; v4 adds recv send (tape I/O). What a value is (unbounded integers for the matmul
scorer, signed 8-bit cells that wrap for the others) is the problem's choice, not the set's:
see machine.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpInfo:
    """`forms`: the operand counts the text may give (destination included; a binary op's 2 is
    the sugar `op d,s`, which reads d and s). `since`: the first instruction set with the op.
    `kind` says which operands are read and written (text.py)."""

    name: str
    code: int
    forms: tuple[int, ...]
    since: int
    kind: str        # binary, unary, set, cmp, select, recv, send


_TABLE = [
    # name, forms, since, kind
    ("add", (3, 2), 0, "binary"), ("sub", (3, 2), 0, "binary"), ("mul", (3, 2), 0, "binary"),
    ("copy", (2,), 0, "unary"),
    ("and", (3, 2), 1, "binary"), ("or", (3, 2), 1, "binary"), ("xor", (3, 2), 1, "binary"),
    ("not", (2,), 1, "unary"),
    ("set", (2,), 2, "set"),
    ("div", (3, 2), 3, "binary"), ("cmp", (4,), 3, "cmp"), ("select", (4,), 3, "select"),
    ("abs", (2,), 3, "unary"),
    ("recv", (1,), 4, "recv"), ("send", (1,), 4, "send"),
]
OPS: dict[str, OpInfo] = {name: OpInfo(name, i, forms, since, kind)
                          for i, (name, forms, since, kind) in enumerate(_TABLE)}
BY_CODE: tuple[OpInfo, ...] = tuple(OPS.values())
PREDICATES = ("eq", "ne", "lt", "le", "gt", "ge")
VERSIONS = ("v0", "v1", "v2", "v3", "v4")
SET_MIN, SET_MAX = -128, 255
TAPE_OPS = ("recv", "send")


def version_number(isa: str, where: str = "--isa") -> int:
    from simulator.errors import SimError

    if isa not in VERSIONS:
        raise SimError(f"unknown instruction set '{isa}' (known: {', '.join(VERSIONS)})", where)
    return VERSIONS.index(isa)


def ops_of(isa: str) -> tuple[str, ...]:
    v = version_number(isa)
    return tuple(o.name for o in BY_CODE if o.since <= v)
