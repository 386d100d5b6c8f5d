"""Program -> canonical .sir text. The printer and the parser are inverses:
`lower(parse(print_program(p))) == p` for every program, and after every pipeline the nodes come
back the same, in the same order (fused kernels print as comments, which the parser skips).

Canonical form: configuration constants evaluated, every dataset argument given, one statement
per node with its type (`h: f32[1000] = relu(h_pre)`), updates as `W1 := sub(W1, %7)`.
A parameter's versions print under the parameter's own name: every read of an old version comes
before the update (verify checks it), so the name always means the latest version.
"""

from __future__ import annotations

from .graph import SOURCE_OPS, Graph, Node
from .lower import SET_OPS
from .ops import slice_text
from .program import Loop, Program
from .schedule import schedule


def value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return repr(v)


def _kwargs(pairs) -> str:
    return ", ".join(f"{k}={value(v)}" for k, v in pairs)


def print_program(p: Program) -> str:
    lines = []
    if p.config:
        lines.append("config " + ", ".join(f"{k} = {value(v)}" for k, v in p.config))
    d = p.data
    lines.append(f"data {d.names[0]}, {d.names[1]} = {d.generator}({_kwargs(d.kwargs)})")
    for prm in p.params:
        dims = ",".join(str(s) for s in prm.shape)
        lines.append(f"param {prm.name}: {prm.dtype}[{dims}] = {prm.init.kind}"
                     f"({_kwargs(prm.init.kwargs)})")
    lines += _loop("train", p.train) + _loop("eval", p.eval)
    return "\n".join(lines) + "\n"


def _loop(kind: str, loop: Loop) -> list[str]:
    head = f"{loop.kind if kind == 'train' else kind} ({loop.x}, {loop.y}) in {loop.dataset}"
    if loop.batch is not None and loop.kind != "solve":
        head += f" batch {loop.batch}"
    if loop.epochs is not None and loop.kind != "solve":
        head += f" for {loop.epochs} epochs"
    if loop.until is not None:
        head += f" until {loop.until.text()}"
    body = ["  " + s for s in graph_lines(loop.graph)]
    return [head + " {", *body, "}"]


def graph_lines(g: Graph) -> list[str]:
    """One line per node; a fused kernel's nodes are indented under a comment that names what
    the kernel stores (comments: the text still parses, to the same nodes, unfused)."""
    out = []
    if g.kernels:
        for k in schedule(g).kernels:
            if len(k.nodes) == 1:
                out += block_lines(k.nodes)
                continue
            stores = ", ".join(_ref(m) for m in k.stores) or "nothing"
            out.append(f"# kernel {k.name}: one loop over {k.anchor.type}, stores {stores}")
            out += ["  " + node_line(n) for n in k.nodes]
    else:
        out = block_lines(n for n in g.nodes if n.op not in SOURCE_OPS)
    out += [f"predict {_ref(o)}" for o in g.outputs]
    return out


def block_lines(nodes) -> list[str]:
    out = []
    for n in nodes:
        if n.op == "merge":            # implied by the writes in the branches
            continue
        if n.op == "if":
            then, orelse = n.branches
            out.append(f"if {_ref(n.args[0])} {{")
            out += ["  " + line for line in block_lines(then)]
            if orelse:
                out.append("} else {")
                out += ["  " + line for line in block_lines(orelse)]
            out.append("}")
            continue
        out.append(node_line(n))
    return out


INFIX = {"and": "&", "or": "|", "xor": "^", "not": "~"}
ACC_TEXT = {acc: text for text, acc in SET_OPS.items()}     # "add" -> "+=", "set" -> ":="


def node_line(n: Node) -> str:
    args = [_ref(a) if isinstance(a, str) else value(a) for a in n.args]
    attrs = dict(n.attrs)
    if n.op == "setindex":
        return f"{n.buffer}[{_subscripts(attrs['at'], args[2:])}] {ACC_TEXT[attrs['acc']]} " \
               f"{args[1]}"
    if n.op == "index":
        call = f"{args[0]}[{_subscripts(attrs['at'], args[1:])}]"
    elif n.op == "fill":
        call = f"full({_list(attrs['shape'])}, {value(attrs['value'])}, " \
               f"dtype={value(attrs['dtype'])})"
    elif n.op == "eye":
        call = f"eye({_list(attrs['shape'])}, dtype={value(attrs['dtype'])})"
    elif n.op == "arange":
        call = f"arange({attrs['start']}, {attrs['stop']}, {attrs['step']}, " \
               f"dtype={value(attrs['dtype'])})"
    elif n.op in INFIX:             # `and`, `or`, `not` are keywords of the grammar
        call = f"{args[0]} {INFIX[n.op]} {args[1]}" if len(args) == 2 else f"~{args[0]}"
    elif n.op == "bernoulli":
        call = f"bernoulli({value(attrs['p'])}, {_list(attrs['shape'])})"
    elif n.op == "einsum":
        call = f"einsum({', '.join([value(attrs['spec'])] + args)})"
    else:
        call = f"{n.op}({', '.join(args + [f'{k}={value(v)}' for k, v in n.attrs])})"
    if n.version > 0:
        return f"{n.buffer} := {call}"
    return f"{n.name}: {n.type} = {call}"


def _subscripts(at: tuple, dyn: list) -> str:
    out, k = [], 0
    for entry in at:
        if entry is None:
            out.append(dyn[k])
            k += 1
        elif isinstance(entry, tuple):
            out.append(slice_text(entry))
        else:
            out.append(str(entry))
    return ", ".join(out) or ":"


def _list(shape: tuple) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _ref(name: str) -> str:
    return name.split("@")[0]
