"""Text -> syntax tree. The grammar lives in grammar.lark; lark's errors become SirErrors here,
and only here, in words a user understands.

The tree is small frozen dataclasses; a `loc` never takes part in equality.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import lark
from lark import Lark, Transformer_NonRecursive, v_args

from .errors import Loc, SirError

# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Num:
    value: float | int
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Str:
    value: str
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Name:
    id: str
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple
    kwargs: tuple          # ((name, expr), ...) in source order
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class BinOp:
    op: str                # + - * / @ ** < <= > >= == !=
    a: object
    b: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Neg:
    a: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    """`~a` (op "not": bitwise, logical on bool) or `not a` (logical: bool operands only)."""

    a: object
    logical: bool
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Slice:
    start: object | None
    stop: object | None
    step: object | None
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Index:
    a: object
    subs: tuple            # expressions and Slices, one per leading dimension
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class List:
    items: tuple
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Transpose:
    a: object
    loc: Loc = field(compare=False, repr=False)


# ----------------------------------------------------------------------------- statements and items

@dataclass(frozen=True)
class TypeSpec:
    dtype: str
    dims: tuple            # expressions; () for a scalar
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Let:
    name: str
    type: TypeSpec | None
    expr: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Update:
    name: str
    op: str                # += -= *= /= :=
    expr: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class SetItem:
    """`A[i, :] := v`, `A[i] ^= v`: a write into part of an array."""

    name: str
    subs: tuple
    op: str
    expr: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Predict:
    expr: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class If:
    cond: object
    then: tuple
    orelse: tuple          # () when there is no else
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class For:
    var: str
    range: object          # a call range(...)
    body: tuple
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Return:
    expr: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class ConfigItem:
    bindings: tuple        # ((name, expr, loc), ...)
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class DataItem:
    names: tuple[str, str]
    call: Call
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class ParamItem:
    name: str
    type: TypeSpec
    init: object
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class LoopItem:
    """`train (x, y) in D [batch B] for E epochs [until C] { ... }`, or
    `eval (x, y) in D { ... }`."""

    kind: str              # "train", "eval" or "solve"
    x: str
    y: str
    dataset: str
    batch: object | None
    epochs: object | None
    until: object | None
    body: tuple
    loc: Loc = field(compare=False, repr=False)
    dataset_loc: Loc = field(compare=False, repr=False, default=None)


@dataclass(frozen=True)
class FunctionItem:
    """`def name(a, b) { ...; return e }`: inlined where it is called."""

    name: str
    params: tuple
    body: tuple
    loc: Loc = field(compare=False, repr=False)


@dataclass(frozen=True)
class Module:
    items: tuple
    file: str = field(compare=False)
    lines: tuple = field(compare=False, repr=False, default=())


# ----------------------------------------------------------------------------- parsing

@functools.cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    # cache=True keeps the LALR tables in the temp folder: 0.15 s off every later start
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=True, cache=True)


CONST_INT_BITS = 4096       # `2 ** 9999` and `1 << 10**9` are refused, not computed
CONST_INT_DIGITS = 1233     # the decimal digits of a 4,096-bit integer


def integer(text: str) -> int:
    """int() of a literal (in a program, --set or a pass option), refused past 4,096 bits
    before int() runs: it raises past 4,300 digits and is slow long before."""
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > CONST_INT_DIGITS:
        raise SirError(f"the number {text[:12]}... has {len(text):,} digits; an integer has at "
                       f"most {CONST_INT_DIGITS:,} ({CONST_INT_BITS:,} bits)")
    return int(text)


@functools.lru_cache(maxsize=4)
def parse(text: str, file: str = "<program>") -> Module:
    """Parse .sir source text into a Module; any syntax error is a SirError with a caret.
    Modules are immutable, so `compare`, which compiles one text once per pipeline, parses it
    once."""
    lines = source_lines(text)
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _parser().parse(source)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, file, lines) from None
    try:
        return Module(tuple(_Build(file, lines).transform(tree).children), file, lines)
    except lark.exceptions.VisitError as exc:     # a mistake _Build found (a number too large)
        if isinstance(exc.orig_exc, SirError):
            raise exc.orig_exc from None
        raise


def source_lines(text: str) -> tuple:
    """The lines as the parser counts them: split at \\n only (a form feed, \\x85 or \\u2028
    is a character on its line, as in an editor), a \\r before it dropped."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return tuple(line.removesuffix("\r") for line in lines)


def loc_at(file: str, lines: tuple, line: int, col: int, span: tuple = (0, 0)) -> Loc:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Loc(file, line, col, text, span)


TOKEN_WORDS = {"_NL": "end of line", "NAME": "a name", "NUMBER": "a number", "STRING": "a string",
               "AUGOP": "an update (-=, +=, ...)", "COMPOP": "a comparison", "ADDOP": "+ or -",
               "MULOP": "*, /, //, % or @", "SHIFTOP": "<< or >>", "POW": "**", "$END": "end of file"}
"""Words for the pattern terminals; a literal terminal (`(`, `epochs`) is shown as itself."""


def _syntax_error(exc: lark.exceptions.UnexpectedInput, file: str, lines: tuple) -> SirError:
    line, col = max(exc.line, 1), max(exc.column, 1)
    if line > len(lines):                      # at the end of the file
        line = max(len(lines), 1)
        col = len(lines[line - 1]) + 1 if lines else 1
    loc = loc_at(file, lines, line, col)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        return SirError(f"unexpected character {lines[line - 1][col - 1]!r}"
                        if col <= len(lines[line - 1]) else "unexpected character", loc)
    token = getattr(exc, "token", None)
    found = "end of file" if token is None or token.type == "$END" else (
        "end of line" if token.type == "_NL" else repr(str(token)))
    expected = sorted({TOKEN_WORDS.get(t, _keyword(t)) for t in (exc.expected or ())})
    closers = [_keyword(t) for t in ("RPAR", "RSQB") if t in (exc.expected or ())]
    if len(expected) > 8 and closers:     # inside brackets, the closer is what is missing
        expected = closers
    hint = f"; expected {_one_of(expected)}" if expected and len(expected) <= 8 else ""
    return SirError(f"unexpected {found}{hint}", loc)


def _keyword(terminal: str) -> str:
    if terminal not in _terminals():
        return terminal
    return _parser().get_terminal(terminal).pattern.value


@functools.cache
def _terminals() -> frozenset:
    return frozenset(t.name for t in _parser().terminals)


def _one_of(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


@v_args(meta=True)
class _Build(Transformer_NonRecursive):
    """lark tree -> dataclasses, with a Loc on everything."""

    def __init__(self, file: str, lines: tuple):
        super().__init__()
        self.file, self.lines = file, lines

    def _loc(self, meta_or_token, whole=None) -> Loc:
        """The place of `meta_or_token` (the caret), and the span of `whole` (default: the
        same) when it lies on one line: an expression's text, which names its value."""
        whole = whole or meta_or_token
        line, end_line = getattr(whole, "line", None), getattr(whole, "end_line", None)
        span = (whole.column, whole.end_column) if line is not None and line == end_line \
            else (0, 0)
        return loc_at(self.file, self.lines, meta_or_token.line, meta_or_token.column, span)

    # expressions
    def number(self, meta, c):
        text = str(c[0])
        try:
            value = integer(text) if text.isdigit() else float(text)
        except SirError as e:
            raise SirError(e.message, self._loc(meta)) from None
        if value == float("inf"):
            raise SirError(f"the number {text} is too large for a float", self._loc(meta))
        return Num(value, self._loc(meta))

    def string(self, meta, c):
        return Str(str(c[0])[1:-1], self._loc(meta))

    def name(self, meta, c):
        return Name(str(c[0]), self._loc(meta))

    def call(self, meta, c):
        args = tuple(a for a in c[1:] if a is not None and not isinstance(a, tuple))
        kwargs = tuple(a for a in c[1:] if isinstance(a, tuple))
        return Call(str(c[0]), args, kwargs, self._loc(meta))

    def kwarg(self, meta, c):
        return (str(c[0]), c[1])

    def binop(self, meta, c):
        return BinOp(str(c[1]), c[0], c[2], self._loc(c[1], meta))

    compare = binop

    def pow(self, meta, c):
        return BinOp("**", c[0], c[2], self._loc(meta))

    def neg(self, meta, c):
        return Neg(c[0], self._loc(meta))

    def index(self, meta, c):
        return Index(c[0], c[1], self._loc(meta))

    def subscripts(self, meta, c):
        return tuple(c)

    def slice(self, meta, c):
        return Slice(*c, self._loc(meta))

    def list(self, meta, c):
        return List(tuple(x for x in c if x is not None), self._loc(meta))

    def invert(self, meta, c):
        return Not(c[0], False, self._loc(meta))

    def logic_not(self, meta, c):
        return Not(c[0], True, self._loc(meta))

    def logic_and(self, meta, c):
        return BinOp("and", c[0], c[1], self._loc(meta))

    def logic_or(self, meta, c):
        return BinOp("or", c[0], c[1], self._loc(meta))

    def bit_and(self, meta, c):
        return BinOp("&", c[0], c[1], self._loc(meta))

    def bit_or(self, meta, c):
        return BinOp("|", c[0], c[1], self._loc(meta))

    def bit_xor(self, meta, c):
        return BinOp("^", c[0], c[1], self._loc(meta))

    def transpose(self, meta, c):
        return Transpose(c[0], self._loc(meta))

    # items
    def type(self, meta, c):
        dims = tuple(d for d in c[1:] if d is not None)
        return TypeSpec(str(c[0]), dims, self._loc(meta))

    def binding(self, meta, c):
        return (str(c[0]), c[1], self._loc(c[0]))

    def config(self, meta, c):
        return ConfigItem(tuple(c), self._loc(meta))

    def data(self, meta, c):
        return DataItem((str(c[0]), str(c[1])), c[2], self._loc(meta))

    def param(self, meta, c):
        return ParamItem(str(c[0]), c[1], c[2], self._loc(c[0]))

    def pattern(self, meta, c):
        return (str(c[0]), str(c[1]))

    def batch(self, meta, c):
        return c[0]

    def until(self, meta, c):
        return c[0]

    def block(self, meta, c):
        return tuple(c)

    def train(self, meta, c):
        (x, y), dataset, batch, epochs, until, body = c
        return LoopItem("train", x, y, str(dataset), batch, epochs, until, body, self._loc(meta),
                        self._loc(dataset))

    def eval(self, meta, c):
        (x, y), dataset, body = c
        return LoopItem("eval", x, y, str(dataset), None, None, None, body, self._loc(meta),
                        self._loc(dataset))

    def solve(self, meta, c):
        (x, y), dataset, body = c
        return LoopItem("solve", x, y, str(dataset), None, None, None, body, self._loc(meta),
                        self._loc(dataset))

    def function(self, meta, c):
        name, *params, body = c
        return FunctionItem(str(name), tuple(str(p) for p in params if p is not None), body,
                            self._loc(name))

    def setitem(self, meta, c):
        return SetItem(str(c[0]), c[1], str(c[2]), c[3], self._loc(c[0]))

    def if_(self, meta, c):
        cond, then, orelse = c
        if isinstance(orelse, If):
            orelse = (orelse,)
        return If(cond, then, orelse or (), self._loc(meta))

    def for_(self, meta, c):
        return For(str(c[0]), c[1], c[2], self._loc(c[0]))

    def return_(self, meta, c):
        return Return(c[0], self._loc(meta))

    def let(self, meta, c):
        return Let(str(c[0]), c[1], c[2], self._loc(c[0]))

    def update(self, meta, c):
        return Update(str(c[0]), str(c[1]), c[2], self._loc(c[0]))

    def predict(self, meta, c):
        return Predict(c[0], self._loc(meta))
