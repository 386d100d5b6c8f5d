"""The text of the address IR: parse it into a Program (columns, one row per instruction) and
print a Program back.

The rules are the sutro-problems scorers' (reference/dally-ir.md, "Text"): `;` ends a line as a
newline does; blank lines are dropped and lines stripped; the first line lists the input
addresses (distinct), the last the output addresses (they may repeat); between them one
instruction per line, `op operands`, the op being the text before the first space and the
operands comma-separated integers (an empty item between commas is skipped, as the scorers
skip it). A binary op may give two operands, `op d,s` meaning `op d,d,s`.

Checks, each a SirError at the file's line and column: the op is in the instruction set; the
operand count is one of its forms; an address is an integer >= 1 (at most MAX_ADDRESS); a `set`
literal is in -128..255; a `cmp` predicate is one of eq ne lt le gt ge; no cell is read before
it is an input or the destination of an earlier line (a line's own destination counts only
after its reads); every output is an input or written; the line count (input and output lines
included) is at most the problem's limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import Loc, SirError
from .isa import BY_CODE, OPS, PREDICATES, SET_MAX, SET_MIN, VERSIONS, version_number

MAX_ADDRESS = 1 << 62
"""The scorers take addresses of up to 64 bits and dally-eval up to 2^16 - 1. A cell past 2^62
would cost 2^31 a read; the bound keeps every address and its trace byte an int64."""
DEFAULT_MAX_LINES = 100_000
MAX_DIGITS = 40
"""An integer item: ASCII digits, at most 40 of them (any address or literal past that is out
of range anyway, and Python refuses to read a number of 4,301 digits)."""
_INT = re.compile(r"[+-]?[0-9]{1,%d}" % MAX_DIGITS)


@dataclass(frozen=True, eq=False)
class Program:
    """An address-IR program. Row i is instruction i: `op[i]` (isa.BY_CODE), `dst[i]` (0 for
    `send`), `src[i]` (up to three cells read, in order; 0 marks an unused slot), `imm[i]` (the
    `set` literal or the `cmp` predicate's index). `line`/`col`: where each instruction is in
    the file, for messages."""

    inputs: np.ndarray
    outputs: np.ndarray
    op: np.ndarray
    dst: np.ndarray
    src: np.ndarray
    imm: np.ndarray
    line: np.ndarray
    col: np.ndarray
    isa: str = "v4"
    where: str = "<ir>"
    lines: tuple[str, ...] = field(default=(), repr=False)    # the source, for carets
    input_line: int = 1
    output_line: int = 1
    output_cols: tuple = field(default=(), repr=False)    # each output item's column

    def __len__(self) -> int:
        return len(self.op)

    def loc(self, i: int) -> Loc:
        """Where instruction i is."""
        return self.loc_at(int(self.line[i]), int(self.col[i]))

    def loc_at(self, line: int, col: int) -> Loc:
        """A place in the file (the input or output line, an item on it)."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return Loc(self.where, line, col, text)

    def reads(self) -> np.ndarray:
        """Per instruction, how many cells it reads (its listed sources, repeats included)."""
        return (self.src > 0).sum(axis=1)

    def addresses(self) -> np.ndarray:
        """Every cell the program names, sorted, once."""
        parts = [self.inputs, self.outputs, self.dst[self.dst > 0], self.src[self.src > 0]]
        return np.unique(np.concatenate(parts))

    def op_counts(self) -> dict[str, int]:
        counts = np.bincount(self.op, minlength=len(BY_CODE))
        return {BY_CODE[c].name: int(n) for c, n in enumerate(counts) if n}


# ----------------------------------------------------------------------------- parsing

def parse(text: str, where: str = "<ir>", isa: str = "v4",
          max_lines: int | None = DEFAULT_MAX_LINES, skip_empty: bool = True) -> Program:
    """Parse and check an address-IR program (see the module docstring). `max_lines` None: no
    limit (the matmul scorer has none). `skip_empty` False: an empty item between commas is an
    error, as in the matmul scorer (the others skip it)."""
    version = version_number(isa)
    physical = text.split("\n")
    stmts = _statements(physical)
    if len(stmts) < 2:
        raise SirError("an IR program has at least two lines: the input addresses, then the "
                       "output addresses (found " + ("none" if not stmts else "one") + ")",
                       Loc(where, 1 if not stmts else stmts[0][0], 1,
                           physical[stmts[0][0] - 1] if stmts else ""))
    if max_lines is not None and len(stmts) > max_lines:
        line, col, _ = stmts[max_lines]
        raise SirError(f"the program has {len(stmts):,} lines; at most {max_lines:,} are "
                       "allowed (input and output lines included)",
                       Loc(where, line, col, physical[line - 1]))
    p = _Parser(where, physical, version, skip_empty)
    inputs = p.addresses(stmts[0], "input")
    input_cols = p.item_cols
    seen: set[int] = set()
    for a, c in zip(inputs.tolist(), input_cols):
        if a in seen:
            raise SirError(f"input address {a} is listed twice", p.loc(stmts[0][0], c))
        seen.add(a)
    outputs = p.addresses(stmts[-1], "output")
    output_cols = tuple(p.item_cols)
    body = stmts[1:-1]
    n = len(body)
    op = np.zeros(n, np.uint8)
    dst = np.zeros(n, np.int64)
    src = np.zeros((n, 3), np.int64)
    imm = np.zeros(n, np.int64)
    for i, stmt in enumerate(body):
        op[i], dst[i], src[i], imm[i] = p.instruction(stmt)
    prog = Program(inputs, outputs, op, dst, src, imm,
                   np.array([s[0] for s in body], np.int32),
                   np.array([s[1] for s in body], np.int32), isa, where, tuple(physical),
                   stmts[0][0], stmts[-1][0], output_cols)
    check_initialized(prog)
    return prog


def _statements(physical: list[str]) -> list[tuple[int, int, str]]:
    """(line, column, text) of each nonblank statement, stripped; `;` ends a statement."""
    out = []
    for ln, raw in enumerate(physical, 1):
        start = 0
        for piece in raw.split(";"):
            s = piece.strip()
            if s:
                out.append((ln, start + (len(piece) - len(piece.lstrip())) + 1, s))
            start += len(piece) + 1
    return out


class _Parser:
    """Reads statements; every mistake is a SirError at its line and column."""

    def __init__(self, where: str, physical: list[str], version: int, skip_empty: bool):
        self.where, self.physical, self.version = where, physical, version
        self.skip_empty = skip_empty
        self.item_cols: list[int] = []

    def loc(self, line: int, col: int) -> Loc:
        return Loc(self.where, line, col, self.physical[line - 1])

    def items(self, line: int, col: int, text: str) -> list[tuple[str, int]]:
        """The comma-separated items of `text` (starting at column `col`), stripped, with their
        columns; an empty item is skipped, or an error when `skip_empty` is off."""
        out, pos = [], col
        for piece in text.split(","):
            s = piece.strip()
            if s:
                out.append((s, pos + len(piece) - len(piece.lstrip())))
            elif not self.skip_empty:
                raise SirError("an empty item between commas (this scorer does not skip "
                               "them)", self.loc(line, pos))
            pos += len(piece) + 1
        return out

    def address(self, item: str, line: int, col: int, what: str) -> int:
        if not _INT.fullmatch(item):
            big = re.fullmatch(r"[+-]?[0-9]+", item)
            raise SirError(f"{what}: " + (f"address of {len(item):,} digits is out of range "
                           "(addresses are 1 to 2^62)" if big else "expected an address (an "
                           f"integer >= 1), got {_show(item)}"), self.loc(line, col))
        a = int(item)
        if not 1 <= a <= MAX_ADDRESS:
            raise SirError(f"{what}: address {item} is out of range (addresses are 1 to "
                           f"2^62)", self.loc(line, col))
        return a

    def addresses(self, stmt, what: str) -> np.ndarray:
        line, col, text = stmt
        items = self.items(line, col, text)
        if not items:
            raise SirError(f"the {what} line lists no address", self.loc(line, col))
        self.item_cols = [c for _, c in items]
        return np.array([self.address(s, line, c, f"{what} list") for s, c in items], np.int64)

    def instruction(self, stmt):
        line, col, text = stmt
        name, _, rest = text.partition(" ")
        info = OPS.get(name)
        if info is None:
            hint = (" (the scorers spell it copy)" if name == "mov" else
                    " (one plain space separates an op from its operands)"
                    if re.match(r"[a-z]+\s", name) else "")
            raise SirError(f"unknown op {_show(name)}{hint}", self.loc(line, col))
        if info.since > self.version:
            raise SirError(f"'{name}' is not in instruction set {VERSIONS[self.version]} (it "
                           f"comes with {VERSIONS[info.since]})", self.loc(line, col))
        items = self.items(line, col + len(name) + 1, rest)
        if len(items) not in info.forms:
            forms = " or ".join(str(f) for f in info.forms)
            raise SirError(f"'{name}' takes {forms} operands, got {len(items)}",
                           self.loc(line, col))
        return self._operands(info, items, line)

    def _operands(self, info, items, line):
        kind = info.kind
        nums = items if kind not in ("set", "cmp") else items[:-1] if kind == "cmp" else items[:1]
        cells = [self.address(s, line, c, f"'{info.name}'") for s, c in nums]
        src = [0, 0, 0]
        imm = 0
        dst = cells[0]
        if kind == "set":
            imm = self._literal(*items[1], line)
        elif kind == "cmp":
            imm = self._predicate(*items[3], line)
            src[:2] = cells[1:3]
        elif kind == "send":
            dst, src[0] = 0, cells[0]
        elif kind == "binary" and len(cells) == 2:
            src[:2] = cells[0], cells[1]
        else:
            src[:len(cells) - 1] = cells[1:]
        return info.code, dst, src, imm

    def _literal(self, item: str, col: int, line: int) -> int:
        if not _INT.fullmatch(item) or not SET_MIN <= int(item) <= SET_MAX:
            raise SirError(f"'set' takes an integer literal from {SET_MIN} to {SET_MAX}, got "
                           f"{_show(item)}", self.loc(line, col))
        return int(item)

    def _predicate(self, item: str, col: int, line: int) -> int:
        if item not in PREDICATES:
            raise SirError(f"'cmp' predicate must be one of {', '.join(PREDICATES)}, got "
                           f"{_show(item)}", self.loc(line, col))
        return PREDICATES.index(item)


def _show(item: str, limit: int = 40) -> str:
    """An item quoted for a message: characters that do not print (a tab, a byte-order mark, a
    no-break space) escaped, and cut to `limit` characters."""
    shown = "".join(c if c.isprintable() and c != "\u00a0" else c.encode("unicode_escape")
                    .decode("ascii") for c in item[:limit])
    return f"'{shown}'" + (f" ({len(item):,} characters)" if len(item) > limit else "")


def check_initialized(prog: Program) -> None:
    """No cell is read before it is an input or an earlier line's destination; every output is
    an input or written somewhere. Static, in program order (the program has no branches)."""
    cells = prog.addresses()
    n = len(prog)
    first_write = np.full(len(cells), n + 1, np.int64)
    first_write[np.searchsorted(cells, prog.inputs)] = -1
    written = prog.dst > 0
    np.minimum.at(first_write, np.searchsorted(cells, prog.dst[written]),
                  np.flatnonzero(written))
    rows, slots = np.nonzero(prog.src > 0)
    bad = first_write[np.searchsorted(cells, prog.src[rows, slots])] >= rows
    if bad.any():
        i, j = int(rows[np.argmax(bad)]), int(slots[np.argmax(bad)])
        a = int(prog.src[i, j])
        raise SirError(f"uninitialized read: cell {a} is read before it is an input or written",
                       _operand_loc(prog, i, j))
    unset = first_write[np.searchsorted(cells, prog.outputs)] > n
    if unset.any():
        k = int(np.argmax(unset))
        col = prog.output_cols[k] if k < len(prog.output_cols) else 1
        raise SirError(f"output cell {int(prog.outputs[k])} is never written and is not an "
                       "input", prog.loc_at(prog.output_line, col))


def _operand_loc(prog: Program, i: int, j: int) -> Loc:
    """Where instruction i's j-th source operand is: its statement is read again (items are
    separated as the parser separates them; the destination comes first unless the op is
    `send` or the two-operand form)."""
    loc = prog.loc(i)
    text = loc.text[loc.col - 1:].split(";")[0]
    name, _, rest = text.partition(" ")
    cols, pos = [], loc.col + len(name) + 1
    for piece in rest.split(","):
        if piece.strip():
            cols.append(pos + len(piece) - len(piece.lstrip()))
        pos += len(piece) + 1
    info = BY_CODE[int(prog.op[i])]
    k = j if info.kind == "send" or (info.kind == "binary" and len(cols) == 2) else j + 1
    return Loc(loc.file, loc.line, cols[k] if k < len(cols) else loc.col, loc.text)


# ----------------------------------------------------------------------------- printing

def to_text(prog: Program) -> str:
    """The program as IR text (inputs line, one instruction a line, outputs line), always in the
    three-operand form; `parse(to_text(p))` gives back the same columns."""
    out = [",".join(map(str, prog.inputs.tolist()))]
    for o, d, s, k in zip(prog.op.tolist(), prog.dst.tolist(), prog.src.tolist(),
                          prog.imm.tolist()):
        info = BY_CODE[o]
        if info.kind == "set":
            args = [d, k]
        elif info.kind == "cmp":
            args = [d, s[0], s[1], PREDICATES[k]]
        elif info.kind == "send":
            args = [s[0]]
        elif info.kind == "recv":
            args = [d]
        else:
            args = [d] + [x for x in s if x]
        out.append(f"{info.name} " + ",".join(map(str, args)))
    out.append(",".join(map(str, prog.outputs.tolist())))
    return "\n".join(out) + "\n"

