"""Syntax tree -> Program: evaluate the configuration (with `--set` overrides), check the dataset
and parameter declarations, and turn each loop body into a verified SSA graph.

Nested expressions become temporaries named `%0`, `%1`, ...; `h = relu(h_pre)` names the node it
creates. An update `W -= e` defines the next version of parameter W (`W@1`, ...). Every mistake
is a SirError at the culprit's location.
"""

from __future__ import annotations

import math
import re

import numpy as np

from simulator.limits import allowance, gib

from . import datasets
from .autodiff import Sweep
from .errors import NOWHERE, Loc, SirError
from .composites import COMPOSITES, write_out
from .graph import (REGION_OPS, Graph, Node, captures, index_values, operand, region_name,
                    renamed_reads, verify, walk)
from .ops import (
    BINOPS,
    CONST_BINOPS,
    CONST_FUNCS,
    DTYPES,
    INTS,
    OPS,
    check_immediate,
    check_spec,
    Operand,
    OpError,
    infer,
    normalize_spec,
    n_elements,
    show,
)
from .program import UNTIL_NAMES, Data, Init, Loop, Param, Program, Until
from .syntax import (
    CONST_INT_BITS,
    BinOp,
    Call,
    ConfigItem,
    DataItem,
    Index,
    Let,
    For,
    FunctionItem,
    If,
    List,
    LoopItem,
    Module,
    Name,
    Neg,
    Not,
    Num,
    ParamItem,
    Predict,
    Return,
    SetItem,
    Slice,
    Str,
    Transpose,
    Update,
    integer,
    loc_at,
)

INITS = {"normal": ("std", "mean"), "uniform": ("low", "high"), "zeros": (), "ones": (),
         "constant": ("value",)}


def lower(module: Module, overrides: dict[str, str] | None = None) -> Program:
    """Compile a parsed module. `overrides` are `--set name=value` strings."""
    items = _sorted_items(module)
    config = _config(items["config"], overrides or {}, module)
    consts = dict(config)
    data = _data(items["data"], consts, module)
    params = tuple(_param(p, consts) for p in items["param"])
    _check_names(params, consts)
    functions = _functions(items["function"], params, consts)
    info = datasets.describe(data)
    kind = "train" if items["train"] else "solve"
    train = _loop(items[kind], kind, consts, params, info, module, functions)
    evaluate = _loop(items["eval"], "eval", consts, params, info, module, functions)
    program = Program(tuple(config), data, params, train, evaluate, module.file)
    check_memory(program)
    return program


def _sorted_items(module: Module) -> dict[str, list]:
    kinds = {ConfigItem: "config", DataItem: "data", ParamItem: "param",
             FunctionItem: "function"}
    out: dict[str, list] = {"config": [], "data": [], "param": [], "function": [], "train": [],
                            "eval": [], "solve": []}
    for item in module.items:
        out[item.kind if isinstance(item, LoopItem) else kinds[type(item)]].append(item)
    where = Loc(module.file, 0, 0)
    if out["train"] and out["solve"]:
        raise SirError("a program has a `train` block or a `solve` block, not both",
                       out["solve"][0].loc)
    if not out["train"] and not out["solve"]:
        raise SirError("the program has no `train` block (or `solve` block)", where)
    for kind in ("data", "train", "eval", "solve"):
        if not out[kind] and kind in ("data", "eval"):
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


_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_value(text: str):
    """A `--set` value: true/false, an int, a float (written as the language writes numbers:
    ASCII digits, no underscores), or a string."""
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    if _INT.fullmatch(t):
        return integer(t)
    if _FLOAT.fullmatch(t):
        return float(t)
    return t.strip('"')


def _override(name: str, text: str, default, loc: Loc):
    try:
        value = parse_value(text)
    except SirError as e:
        raise SirError(f"--set {name}: {e.message}", loc) from None
    if type(default) in (int, float) and isinstance(value, str) and \
            value.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
        raise SirError(f"--set {name}={text}: a number must be finite", loc)
    kinds = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    ok = type(value) is type(default) or (type(default) is float and type(value) is int)
    if not ok:
        raise SirError(f"--set {name}={text}: '{name}' is {kinds[type(default)]} "
                       f"(default {default!r}), got {kinds[type(value)]}", loc)
    if type(default) is float and not math.isfinite(float(value)):
        raise SirError(f"--set {name}={text}: a number must be finite (this one is "
                       f"{float(value)})", loc)
    return float(value) if type(default) is float else value


def const_eval(expr, consts: dict, depth: int = 1):
    """Evaluate an expression of numbers, strings and config constants at compile time."""
    _nest(depth, expr)
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
        return -_number(const_eval(expr.a, consts, depth + 1), expr.loc)
    if isinstance(expr, Not):
        v = const_eval(expr.a, consts, depth + 1)
        if expr.logical or isinstance(v, bool):
            return not v
        return _apply(lambda a: ~a, (_integer(v, expr.a.loc),), expr)
    if isinstance(expr, List):
        return tuple(const_eval(e, consts, depth + 1) for e in expr.items)
    if _const_binop(expr):
        chain = _left_chain(expr, _const_binop)
        value = const_eval(chain[-1].a, consts, depth + 1)
        for link in reversed(chain):
            value = _number(value, link.a.loc)     # the left operand's mistake comes first
            value = _const_binop_value(link, value, const_eval(link.b, consts, depth + 1))
        return value
    if isinstance(expr, Call) and expr.fn in CONST_FUNCS and not expr.kwargs:
        args = [_number(const_eval(a, consts, depth + 1), a.loc) for a in expr.args]
        return _apply(CONST_FUNCS[expr.fn], args, expr)
    raise SirError("expected a constant expression (numbers, config constants, + - * / **, "
                   f"{', '.join(CONST_FUNCS)})", expr.loc)


def _const_binop(e) -> bool:
    return isinstance(e, BinOp) and e.op in BINOPS and e.op != "@"


def _const_binop_value(expr: BinOp, a, b):
    """`a OP b` of constants; `a` has been checked to be a number (const_eval, before `b` was
    evaluated, so the left operand's mistake is the one reported)."""
    b = _number(b, expr.b.loc)
    if expr.op in INT_BINOPS:
        a, b = _integer(a, expr.a.loc), _integer(b, expr.b.loc)
    if expr.op in ("<<", "**") and isinstance(b, int) and isinstance(a, int) \
            and abs(b) > CONST_INT_BITS:
        raise SirError(f"this constant is too large (an exponent or shift of {b})", expr.loc)
    if expr.op in ("and", "or"):
        return bool(a) and bool(b) if expr.op == "and" else bool(a) or bool(b)
    return _apply(CONST_BINOPS[BINOPS[expr.op]], (a, b), expr)


MAX_NESTING = 100
"""Expressions and blocks nest at most this deep. A call, an index, a unary operator, an operand
of a binary operator, an `if` or `for` block and the body of a function an expression calls (it
is inlined) each add a level; grouping brackets add none. A left-to-right chain of one
precedence (`a + b - c`, `x or y or z`) is one level, so a sum of a thousand terms is fine. The
tree walks recurse, so the bound keeps them far inside Python's recursion limit."""


def _nest(depth: int, e) -> None:
    if depth > MAX_NESTING:
        raise SirError(f"this nests more than {MAX_NESTING} levels deep (calls, indexes, unary "
                       "operators, operands, blocks and inlined function bodies): name a part "
                       "of it", e.loc)


def _left_chain(e, same) -> list:
    """`a + b + c` parses as ((a + b) + c): the BinOps down the left side, outermost first, so a
    long chain is walked in a loop, not by recursion."""
    chain = [e]
    while same(chain[-1].a):
        chain.append(chain[-1].a)
    return chain


def _number(v, loc: Loc):
    if isinstance(v, str):
        raise SirError(f"expected a number, got the string {v!r}", loc)
    if isinstance(v, tuple):
        raise SirError("expected a number, got a list", loc)
    return v


def _integer(v, loc: Loc) -> int:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if not isinstance(v, int):
        raise SirError(f"expected an integer, got {v!r}", loc)
    return v


INT_BINOPS = ("//", "%", "&", "|", "^", "<<", ">>")


def _apply(fn, args, expr):
    try:
        value = fn(*args)
    except OverflowError:
        raise SirError("this constant is too large (past the largest float, about 1.8e308)",
                       expr.loc) from None
    except (ZeroDivisionError, ValueError, TypeError) as e:
        raise SirError(f"cannot evaluate this constant: {e}", expr.loc) from None
    if isinstance(value, int) and value.bit_length() > CONST_INT_BITS:
        raise SirError(f"this constant is too large (more than {CONST_INT_BITS:,} bits)",
                       expr.loc)
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
    call = item.call
    if call.fn == "from_file" and len(call.args) == 1 and not call.kwargs:
        call = Call(call.fn, (), (("path", call.args[0]),), call.loc)
    kwargs = _kwargs(call, consts)
    if "seed" not in kwargs and "seed" in consts and call.fn != "from_file":
        kwargs["seed"] = consts["seed"]
    if item.names[0] == item.names[1]:
        raise SirError(f"the training and test sets need two names, got '{item.names[0]}' "
                       "twice", item.loc)
    full = datasets.check(item.call.fn, kwargs, item.call.loc)
    data = Data(item.names, item.call.fn, tuple(full.items()), item.loc)
    need, (limit, allowed) = datasets.nbytes(data), allowance()
    if need > limit:            # before anything is sized by the number of examples
        raise SirError(f"the data takes {gib(need)}, more than {allowed}", item.loc)
    return data


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
    _check_init(item.init.fn, kwargs, dtype, item.init.loc)
    return Param(item.name, dtype, shape, Init(item.init.fn, tuple(sorted(kwargs.items()))),
                 item.loc)


def _check_init(kind: str, kwargs: dict, dtype: str, loc: Loc) -> None:
    """Arguments numpy would refuse or overflow on, refused here with the place."""
    for key, value in kwargs.items():
        if not -1e300 <= value <= 1e300:        # (a comparison: no float() of a huge int)
            raise SirError(f"{kind}(): '{key}' must be a finite number of at most 1e300, got "
                           f"{value!r}", loc)
    if kind == "normal" and kwargs["std"] < 0:
        raise SirError(f"normal(): std must be >= 0, got {kwargs['std']!r}", loc)
    if kind in ("normal", "uniform") and DTYPES[dtype]().dtype.kind == "f":
        top = float(np.finfo(DTYPES[dtype]).max)
        for key, value in kwargs.items():
            if abs(value) * (8 if key == "std" else 1) > top:   # 8 std: never drawn past it
                raise SirError(f"{kind}(): {key}={value!r} draws values past the largest "
                               f"{dtype} ({top:.3g})", loc)
    if kind == "uniform" and not kwargs["low"] <= kwargs["high"]:
        raise SirError(f"uniform(): low must be <= high, got low={kwargs['low']!r}, "
                       f"high={kwargs['high']!r}", loc)
    if kind == "constant":
        try:
            check_immediate(kwargs["value"], dtype)
        except OpError as exc:
            raise SirError(f"constant(): {exc}", loc) from None


def _type(spec, consts: dict) -> tuple[str, tuple]:
    if spec.dtype not in DTYPES:
        raise SirError(f"unknown dtype '{spec.dtype}' (known: {', '.join(DTYPES)})", spec.loc)
    dims = []
    for d in spec.dims:
        value = const_eval(d, consts)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SirError(f"a dimension must be a positive integer, got {value!r}", d.loc)
        dims.append(value)
    check_array_size(spec.dtype, tuple(dims), spec.loc)
    return spec.dtype, tuple(dims)


def check_array_size(dtype: str, shape: tuple, loc: Loc) -> None:
    """One array larger than the memory a job may use is refused where it is declared or made,
    with its size (before anything broadcasts it or sums it into check_memory)."""
    nbytes = math.prod(shape) * DTYPES[dtype]().itemsize
    if nbytes <= 1 << 30:                  # no system call for the arrays of every day
        return
    limit, allowed = allowance()
    if nbytes > limit:
        dims = ", ".join(f"{d:,}" if d < 10 ** 15 else f"{d:.3g}" if d.bit_length() < 1000
                         else f"~2^{d.bit_length() - 1}" for d in shape)
        raise SirError(f"this array, {dtype}[{dims}], takes {gib(nbytes)}, more than {allowed}",
                       loc)


def _check_names(params: tuple[Param, ...], consts: dict) -> None:
    seen: set[str] = set()
    for p in params:
        if p.name in consts:
            raise SirError(f"parameter '{p.name}' has the name of a config constant", p.loc)
        if p.name in seen:
            raise SirError(f"parameter '{p.name}' is declared twice", p.loc)
        seen.add(p.name)


def _functions(items: list[FunctionItem], params, consts) -> dict[str, FunctionItem]:
    out: dict[str, FunctionItem] = {}
    taken = {p.name for p in params} | set(consts)
    for f in items:
        if f.name in out or f.name in taken or f.name in OPS or f.name in COMPOSITES or \
                f.name in ("grad", "range"):
            raise SirError(f"'{f.name}' is already the name of "
                           f"{'a function' if f.name in out else 'something else'}; choose "
                           "another name", f.loc)
        if len(set(f.params)) != len(f.params):
            raise SirError(f"{f.name}(): an argument name appears twice", f.loc)
        if not f.body or not isinstance(f.body[-1], Return):
            raise SirError(f"{f.name}(): a function ends with `return VALUE`", f.loc)
        out[f.name] = f
    return out


def check_memory(program: Program) -> None:
    """Refuse up front what would not fit in memory (simulator/limits.py)."""
    limit, allowed = allowance()
    total, where = 0, program.data.loc
    for p in program.params:
        total += n_elements(p.shape) * DTYPES[p.dtype]().itemsize
        if total > limit:
            where = p.loc
            break
    total += datasets.nbytes(program.data)
    for loop in (program.train, program.eval):
        total += sum(n_elements(n.shape) * DTYPES[n.dtype]().itemsize
                     for n in loop.graph.all_nodes if n.op not in REGION_OPS and n.version == 0)
    total += path_bytes(program)
    if total > limit:
        raise SirError(f"this program needs {gib(total)} of buffers, data and recorded index "
                       f"values, more than {allowed}", where)


PATH_BYTES_PER_VALUE = 9
"""A run-time index's value is kept for every step (and evaluated example), as part of its
control path (execute.py): a Python int in a tuple, 8 bytes and its share of the tuple."""


def path_bytes(program: Program) -> int:
    """What the recorded index values of a run take: the values of every run-time index (every
    element of an index array) of a step, for every step, and of an evaluated example for
    every example of both sets (a test pass and a train accuracy pass)."""
    def values(loop) -> int:
        return sum(index_values(n, loop.graph) for n in loop.graph.all_nodes)
    sizes = datasets.describe(program.data).sizes
    train = program.train
    steps = (train.epochs or 1) * max(1, sizes[train.dataset] // (train.batch or 1))
    examples = sum(sizes.values())
    return PATH_BYTES_PER_VALUE * (steps * values(train) + examples * values(program.eval))


# ----------------------------------------------------------------------------- loop bodies

MAX_NODES = 200_000              # an unrolled step larger than this is refused
MAX_CALL_DEPTH = 64              # functions inlined inside one another
MAX_STEPS = 2 ** 31 - 1          # training steps in a run: the `step` counter is an i32


def _loop(items: list[LoopItem], kind: str, consts, params, info, module, functions) -> Loop:
    item = items[0]
    train_name, test_name = info.names
    if item.dataset not in info.names:
        raise SirError(f"unknown dataset '{item.dataset}' (the program has {train_name} and "
                       f"{test_name})", item.dataset_loc)
    batch = None if item.batch is None else _positive_int(item.batch, consts, "batch size")
    size = info.sizes[item.dataset]
    if kind == "solve":
        if item.dataset != info.names[0]:
            raise SirError(f"a solve block runs over the training set '{info.names[0]}'",
                           item.dataset_loc)
        batch = size
    if batch is not None and batch > size:
        raise SirError(f"batch size {batch} is larger than the dataset '{item.dataset}' "
                       f"({size} examples)", item.batch.loc)
    lead = () if batch is None else (batch,)
    for name in (item.x, item.y):
        if name in consts or name in {p.name for p in params}:
            raise SirError(f"'{name}' names the example here but is already a "
                           f"{'config constant' if name in consts else 'parameter'}", item.loc)
    if item.x == item.y:
        raise SirError(f"the example's input and label need two names, got '{item.x}' twice",
                       item.loc)
    body = _Body(kind, consts, params, module.file, functions)
    body.input(item.x, info.x_dtype, lead + info.x_shape, item.loc)
    body.input(item.y, info.y_dtype, lead + info.y_shape, item.loc)
    body.later = {s.name: s.loc for s in item.body if isinstance(s, Let)}
    for stmt in item.body:
        body.statement(stmt)
    graph = body.finish(item)
    verify(graph, where=f"{module.file}: {kind}")
    if kind == "eval":
        return Loop(item.x, item.y, item.dataset, graph)
    if kind == "solve":
        return Loop(item.x, item.y, item.dataset, graph, batch, 1, None, "solve")
    epochs = _positive_int(item.epochs, consts, "number of epochs")
    per_epoch = -(-size // (batch or 1))
    if epochs * per_epoch > MAX_STEPS:
        shown = f"{epochs:,}" if epochs < 10 ** 15 else f"about 2^{epochs.bit_length() - 1}"
        raise SirError(f"{shown} epochs of {per_epoch:,} steps is more than {MAX_STEPS:,} steps, "
                       "the most a run counts (`step` is an i32)", item.epochs.loc)
    return Loop(item.x, item.y, item.dataset, graph, batch, epochs, _until(item.until, consts))


def _positive_int(expr, consts, what: str) -> int:
    value = const_eval(expr, consts)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SirError(f"the {what} must be a positive integer, got {value!r}", expr.loc)
    return value


def _until(expr, consts) -> Until | None:
    """`until` EXPR: a true/false expression of train_accuracy, test_accuracy, epoch (epochs
    done) and step (steps done), numbers and config constants, with comparisons, and, or, not."""
    if expr is None:
        return None
    tree = _until_tree(expr, consts)
    if tree[0] not in ("not", "and", "or", *COMPARES) and tree != ("num", True) and \
            tree != ("num", False):
        raise SirError("`until` takes a condition, e.g. `until train_accuracy >= 1.0` or "
                       "`until epoch >= 5 and test_accuracy > 0.9`", expr.loc)
    return Until(tree)


COMPARES = ("lt", "le", "gt", "ge", "eq", "ne")


def _until_tree(e, consts, depth: int = 1) -> tuple:
    _nest(depth, e)
    if isinstance(e, Name) and e.id in UNTIL_NAMES:
        return ("name", e.id)
    if isinstance(e, Not) and e.logical:
        return ("not", _until_tree(e.a, consts, depth + 1))
    if isinstance(e, BinOp) and e.op in ("and", "or"):     # a chain of them is one level
        chain = _left_chain(e, lambda a: isinstance(a, BinOp) and a.op == e.op)
        tree = _until_tree(chain[-1].a, consts, depth + 1)
        for link in reversed(chain):
            tree = (e.op, tree, _until_tree(link.b, consts, depth + 1))
        return tree
    if isinstance(e, BinOp) and e.op in ("<", "<=", ">", ">=", "==", "!="):
        a, b = _until_tree(e.a, consts, depth + 1), _until_tree(e.b, consts, depth + 1)
        if a[0] == "num" and b[0] == "num":
            return ("num", const_eval(e, consts, depth))
        return (BINOPS[e.op], a, b)
    if _mentions_metric(e):
        raise SirError("`until` compares train_accuracy, test_accuracy, epoch or step with "
                       "numbers, and combines the comparisons with and, or, not", e.loc)
    value = const_eval(e, consts, depth)
    if isinstance(value, str) or isinstance(value, tuple):
        raise SirError(f"`until`: expected a number, got {value!r}", e.loc)
    return ("num", value)


def _mentions_metric(e) -> bool:
    todo = [e]
    while todo:
        e = todo.pop()
        if isinstance(e, Name) and e.id in UNTIL_NAMES:
            return True
        todo += [getattr(e, f) for f in ("a", "b") if hasattr(e, f)] + list(getattr(e, "args", ()))
    return False


SET_OPS = {":=": "set", "+=": "add", "-=": "sub", "*=": "mul", "/=": "div", "//=": "floordiv",
           "%=": "mod", "^=": "xor", "&=": "and", "|=": "or", "<<=": "shl", ">>=": "shr"}


class _Body:
    """Builds one loop body's graph, statement by statement.

    Names are scoped: a loop iteration, an if branch and a function call each open a scope, and
    what they define is gone when it closes. Node names are unique in the whole step: a name
    defined again (in the next iteration, say) becomes `h.1`, `h.2`, ... An array written in
    place (`W -= ...`, `A[i] := v`) gets a new version `A@k` in its own buffer; after an `if`,
    every buffer either branch wrote gets a `merge` version."""

    def __init__(self, kind: str, consts: dict, params, file: str, functions=None):
        self.kind, self.consts, self.file = kind, consts, file
        self.functions = functions or {}
        self.nodes: list[Node] = []          # the block being filled: the step, or a branch
        self.outer: list[list[Node]] = []    # the enclosing blocks, when in a branch
        self.by_name: dict[str, Node] = {}   # every node made, in any block
        self.scopes: list[dict] = [{}]       # user name -> node name or constant; innermost last
        self.params = {p.name: p for p in params}
        self.current = {p.name: p.name for p in params}   # buffer -> its latest version
        self.versions: dict[str, int] = {}   # buffer -> the highest version number given
        self.readonly: dict[str, str] = {}   # buffer -> why it cannot be written
        self.calls: list[str] = []           # functions being inlined
        self.outputs: list[str] = []
        self.later: dict[str, Loc] = {}      # names the block defines, for "read before defined"
        self.temp = 0
        self.depth = 0                       # nesting of the expression or block being lowered
        self.unrolled = 0                    # loop iterations unrolled so far
        self.suffix: dict[str, int] = {}     # name -> the next .k to try (_unique)
        self.sweeps: dict[str, Sweep] = {}   # loss -> its reverse sweep (grad)
        self.derived: set[str] = set()       # nodes a sweep made
        for p in params:
            self._add(Node(p.name, "param", dtype=p.dtype, shape=p.shape, loc=p.loc))

    labels = ""                              # the label input's name (y)

    def input(self, name: str, dtype: str, shape: tuple, loc: Loc) -> None:
        self.labels = name
        self._add(Node(name, "input", dtype=dtype, shape=shape, loc=loc))
        self.scopes[0][name] = name
        self.readonly[name] = "the example (data), which a step only reads"

    def _add(self, node: Node) -> Node:
        if node.name in self.by_name:
            raise SirError(f"'{node.name}' is defined twice", node.loc)
        self.nodes.append(node)
        self.by_name[node.name] = node
        if len(self.by_name) > MAX_NODES:
            raise SirError(f"the step has more than {MAX_NODES:,} operations (loops are "
                           "unrolled): make the loop shorter or work on whole arrays", node.loc)
        return node

    def finish(self, item: LoopItem) -> Graph:
        if self.kind == "eval" and not self.outputs:
            raise SirError("the eval block needs a `predict` statement", item.loc)
        loss = next((n for n in self.nodes if n.name == "loss"), None)
        if self.kind == "eval" and loss is not None and (loss.shape or loss.dtype not in
                                                         ("f32", "f16")):
            raise SirError(f"the eval block's `loss` is reported as its mean over each set: a "
                           f"float scalar, got {loss.type}", loss.loc)
        self.nodes = self._drop_unused_derivatives(self.nodes, set(self.outputs))
        order = list(walk(self.nodes))
        same = {n.name: n.args[0] for n in order if n.op == "stop_grad"
                and _reads_in_place(n, order)}
        for k in same:                      # stop_grad(stop_grad(x)) reads x
            while same[k] in same:
                same[k] = same[same[k]]
        return Graph(_without_stop_grads(self.nodes, same),
                     tuple(same.get(o, o) for o in self.outputs))

    def _drop_unused_derivatives(self, nodes: list[Node], keep: set) -> list[Node]:
        """A sweep differentiates towards every parameter; drop what no `grad` asked for."""
        while True:
            read = {a for n in nodes for a in n.operands} | keep
            dead = {n.name for n in nodes if n.name in self.derived and n.name not in read}
            if not dead:
                return nodes
            nodes = [n for n in nodes if n.name not in dead]
            self.derived -= dead

    # names
    def _lookup(self, name: str):
        """(True, value) for a name in scope (a node name or a constant), else (False, None)."""
        for scope in reversed(self.scopes):
            if name in scope:
                return True, scope[name]
        return False, None

    def _latest(self, value):
        """A node name read now means its buffer's latest version."""
        if isinstance(value, str):
            return self.current.get(value.split("@")[0], value)
        return value

    def _unique(self, name: str) -> str:
        if name not in self.by_name:
            return name
        k = self.suffix.get(name, 1)
        while f"{name}.{k}" in self.by_name:
            k += 1
        self.suffix[name] = k + 1
        return f"{name}.{k}"

    def _temp_name(self) -> str:
        while f"%{self.temp}" in self.by_name:
            self.temp += 1
        self.temp += 1
        return f"%{self.temp - 1}"

    def _node_named(self, name: str) -> Node:
        return self.by_name[name]

    def _check_new_name(self, name: str, loc: Loc) -> None:
        if name in self.consts:
            raise SirError(f"'{name}' is a config constant; choose another name", loc)
        if name in self.functions:
            raise SirError(f"'{name}' is a function; choose another name", loc)
        if self._lookup(name)[0]:
            raise SirError(f"'{name}' is already defined; values are single-assignment "
                           "(choose a new name, or write into it with :=)", loc)

    def _const_env(self) -> dict:
        """Config constants and the constants in scope (loop indices): what bounds may use."""
        env = dict(self.consts)
        for scope in self.scopes:
            env.update({k: v for k, v in scope.items() if not isinstance(v, str)})
        return env

    # statements
    def statement(self, stmt) -> None:
        if isinstance(stmt, Predict):
            return self._predict(stmt)
        if isinstance(stmt, If):
            return self._if(stmt)
        if isinstance(stmt, For):
            return self._for(stmt)
        if isinstance(stmt, SetItem):
            return self._setitem(stmt)
        if isinstance(stmt, Return):
            raise SirError("`return` belongs at the end of a function (def name(...) { ... })",
                           stmt.loc)
        if isinstance(stmt, Update) or (stmt.name in self.params
                                        and not self._lookup(stmt.name)[0]):
            return self._update(stmt)
        self._let(stmt)

    def _block(self, stmts, scope: dict | None = None) -> None:
        self.scopes.append(dict(scope or {}))
        self.depth += 1
        try:
            if stmts:
                _nest(self.depth, stmts[0])
            for stmt in stmts:
                self.statement(stmt)
        finally:
            self.scopes.pop()
            self.depth -= 1

    def _let(self, stmt: Let) -> None:
        self._check_new_name(stmt.name, stmt.loc)
        if isinstance(stmt.expr, Call) and stmt.expr.fn == "grad":
            value = self._grad(stmt.expr, stmt.name)
            if stmt.type is not None:
                self._check_type(stmt, value)
            self.scopes[-1][stmt.name] = value
            if isinstance(value, str):      # other grads (and names) may share this value
                self.readonly.setdefault(value.split("@")[0], "a gradient from grad(), which "
                                         "other values may share (copy it to change it)")
            return
        fresh = len(self.nodes)
        value = self.expr(stmt.expr)
        if isinstance(value, str):
            value = self._name_result(value, fresh, stmt.name, stmt.expr.loc, unique=True)
        if stmt.type is not None:
            self._check_type(stmt, value)
        self.scopes[-1][stmt.name] = value

    def _name_result(self, value: str, fresh: int, name: str, loc: Loc,
                     unique: bool = False) -> str:
        """Give the node a statement created its statement's name (else copy the value);
        `unique`: the name, or name.1, name.2, ... when the step already has it."""
        if len(self.nodes) > fresh and self.nodes[-1].name == value and value.startswith("%"):
            node = self.nodes.pop()
            del self.by_name[node.name]
            name = self._unique(name) if unique else name
            self._add(Node(name, node.op, node.args, node.attrs, node.dtype, node.shape, node.loc))
            return name
        return self._node("copy", [value], {}, loc, name=self._unique(name) if unique else name)

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

    def _target(self, name: str, loc: Loc) -> str:
        """The buffer a write to `name` writes."""
        found, value = self._lookup(name)
        if not found and name in self.params:
            if self.kind == "eval":
                raise SirError(f"the eval block cannot update parameter '{name}'", loc)
            return name
        if not found:
            what = ("a config constant" if name in self.consts else
                    f"the {name} counter, which a step only reads" if name in ("step", "epoch")
                    else "not defined")
            raise SirError(f"cannot write '{name}': it is {what}", loc)
        if not isinstance(value, str):
            raise SirError(f"cannot write '{name}': it is the constant {value!r}", loc)
        buffer = value.split("@")[0]
        if buffer in self.readonly:
            raise SirError(f"cannot write '{name}': it is {self.readonly[buffer]}", loc)
        return buffer

    def _new_version(self, buffer: str) -> str:
        self.versions[buffer] = self.versions.get(buffer, 0) + 1
        return f"{buffer}@{self.versions[buffer]}"

    def _update(self, stmt) -> None:
        buffer = self._target(stmt.name, stmt.loc)
        old = self.current.get(buffer, buffer)
        base = self._node_named(old)
        op = stmt.op if isinstance(stmt, Update) else "="
        fresh = len(self.nodes)
        value = self.expr(stmt.expr)
        new = self._new_version(buffer)
        if op in SET_OPS and op != ":=":
            value = self._node(SET_OPS[op], [old, value], {}, stmt.loc)
        elif not isinstance(value, str):
            raise SirError(f"cannot set '{stmt.name}' to a constant; write "
                           f"`{stmt.name} *= 0` and `+=` instead", stmt.expr.loc)
        node = self._node_named(self._name_result(value, fresh, new, stmt.loc))
        if (node.dtype, node.shape) != (base.dtype, base.shape):
            raise SirError(f"the update of '{stmt.name}' gives {node.type}; '{stmt.name}' is "
                           f"{base.type}", stmt.loc)
        self.current[buffer] = new

    def _setitem(self, stmt: SetItem) -> None:
        buffer = self._target(stmt.name, stmt.loc)
        old = self.current.get(buffer, buffer)
        at, dyn = self._subscripts(stmt.subs, self._node_named(old).shape, stmt.loc)
        value = self.expr(stmt.expr)
        new = self._new_version(buffer)
        self._node("setindex", [old, value, *dyn], {"at": at, "acc": SET_OPS[stmt.op]},
                   stmt.loc, name=new)
        self.current[buffer] = new

    def _predict(self, stmt: Predict) -> None:
        if self.kind != "eval":
            raise SirError("`predict` belongs in the eval block", stmt.loc)
        if self.outputs:
            raise SirError("the eval block has one `predict`", stmt.loc)
        if self.outer or len(self.scopes) > 1 or self.calls:
            raise SirError("`predict` belongs at the top level of the eval block, not in an "
                           "if, a loop or a function", stmt.loc)
        value = self.expr(stmt.expr)
        if not isinstance(value, str):
            raise SirError("predict needs an array value, got a constant", stmt.expr.loc)
        label = self._node_named(self.labels) if self.labels else None
        if label is not None and self._node_named(value).shape != label.shape:
            raise SirError(f"the prediction is {self._node_named(value).type}; the label it is "
                           f"compared with is {label.type}", stmt.expr.loc)
        self.outputs.append(value)

    def _for(self, stmt: For) -> None:
        call = stmt.range
        if not isinstance(call, Call) or call.fn != "range" or call.kwargs or \
                not 1 <= len(call.args) <= 3:
            raise SirError("a loop runs over range(stop), range(start, stop) or "
                           "range(start, stop, step)", getattr(call, "loc", stmt.loc))
        bounds = [self._const_int(a, "a loop bound") for a in call.args]
        if len(bounds) == 3 and bounds[2] == 0:
            raise SirError("range(): the step cannot be 0", call.args[2].loc)
        self._check_new_name(stmt.var, stmt.loc)
        iterations = range(*bounds)
        try:
            self.unrolled += len(iterations)
        except OverflowError:                  # more iterations than a machine word counts
            self.unrolled = MAX_NODES + 1
        if self.unrolled > MAX_NODES:
            raise SirError(f"loops unroll to more than {MAX_NODES:,} iterations here (the "
                           "limit of a step): make them shorter or work on whole arrays",
                           stmt.loc)
        for n, i in enumerate(iterations):
            before = len(self.by_name)
            self._block(stmt.body, {stmt.var: i})
            if n == 0 and (len(self.by_name) - before) * len(iterations) > MAX_NODES:
                raise SirError(f"this loop unrolls to about "
                               f"{(len(self.by_name) - before) * len(iterations):,} operations "
                               f"({len(iterations):,} iterations; the limit of a step is "
                               f"{MAX_NODES:,}): make it shorter or work on whole arrays",
                               stmt.loc)

    def _const_int(self, e, what: str) -> int:
        try:
            value = const_eval(e, self._const_env())
        except SirError as exc:
            raise SirError(f"{what} must be a constant (numbers, config constants, loop "
                           f"indices): {exc.args[0]}", e.loc) from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SirError(f"{what} must be an integer, got {value!r}", e.loc)
        return value

    def _if(self, stmt: If) -> None:
        cond = self.expr(stmt.cond)
        if not isinstance(cond, str):          # known now: only the chosen branch exists
            self._block(stmt.then if cond else stmt.orelse)
            return
        c = self._node_named(cond)
        if c.shape != () or c.dtype != "bool":
            raise SirError(f"the condition of an if is a bool scalar, got {c.type} (compare "
                           "it: x > 0, any(...), ...)", stmt.cond.loc)
        before, sweeps = dict(self.current), dict(self.sweeps)
        branches = []
        for block in (stmt.then, stmt.orelse):
            self.outer.append(self.nodes)
            self.nodes, self.current = [], dict(before)
            try:
                self._block(block)
                nodes = self._drop_unused_derivatives(self.nodes, set())
                branches.append((tuple(nodes), self.current))
            finally:
                self.nodes = self.outer.pop()
                self.sweeps = dict(sweeps)      # a sweep made in a branch ends with it
        (then, then_cur), (orelse, else_cur) = branches
        self.current = before
        inner = {n.name for n in walk(then + orelse)}
        written = [b for b in dict.fromkeys([*then_cur, *else_cur]) if b not in inner]
        changed = [b for b in written
                   if then_cur.get(b, b) != before.get(b, b) or
                   else_cur.get(b, b) != before.get(b, b)]
        if not then and not orelse:
            return
        name = region_name(then, orelse)
        self._add(Node(name, "if", (cond, *captures(then, orelse)), (("else", orelse),
                                                                     ("then", then)),
                       "bool", (), stmt.loc))
        for b in changed:
            old = before.get(b, b)
            node = self._node_named(old)
            new = self._new_version(b)
            self._add(Node(new, "merge", (name, old), (), node.dtype, node.shape, stmt.loc))
            self.current[b] = new

    # expressions: return a node name (str) or a constant
    def expr(self, e):
        self.depth += 1
        try:
            _nest(self.depth, e)
            return getattr(self, f"_{type(e).__name__.lower()}")(e)
        finally:
            self.depth -= 1

    def _num(self, e: Num):
        return e.value

    def _str(self, e: Str):
        raise SirError("a string is not a value here", e.loc)

    def _list(self, e: List):
        raise SirError("a list is not a value here (lists give shapes: zeros([3, 4]))", e.loc)

    def _slice(self, e: Slice):
        raise SirError("a slice belongs inside [ ]", e.loc)

    def _name(self, e: Name):
        found, value = self._lookup(e.id)
        if found:
            return self._latest(value)
        if e.id in self.params:
            return self.current[e.id]
        if e.id in self.consts:
            value = self.consts[e.id]
            if isinstance(value, str):
                raise SirError(f"config constant '{e.id}' is a string, not a number", e.loc)
            return value
        if e.id in ("true", "false"):
            return e.id == "true"
        if e.id in ("step", "epoch") and e.id not in self.later:
            return self._counter(e.id, e.loc)
        if e.id in self.later and not self.calls:
            raise SirError(f"'{e.id}' is read before it is defined (at line "
                           f"{self.later[e.id].line})", e.loc)
        raise SirError(f"unknown name '{e.id}'", e.loc)

    def _neg(self, e: Neg):
        a = self.expr(e.a)
        return -a if not isinstance(a, str) else self._node("neg", [a], {}, e.loc)

    def _not(self, e: Not):
        a = self.expr(e.a)
        if not isinstance(a, str):
            if e.logical or isinstance(a, bool):
                return not a
            return _apply(lambda v: ~v, (_integer(a, e.a.loc),), e)
        if e.logical and self._node_named(a).dtype != "bool":
            raise SirError(f"`not` takes a bool value, got {self._node_named(a).type} (for "
                           "bits use ~)", e.loc)
        return self._node("not", [a], {}, e.loc)

    def _binop(self, e: BinOp):
        chain = _left_chain(e, lambda a: isinstance(a, BinOp))
        first = chain[-1]
        ta = BINOPS[first.op] == "matmul" and isinstance(first.a, Transpose)   # A.T @ b
        a = self.expr(first.a.a if ta else first.a)
        for link in reversed(chain):
            a = self._binop_value(link, a, self.expr(link.b), ta and link is first)
        return a

    def _binop_value(self, e: BinOp, a, b, ta: bool):
        op = BINOPS[e.op]
        if ta:
            return self._node("matmul", [a, b], {"ta": 1}, e.loc)
        if e.op in ("and", "or"):
            for v, sub in ((a, e.a), (b, e.b)):
                if isinstance(v, str) and self._node_named(v).dtype != "bool" or \
                        not isinstance(v, (str, bool)):
                    raise SirError(f"`{e.op}` takes bool values (for bits use & and |)",
                                   sub.loc)
        if not isinstance(a, str) and not isinstance(b, str) and op in CONST_BINOPS:
            return const_eval(BinOp(e.op, Num(a, e.a.loc), Num(b, e.b.loc), e.loc), {})
        return self._node(op, [a, b], {}, e.loc)

    def _transpose(self, e: Transpose):
        return self._node("transpose", [self.expr(e.a)], {}, e.loc)

    def _index(self, e: Index):
        base = self.expr(e.a)
        if not isinstance(base, str):
            raise SirError("cannot index a constant", e.loc)
        at, dyn = self._subscripts(e.subs, self._node_named(base).shape, e.loc)
        if not at:
            return base
        return self._node("index", [base, *dyn], {"at": at}, e.loc)

    def _subscripts(self, subs, shape: tuple, loc: Loc) -> tuple[tuple, list]:
        entries, dyn = [], []
        for sub in subs:
            if isinstance(sub, Slice):
                entries.append(tuple(None if b is None else self._const_int(b, "a slice bound")
                                     for b in (sub.start, sub.stop, sub.step)))
                continue
            value = self.expr(sub)
            if isinstance(value, str):
                node = self._node_named(value)
                if node.dtype not in INTS:
                    raise SirError(f"an index is an integer scalar or array, got {node.type} "
                                   "(cast it: i32(...))", sub.loc)
                entries.append(None)
                dyn.append(value)
            else:
                entries.append(_integer(value, sub.loc))
        try:
            at = normalize_spec(entries, shape)
            check_spec(at, shape, [self._node_named(d).shape for d in dyn])
            return at, dyn
        except OpError as exc:
            raise SirError(str(exc), loc) from None

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
                for a in args:                  # a forward value the sweep reads again
                    self._check_not_overwritten(a)
                # a write into part of an array is a new version of that array's buffer
                name = self._new_version(args[0].split("@")[0]) if op == "setindex" else None
                made = self._node(op, args, attrs, e.loc, name=name)
                self.derived.add(made)
                return made
            visible = [n for block in self.outer for n in block] + self.nodes
            self.sweeps[loss] = Sweep(visible, loss, emit,
                                      lambda v: self._node_named(v).shape, e.loc)
        value = self.sweeps[loss].of(wrt, e.loc)
        try:
            self._check_not_overwritten(value)
        except SirError as exc:
            raise SirError(exc.message, e.loc) from None
        mine = {n.name for n in self.nodes}
        if name and isinstance(value, str) and value in self.derived and value.startswith("%") \
                and value in mine:
            # a version (a scatter into zeros: `%7@1`) is renamed with its whole buffer
            buffer = value.split("@")[0]
            name = self._unique(name)
            renames = {n.name: name + n.name[len(buffer):] for n in self.nodes
                       if n.buffer == buffer}
            for old, new in renames.items():
                self._rename(old, new)
            if buffer in self.versions:
                self.versions[name] = self.versions[buffer]
            for sweep in self.sweeps.values():
                sweep.adjoint = {k: renames.get(v, v) if isinstance(v, str) else v
                                 for k, v in sweep.adjoint.items()}
            value = renames[value]
        return value

    def _check_not_overwritten(self, value) -> None:
        """A derivative that reads a forward value written over since (`h := h * h`, or a
        parameter updated before its grad) cannot be made: its buffer holds another version."""
        if not isinstance(value, str):
            return
        buffer = value.split("@")[0]
        latest = self.current.get(buffer, value)
        if latest != value and buffer not in self.derived:
            line = self._node_named(latest).loc.line
            raise SirError(f"grad: the derivative reads '{buffer}' as it was before line {line} "
                           f"wrote over it; give the new value a name of its own "
                           f"(h2 = f(h), not h := f(h)), or take the grad before the update",
                           NOWHERE)

    def _rename(self, old: str, new: str) -> None:
        """Give a node made by a sweep a statement's name; its readers follow."""
        self.nodes = [Node(new if n.name == old else n.name, n.op,
                           tuple(new if a == old else a for a in n.args), n.attrs, n.dtype,
                           n.shape, n.loc) for n in self.nodes]
        del self.by_name[old]
        self.by_name.update({n.name: n for n in self.nodes})
        self.derived.discard(old)           # a named value now: kept, read or not

    def _call(self, e: Call):
        if e.fn == "grad":
            return self._grad(e)
        if e.fn in self.functions:
            return self._inline(self.functions[e.fn], e)
        if e.fn in CONSTRUCTORS:
            return self._construct(e)
        if e.fn in ("normal_like", "bernoulli"):
            return self._random(e)
        if e.fn in COMPOSITES:
            return self._composite(e)
        if e.fn == "einsum":
            if not e.args or not isinstance(e.args[0], Str) or e.kwargs:
                raise SirError("einsum takes a string and arrays: einsum(\"si,sj->ij\", a, b)",
                               e.loc)
            args = [self.expr(a) for a in e.args[1:]]
            return self._node("einsum", args, {"spec": e.args[0].value}, e.loc)
        attrs = {k: const_eval(v, self._const_env()) for k, v in e.kwargs}
        if attrs.get("keepdims") is False:
            del attrs["keepdims"]           # the default: one spelling, one node
        items = e.args
        if e.fn in ("concat", "stack") and len(items) == 1 and isinstance(items[0], List):
            items = items[0].items
        if e.fn == "reshape" and len(items) == 2 and "shape" not in attrs:
            attrs["shape"] = _shape(const_eval(items[1], self._const_env()), items[1].loc)
            items = items[:1]
        args = [self.expr(a) for a in items]
        if all(not isinstance(a, str) for a in args) and e.fn in CONST_FUNCS and not attrs:
            return _apply(CONST_FUNCS[e.fn], args, e)
        if len(args) == 1 and not isinstance(args[0], str) and e.fn in SUGAR and not attrs:
            return _const_cast(args[0], e.fn, e)
        if e.fn == "stop_grad" and len(args) == 1 and not isinstance(args[0], str):
            return args[0]                  # a constant has no derivative anyway
        op, attrs = _resolve_call(e, args, attrs)
        return self._node(op, args, attrs, e.loc)

    def _composite(self, e: Call):
        """softmax, log_softmax, cross_entropy, gelu and layernorm, written out in ops
        (composites.py)."""
        env = self._const_env()
        kwargs = {k: const_eval(v, env) for k, v in e.kwargs}
        usage, options, n_args = COMPOSITES[e.fn]
        if len(e.args) != n_args or not set(kwargs) <= set(options):
            raise SirError(f"{e.fn} takes {usage}", e.loc)
        args = [self.expr(a) for a in e.args]
        if not all(isinstance(a, str) for a in args):
            raise SirError(f"{e.fn} takes arrays, not constants: {usage}", e.loc)
        x = self._node_named(args[0])
        if x.dtype not in ("f32", "f16"):
            raise SirError(f"{e.fn} takes floats, got {x.type} (cast it: f32(...))",
                           e.args[0].loc)
        try:
            return write_out(e.fn, [self._node_named(a) for a in args], kwargs,
                             lambda op, *operands, **attrs:
                             self._node(op, list(operands), attrs, e.loc))
        except OpError as exc:
            raise SirError(f"{e.fn}: {exc}", e.loc) from None

    def _construct(self, e: Call):
        """zeros(shape), ones(shape), full(shape, value), eye(n), arange([start,] stop[, step]),
        each with an optional dtype= (f32; arange: i32)."""
        env = self._const_env()
        kwargs = {k: const_eval(v, env) for k, v in e.kwargs}
        args = [const_eval(a, env) for a in e.args]
        allowed = {"dtype"} | ({"value"} if e.fn == "full" else set())
        for k in kwargs:
            if k not in allowed:
                raise SirError(f"{e.fn}() takes no option '{k}' (options: "
                               f"{', '.join(sorted(allowed))})", e.loc)
        dtype = kwargs.get("dtype", "i32" if e.fn == "arange" else "f32")
        want = {"zeros": 1, "ones": 1, "full": 2, "eye": 1}.get(e.fn)
        if want is not None and len(args) != want:
            raise SirError(f"{CONSTRUCTORS[e.fn]}", e.loc)
        if e.fn == "arange":
            if not 1 <= len(args) <= 3:
                raise SirError(CONSTRUCTORS[e.fn], e.loc)
            start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
            ints = [_integer(v, e.loc) for v in (start, stop, step)]
            attrs = dict(zip(("start", "stop", "step"), ints), dtype=dtype)
            return self._node("arange", [], attrs, e.loc)
        if e.fn == "eye":
            n = _shape(args[0], e.args[0].loc)
            return self._node("eye", [], {"shape": n * 2 if len(n) == 1 else n,
                                          "dtype": dtype}, e.loc)
        value = {"zeros": 0, "ones": 1}.get(e.fn, args[-1] if e.fn == "full" else 0)
        if isinstance(value, (str, tuple)):
            raise SirError(f"{e.fn}(): the value must be a number", e.loc)
        return self._node("fill", [], {"shape": _shape(args[0], e.args[0].loc), "dtype": dtype,
                                       "value": kwargs.get("value", value)}, e.loc)

    def _random(self, e: Call):
        """normal_like(x, std=S[, mean=M]): normal values of x's shape and dtype (x is not
        read); bernoulli(p, shape): bool values, true with probability p."""
        env = self._const_env()
        kwargs = {k: const_eval(v, env) for k, v in e.kwargs}
        if e.fn == "normal_like":
            if len(e.args) != 1 or not set(kwargs) <= {"std", "mean"} or "std" not in kwargs:
                raise SirError("normal_like takes an array and std= (and mean=): "
                               "normal_like(W, std=0.01)", e.loc)
            like = self.expr(e.args[0])
            if not isinstance(like, str):
                raise SirError("normal_like: the first argument is an array (its shape and "
                               "dtype are used)", e.args[0].loc)
            node = self._node_named(like)
            attrs = {"shape": node.shape, "dtype": node.dtype, "std": kwargs["std"],
                     "mean": kwargs.get("mean", 0.0)}
            return self._node("normal", [], attrs, e.loc)
        if len(e.args) != 2 or kwargs:
            raise SirError("bernoulli takes a probability and a shape: bernoulli(0.5, [8])",
                           e.loc)
        p = const_eval(e.args[0], env)
        return self._node("bernoulli", [], {"p": p, "shape": _shape(const_eval(e.args[1], env),
                                                                      e.args[1].loc),
                                            "dtype": "bool"}, e.loc)

    def _counter(self, name: str, loc: Loc) -> str:
        """`step` (steps done before this one) and `epoch` (epochs done): i32 scalars the load
        kernel writes with the example."""
        if self.kind == "eval":
            raise SirError(f"'{name}' counts training steps; the eval block has no {name}", loc)
        if name not in self.by_name:
            top = self.outer[0] if self.outer else self.nodes
            node = Node(name, "input", dtype="i32", shape=(), loc=loc)
            at = max(i for i, n in enumerate(top) if n.op in ("param", "input")) + 1
            top.insert(at, node)
            self.by_name[name] = node
            self.readonly[name] = f"the {name} counter, which a step only reads"
        return name

    def _inline(self, f: FunctionItem, e: Call):
        if f.name in self.calls:
            raise SirError(f"{f.name}() calls itself; functions are inlined, so recursion is "
                           "not allowed", e.loc)
        if len(self.calls) >= MAX_CALL_DEPTH:
            raise SirError(f"functions call each other more than {MAX_CALL_DEPTH} deep here "
                           "(they are inlined)", e.loc)
        if e.kwargs or len(e.args) != len(f.params):
            raise SirError(f"{f.name}() takes {len(f.params)} argument"
                           f"{'s' * (len(f.params) != 1)} ({', '.join(f.params)}), got "
                           f"{len(e.args) + len(e.kwargs)}", e.loc)
        args = [self.expr(a) for a in e.args]
        saved_scopes, saved_readonly = self.scopes, dict(self.readonly)
        self.scopes = [dict(zip(f.params, args))]
        for p, a in zip(f.params, args):
            if isinstance(a, str):
                self.readonly.setdefault(a.split("@")[0], f"an argument of {f.name}() (copy "
                                         "it into a new array to change it)")
        self.calls.append(f.name)
        try:
            for stmt in f.body[:-1]:
                self.statement(stmt)
            return self.expr(f.body[-1].expr)
        finally:
            self.calls.pop()
            self.scopes, self.readonly = saved_scopes, saved_readonly

    def _node(self, op: str, args: list, attrs: dict, loc: Loc, name: str | None = None) -> str:
        opdef = OPS[op]
        if opdef.arity is not None and len(args) != opdef.arity:
            raise SirError(f"{op} takes {opdef.arity} operand{'s' * (opdef.arity != 1)}, "
                           f"got {len(args)}", loc)
        for a in args:
            if not isinstance(a, (str, int, float)):    # a list (a shape) or a string constant
                raise SirError(f"{op}: an operand is an array or a number, got the constant "
                               f"{_shown(a)}", loc)
        operands = [operand(self._node_named(a)) if isinstance(a, str) else Operand(None, (), a)
                    for a in args]
        try:
            dtype, shape = infer(opdef, operands, attrs)
        except OpError as exc:
            raise SirError(str(exc), loc) from None
        check_array_size(dtype, shape, loc)
        name = name or self._temp_name()
        self._add(Node(name, op, tuple(args), tuple(sorted(attrs.items())), dtype, shape, loc))
        return name


def _reads_in_place(sg: Node, order: list[Node]) -> bool:
    """Whether stop_grad(v)'s readers may read v itself: its own array is never written in
    place (that would write v's), and every reader comes before v's array gets a new version
    (else it would read that one). Otherwise the stop_grad stays, as a copy."""
    at = order.index(sg)
    source = sg.args[0].split("@")[0]
    if any(n.buffer == sg.buffer and n.version > 0 for n in order):
        return False
    later = [i for i, n in enumerate(order) if i > at and n.buffer == source and n.version > 0]
    last_read = max((i for i, n in enumerate(order) if sg.name in n.operands), default=at)
    return not later or last_read < later[0]


def _shown(value) -> str:
    """A constant for a message, cut short (a list may nest deep)."""
    text = repr(value).replace("(", "[").replace(")", "]").replace(",]", "]")
    return text if len(text) <= 40 else text[:37] + "..."


def _without_stop_grads(nodes, same: dict) -> tuple:
    """The block with the stop_grad nodes of `same` gone and their readers reading what they
    wrapped (stop_grad only tells the sweeps where to stop, so it costs nothing); the others
    become copies."""
    out = []
    for n in nodes:
        if n.op == "stop_grad" and n.name in same:
            continue
        if n.op == "stop_grad":
            n = Node(n.name, "copy", n.args, (), n.dtype, n.shape, n.loc)
        elif n.op == "if":
            then, orelse = (_without_stop_grads(b, same) for b in n.branches)
            n = Node(n.name, n.op, (same.get(n.args[0], n.args[0]), *captures(then, orelse)),
                     (("else", orelse), ("then", then)), n.dtype, n.shape, n.loc)
        if n.op != "if":
            n = renamed_reads(n, same)
        out.append(n)
    return tuple(out)


def _shape(value, loc: Loc) -> tuple:
    dims = value if isinstance(value, tuple) else (value,)
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise SirError(f"a shape is a positive integer or a list of them, got {value!r}",
                           loc)
    return tuple(dims)


CONSTRUCTORS = {"zeros": "zeros(shape) takes a shape: zeros([3, 4]) or zeros(5)",
                "ones": "ones(shape) takes a shape: ones([3, 4]) or ones(5)",
                "full": "full(shape, value) takes a shape and a value: full([3, 4], 0.5)",
                "eye": "eye(n) takes a size: eye(4)",
                "arange": "arange takes arange(stop), arange(start, stop) or "
                          "arange(start, stop, step)"}

SUGAR = {d: ("cast", {"to": d}) for d in DTYPES}



def _const_cast(value, dtype: str, e: Call):
    """`u8(1)`, `f32(2)`: a constant of that dtype (still an immediate)."""
    if isinstance(value, (str, tuple)):
        raise SirError(f"{dtype}() of {value!r} is not defined", e.loc)
    if dtype == "bool":
        return bool(value)
    if dtype in ("f32", "f16"):
        return float(value)
    v = int(value) if isinstance(value, float) and math.isfinite(value) else value
    try:
        check_immediate(v if not isinstance(v, bool) else int(v), dtype)
    except OpError as exc:
        raise SirError(str(exc), e.loc) from None
    return int(v)


def _resolve_call(e: Call, args: list, attrs: dict) -> tuple[str, dict]:
    """The op a call names: an op of the table, a dtype (a cast), or max/min of two values."""
    if e.fn in SUGAR and not attrs:
        op, extra = SUGAR[e.fn]
        return op, extra
    if e.fn in ("max", "min") and len(args) == 2:
        return ("maximum" if e.fn == "max" else "minimum"), attrs
    if e.fn in OPS and e.fn not in HIDDEN:
        return e.fn, attrs
    known = sorted((set(OPS) - HIDDEN) | set(SUGAR) | set(CONSTRUCTORS) | set(COMPOSITES)
                   | {"grad", "einsum", "normal_like", "bernoulli"})
    raise SirError(f"unknown function '{e.fn}' (array ops: {', '.join(known)})", e.loc)


HIDDEN = {"index", "setindex", "if", "merge"}    # written as a[i], a[i] := v, if { } else { }
