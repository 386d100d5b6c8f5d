"""Syntax tree -> Program: evaluate the configuration (with `--set` overrides), check the dataset
and parameter declarations, and turn each loop body into a verified SSA graph.

Nested expressions become temporaries named `%0`, `%1`, ...; `h = relu(h_pre)` names the node it
creates. An update `W -= e` defines the next version of parameter W (`W@1`, ...). Every mistake
is a SirError at the culprit's location.
"""

from __future__ import annotations

import math
import os

from . import datasets
from .autodiff import Sweep
from .errors import Loc, SirError
from .graph import Graph, Node, operand, verify
from .ops import (
    BINOPS,
    CONST_BINOPS,
    CONST_FUNCS,
    DTYPES,
    OPS,
    Operand,
    OpError,
    infer,
    n_elements,
    show,
)
from .program import Data, Init, Loop, Param, Program
from .syntax import (
    BinOp,
    Call,
    ConfigItem,
    DataItem,
    Index,
    Let,
    LoopItem,
    Module,
    Name,
    Neg,
    Num,
    ParamItem,
    Predict,
    Str,
    Transpose,
    Update,
    loc_at,
)

INITS = {"normal": ("std", "mean"), "uniform": ("low", "high"), "zeros": (), "ones": (),
         "constant": ("value",)}
UPDATE_OPS = {"-=": "sub", "+=": "add", "*=": "mul", "/=": "div"}
MEMORY_FRACTION = 0.8            # refuse programs whose buffers need more of the machine's RAM


def lower(module: Module, overrides: dict[str, str] | None = None) -> Program:
    """Compile a parsed module. `overrides` are `--set name=value` strings."""
    items = _sorted_items(module)
    config = _config(items["config"], overrides or {}, module)
    consts = dict(config)
    data = _data(items["data"], consts, module)
    params = tuple(_param(p, consts) for p in items["param"])
    _check_names(params, consts)
    info = datasets.describe(data)
    train = _loop(items["train"], "train", consts, params, info, module)
    evaluate = _loop(items["eval"], "eval", consts, params, info, module)
    program = Program(tuple(config), data, params, train, evaluate, module.file)
    check_memory(program)
    return program


def _sorted_items(module: Module) -> dict[str, list]:
    kinds = {ConfigItem: "config", DataItem: "data", ParamItem: "param"}
    out: dict[str, list] = {"config": [], "data": [], "param": [], "train": [], "eval": []}
    for item in module.items:
        out[item.kind if isinstance(item, LoopItem) else kinds[type(item)]].append(item)
    where = Loc(module.file, 0, 0)
    for kind in ("data", "train", "eval"):
        if not out[kind]:
            raise SirError(f"the program has no `{kind}` {'block' if kind != 'data' else 'line'}",
                           where)
        if len(out[kind]) > 1:
            raise SirError(f"a program has one `{kind}`; this is a second one", out[kind][1].loc)
    return out


# ----------------------------------------------------------------------------- configuration

def _config(items: list[ConfigItem], overrides: dict[str, str], module: Module) -> list:
    values: dict[str, object] = {}
    locs: dict[str, Loc] = {}
    for item in items:
        for name, expr, loc in item.bindings:
            if name in values:
                raise SirError(f"config constant '{name}' is defined twice (first at line "
                               f"{locs[name].line})", loc)
            value = const_eval(expr, values)
            if name in overrides:
                value = _override(name, overrides[name], value, loc)
            values[name], locs[name] = value, loc
    unknown = [k for k in overrides if k not in values]
    if unknown:
        known = ", ".join(values) or "none"
        where = next(iter(locs.values()), loc_at(module.file, module.lines, 1, 1))
        raise SirError(f"--set {unknown[0]}: the program has no config constant '{unknown[0]}' "
                       f"(it has: {known})", where)
    return list(values.items())


def parse_value(text: str):
    """A `--set` value: true/false, an int, a float, or a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip().strip('"')


def _override(name: str, text: str, default, loc: Loc):
    value = parse_value(text)
    kinds = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    ok = type(value) is type(default) or (type(default) is float and type(value) is int)
    if not ok:
        raise SirError(f"--set {name}={text}: '{name}' is {kinds[type(default)]} "
                       f"(default {default!r}), got {kinds[type(value)]}", loc)
    return float(value) if type(default) is float else value


def const_eval(expr, consts: dict):
    """Evaluate an expression of numbers, strings and config constants at compile time."""
    if isinstance(expr, (Num, Str)):
        return expr.value
    if isinstance(expr, Name):
        if expr.id in ("true", "false"):
            return expr.id == "true"
        if expr.id not in consts:
            raise SirError(f"'{expr.id}' is not a config constant (known: "
                           f"{', '.join(consts) or 'none'})", expr.loc)
        return consts[expr.id]
    if isinstance(expr, Neg):
        return -_number(const_eval(expr.a, consts), expr.loc)
    if isinstance(expr, BinOp) and expr.op in BINOPS and expr.op != "@":
        a = _number(const_eval(expr.a, consts), expr.a.loc)
        b = _number(const_eval(expr.b, consts), expr.b.loc)
        return _apply(CONST_BINOPS[BINOPS[expr.op]], (a, b), expr)
    if isinstance(expr, Call) and expr.fn in CONST_FUNCS and not expr.kwargs:
        args = [_number(const_eval(a, consts), a.loc) for a in expr.args]
        return _apply(CONST_FUNCS[expr.fn], args, expr)
    raise SirError("expected a constant expression (numbers, config constants, + - * / **, "
                   f"{', '.join(CONST_FUNCS)})", expr.loc)


def _number(v, loc: Loc):
    if isinstance(v, str):
        raise SirError(f"expected a number, got the string {v!r}", loc)
    return v


def _apply(fn, args, expr):
    try:
        value = fn(*args)
    except (ZeroDivisionError, ValueError, OverflowError, TypeError) as e:
        raise SirError(f"cannot evaluate this constant: {e}", expr.loc) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SirError(f"this constant is {value}", expr.loc)
    if isinstance(value, complex):
        raise SirError("this constant is not a real number", expr.loc)
    return value


# ----------------------------------------------------------------------------- declarations

def _kwargs(call: Call, consts: dict) -> dict:
    if call.args:
        raise SirError(f"{call.fn}() takes keyword arguments only (name=value)", call.args[0].loc)
    out = {}
    for key, expr in call.kwargs:
        if key in out:
            raise SirError(f"{call.fn}(): '{key}' is given twice", expr.loc)
        out[key] = const_eval(expr, consts)
    return out


def _data(items: list[DataItem], consts: dict, module: Module) -> Data:
    item = items[0]
    kwargs = _kwargs(item.call, consts)
    if "seed" not in kwargs and "seed" in consts:
        kwargs["seed"] = consts["seed"]
    full = datasets.check(item.call.fn, kwargs, item.call.loc)
    return Data(item.names, item.call.fn, tuple(full.items()), item.loc)


def _param(item: ParamItem, consts: dict) -> Param:
    dtype, shape = _type(item.type, consts)
    if not isinstance(item.init, Call) or item.init.fn not in INITS:
        loc = item.init.loc
        raise SirError(f"a parameter's initializer is one of {', '.join(INITS)}, e.g. "
                       "normal(std=0.1)", loc)
    kwargs = _kwargs(item.init, consts)
    allowed = INITS[item.init.fn]
    for key, value in kwargs.items():
        if key not in allowed:
            raise SirError(f"{item.init.fn}() takes {', '.join(allowed) or 'no arguments'}; "
                           f"got '{key}'", item.init.loc)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SirError(f"{item.init.fn}(): '{key}' must be a number, got {value!r}",
                           item.init.loc)
    if item.init.fn in ("normal",) and "std" not in kwargs:
        raise SirError("normal() needs std=...", item.init.loc)
    if item.init.fn == "uniform" and set(kwargs) != {"low", "high"}:
        raise SirError("uniform() needs low=... and high=...", item.init.loc)
    if item.init.fn == "constant" and "value" not in kwargs:
        raise SirError("constant() needs value=...", item.init.loc)
    return Param(item.name, dtype, shape, Init(item.init.fn, tuple(sorted(kwargs.items()))),
                 item.loc)


def _type(spec, consts: dict) -> tuple[str, tuple]:
    if spec.dtype not in DTYPES:
        raise SirError(f"unknown dtype '{spec.dtype}' (known: {', '.join(DTYPES)})", spec.loc)
    dims = []
    for d in spec.dims:
        value = const_eval(d, consts)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SirError(f"a dimension must be a positive integer, got {value!r}", d.loc)
        dims.append(value)
    return spec.dtype, tuple(dims)


def _check_names(params: tuple[Param, ...], consts: dict) -> None:
    seen: set[str] = set()
    for p in params:
        if p.name in consts:
            raise SirError(f"parameter '{p.name}' has the name of a config constant", p.loc)
        if p.name in seen:
            raise SirError(f"parameter '{p.name}' is declared twice", p.loc)
        seen.add(p.name)


def check_memory(program: Program) -> None:
    """Refuse up front what would not fit in this machine's memory."""
    limit = int(MEMORY_FRACTION * physical_memory())
    total, where = 0, program.data.loc
    for p in program.params:
        total += n_elements(p.shape) * DTYPES[p.dtype]().itemsize
        if total > limit:
            where = p.loc
            break
    total += datasets.nbytes(program.data)
    for loop in (program.train, program.eval):
        total += sum(n_elements(n.shape) * DTYPES[n.dtype]().itemsize for n in loop.graph.body)
    if total > limit:
        raise SirError(f"this program needs {total / 2**30:,.1f} GiB of buffers; this machine "
                       f"has {physical_memory() / 2**30:,.1f} GiB of memory", where)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


# ----------------------------------------------------------------------------- loop bodies

def _loop(items: list[LoopItem], kind: str, consts, params, info, module) -> Loop:
    item = items[0]
    train_name, test_name = info.names
    if item.dataset not in info.names:
        raise SirError(f"unknown dataset '{item.dataset}' (the program has {train_name} and "
                       f"{test_name})", item.dataset_loc)
    batch = None if item.batch is None else _positive_int(item.batch, consts, "batch size")
    size = info.sizes[item.dataset]
    if batch is not None and batch > size:
        raise SirError(f"batch size {batch} is larger than the dataset '{item.dataset}' "
                       f"({size} examples)", item.batch.loc)
    lead = () if batch is None else (batch,)
    body = _Body(kind, consts, params, module.file)
    body.input(item.x, info.x_dtype, lead + info.x_shape, item.loc)
    body.input(item.y, info.y_dtype, lead + info.y_shape, item.loc)
    body.later = {s.name: s.loc for s in item.body if isinstance(s, Let)}
    for stmt in item.body:
        body.statement(stmt)
    graph = body.finish(item)
    verify(graph, where=f"{module.file}: {kind}")
    if kind == "eval":
        return Loop(item.x, item.y, item.dataset, graph)
    epochs = _positive_int(item.epochs, consts, "number of epochs")
    return Loop(item.x, item.y, item.dataset, graph, batch, epochs, _until(item.until, consts))


def _positive_int(expr, consts, what: str) -> int:
    value = const_eval(expr, consts)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SirError(f"the {what} must be a positive integer, got {value!r}", expr.loc)
    return value


def _until(expr, consts) -> float | None:
    if expr is None:
        return None
    ok = (isinstance(expr, BinOp) and expr.op == ">=" and isinstance(expr.a, Name)
          and expr.a.id == "train_accuracy")
    if not ok:
        raise SirError("`until` takes `train_accuracy >= VALUE`", expr.loc)
    value = const_eval(expr.b, consts)
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise SirError(f"an accuracy is between 0 and 1, got {value!r}", expr.b.loc)
    return float(value)


class _Body:
    """Builds one loop body's graph, statement by statement."""

    def __init__(self, kind: str, consts: dict, params, file: str):
        self.kind, self.consts, self.file = kind, consts, file
        self.nodes: list[Node] = []
        self.env: dict[str, object] = {}     # local name -> node name or constant
        self.params = {p.name: p for p in params}
        self.current = {p.name: p.name for p in params}   # parameter -> its current version
        self.outputs: list[str] = []
        self.later: dict[str, Loc] = {}      # names the block defines, for "read before defined"
        self.temp = 0
        self.sweeps: dict[str, Sweep] = {}   # loss -> its reverse sweep (grad)
        self.derived: set[str] = set()       # nodes a sweep made
        for p in params:
            self._add(Node(p.name, "param", dtype=p.dtype, shape=p.shape, loc=p.loc))

    def input(self, name: str, dtype: str, shape: tuple, loc: Loc) -> None:
        self._add(Node(name, "input", dtype=dtype, shape=shape, loc=loc))
        self.env[name] = name

    def _add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def finish(self, item: LoopItem) -> Graph:
        if self.kind == "eval" and not self.outputs:
            raise SirError("the eval block needs a `predict` statement", item.loc)
        self._drop_unused_derivatives()
        return Graph(tuple(self.nodes), tuple(self.outputs))

    def _drop_unused_derivatives(self) -> None:
        """A sweep differentiates towards every parameter; drop what no `grad` asked for."""
        while True:
            read = {a for n in self.nodes for a in n.operands} | set(self.outputs)
            dead = {d for d in self.derived if d not in read}
            if not dead:
                return
            self.nodes = [n for n in self.nodes if n.name not in dead]
            self.derived -= dead

    # statements
    def statement(self, stmt) -> None:
        if isinstance(stmt, Predict):
            return self._predict(stmt)
        if isinstance(stmt, Update) or stmt.name in self.params:
            return self._update(stmt)
        self._let(stmt)

    def _let(self, stmt: Let) -> None:
        self._check_new_name(stmt.name, stmt.loc)
        if isinstance(stmt.expr, Call) and stmt.expr.fn == "grad":
            self.env[stmt.name] = self._grad(stmt.expr, stmt.name)
            if stmt.type is not None:
                self._check_type(stmt, self.env[stmt.name])
            return
        fresh = len(self.nodes)
        value = self.expr(stmt.expr)
        if isinstance(value, str):
            value = self._name_result(value, fresh, stmt.name, stmt.expr.loc)
        if stmt.type is not None:
            self._check_type(stmt, value)
        self.env[stmt.name] = value

    def _name_result(self, value: str, fresh: int, name: str, loc: Loc) -> str:
        """Give the node a statement created its statement's name (else copy the value)."""
        if len(self.nodes) > fresh and self.nodes[-1].name == value:
            node = self.nodes.pop()
            self._add(Node(name, node.op, node.args, node.attrs, node.dtype, node.shape, node.loc))
            return name
        return self._node("copy", [value], {}, loc, name=name)

    def _check_type(self, stmt: Let, value) -> None:
        want = _type(stmt.type, self.consts)
        got = self._type_of(value)
        if got != want:
            raise SirError(f"'{stmt.name}' is declared {show(*want)} but its value is "
                           f"{show(*got) if got[0] else 'a constant'}", stmt.type.loc)

    def _type_of(self, value) -> tuple:
        if not isinstance(value, str):
            return (None, ())
        node = self._node_named(value)
        return node.dtype, node.shape

    def _node_named(self, name: str) -> Node:
        return next(n for n in reversed(self.nodes) if n.name == name)

    def _check_new_name(self, name: str, loc: Loc) -> None:
        if name in self.consts:
            raise SirError(f"'{name}' is a config constant; choose another name", loc)
        if name in self.env:
            raise SirError(f"'{name}' is already defined; values are single-assignment "
                           "(choose a new name)", loc)

    def _update(self, stmt) -> None:
        if self.kind == "eval":
            raise SirError(f"the eval block cannot update parameter '{stmt.name}'", stmt.loc)
        if stmt.name not in self.params:
            what = "a config constant" if stmt.name in self.consts else (
                "a value, not a parameter" if stmt.name in self.env else "not defined")
            raise SirError(f"only parameters can be updated; '{stmt.name}' is {what}", stmt.loc)
        param = self.params[stmt.name]
        old = self.current[stmt.name]
        new = f"{param.name}@{self._version(old) + 1}"
        op = stmt.op if isinstance(stmt, Update) else "="
        fresh = len(self.nodes)
        value = self.expr(stmt.expr)
        if op in UPDATE_OPS:
            value = self._node(UPDATE_OPS[op], [old, value], {}, stmt.loc)
        elif not isinstance(value, str):
            raise SirError(f"cannot set parameter '{param.name}' to a constant; write "
                           f"`{param.name} *= 0` and `+=` instead", stmt.expr.loc)
        node = self._node_named(self._name_result(value, fresh, new, stmt.loc))
        if (node.dtype, node.shape) != (param.dtype, param.shape):
            raise SirError(f"the update of '{param.name}' gives {node.type}; the parameter is "
                           f"{show(param.dtype, param.shape)}", stmt.loc)
        self.current[param.name] = new

    @staticmethod
    def _version(name: str) -> int:
        return int(name.split("@")[1]) if "@" in name else 0

    def _predict(self, stmt: Predict) -> None:
        if self.kind != "eval":
            raise SirError("`predict` belongs in the eval block", stmt.loc)
        if self.outputs:
            raise SirError("the eval block has one `predict`", stmt.loc)
        value = self.expr(stmt.expr)
        if not isinstance(value, str):
            raise SirError("predict needs an array value, got a constant", stmt.expr.loc)
        self.outputs.append(value)

    # expressions: return a node name (str) or a constant
    def expr(self, e):
        method = getattr(self, f"_{type(e).__name__.lower()}")
        return method(e)

    def _num(self, e: Num):
        return e.value

    def _str(self, e: Str):
        raise SirError("a string is not a value here", e.loc)

    def _name(self, e: Name):
        if e.id in self.env:
            return self.env[e.id]
        if e.id in self.current:
            return self.current[e.id]
        if e.id in self.consts:
            value = self.consts[e.id]
            if isinstance(value, str):
                raise SirError(f"config constant '{e.id}' is a string, not a number", e.loc)
            return value
        if e.id in ("true", "false"):
            return e.id == "true"
        if e.id in self.later:
            raise SirError(f"'{e.id}' is read before it is defined (at line "
                           f"{self.later[e.id].line})", e.loc)
        raise SirError(f"unknown name '{e.id}'", e.loc)

    def _neg(self, e: Neg):
        a = self.expr(e.a)
        return -a if not isinstance(a, str) else self._node("neg", [a], {}, e.loc)

    def _binop(self, e: BinOp):
        op = BINOPS[e.op]
        if op == "matmul" and isinstance(e.a, Transpose):
            return self._node("matmul", [self.expr(e.a.a), self.expr(e.b)], {"ta": 1}, e.loc)
        a, b = self.expr(e.a), self.expr(e.b)
        if not isinstance(a, str) and not isinstance(b, str) and op in CONST_BINOPS:
            return _apply(CONST_BINOPS[op], (a, b), e)
        return self._node(op, [a, b], {}, e.loc)

    def _transpose(self, e: Transpose):
        return self._node("transpose", [self.expr(e.a)], {}, e.loc)

    def _index(self, e: Index):
        i = const_eval(e.index, self.consts) if not isinstance(e.index, Num) else e.index.value
        return self._node("index", [self.expr(e.a)], {"i": i}, e.loc)

    def _grad(self, e: Call, name: str | None = None):
        """`grad(loss, wrt=W)`: the adjoint of W from the loss's reverse sweep (autodiff.py),
        emitted at the loss's first `grad`. A `let` names the adjoint node after itself when
        the sweep made it and it has no name yet."""
        kwargs = dict(e.kwargs)
        if len(e.args) != 1 or set(kwargs) != {"wrt"} or not isinstance(kwargs["wrt"], Name):
            raise SirError("grad takes a loss and wrt=NAME: grad(loss, wrt=W1)", e.loc)
        if self.kind == "eval":
            raise SirError("grad belongs in the train block", e.loc)
        loss = self.expr(e.args[0])
        if not isinstance(loss, str):
            raise SirError("grad: the loss is a constant", e.args[0].loc)
        wrt = self.expr(kwargs["wrt"])
        if not isinstance(wrt, str):
            raise SirError("grad: wrt must name a parameter or a value", kwargs["wrt"].loc)
        if loss not in self.sweeps:
            def emit(op, args, attrs):
                made = self._node(op, args, attrs, e.loc)
                self.derived.add(made)
                return made
            self.sweeps[loss] = Sweep(self.nodes, loss, emit,
                                      lambda v: self._node_named(v).shape, e.loc)
        value = self.sweeps[loss].of(wrt, e.loc)
        if name and isinstance(value, str) and value in self.derived and value.startswith("%"):
            self._rename(value, name)
            for sweep in self.sweeps.values():
                sweep.adjoint = {k: name if v == value else v for k, v in sweep.adjoint.items()}
            value = name
        return value

    def _rename(self, old: str, new: str) -> None:
        """Give a node made by a sweep a statement's name; its readers follow."""
        self.nodes = [Node(new if n.name == old else n.name, n.op,
                           tuple(new if a == old else a for a in n.args), n.attrs, n.dtype,
                           n.shape, n.loc) for n in self.nodes]
        self.derived.discard(old)           # a named value now: kept, read or not

    def _call(self, e: Call):
        if e.fn == "grad":
            return self._grad(e)
        attrs = {k: const_eval(v, self.consts) for k, v in e.kwargs}
        args = [self.expr(a) for a in e.args]
        if all(not isinstance(a, str) for a in args) and e.fn in CONST_FUNCS and not attrs:
            return _apply(CONST_FUNCS[e.fn], args, e)
        op, attrs = _resolve_call(e, args, attrs)
        return self._node(op, args, attrs, e.loc)

    def _node(self, op: str, args: list, attrs: dict, loc: Loc, name: str | None = None) -> str:
        opdef = OPS[op]
        if len(args) != opdef.arity:
            raise SirError(f"{op} takes {opdef.arity} operand{'s' * (opdef.arity > 1)}, "
                           f"got {len(args)}", loc)
        operands = [operand(self._node_named(a)) if isinstance(a, str) else Operand(None, (), a)
                    for a in args]
        try:
            dtype, shape = infer(opdef, operands, attrs)
        except OpError as exc:
            raise SirError(str(exc), loc) from None
        name = name or self._temp_name()
        self._add(Node(name, op, tuple(args), tuple(sorted(attrs.items())), dtype, shape, loc))
        return name

    def _temp_name(self) -> str:
        taken = {n.name for n in self.nodes}
        while f"%{self.temp}" in taken:
            self.temp += 1
        self.temp += 1
        return f"%{self.temp - 1}"


SUGAR = {"f32": ("cast", {"to": "f32"}), "f16": ("cast", {"to": "f16"}),
         "i8": ("cast", {"to": "i8"}), "bool": ("cast", {"to": "bool"})}


def _resolve_call(e: Call, args: list, attrs: dict) -> tuple[str, dict]:
    """The op a call names: an op of the table, a dtype (a cast), or max/min of two values."""
    if e.fn in SUGAR and not attrs:
        op, extra = SUGAR[e.fn]
        return op, extra
    if e.fn in ("max", "min") and len(args) == 2:
        return ("maximum" if e.fn == "max" else "minimum"), attrs
    if e.fn in OPS:
        return e.fn, attrs
    known = sorted(set(OPS) | set(SUGAR))
    raise SirError(f"unknown function '{e.fn}' (array ops: {', '.join(known)})", e.loc)
