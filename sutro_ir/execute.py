"""The executor: runs every training step and every evaluation for real, with numpy.

Each buffer of the schedule is one preallocated numpy array; each kernel is a closure that
writes its result into its buffer (`out=`), so a step allocates nothing. Parameter updates
write into the parameter's own array, as the machine model says.

Training visits the training set in order (no shuffling), one example (or one batch of
consecutive examples; a last partial batch is dropped) per step, for the given epochs; with
`until`, it stops after the first epoch whose train accuracy reaches the target.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import datasets
from .graph import Graph, Node, compute_dtype
from .ops import DTYPES, OPS
from .program import Program
from .schedule import Schedule


@dataclass(frozen=True)
class TrainResult:
    steps: int
    epochs: int
    train_accuracy: float
    test_accuracy: float
    history: tuple              # train accuracy after each epoch (when `until` is used)
    execute_s: float


def init_params(program: Program, seed: int) -> dict[str, np.ndarray]:
    """Every parameter from its initializer, in declaration order, from one seeded generator."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in program.params:
        kw = dict(p.init.kwargs)
        if p.init.kind == "normal":
            v = rng.normal(kw.get("mean", 0.0), kw["std"], p.shape)
        elif p.init.kind == "uniform":
            v = rng.uniform(kw["low"], kw["high"], p.shape)
        else:
            fill = {"zeros": 0, "ones": 1}.get(p.init.kind, kw.get("value"))
            v = np.full(p.shape, fill)
        out[p.name] = np.asarray(v).astype(DTYPES[p.dtype])
    return out


class Step:
    """One loop body compiled to closures over preallocated arrays."""

    def __init__(self, graph: Graph, arrays: dict[str, np.ndarray], kernels):
        self.graph = graph
        self.arrays = arrays
        for n in graph.nodes:
            if n.buffer not in arrays:
                arrays[n.buffer] = np.zeros(n.shape, DTYPES[n.dtype])
        # a fused kernel runs node by node over whole arrays: the same arithmetic in the same
        # order, so results are bit-identical; its register values get scratch arrays, which
        # the trace does not see
        self.calls = [_closure(n, graph, arrays) for k in kernels for n in k.nodes]

    def __call__(self) -> None:
        for call in self.calls:
            call()


def _closure(n: Node, graph: Graph, arrays) -> Callable[[], None]:
    op = OPS[n.op]
    kind = compute_dtype(n, graph)      # constants take the dtype the op computes in
    args = [arrays[graph[a].buffer] if isinstance(a, str) else DTYPES[kind](a) for a in n.args]
    ufunc = getattr(op.run, "ufunc", None)
    if ufunc is not None:
        # a float result of integer operands is computed in its own dtype (numpy would compute
        # exp of an i8 in f16); said only when needed: the keyword costs 20% of a small call
        out = arrays[n.buffer]
        mixed = op.dtype_rule == "float" and any(getattr(a, "dtype", out.dtype) != out.dtype
                                                 for a in args)
        return functools.partial(ufunc, *args, out=out, **({"dtype": out.dtype} if mixed else {}))
    return functools.partial(op.run, arrays[n.buffer], *args, **dict(n.attrs))


class Executor:
    def __init__(self, program: Program, train_schedule: Schedule, eval_kernels, seed: int):
        self.program = program
        self.arrays: dict[str, np.ndarray] = init_params(program, seed)
        self.train_step = Step(program.train.graph, self.arrays, train_schedule.kernels)
        self.eval_arrays = {p.name: self.arrays[p.name] for p in program.params}
        self.eval_step = Step(program.eval.graph, self.eval_arrays, eval_kernels)
        self.data = datasets.generate(program.data)

    def split(self, name: str):
        train, test = self.program.data.names
        xtr, ytr, xte, yte = self.data
        return (xtr, ytr) if name == train else (xte, yte)

    def accuracy(self, dataset: str) -> float:
        loop = self.program.eval
        xs, ys = self.split(dataset)
        x, y = self.eval_arrays[loop.x], self.eval_arrays[loop.y]
        pred = self.eval_arrays[self.program.eval.graph[loop.graph.outputs[0]].buffer]
        hits = 0
        for i in range(len(xs)):
            np.copyto(x, xs[i])
            np.copyto(y, ys[i])
            self.eval_step()
            hits += bool(np.all(pred == y))
        return hits / len(xs)

    def train(self, progress: Callable[[int, int], None] | None = None) -> TrainResult:
        """Run every step; a program that overflows or divides by zero trains on with inf/nan,
        as numpy would, without a warning per step."""
        with np.errstate(all="ignore"):
            return self._train(progress)

    def _train(self, progress) -> TrainResult:
        t0 = time.perf_counter()
        loop = self.program.train
        xs, ys = self.split(loop.dataset)
        x, y = self.arrays[loop.x], self.arrays[loop.y]
        b = loop.batch or 1
        starts = range(0, self.steps_per_epoch * b, b)
        step, history = 0, []
        for epoch in range(loop.epochs):
            for i in starts:
                np.copyto(x, xs[i] if loop.batch is None else xs[i:i + b])
                np.copyto(y, ys[i] if loop.batch is None else ys[i:i + b])
                self.train_step()
                step += 1
            if progress:
                progress(epoch + 1, loop.epochs)
            if loop.until is not None:
                history.append(self.accuracy(loop.dataset))
                if history[-1] >= loop.until:
                    break
        train_acc = history[-1] if history else self.accuracy(loop.dataset)
        test_acc = self.accuracy(self.program.eval.dataset)
        return TrainResult(step, epoch + 1, train_acc, test_acc, tuple(history),
                           time.perf_counter() - t0)

    @property
    def steps_per_epoch(self) -> int:
        loop = self.program.train
        xs, _ = self.split(loop.dataset)
        return len(xs) // (loop.batch or 1)
