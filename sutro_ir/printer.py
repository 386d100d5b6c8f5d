"""Program -> canonical .sir text. The printer and the parser are inverses:
`lower(parse(print_program(p))) == p` for every program and after every pipeline.

Canonical form: configuration constants evaluated, every dataset argument given, one statement
per node with its type (`h: f32[1000] = relu(h_pre)`), updates as `W1 := sub(W1, %7)`.
A parameter's versions print under the parameter's own name: every read of an old version comes
before the update (verify checks it), so the name always means the latest version.
"""

from __future__ import annotations

from .graph import SOURCE_OPS, Graph, Node
from .program import Loop, Program


def value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
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
    head = f"{kind} ({loop.x}, {loop.y}) in {loop.dataset}"
    if loop.batch is not None:
        head += f" batch {loop.batch}"
    if loop.epochs is not None:
        head += f" for {loop.epochs} epochs"
    if loop.until is not None:
        head += f" until train_accuracy >= {value(loop.until)}"
    body = ["  " + s for s in graph_lines(loop.graph)]
    return [head + " {", *body, "}"]


def graph_lines(g: Graph) -> list[str]:
    out = [node_line(n) for n in g.nodes if n.op not in SOURCE_OPS]
    out += [f"predict {_ref(o)}" for o in g.outputs]
    return out


def node_line(n: Node) -> str:
    args = [_ref(a) if isinstance(a, str) else value(a) for a in n.args]
    call = f"{n.op}({', '.join(args + [f'{k}={value(v)}' for k, v in n.attrs])})"
    if n.version > 0:
        return f"{n.buffer} := {call}"
    return f"{n.name}: {n.type} = {call}"


def _ref(name: str) -> str:
    return name.split("@")[0]
