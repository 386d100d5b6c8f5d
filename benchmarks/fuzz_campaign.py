"""A long fuzz campaign against the `sutro-sim` command line, run by hand.

    python benchmarks/fuzz_campaign.py --cases 10000 [--seed S] [--workers 2] [--out DIR]
    python benchmarks/fuzz_campaign.py --replay DIR/<failure>/case-<i>     # one saved case again
    python benchmarks/fuzz_campaign.py --seed S --only I                   # case I of seed S

The cases are those of tests/fuzzcases.py (mutated programs, random options, mutated trace
files, mutated hierarchy files; tests/test_fuzz.py runs a small fixed budget of them in the
suite), here with their big variants too (nesting 100,000 deep, megabyte lines, huge sizes).
Case I of seed S is made by `random.Random(f"{S}:{I}")`, so a campaign is reproducible.

Each case is one command-line invocation. This process imports sutro_sim once and warms numba,
then forks one child per case (copy-on-write, so no interpreter start or import per case); the
child limits its address space (RLIMIT_AS, --mem-gib), sends its stdout and stderr to files,
runs the CLI's `main(argv)` and exits with its code. A child that runs past --timeout is killed
(a hang); one that dies by a signal is a crash of its case, one killed by SIGKILL that we did
not send or one that dies with a MemoryError is over the memory limit.

Outcomes: exit 0, exit 2 (first stderr line `WHERE: error: WHAT`), exit 3 (run/compare: training
diverged); failures: traceback, bad message (exit 2 or 3 without that line), bad exit code,
hang, memory, crash. Python warnings on stderr are listed but are not failures.

It prints a progress line, then the counts per category and outcome, then every distinct
failure (exception type and innermost project frame; or kind and category) with a saved case
and the commands that reproduce it. Failing cases are saved under --out: per distinct failure,
the first --keep cases, each a folder with case.json, its files (files/), its stderr and
stdout, and command.sh (the plain `python -m sutro_sim` command on the saved files).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one thread per worker, and fork-safe
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# every run records into the results database: a campaign's records go to a scratch file
os.environ.setdefault("SUTRO_SIM_DB", os.path.join(tempfile.mkdtemp(
    prefix="sutro-fuzz-db-"), "results.db"))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import fuzzcases as fc  # noqa: E402

GiB = 1 << 30


# ----------------------------------------------------------------------------- cases

def make_case(seed: str, index: int, categories: list[str], big: bool) -> fc.Case:
    rng = random.Random(f"{seed}:{index}")
    return fc.any_case(rng, big, rng.choice(categories))


def quote(arg: str) -> str:
    """Shell quoting that also carries arguments that are not UTF-8 (surrogate escapes)."""
    import shlex
    try:
        arg.encode("utf-8")
        return shlex.quote(arg)
    except UnicodeEncodeError:
        raw = os.fsencode(arg)
        return "$'" + "".join(f"\\x{b:02x}" if b >= 0x80 or b < 0x20 or chr(b) in "'\\"
                              else chr(b) for b in raw) + "'"


def shell_line(argv: list[str]) -> str:
    return f"cd {quote(str(ROOT))} && {quote(sys.executable)} -m sutro_sim " + \
        " ".join(quote(a) for a in argv)


# ----------------------------------------------------------------------------- the child

def child(argv: list[str], folder: str, mem_limit: int) -> None:
    """Run one case in this forked process and exit with its code; never returns."""
    code = 1
    try:
        os.setsid()
        os.chdir(folder)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(os.path.join(folder, ".stdout"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(os.path.join(folder, ".stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        fc.limit_memory(mem_limit)
        from sutro_sim.cli import main
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException:       # noqa: BLE001 - a traceback is the finding
            import traceback
            traceback.print_exc()
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:   # noqa: BLE001
                pass
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def read_tail(path: str, limit: int = 200_000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            head = b""
            if size > limit:        # keep the first line too: the message checked is there
                f.seek(0)
                head = f.readline()[:2000] + b"\n[...]\n"
                f.seek(max(0, size - limit))
            return (head + f.read()).decode("utf-8", "replace")
    except OSError:
        return ""


# ----------------------------------------------------------------------------- the campaign

class Campaign:
    def __init__(self, args):
        self.args = args
        self.categories = args.categories.split(",") if args.categories else list(fc.CATEGORIES)
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.failures: dict[str, list] = defaultdict(list)    # signature -> [(index, saved dir)]
        self.slowest: list[tuple[float, int, str]] = []
        self.warnings: dict[str, list[int]] = defaultdict(list)    # not failures: a note
        self.generator_errors: list[tuple[int, str]] = []          # the fuzzer's own bugs
        self.done = 0
        self.out = Path(args.out)
        self.work = tempfile.mkdtemp(prefix="sutro-fuzz-work-")
        self.start = time.perf_counter()
        self.last_progress = 0.0

    # the loop ------------------------------------------------------------------
    def run(self, indices: list[int]) -> None:
        running: dict[int, dict] = {}
        pending = list(indices)
        pending.reverse()
        mem_limit = int(self.args.mem_gib * GiB)

        def stop(signum, frame):        # `kill PID`: stop like Ctrl-C, killing the cases running
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, stop)
        try:
            while pending or running:
                while pending and len(running) < self.args.workers:
                    i = pending.pop()
                    folder = tempfile.mkdtemp(prefix=f"case{i}-", dir=self.work)
                    try:
                        case = make_case(self.args.seed, i, self.categories, not self.args.small)
                        argv = fc.materialize(case, folder)
                    except Exception as e:      # noqa: BLE001 - a bug of the fuzzer: noted
                        self.generator_errors.append((i, f"{type(e).__name__}: {e}"[:200]))
                        fc.cleanup(folder)
                        continue
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        child(argv, folder, mem_limit)
                    running[pid] = {"i": i, "case": case, "folder": folder, "argv": argv,
                                    "start": time.perf_counter(), "killed": False}
                self._reap(running)
                self._progress(len(indices))
        except KeyboardInterrupt:
            for pid in running:
                with_suppress(lambda: os.killpg(pid, signal.SIGKILL))
                with_suppress(lambda: os.waitpid(pid, 0))
            print("\ninterrupted: the counts below are of the cases done so far", file=sys.stderr)
        finally:
            fc.cleanup(self.work)
        self._progress(len(indices), final=True)

    def _reap(self, running: dict) -> None:
        reaped = False
        while running:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped = True
            r = running.pop(pid)
            self._finish(r, status, rusage)
        now = time.perf_counter()
        for pid, r in running.items():
            if not r["killed"] and now - r["start"] > self.args.timeout:
                r["killed"] = True
                with_suppress(lambda: os.killpg(pid, signal.SIGKILL))
                with_suppress(lambda: os.kill(pid, signal.SIGKILL))
        if not reaped:
            time.sleep(0.005)

    def _finish(self, r: dict, status: int, rusage) -> None:
        seconds = time.perf_counter() - r["start"]
        folder, case = r["folder"], r["case"]
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        out = fc.Outcome(code, read_tail(os.path.join(folder, ".stdout"), 20_000),
                         read_tail(os.path.join(folder, ".stderr")), seconds,
                         timed_out=r["killed"], signal=None if r["killed"] else sig,
                         max_rss_kb=rusage.ru_maxrss)
        kind = fc.classify(case.command, out)
        if kind == "crash" and sig == signal.SIGKILL:    # not ours: the kernel's OOM killer
            kind = "memory"
        self.counts[case.category][kind] += 1
        self.done += 1
        self.slowest.append((seconds, r["i"], case.category))
        self.slowest = sorted(self.slowest, reverse=True)[:5]
        for w in sorted(set(re.findall(r"^(\S+?:\d+): (\w+Warning):", out.stderr, re.M))):
            path = os.path.relpath(w[0], ROOT) if w[0].startswith(str(ROOT)) else w[0]
            self.warnings[f"{w[1]} at {path}"].append(r["i"])
        if kind in fc.FAILURES:
            sig_text = fc.signature(kind, out, case)
            saved = None
            if len(self.failures[sig_text]) < self.args.keep:
                saved = self._save(r["i"], case, out, kind, sig_text)
            self.failures[sig_text].append((r["i"], saved, out.stderr_tail, seconds))
        fc.cleanup(folder)

    def _save(self, index: int, case: fc.Case, out: fc.Outcome, kind: str, sig: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", sig).strip("-")[:80]
        folder = self.out / slug / f"case-{index}"
        if folder.exists():
            fc.cleanup(folder)
        files = folder / "files"
        files.mkdir(parents=True)
        (folder / "case.json").write_text(json.dumps(case.to_json()))
        argv = fc.materialize(case, files)
        (folder / "stderr.txt").write_text(out.stderr, errors="backslashreplace")
        (folder / "stdout.txt").write_text(out.stdout[-20_000:], errors="backslashreplace")
        (folder / "command.sh").write_text("#!/bin/sh\n" + shell_line(argv) + "\n",
                                           errors="surrogateescape")
        (folder / "outcome.json").write_text(json.dumps({
            "index": index, "seed": self.args.seed, "category": case.category, "kind": kind,
            "signature": sig, "note": case.note, "exit": out.code, "seconds": out.seconds,
            "max_rss_kb": out.max_rss_kb}, indent=1))
        return folder

    # output --------------------------------------------------------------------
    def _progress(self, total: int, final: bool = False) -> None:
        now = time.perf_counter()
        tty = sys.stderr.isatty()
        if not final and now - self.last_progress < (0.5 if tty else 30):
            return
        self.last_progress = now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed else 0.0
        eta = (total - self.done) / rate if rate else 0.0
        n_fail = sum(len(v) for v in self.failures.values())
        line = (f"{self.done:,}/{total:,} cases  {rate:5.1f}/s  elapsed {_hms(elapsed)}  "
                f"eta {_hms(eta)}  failures {n_fail} ({len(self.failures)} distinct)")
        if tty:
            print("\r" + line + " " * 4, end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def report(self) -> str:
        kinds = list(fc.OUTCOMES)
        head = ["category", "cases"] + kinds
        rows = []
        total = Counter()
        for cat in self.categories:
            c = self.counts[cat]
            total.update(c)
            rows.append([cat, str(sum(c.values()))] + [str(c[k]) for k in kinds])
        rows.append(["total", str(sum(total.values()))] + [str(total[k]) for k in kinds])
        widths = [max(len(r[j]) for r in [head] + rows) for j in range(len(head))]
        fmt = lambda r: "  ".join(x.ljust(w) if j == 0 else x.rjust(w)      # noqa: E731
                                  for j, (x, w) in enumerate(zip(r, widths)))
        lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows[:-1]] + \
            [fmt(["-" * w for w in widths]), fmt(rows[-1])]
        elapsed = time.perf_counter() - self.start
        lines.insert(0, f"seed {self.args.seed}: {self.done:,} cases in {_hms(elapsed)} "
                        f"({self.done / max(elapsed, 1e-9):.1f}/s), {self.args.workers} workers, "
                        f"timeout {self.args.timeout:g} s, address space {self.args.mem_gib:g} GiB")
        lines.append("")
        lines.append("slowest cases: " + ", ".join(f"#{i} {cat} {s:.1f} s"
                                                   for s, i, cat in self.slowest))
        lines.append("")
        if self.generator_errors:
            lines.append(f"{len(self.generator_errors)} case(s) not made (a bug in "
                         "tests/fuzzcases.py): " + "; ".join(f"#{i} {e}" for i, e in
                                                             self.generator_errors[:5]))
            lines.append("")
        if self.warnings:
            lines.append("Python warnings on stderr (not counted as failures):")
            for w, cases in sorted(self.warnings.items(), key=lambda kv: -len(kv[1])):
                lines.append(f"   {w}  [{len(cases)} case(s): #" +
                             ", #".join(str(i) for i in cases[:5]) +
                             (", ..." if len(cases) > 5 else "") + "]")
            lines.append("")
        if not self.failures:
            lines.append("no failures")
            return "\n".join(lines)
        lines.append(f"{len(self.failures)} distinct failures "
                     f"({sum(len(v) for v in self.failures.values())} cases); saved under "
                     f"{self.out}")
        me = f"{quote(sys.executable)} {quote(str(Path(__file__).resolve()))}"
        for n, (sig, cases) in enumerate(sorted(self.failures.items(),
                                                key=lambda kv: -len(kv[1])), 1):
            i, saved, tail, _ = cases[0]
            lines.append("")
            lines.append(f"{n}. {sig}  [{len(cases)} case(s): #" +
                         ", #".join(str(c[0]) for c in cases[:8]) +
                         (", ..." if len(cases) > 8 else "") + "]")
            if saved is not None:
                lines.append(f"   replay:  {me} --replay {quote(str(saved))}")
                lines.append(f"   command: sh {quote(str(saved / 'command.sh'))}")
            lines.append(f"   remake:  {me} --seed {quote(self.args.seed)} --only {i}"
                         + (" --small" if self.args.small else "")
                         + (f" --categories {self.args.categories}" if self.args.categories
                            else ""))
            for t in tail.splitlines()[-3:]:
                lines.append("   | " + t[:200])
        return "\n".join(lines)


def with_suppress(fn) -> None:
    try:
        fn()
    except (ChildProcessError, OSError):
        pass


def _hms(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


# ----------------------------------------------------------------------------- warm up, replay

def warm_up() -> None:
    """Import everything a case may import and load numba's compiled kernels, here, once: the
    forked children inherit them. Nothing here may start a thread: the fused cache kernel runs
    its shards in parallel (numba's OpenMP layer), and GNU OpenMP used before a fork aborts the
    child that uses it again, so the warm-up stays on hierarchies that do not take that path."""
    import importlib

    importlib.import_module("simulator.plots")     # matplotlib, for --plot
    cases = [["run", str(ROOT / "programs/xor.sir"), "--set", "epochs=1", "--cost-models"],
             ["run", str(ROOT / "programs/sparse_parity_gf2.sir"), "--passes", "fuse"],
             ["compare", str(ROOT / "programs/mlp_backprop_always.sir"), "--set", "epochs=1",
              "hidden=8", "n_train=8", "n_test=8", "-p", "none", "-p",
              "recompute{policy=auto},fuse", "--trace-steps", "2"],
             ["simulate", str(ROOT / "examples/seed_mlp_step.npz"), "--cost-models"],
             ["simulate", str(ROOT / "examples/matvec.npz"), "--hierarchy", "h100-like",
              "--json"],
             ["graph", str(ROOT / "programs/mlp_autodiff.sir"), "--dot"]]
    for argv in cases:
        fc.run_in_process(argv)         # output captured and dropped
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        print(f"warning: the warm-up left {threads} threads; forked cases may misbehave",
              file=sys.stderr)


def replay(folder: Path, timeout: float, mem_gib: float) -> int:
    """Run a saved case again in a fresh `python -m sutro_sim`, under the same limits."""
    case = fc.Case.from_json(json.loads((folder / "case.json").read_text()))
    return run_one(case, timeout, mem_gib)


def run_one(case: fc.Case, timeout: float, mem_gib: float) -> int:
    tmp = tempfile.mkdtemp(prefix="sutro-fuzz-replay-")
    try:
        argv = fc.materialize(case, tmp)
        print(f"category: {case.category}\nnote: {case.note}")
        print("command: " + shell_line(argv).encode("utf-8", "backslashreplace").decode())
        out = fc.run_in_subprocess(argv, tmp, timeout, int(mem_gib * GiB))
        kind = fc.classify(case.command, out)
        print(f"outcome: {kind} (exit {out.code}, {out.seconds:.2f} s)")
        if kind in fc.FAILURES:
            print("signature: " + fc.signature(kind, out, case))
        print("--- stderr (last lines)")
        print("\n".join(out.stderr.rstrip().splitlines()[-15:])[-4000:])
        return 1 if kind in fc.FAILURES else 0
    finally:
        fc.cleanup(tmp)


# ----------------------------------------------------------------------------- main

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", default="0")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None, help="where failing cases are saved "
                   "(default: fuzz-out-SEED in the temp folder)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a case is a hang")
    p.add_argument("--mem-gib", type=float, default=8.0, help="address-space limit per case")
    p.add_argument("--categories", default="", help="comma-separated subset of " +
                   ",".join(fc.CATEGORIES))
    p.add_argument("--small", action="store_true",
                   help="only the small variants (as tests/test_fuzz.py)")
    p.add_argument("--keep", type=int, default=3, help="saved cases per distinct failure")
    p.add_argument("--only", type=int, action="append", help="run only case I (repeatable)")
    p.add_argument("--replay", type=Path, help="run one saved case folder again")
    args = p.parse_args()
    if args.replay:
        return replay(args.replay, args.timeout, args.mem_gib)
    if args.categories and not set(args.categories.split(",")) <= set(fc.CATEGORIES):
        p.error(f"--categories: choose from {','.join(fc.CATEGORIES)}")
    if args.only and len(args.only) == 1:      # one case: in a fresh process, verbosely
        cats = args.categories.split(",") if args.categories else list(fc.CATEGORIES)
        return run_one(make_case(args.seed, args.only[0], cats, not args.small),
                       args.timeout, args.mem_gib)
    args.out = args.out or os.path.join(tempfile.gettempdir(), f"fuzz-out-{args.seed}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print("warming up (imports, numba) ...", file=sys.stderr, flush=True)
    warm_up()
    campaign = Campaign(args)
    campaign.run(args.only or list(range(args.cases)))
    text = campaign.report()
    print(text)
    (Path(args.out) / "report.txt").write_text(text + "\n", errors="backslashreplace")
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())
