"""The `sutro-sim` command: the one place where the simulator meets the rest.

User mistakes (SimError) print `where: error: message` on stderr and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from simulator import energy as energy_mod
from simulator.errors import SimError
from sutro_ir.errors import TrainingDiverged
from simulator.hierarchy import list_presets, load_hierarchy
from simulator.report import size, table
from .schema import dumps

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3     # a valid program whose training made a NaN (or an infinite parameter)
EXIT_INTERRUPTED = 130


def entry() -> None:
    """The console script: main(), then exit without the interpreter's teardown. numba and
    llvmlite take about 0.3 s to finalize, a sixth of the main job's budget; every file this
    program writes is closed by then, so only the standard streams need flushing."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    if code == EXIT_INTERRUPTED:    # the interpreter's teardown frees what an interrupted
        sys.exit(code)              # sweep's worker pool held (its semaphores)
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _program_after_set(args, parser)
    if hasattr(sys.stdout, "reconfigure"):    # a path given in bytes that are not UTF-8 is
        sys.stdout.reconfigure(errors="backslashreplace")     # printed escaped, as stderr does
    try:
        if getattr(args, "plot", None) is not None:
            check_plot_folder(args.plot)      # before the long part, not after it
        return args.func(args)
    except TrainingDiverged as e:   # the program is valid; its training failed
        if getattr(args, "json", False):
            recorded = getattr(e, "recorded", None)
            print(dumps({"program": getattr(args, "program", None), "diverged": e.to_dict(),
                         **({"recorded": {"db": recorded[0], "id": recorded[1]}}
                            if recorded else {})}))
        print(str(e), file=sys.stderr)
        if getattr(e, "recorded", None):
            path, run_id, hint = e.recorded
            print(f"recorded as run {run_id} in {path} ({hint})", file=sys.stderr)
        return EXIT_DIVERGED
    except SimError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `sutro-sim ... | head`
        sys.stdout = None
        return 0


def check_plot_folder(folder: str) -> None:
    """--plot DIR: a directory that exists and is writable, or one that can be made (the
    nearest existing parent a writable directory), with no over-long name."""
    if not folder.strip():
        raise SimError("give a directory for the plots (got an empty path)", "--plot")
    path = os.path.abspath(folder)
    for part in path.split(os.sep):
        if len(os.fsencode(part)) > 255:
            raise SimError(f"{folder}: a path component is longer than 255 bytes", "--plot")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise SimError(f"{folder} exists and is not a directory", "--plot")
        parent = path
    else:
        parent = os.path.dirname(path)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise SimError(f"cannot make {folder}: {parent} is not a directory", "--plot")
    try:                          # the only sure test: make something there, then remove it
        os.rmdir(tempfile.mkdtemp(prefix=".sutro-plot-check-", dir=parent))
    except OSError as e:
        raise SimError(f"cannot write into {parent}: {e.strerror}", "--plot") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sutro-sim", description="Compiler and energy simulator for "
                                "inventing energy-efficient learning algorithms.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("simulate", help="replay an access trace through a memory hierarchy",
                       description="Replay an access trace (.npz) through a memory hierarchy: "
                       "reuse distances, hits per level, energy.")
    s.add_argument("trace", help="trace file (.npz, see docs/trace-format.md), or an "
                   "address-IR program (.ir, see docs/dally.md)")
    s.add_argument("--from-ir", action="store_true",
                   help="read the file as an address-IR program whatever its name")
    s.add_argument("--isa", choices=("v0", "v1", "v2", "v3", "v4"), default="v4",
                   help="the IR's instruction set (default v4, every op)")
    s.add_argument("--hierarchy", default="sutro-tiers",
                   help="preset name or TOML file (default: sutro-tiers; "
                   "list: sutro-sim hierarchies)")
    s.add_argument("--energy", default="dally-2020",
                   help="energy preset (default: dally-2020; list: sutro-sim energies)")
    s.add_argument("--cost-models", action="store_true",
                   help="also compute the seed's memtracker measure, ByteDMD, the address cost "
                   "(Model 1) and the grid (Model 2)")
    s.add_argument("--model", choices=("1", "2"), action="append", default=[],
                   help="also compute Model 1 (the address cost) or Model 2 (energy and time "
                   "on the grid); repeatable")
    s.add_argument("--outputs", metavar="NAMES", help="comma-separated buffers read once at the "
                   "end (the address cost) and kept live (ByteDMD); default: the trace's own "
                   "`outputs`")
    s.add_argument("--args", metavar="NAMES", help="comma-separated buffers in argument order "
                   "(ByteDMD's initial stack); default: the trace's own `args`, else the "
                   "buffer table's order")
    s.add_argument("--cells", choices=("auto", "dense", "address"), default="auto",
                   help="how the address models number cells: dense (every buffer element "
                   "one cell, no padding), address (by byte address), auto (the trace's "
                   "declaration, else dense; the default)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    s.set_defaults(func=cmd_simulate)
    _run_parser(sub)
    _compare_parser(sub)
    _sweep_parser(sub)
    from .experiments.log import add_parser as log_parser
    log_parser(sub)
    _graph_parser(sub)
    from .score import add_parser as score_parser
    score_parser(sub)
    ps = sub.add_parser("passes", help="list the registered passes")
    ps.set_defaults(func=cmd_passes)
    h = sub.add_parser("hierarchies", help="list the hierarchy presets")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_hierarchies)
    e = sub.add_parser("energies", help="list the energy presets and their sources")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_energies)
    return p


def _run_parser(sub) -> None:
    r = sub.add_parser("run", help="compile a .sir program, train it for real, trace and price it",
                       description="Compile a .sir program, train it for real with numpy, trace "
                       "every memory access of the chosen steps and price them.")
    r.add_argument("program", nargs="?", help=".sir program (see docs/language.md)")
    r.add_argument("--passes", default="", metavar="PIPELINE",
                   help="pass pipeline, e.g. layer-local-update,fuse (list: sutro-sim passes)")
    _job_options(r)
    r.add_argument("--profile", action="store_true", help="print the time of each phase")
    r.add_argument("--save-trace", metavar="FILE",
                   help="write the run's trace (docs/trace-format.md) for `sutro-sim simulate` "
                   "on other hierarchies without retraining: each kind of step once, and the "
                   "order of the steps")
    r.add_argument("--by-line", action="store_true",
                   help="energy, accesses and reuse distance per source line, beside the "
                   "program (a line is charged for the values it defines)")
    r.set_defaults(func=cmd_run)


def _compare_parser(sub) -> None:
    c = sub.add_parser("compare", help="programs under several pass pipelines and hierarchies, "
                       "side by side",
                       description="Run .sir programs under several pass pipelines and "
                       "hierarchies and compare accuracy, accesses, reuse, hit rates and "
                       "energy. The unscheduled program is the first row unless the first -p "
                       "names another; every row traces the same steps. A training is shared "
                       "by the rows whose values are bit-identical (exact pipelines of one "
                       "program; hierarchies of one pipeline).")
    c.add_argument("program", nargs="*", help=".sir programs (see docs/language.md)")
    c.add_argument("-p", "--passes", action="append", default=[], metavar="PIPELINE",
                   help="a pipeline (repeatable; `none`: the unscheduled program)")
    c.add_argument("--retrain", action="store_true",
                   help="train every row itself, even where a training could be shared (a "
                   "check: the same figures, slower)")
    _job_options(c, hierarchies=True)
    c.set_defaults(func=cmd_compare)


def _job_options(r, hierarchies: bool = False) -> None:
    """The options of a job that trains and prices a program (run, compare)."""
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a config constant (repeatable; also --set a=1 b=2)", nargs="+")
    r.add_argument("--hierarchy", default="sutro-tiers",
                   help="preset name or TOML file (default: sutro-tiers)" + (
                       "; several, comma-separated, for a row each" if hierarchies else ""))
    r.add_argument("--energy", default="dally-2020", help="energy preset (default: dally-2020)")
    r.add_argument("--seed", type=int, help="parameter initialization seed (sets config `seed` "
                   "too, when the program has one)")
    r.add_argument("--trace-steps", metavar="SPEC",
                   help="which training steps to account: all (default: every step, exactly, "
                   "unless the program's config trace_steps names a sample), or a sample: N "
                   "(the first N) or every:K (labelled as not exact)")
    r.add_argument("--target-accuracy", type=float, metavar="X",
                   help="report the learning energy spent until the test accuracy first "
                   "reached X (a fraction, e.g. 0.9), checked after each epoch")
    r.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="leave the evaluations (the until checks, the final test) out of the "
                   "trace: the cost of the training steps alone (accuracy is still measured)")
    r.add_argument("--brute-force", action="store_true",
                   help="simulate every access of every step, instead of counting a step that "
                   "repeats an earlier one from an equal state (same totals, slower: a check)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    r.add_argument("--cost-models", action="store_true",
                   help="also compute the seed's memtracker measure over op-level events")
    db_options(r)


def db_options(r) -> None:
    """Where a job records its results (sutro_sim/experiments/db.py)."""
    r.add_argument("--db", metavar="PATH", help="the results database to record into "
                   "(default: $SUTRO_SIM_DB, else sutro-results.db in the working directory)")
    r.add_argument("--no-db", action="store_true", help="record nothing")
    r.add_argument("--note", metavar="TEXT", help="a note kept with the record "
                   "(what changed, and why)")


def _sweep_parser(sub) -> None:
    from .experiments.engines import ENGINES
    w = sub.add_parser("sweep", help="run the cross product of programs, --set values, seeds, "
                       "pipelines and hierarchies; record and tabulate",
                       description="Run every point of a cross product (or a seeded random "
                       "sample of it): programs x --set values x seeds x pipelines x "
                       "hierarchies x energy presets, in parallel on the local cores (or a "
                       "Dask cluster). Every point is recorded into the results database as it "
                       "finishes; a point already recorded is read back, not rerun, so an "
                       "interrupted sweep resumes where it stopped.")
    w.add_argument("program", nargs="*", help=".sir programs (see docs/language.md)")
    w.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2", nargs="+",
                   help="a config constant and its values, comma-separated (repeatable)")
    w.add_argument("--seeds", metavar="N|S1,S2",
                   help="N seeds (0 to N-1) or the seeds listed; default: the programs' own")
    w.add_argument("-p", "--passes", action="append", default=[], metavar="PIPELINE",
                   help="a pipeline (repeatable; `none`: the unscheduled program; default: "
                   "none)")
    w.add_argument("--hierarchy", default="sutro-tiers", metavar="NAMES",
                   help="hierarchy presets or TOML files, comma-separated (default: "
                   "sutro-tiers)")
    w.add_argument("--energy", default="dally-2020", metavar="NAMES",
                   help="energy presets, comma-separated (default: dally-2020)")
    w.add_argument("--sample", type=int, metavar="N",
                   help="run a random sample of N points of the cross product")
    w.add_argument("--sample-seed", type=int, default=0, metavar="S",
                   help="the sample's seed (default 0: the same sample every time)")
    w.add_argument("--trace-steps", metavar="SPEC",
                   help="which training steps to account (as run; default: every step, "
                   "unless a program names a sample)")
    w.add_argument("--target-accuracy", type=float, metavar="X",
                   help="also report the learning energy until the test accuracy reached X")
    w.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="leave the evaluations out of the trace")
    w.add_argument("--brute-force", action="store_true",
                   help="simulate every access of every step (a check; slower)")
    w.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="points run at once (default: one per core)")
    w.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this machine's cores (default); dask: a Dask cluster "
                   "(pip install 'sutro-sim[cluster]')")
    w.add_argument("--address", metavar="ADDRESS",
                   help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a cluster on "
                   "this machine)")
    w.add_argument("--rerun", action="store_true",
                   help="run every point, even those already recorded")
    w.add_argument("--json", action="store_true", help="print the result as JSON")
    w.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    db_options(w)
    w.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from simulator.progress import ProgressBar
    from sutro_sim.experiments import sweep as sw
    from sutro_sim.experiments.db import open_for_writing, run_options

    if args.jobs is not None and args.jobs < 1:
        raise SimError(f"--jobs {args.jobs}: at least 1", "--jobs")
    if args.sample is not None and args.sample < 1:
        raise SimError(f"--sample {args.sample}: at least 1 point", "--sample")
    if args.target_accuracy is not None and not 0 < args.target_accuracy <= 1:
        raise SimError(f"--target-accuracy {args.target_accuracy}: a test accuracy in (0, 1]",
                       "--target-accuracy")
    if args.trace_steps is not None:
        from sutro_sim.run import select_steps
        select_steps(args.trace_steps, 0)
    from sutro_sim.compare import NONE
    axes = sw.Axes(list(dict.fromkeys(args.program)), sw.set_axes(args.set),
                   sw.seeds_of(args.seeds),
                   list(dict.fromkeys("" if p.strip() in ("", NONE) else p.strip()
                                      for p in args.passes)) or [""],
                   _list_option(args.hierarchy, "--hierarchy"),
                   _list_option(args.energy, "--energy"))
    if args.address is not None and args.engine != "dask":
        raise SimError("--address is for a cluster engine (--engine dask)", "--address")
    db = open_for_writing(args.db, args.no_db)
    options = run_options(args.evaluate, args.brute_force, args.target_accuracy)
    n = min(axes.size, args.sample or axes.size)
    group = sw.Group(db, {**sw.to_dict(axes, [], None, None)["axes"], "sample": args.sample,
                          "sample_seed": args.sample_seed, "trace_steps": args.trace_steps,
                          "options": options}, args.note) if db else None
    bar = ProgressBar(f"sweep of {n} point{'s' if n != 1 else ''}", delay=0.0)
    try:
        outcomes = sw.sweep(axes, db, group, args.trace_steps, options, args.engine, args.jobs,
                            args.address, args.sample, args.sample_seed, args.rerun, args.note,
                            progress=bar)
    except KeyboardInterrupt:
        bar.close()
        if db:
            kept = len(db.runs(group=group.id)) if group.id is not None else 0
            print(f"interrupted: {kept} point{'s' if kept != 1 else ''} run by this sweep "
                  f"{'are' if kept != 1 else 'is'} recorded in {db.path}; the same command "
                  "resumes", file=sys.stderr)
        raise
    finally:
        bar.close()
    if args.plot:
        paths = sw.write_plots(axes, outcomes, args.plot, _sweep_caption(axes, args))
    group_id = group.id if group is not None else None
    if args.json:
        print(dumps(sw.to_dict(axes, outcomes, group_id, db.path if db else None)))
    else:
        print(sw.render(axes, outcomes))
        if group_id is not None:
            from sutro_sim.experiments.db import log_hint
            print(f"recorded in {db.path} as sweep {group_id} "
                  f"({log_hint(db, f'--group {group_id}')})")
        if args.plot:
            print("\nplots: " + ", ".join(paths))
    errors = [o for o in outcomes if o.status == "error"]
    return EXIT_USER_ERROR if errors else 0


def _sweep_caption(axes, args) -> str:
    names = ", ".join(os.path.basename(p) for p in axes.programs)
    steps = args.trace_steps or "each program's default"
    return (f"{names}  |  hierarchy {', '.join(axes.hierarchies)}  |  energy "
            f"{', '.join(axes.energies)}  |  steps {steps}")


def _graph_parser(sub) -> None:
    g = sub.add_parser("graph", help="print a program's IR (after a pass pipeline)",
                       description="Print the canonical IR of a .sir program after a pipeline.")
    g.add_argument("program", nargs="?", help=".sir program")
    g.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", nargs="+",
                   help="override a config constant (repeatable; also --set a=1 b=2)")
    g.add_argument("-p", "--passes", default="", metavar="PIPELINE",
                   help="the pass pipeline to apply first, e.g. layer-local-update,fuse")
    g.add_argument("--dot", action="store_true", help="print the training step as Graphviz dot")
    g.set_defaults(func=cmd_graph)


def _program_after_set(args, parser) -> None:
    """`--set lr=0.1 prog.sir`: --set takes every word after it, so a program named after it
    lands among its values; the one value without `=` is the program."""
    if not hasattr(args, "set") or not hasattr(args, "program"):
        return
    if isinstance(args.program, list):        # compare: every loose word is a program
        loose = [(g, item) for g in args.set for item in g if "=" not in item]
        for group, item in loose:
            group.remove(item)
            args.program.append(item)
        if not args.program:
            parser.error(f"{args.command}: give at least one program (a .sir file)")
        return
    if args.program is None:
        loose = [(g, item) for g in args.set for item in g if "=" not in item]
        if len(loose) != 1:
            parser.error(f"{args.command}: the program is required (a .sir file)")
        group, item = loose[0]
        group.remove(item)
        args.program = item


def _overrides(groups) -> dict:
    out = {}
    for item in (i for group in groups for i in group):
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise SimError(f"--set {item}: expected NAME=VALUE", "--set")
        out[name.strip()] = value
    return out


def _with_seed(overrides: dict, program: str, seed: int | None, text: str | None = None) -> dict:
    from sutro_sim.run import with_seed
    return with_seed(overrides, program, seed, text)


def job_inputs(args, program: str, text: str, passes: str, hierarchy: str | None = None) -> dict:
    """What a run or compare row was asked, as the results database keeps it (`text`: the
    program's text as read once, before the run)."""
    from sutro_ir.passes import pipeline_text
    from sutro_sim.experiments.db import inputs_of, run_options

    hierarchy = hierarchy or args.hierarchy
    overrides = _with_seed(_overrides(args.set), program, args.seed, text)
    options = run_options(args.evaluate, args.brute_force, args.target_accuracy,
                          args.cost_models)
    return inputs_of(program, text, overrides, args.seed, pipeline_text(passes), hierarchy,
                     load_hierarchy(hierarchy), args.energy, args.trace_steps, options)


def _recorded(db, rec: dict) -> int:
    from sutro_sim.experiments.db import log_hint
    run_id = db.add(rec)
    print(f"recorded as run {run_id} in {db.path} ({log_hint(db, f'show {run_id}')})",
          file=sys.stderr)
    return run_id


def cmd_run(args) -> int:
    from simulator.progress import ProgressBar
    from sutro_sim.experiments.db import open_for_writing, record
    from sutro_sim.run import render_profile, render_run, run

    from sutro_ir.compile import read_source
    text = read_source(args.program)             # once: the run and its record are of it
    overrides = _with_seed(_overrides(args.set), args.program, args.seed, text)
    db = open_for_writing(args.db, args.no_db)
    inputs = job_inputs(args, args.program, text, args.passes) if db else None
    if args.save_trace is not None:
        from simulator.inputs import check_writable
        target = check_writable(args.save_trace, "--save-trace")
        for other, what in ((args.program, "the program"),
                            (db.real if db else None, "the results database")):
            if other is not None and os.path.realpath(other) == target:
                raise SimError(f"{args.save_trace} is {what}; give another file",
                               "--save-trace")
    train_bar, sim_bar = ProgressBar("training"), ProgressBar("simulating")
    try:
        result = run(args.program, overrides, args.hierarchy, args.energy, args.passes,
                     args.seed, args.trace_steps, progress=sim_bar, train_progress=train_bar,
                     cost_models=args.cost_models, brute_force=args.brute_force,
                     evaluate=args.evaluate, target_accuracy=args.target_accuracy,
                     keep_trace=args.save_trace is not None, text=text)
    except TrainingDiverged as e:
        if db:
            from sutro_sim.experiments.db import log_hint
            run_id = db.add(record("run", inputs, diverged=e.to_dict(), note=args.note))
            e.recorded = (db.path, run_id, log_hint(db, f"show {run_id}"))
        raise
    finally:
        train_bar.close()
        sim_bar.close()
    if args.plot:
        from simulator.plots import write_plots
        history = result.history
        drawn = len(history) > 1 and history[-1]["learning_energy_fj"] is not None
        paths = write_plots(result.sim, args.plot, history if drawn else None,
                            f"{args.program}: accuracy against learning energy "
                            f"({result.sim.hierarchy})")
    if args.save_trace is not None:
        from simulator.trace import save
        try:
            save(result.trace, args.save_trace)
        except OSError as e:
            raise SimError(f"cannot write {args.save_trace}: {e.strerror or e}",
                           "--save-trace") from None
    out = result.to_dict()
    if args.by_line:
        from sutro_sim.lines import by_line, render_by_line
        out["by_line"] = by_line(result.sim, text)
    unrecorded = None              # a record that failed loses the record, not the report
    if db:
        try:
            run_id = _recorded(db, record("run", inputs, out, note=args.note))
            out["recorded"] = {"db": db.path, "id": run_id}
        except SimError as e:
            unrecorded = e
    if args.json:
        print(dumps(out))
    else:
        print(render_run(result))
        if args.by_line:
            print("\n" + render_by_line(out["by_line"], text, args.program))
        if args.profile:
            print("\n" + render_profile(result))
        if args.plot:
            print("\nplots: " + ", ".join(paths))
    return _not_recorded(unrecorded)


def _not_recorded(error: SimError | None) -> int:
    """Exit 0, or 2 with the reason when the results could not be recorded (after the
    report: the run's figures are printed either way)."""
    if error is None:
        return 0
    print(f"{error} (the run is not recorded)", file=sys.stderr)
    return EXIT_USER_ERROR


def cmd_graph(args) -> int:
    from sutro_ir.compile import compile_file
    from sutro_ir.printer import print_program

    overrides = _overrides(args.set)
    program = compile_file(args.program, overrides, args.passes)
    if args.dot:
        print(_dot(program.train.graph))
    else:
        print(print_program(program), end="")
    return 0


def _dot(graph) -> str:
    nx_graph = graph.nx_graph()
    lines = ["digraph step {", "  rankdir=TB;"]
    for name, data in nx_graph.nodes(data=True):
        n = data["node"]
        lines.append(f'  "{name}" [label="{name}\\n{n.op} {n.type}"];')
    for i, group in enumerate(graph.kernels):     # a fused kernel: a box around its nodes
        members = " ".join(f'"{m}";' for m in group)
        lines.append(f'  subgraph cluster_{i} {{ label="kernel {i}"; style=rounded; {members} }}')
    for a, b, data in nx_graph.edges(data=True):
        style = ' [style=dashed, label="anti"]' if data["kind"] == "anti" else ""
        lines.append(f'  "{a}" -> "{b}"{style};')
    return "\n".join(lines + ["}"])


def cmd_compare(args) -> int:
    from simulator.progress import ProgressBar
    from sutro_sim.compare import compare, pipelines_of, render_compare
    from sutro_sim.experiments.db import open_for_writing

    from sutro_ir.compile import read_source
    programs = list(dict.fromkeys(args.program))
    texts = {p: read_source(p) for p in programs}   # once: the rows and records are of them
    overrides = [_with_seed(_overrides(args.set), p, args.seed, texts[p]) for p in programs]
    hierarchies = _list_option(args.hierarchy, "--hierarchy")
    pipelines = pipelines_of(args.passes)
    db = open_for_writing(args.db, args.no_db)
    bars: list = []
    n_rows = len(programs) * len(pipelines) * len(hierarchies)

    def progress(i: int, label: str):
        bars.append(ProgressBar(f"simulating {label} ({i + 1}/{n_rows})"))
        return bars[-1]

    def train_progress(i: int, label: str):
        bars.append(ProgressBar(f"training {label}"))
        return bars[-1]
    try:
        result = compare(programs, pipelines, overrides, hierarchies, args.energy,
                         args.seed, args.trace_steps, progress=progress,
                         cost_models=args.cost_models, brute_force=args.brute_force,
                         evaluate=args.evaluate, target_accuracy=args.target_accuracy,
                         retrain=args.retrain, train_progress=train_progress, texts=texts)
    finally:
        for bar in bars:
            bar.close()
    if args.plot:
        from simulator.plots import write_comparison
        paths = write_comparison(list(zip(result.labels(), (row.result.sim
                                                             for row in result.rows))),
                                 args.plot, [(row.result.arith_ops, row.result.peak_live_bytes)
                                             for row in result.rows])
    out = result.to_dict()
    unrecorded = None
    if db:
        try:
            out["recorded"] = _record_compare(db, args, result, out, programs, pipelines,
                                              hierarchies, texts)
        except SimError as e:
            unrecorded = e
    if args.json:
        print(dumps(out))
    else:
        print(render_compare(result))
        if args.plot:
            print("\nplots: " + ", ".join(paths))
    return _not_recorded(unrecorded)


def _record_compare(db, args, result, out: dict, programs, pipelines, hierarchies,
                    texts) -> dict:
    """Every row of a comparison, as one group; where they went."""
    from sutro_sim.experiments.db import log_hint, record
    group = db.add_group("compare", {"programs": programs, "pipelines": pipelines,
                                     "hierarchies": hierarchies, "set": _overrides(args.set),
                                     "seed": args.seed, "energy": args.energy,
                                     "trace_steps": args.trace_steps}, args.note)
    ids = [db.add(record("compare", job_inputs(args, row.program, texts[row.program],
                                               row.pipeline, row.hierarchy), d["run"],
                         note=args.note, group_id=group))
           for row, d in zip(result.rows, out["rows"])]
    which = f"run {ids[0]}" if len(ids) == 1 else f"runs {ids[0]}-{ids[-1]}"
    print(f"recorded as {which} in {db.path} ({log_hint(db, f'--group {group}')})",
          file=sys.stderr)
    return {"db": db.path, "group": group, "ids": ids}


def _list_option(text: str, option: str) -> list[str]:
    """A comma-separated option (`--hierarchy a,b`); a file path keeps its commas only when
    it exists as a whole."""
    if os.path.exists(text):
        return [text]
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise SimError(f"expected comma-separated names, got '{text}'", option)
    return list(dict.fromkeys(items))


def cmd_passes(args) -> int:
    from sutro_ir.passes import REGISTRY

    for info in REGISTRY.values():
        kind = "exact" if info.exact is True else "approximate" if info.exact is False \
            else "exact unless its options say approximate"
        print(f"{info.name} ({kind})")
        print("    " + info.doc.replace("\n", "\n    "))
    return 0


def cmd_simulate(args) -> int:
    from simulator.progress import ProgressBar
    from sutro_sim.run import COST_MODELS_MAX
    from simulator.report import render
    from simulator.simulate import simulate

    trace = _open_trace(args)             # the file and its structure; values chunk by chunk
    hierarchy = load_hierarchy(args.hierarchy)
    energy_mod.level_energies(hierarchy, args.energy)     # fail before the long part
    energy_mod.check_arith(trace.kernels, args.energy, trace.where)
    models = {"1", "2"} if args.cost_models else set(args.model)
    if models and (trace.n_accesses or 0) > COST_MODELS_MAX:
        raise SimError(f"the cost models (--cost-models, --model) hold every access in "
                       f"memory: at most {COST_MODELS_MAX:,}, and this trace has "
                       f"{trace.n_accesses:,} (for a saved run, `run --cost-models` prices "
                       "its first steps)", trace.where)
    extra = _cost_models(trace, args, models)      # its mistakes before the long part
    bar = ProgressBar("simulating")
    try:
        result = simulate(trace, hierarchy, args.energy, progress=bar)
    finally:
        bar.close()
    if args.plot:
        from simulator.plots import write_plots
        paths = write_plots(result, args.plot)
    if args.json:
        print(dumps(dict(result.to_dict(), **extra)))
    else:
        print(render(result))
        if extra:
            print("\n" + _render_cost_models(extra))
        if args.plot:
            print("\nplots: " + ", ".join(paths))
    return 0


def _open_trace(args):
    """A trace file, or an address-IR program made into its trace (.ir or --from-ir)."""
    from simulator.trace import load

    if args.from_ir or args.trace.endswith(".ir"):
        from sutro_ir.dally.score import load as load_ir
        from sutro_ir.dally.trace import to_trace
        return to_trace(load_ir(args.trace, args.isa))
    try:
        return load(args.trace)
    except SimError as e:
        if "not a zip archive" in e.message and _looks_like_ir(args.trace):
            raise SimError(e.message + "; it looks like an address-IR program: name it .ir "
                           "or give --from-ir", e.where) from None
        raise


def _looks_like_ir(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return bool(head) and all(chr(c) in "0123456789, \t\r\n;" for c in head.split(b"\n")[0])


def _names(text: str | None, where: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise SimError(f"expected comma-separated buffer names, got '{text}'", where)
    return names


def _cost_models(trace, args, models: set) -> dict:
    """The cost models asked for: with --cost-models all of them (memtracker, ByteDMD, the
    address cost, the grid), else those of --model. Outputs, argument order and cell
    numbering come from the options, else from the trace."""
    from simulator.memtracker import event_table, memtracker, with_inputs_written
    from simulator.models import distance_models

    outputs = _names(args.outputs, "--outputs") or trace.meta.get("outputs") or []
    order = _names(args.args, "--args") or trace.meta.get("args")
    names = {b.name for b in trace.buffers}
    for option, given in (("--outputs", args.outputs), ("--args", args.args)):
        for name in _names(given, option) or []:
            if name not in names:
                shown = [b.name for b in trace.buffers[:20]]
                raise SimError(f"no buffer named '{name}' (buffers: {', '.join(shown)}"
                               f"{', ...' if len(trace.buffers) > 20 else ''})", option)
    out = {}
    if args.cost_models:
        events = with_inputs_written(event_table(trace), trace)
        out["memtracker"] = memtracker(events).to_dict()
    chosen = (["bytedmd"] if args.cost_models else []) + sorted(models)
    out.update(distance_models(trace, outputs, order, args.cells, chosen))
    return out


def _render_cost_models(extra: dict) -> str:
    lines = []
    if "memtracker" in extra:
        m = extra["memtracker"]
        lines.append(f"memtracker (seed measure)  per-read ARD "
                     f"{m['per_read_ard_elements']:,.0f}, per-element ARD "
                     f"{m['per_element_ard_elements']:,.0f}")
    if "address_cost" in extra:
        a = extra["address_cost"]
        lines.append(f"address cost (Model 1)     {a['cost']:,}  ({a['read_cost']:,} for "
                     f"{a['reads']:,} operand reads + {a['output_cost']:,} for "
                     f"{a['output_reads']:,} exit reads; cells {a['cells']})")
    if "bytedmd" in extra:
        b = extra["bytedmd"]
        lines.append(f"ByteDMD                    {b['cost']:,}" if b else
                     "ByteDMD                    - (the trace has no instruction ids)")
    if "model2" in extra:
        g = extra["model2"]
        lines.append(f"grid (Model 2)             {g['energy_fj']:,} fJ, {g['time_ps']:,.1f} ps "
                     f"(placement {g['placement']})")
    return "\n".join(lines)


def cmd_hierarchies(args) -> int:
    presets = list_presets()
    if args.json:
        print(dumps([_hierarchy_dict(h) for h in presets]))
        return 0
    for h in presets:
        print(f"{h.name}: {h.description}")
        rows = [_level_row(lv) for lv in h.levels]
        print(table(["level", "capacity", "line", "ways", "policy", "fJ/bit given"], rows) + "\n")
    return 0


def _level_row(lv) -> list[str]:
    given = "-" if lv.energy_fj_per_bit is None else f"{lv.energy_fj_per_bit:g}"
    if lv.capacity_bytes is None:
        return [lv.name, "memory", "-", "-", "-", given]
    return [lv.name, size(lv.capacity_bytes), f"{lv.line_bytes} B",
            "full" if lv.ways is None else str(lv.ways), lv.policy, given]


def _hierarchy_dict(h) -> dict:
    return {"name": h.name, "description": h.description,
            "levels": [{"name": lv.name, "capacity_bytes": lv.capacity_bytes,
                        "line_bytes": lv.line_bytes, "ways": lv.ways, "policy": lv.policy,
                        "energy_fj_per_bit": lv.energy_fj_per_bit, "offchip": lv.offchip}
                       for lv in h.levels]}


def cmd_energies(args) -> int:
    presets = list(energy_mod.PRESETS.values())
    if args.json:
        print(dumps([{"name": p.name, "description": p.description,
                      "constants": {k: {"value": c.value, "unit": c.unit, "source": c.source}
                                    for k, c in energy_mod.preset_constants(p)}}
                     for p in presets]))
        return 0
    for p in presets:
        print(f"{p.name}: {p.description}")
        rows = [[k, f"{c.value:g} {c.unit}", c.source] for k, c in energy_mod.preset_constants(p)]
        print(table(["constant", "value", "source"], rows, left=(0, 2)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
