"""The pass interface: named, pure `Graph -> Graph` functions with keyword options, run as a
pipeline string such as `layer-local-update,fuse` or `fuse{max_ops=8},recompute{values=h_pre}`.
The graph is verified after every pass. Each pass lives in its own module of this package and
declares whether it is exact (every output and trained weight bit-identical to the unscheduled
program; tests/test_passes.py checks it) or approximate.

A pass's docstring has a `Preserves:` line and a `Changes:` line; `sutro-sim passes` prints them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

from simulator.errors import SimError

from ..errors import Loc, SirError
from ..graph import Graph, verify

PassFn = Callable[..., Graph]


@dataclass(frozen=True)
class PassInfo:
    name: str
    fn: PassFn
    exact: bool | Callable[..., bool]   # or a function of the pass's options

    def is_exact(self, options: dict) -> bool:
        """`exact` for these options (parse_pipeline has checked their names)."""
        return self.exact(**options) if callable(self.exact) else self.exact

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.fn.__doc__ or "")


REGISTRY: dict[str, PassInfo] = {}


def register(name: str, exact: bool | Callable[..., bool]) -> Callable[[PassFn], PassFn]:
    def add(fn: PassFn) -> PassFn:
        REGISTRY[name] = PassInfo(name, fn, exact)
        return fn
    return add


@register("identity", exact=True)
def identity(graph: Graph) -> Graph:
    """Returns the graph unchanged.
    Preserves: everything.
    Changes: nothing."""
    return graph


_STEP = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(?:\{([^}]*)\})?\s*(?:,|$)")


PASSES = Loc("--passes", 0, 0)


@contextlib.contextmanager
def _at_the_option():
    """A mistake in the pipeline or in a pass's options, which has no place in the program, is
    placed at --passes (`--passes: error: ...`); one in a file an option names (a hierarchy)
    keeps the file's place in its message."""
    try:
        yield
    except SimError as e:
        if isinstance(e, SirError) and e.loc is not None and e.loc.line:
            raise
        where = e.where if e.where and e.where != PASSES.file else ""
        raise SirError(f"{where}: {e.message}" if where else e.message, PASSES) from None


def step_text(name: str, options: dict) -> str:
    """A pipeline step as written: 'b{k=v,k2=v2}' (parse_pipeline reads it back the same)."""
    if not options:
        return name
    text = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in options.items())
    return f"{name}{{{text}}}"


def pipeline_text(text: str) -> str:
    """A pipeline in one spelling ('' for none): the same pipeline always gives the same text."""
    return ",".join(step_text(name, options) for name, options in parse_pipeline(text))


def parse_pipeline(text: str) -> list[tuple[str, dict]]:
    """'a,b{k=v,k2=v2}' -> [('a', {}), ('b', {'k': 'v', 'k2': 'v2'})]. Empty text: no passes."""
    with _at_the_option():
        return _parse_pipeline(text)


def _parse_pipeline(text: str) -> list[tuple[str, dict]]:
    from ..lower import parse_value

    steps, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _STEP.match(text, pos)
        if not m or m.end() == pos:
            raise SirError(f"cannot read the pipeline at {text[pos:]!r} (expected "
                           "name or name{key=value,...}, separated by commas)")
        name, opts = m.group(1), m.group(2)
        if name not in REGISTRY:
            raise SirError(f"unknown pass '{name}' (registered: "
                           f"{', '.join(sorted(REGISTRY))})")
        options = {}
        for item in filter(None, (o.strip() for o in (opts or "").split(","))):
            key, eq, val = item.partition("=")
            if not eq:
                raise SirError(f"option '{item}' of '{name}' needs key=value")
            options[key.strip()] = parse_value(val)
        known = list(inspect.signature(REGISTRY[name].fn).parameters)[1:]
        unknown = [k for k in options if k not in known]
        if unknown:
            raise SirError(f"{name}: unknown option '{unknown[0]}' (options: "
                           f"{', '.join(known) or 'none'})")
        steps.append((name, options))
        pos = m.end()
    return steps


class Declined(Exception):
    """Raised by a pass that leaves the graph as it is; the message says why."""


def run_pipeline(graph: Graph, text: str) -> Graph:
    """Apply each pass in turn; verify after each. A pass that declines leaves the graph as it
    is; the graph's `notes` say which and why (the run report prints them), as they say which
    passes left the blocks of an if as they were."""
    notes = list(graph.notes)
    for name, options in parse_pipeline(text):
        try:
            with _at_the_option():
                out = REGISTRY[name].fn(graph, **options)
        except Declined as e:
            notes.append(f"{name}: {e}")
            continue
        if graph.has_regions and name in OUTSIDE_REGIONS:
            n = sum(1 for m in graph.nodes if m.op == "if")
            notes.append(f"{name}: worked around {n} if{'s' * (n != 1)} and left {'their' if n != 1 else 'its'} "
                         "blocks as they were (passes do not work inside blocks yet)")
        graph = verify(out, where=f"after pass {name}")
    return dataclasses.replace(graph, notes=tuple(dict.fromkeys(notes)))


OUTSIDE_REGIONS = ("fuse", "cse", "dce")
"""Passes that treat an if as one node: they change what is around it, not its blocks."""


def is_exact(text: str) -> bool:
    """Does every pass of the pipeline keep results bit-identical?"""
    return all(REGISTRY[name].is_exact(options) for name, options in parse_pipeline(text))


from . import cse, dce, fuse, layer_local, layout, recompute  # noqa: E402,F401  (each registers)
