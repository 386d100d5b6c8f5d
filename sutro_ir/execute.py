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
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import datasets
from .errors import SirError, TrainingDiverged
from .graph import REGION_OPS, Graph, Node, compute_dtype, dynamic_operands
from .ops import DTYPES, OPS, RANDOM_OPS, RunError
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
    paths: tuple = ((),)        # the distinct control paths of the steps (Step.path)
    step_paths: np.ndarray | None = None   # each step's row of `paths` (None: all path 0)
    steps_per_epoch: int = 0
    epochs_log: tuple = ()      # per epoch: {"epoch", "steps", "train_accuracy" (None unless
    #                             an until check measured it), "test_accuracy", "loss"}
    evaluations: tuple = ()     # Evaluation: the passes over a dataset that the algorithm made
    eval_paths: tuple = ((),)   # the distinct control paths of the evaluated examples
    loss: dict | None = None    # {"train", "test"}: the eval block's `loss` averaged over each
    #                             set at the end; without one, train is the last epoch's mean
    #                             training loss and test None; None if no block names a loss

    def path_of(self, step: int) -> int:
        return 0 if self.step_paths is None else int(self.step_paths[step])


@dataclass(frozen=True)
class Evaluation:
    """One pass of the eval step over a dataset, after training step `after` (-1: before any):
    an `until` check (purpose "until") or the final test ("test", the inference cost).
    `example_paths[i]`: example i's row of TrainResult.eval_paths."""
    after: int
    dataset: str
    purpose: str
    example_paths: np.ndarray


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
        else:                   # made in its own dtype: no int64 or float64 copy
            fill = {"zeros": 0, "ones": 1}.get(p.init.kind, kw.get("value"))
            out[p.name] = np.full(p.shape, fill, DTYPES[p.dtype])
            continue
        out[p.name] = np.asarray(v).astype(DTYPES[p.dtype])
    return out


class Step:
    """One loop body compiled to closures over preallocated arrays. An if runs only the block
    its condition picks. When the step has ifs or run-time indices, `path` collects, in
    program order, each if's choice (1 then, 0 else) and each run-time index: the control
    path that the step's trace depends on (tracegen.py)."""

    def __init__(self, graph: Graph, arrays: dict[str, np.ndarray], kernels,
                 checked: frozenset | None = None):
        self.graph = graph
        self.arrays = arrays
        self.checked = checked    # parameters, when every node's value is checked (divergence)
        for n in graph.all_nodes:
            if n.op not in REGION_OPS and n.buffer not in arrays:
                arrays[n.buffer] = np.zeros(n.shape, DTYPES[n.dtype])
        self.path: list[int] = []
        self.seed = 0
        self.tick = [0, 0]          # (stream: 0 train, 1 eval; step or example number)
        self.decides = any(n.op == "if" or dynamic_operands(n) for n in graph.all_nodes)
        # a fused kernel runs node by node over whole arrays: the same arithmetic in the same
        # order, so results are bit-identical; its register values get scratch arrays, which
        # the trace does not see
        self.calls = self._compile(kernels)

    def _compile(self, kernels) -> list[Callable[[], None]]:
        calls = []
        for k in kernels:
            if k.branches:
                calls.append(self._branch(k))
            else:
                calls += [self._guarded(n, self._random(n) if n.op in RANDOM_OPS
                                        else _closure(n, self.graph, self.arrays))
                          for n in k.nodes]
                if self.checked is not None:
                    calls[-len(k.nodes):] = [self._finite(n, c) for n, c in
                                             zip(k.nodes, calls[-len(k.nodes):])]
        return calls

    def _finite(self, n: Node, call: Callable[[], None]) -> Callable[[], None]:
        """`call`, then a check that its value is not NaN (nor infinite, for a parameter)."""
        out = self.arrays[n.buffer]
        if out.dtype.kind != "f":
            return call
        is_param = n.buffer in self.checked

        def run() -> None:
            call()
            what = nonfinite(out, is_param)
            if what:
                raise NodeError(n, what)
        return run

    def _random(self, n: Node) -> Callable[[], None]:
        """A fresh draw each time, from a generator keyed by (the run's seed, the stream, the
        tick the executor sets, the node's name): the same values whatever order the passes
        give the nodes."""
        out, attrs = self.arrays[n.buffer], dict(n.attrs)
        key = zlib.crc32(n.name.encode())
        tick = self.tick

        def run() -> None:
            rng = np.random.default_rng([self.seed, tick[0], tick[1], key])
            if n.op == "normal":
                np.copyto(out, rng.normal(attrs["mean"], attrs["std"], out.shape),
                          casting="unsafe")
            else:
                np.copyto(out, rng.random(out.shape) < attrs["p"])
        return run

    def _branch(self, k) -> Callable[[], None]:
        cond = self.arrays[self.graph[k.anchor.args[0]].buffer]
        then, orelse = (self._compile(b) for b in k.branches)
        record = self.path.append

        def run() -> None:
            taken = bool(cond)
            record(int(taken))
            for call in (then if taken else orelse):
                call()
        return run

    def _guarded(self, n: Node, call: Callable[[], None]) -> Callable[[], None]:
        """Record a node's run-time indices; tie a refused value (RunError) to the node."""
        dyn = [self.arrays[self.graph[a].buffer] for a in dynamic_operands(n)]
        risky = dyn or n.op == "cast" and DTYPES[n.dtype]().dtype.kind in "iu"
        if not risky:
            return call
        record = self.path.append

        def run() -> None:
            for d in dyn:
                if d.ndim:                  # an index array: each of its elements
                    self.path.extend(d.ravel().tolist())
                else:
                    record(int(d))
            try:
                call()
            except RunError as e:
                raise NodeError(n, str(e)) from None
        return run

    def __call__(self) -> None:
        for call in self.calls:
            call()


def path_sites(kernels, graph: Graph) -> tuple:
    """Where a step's control path takes its entries, in the order Step records them: each
    `if` (its condition, then the sites of both branches) and each node that reads run-time
    indices (its name and index operands). Two schedules with equal sites encode equal
    decisions and index values as equal paths."""
    out = []
    for k in kernels:
        if k.branches:
            out.append(("if", k.anchor.name, k.anchor.args[0],
                        tuple(path_sites(b, graph) for b in k.branches)))
        else:
            out += [("index", n.name, tuple(dynamic_operands(n))) for n in k.nodes
                    if dynamic_operands(n)]
    return tuple(out)


def nonfinite(a: np.ndarray, infinite_too: bool) -> str:
    """'NaN' or 'infinite' if the array holds one (infinities only when asked: a -inf mask
    value is deliberate), else ''."""
    if a.dtype.kind != "f":
        return ""
    if np.isnan(a).any():
        return "NaN"
    return "infinite" if infinite_too and np.isinf(a).any() else ""


class NodeError(Exception):
    """A RunError with the node that raised it."""

    def __init__(self, node: Node, message: str):
        super().__init__(message)
        self.node = node


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
        # the left operand's type (`u8 << i32`): computed in the wider one, wrapped into it
        wraps = op.dtype_rule == "first" and any(getattr(a, "dtype", out.dtype) != out.dtype
                                                 for a in args)
        return functools.partial(ufunc, *args, out=out, **({"dtype": out.dtype} if mixed else {}),
                                 **({"casting": "unsafe"} if wraps else {}))
    return functools.partial(op.run, arrays[n.buffer], *args, **dict(n.attrs))


class Executor:
    """Trains a program for real. A NaN in any value, or an infinite parameter, at the end of
    an epoch stops the training (TrainingDiverged): the run is then replayed from the start
    with every node's value checked, to name the step and the line that made it."""

    def __init__(self, program: Program, train_schedule: Schedule, eval_kernels, seed: int,
                 checked: bool = False):
        self.program = program
        self.schedules = (train_schedule, eval_kernels, seed)
        self.arrays: dict[str, np.ndarray] = init_params(program, seed)
        self.params = frozenset(p.name for p in program.params)
        self.train_step = Step(program.train.graph, self.arrays, train_schedule.kernels,
                               self.params if checked else None)
        self.eval_arrays = {p.name: self.arrays[p.name] for p in program.params}
        self.eval_step = Step(program.eval.graph, self.eval_arrays, eval_kernels)
        self.train_step.seed = self.eval_step.seed = seed
        self.eval_step.tick[0] = 1
        self.data = datasets.generate(program.data)
        self.evaluations: list[Evaluation] = []
        self.eval_path_ids: dict[tuple, int] = {}
        named = next((n for n in program.eval.graph.nodes if n.name == "loss"), None)
        self.eval_loss = self.eval_arrays[named.buffer] if named is not None else None
        self.losses: dict[str, float] = {}      # dataset -> the eval loss of its last pass

    def split(self, name: str):
        train, test = self.program.data.names
        xtr, ytr, xte, yte = self.data
        return (xtr, ytr) if name == train else (xte, yte)

    def accuracy(self, dataset: str, purpose: str | None = None, after: int = -1) -> float:
        """The fraction of `dataset` predicted right. With a `purpose`, the pass is one the
        algorithm makes (an `until` check, the final test): each example's control path is
        kept, for the trace (Evaluation)."""
        loop = self.program.eval
        xs, ys = self.split(dataset)
        x, y = self.eval_arrays[loop.x], self.eval_arrays[loop.y]
        pred = self.eval_arrays[self.program.eval.graph[loop.graph.outputs[0]].buffer]
        hits, loss = 0, 0.0
        paths = np.zeros(len(xs), np.int32)
        path = self.eval_step.path
        for i in range(len(xs)):
            np.copyto(x, xs[i])
            np.copyto(y, ys[i])
            self.eval_step.tick[1] = i
            try:
                self.eval_step()
            except NodeError as e:
                raise SirError(f"evaluating example {i} of '{dataset}': {e}", e.node.loc) \
                    from None
            if path:
                paths[i] = self.eval_path_ids.setdefault(tuple(path), len(self.eval_path_ids))
                path.clear()
            hits += bool(np.all(pred == y))
            if self.eval_loss is not None:
                loss += float(self.eval_loss)
        if self.eval_loss is not None:
            self.losses[dataset] = loss / len(xs)
        if purpose is not None:
            self.evaluations.append(Evaluation(after, dataset, purpose, paths))
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
        run, path = self.train_step, self.train_step.path
        paths: dict[tuple, int] = {}
        step_paths: list[int] | None = [] if run.decides else None
        counters = [(self.arrays[c], c) for c in ("step", "epoch")
                    if c in loop.graph.by_name and loop.graph[c].op == "input"]
        # a value named `loss` computed on every step (not inside an if): its mean per epoch
        loss = (self.arrays[loop.graph["loss"].buffer]
                if any(n.name == "loss" for n in loop.graph.nodes) else None)
        log: list[dict] = []
        self._check_init()
        for epoch in range(loop.epochs):
            loss_sum = 0.0
            for i in starts:
                np.copyto(x, xs[i] if loop.batch is None else xs[i:i + b])
                np.copyto(y, ys[i] if loop.batch is None else ys[i:i + b])
                run.tick[1] = step
                for array, c in counters:
                    array[...] = step if c == "step" else epoch
                try:
                    run()
                except NodeError as e:
                    if run.checked is not None and str(e) in ("NaN", "infinite"):
                        raise TrainingDiverged(step, e.node.buffer, str(e), e.node.loc) \
                            from None
                    self._refused_nonfinite(e, step)
                    raise SirError(f"step {step}: {e}", e.node.loc) from None
                if step_paths is not None:
                    step_paths.append(paths.setdefault(tuple(path), len(paths)))
                    path.clear()
                if loss is not None:
                    loss_sum += float(np.mean(loss))
                step += 1
            if progress:
                progress(epoch + 1, loop.epochs)
            self._check(step)
            env = {"epoch": epoch + 1, "step": step}
            names = loop.until.names if loop.until is not None else ()
            if "train_accuracy" in names:
                history.append(self.accuracy(loop.dataset, "until", step - 1))
                env["train_accuracy"] = history[-1]
            # the test accuracy of every epoch, for the history: the algorithm's own when its
            # until check measures it, else a measurement that is not traced
            env["test_accuracy"] = self.accuracy(
                self.program.eval.dataset, *(("until", step - 1) if "test_accuracy" in names
                                             else ()))
            log.append({"epoch": epoch + 1, "steps": step,
                        "train_accuracy": env.get("train_accuracy"),
                        "test_accuracy": env["test_accuracy"],
                        "loss": loss_sum / len(starts) if loss is not None and starts else None})
            if loop.until is not None and loop.until.holds(env):
                break
        train_acc = history[-1] if history else self.accuracy(loop.dataset)
        test_acc = self.accuracy(self.program.eval.dataset, "test", step - 1)
        if self.eval_loss is not None:
            losses = {"train": self.losses[loop.dataset],
                      "test": self.losses[self.program.eval.dataset]}
        else:
            losses = {"train": log[-1]["loss"], "test": None} if loss is not None else None
        return TrainResult(step, epoch + 1, train_acc, test_acc, tuple(history),
                           time.perf_counter() - t0, tuple(paths) or ((),),
                           None if step_paths is None else np.array(step_paths, np.int32),
                           len(starts), tuple(log), tuple(self.evaluations),
                           tuple(self.eval_path_ids) or ((),), losses)

    def _refused_nonfinite(self, e: NodeError, step: int) -> None:
        """A value refused at run time (a cast to an integer type) because it is NaN or
        infinite is a training that diverged, not a mistake in the program: name the operand
        and the line."""
        g = self.program.train.graph
        for a in e.node.args:
            if isinstance(a, str):
                what = nonfinite(self.arrays[g[a].buffer], True)
                if what:
                    self._replay_checked()          # names the line that made it, if a node
                    raise TrainingDiverged(step, g[a].buffer, what, e.node.loc) from None

    def _replay_checked(self) -> None:
        """Train again from the start with every node's value checked: raises TrainingDiverged
        at the first NaN (or infinite parameter) a node makes. Does nothing in that replay."""
        if self.train_step.checked is None:
            train_schedule, eval_kernels, seed = self.schedules
            with np.errstate(all="ignore"):
                Executor(self.program, train_schedule, eval_kernels, seed, checked=True)._train(None)

    def _check_init(self) -> None:
        for p in self.program.params:
            what = nonfinite(self.arrays[p.name], True)
            if what:
                raise TrainingDiverged(0, p.name, what + " at initialization", p.loc)

    def _check(self, step: int) -> None:
        """At an epoch's end: a NaN in any value, or an infinite parameter, stops the run. The
        replay with checked nodes names the step and line (it raises); if the value was not
        made by a node, the end of this epoch is named."""
        bad = [(name, what) for name, a in self.arrays.items()
               if (what := nonfinite(a, name in self.params))]
        if not bad:
            return
        self._replay_checked()
        name, what = bad[0]
        raise TrainingDiverged(step - 1, name, what, None)

    @property
    def steps_per_epoch(self) -> int:
        loop = self.program.train
        xs, _ = self.split(loop.dataset)
        return len(xs) // (loop.batch or 1)
