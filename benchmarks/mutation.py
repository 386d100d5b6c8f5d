"""The mutation check: does the suite catch small deliberate bugs without its snapshot tests?

    python benchmarks/mutation.py                 # every mutant, 2 workers
    python benchmarks/mutation.py --only cache-scan-kernel-random-replacement-always --jobs 1
    python benchmarks/mutation.py --list

Each mutant of benchmarks/mutants.py replaces one exact piece of text in one source file (an
off-by-one, a dropped term, a swapped index). For each, in a scratch copy of the repository (one
per worker, never the working tree), the script applies the mutant, runs
`pytest -x -m "not snapshot"` (the snapshot tests compare with our own stored output, which a
regenerated file would accept: they must not be the only guard of a behaviour), records whether
a test failed and which, and restores the file. The test files a mutant names run first, in a
run of their own, then the rest of the suite. A mutant that no test catches *survives*; the
list marks the mutants known to be equivalent (no observable change), with the reason.

numba caches compiled kernels per source file and notices a change to that file (its stamp),
but not to a module whose constants or helper kernels it compiled in: a mutant of such a module
(cache_counters.py, intrinsics.py, ...) runs with an empty numba cache (each worker has its own
NUMBA_CACHE_DIR). Hypothesis skips shrinking (SUTRO_HYPOTHESIS_PROFILE=mutation): a failure is
all the check needs. The script prints a table and a summary and exits 1 if a
non-equivalent mutant survives. A baseline run (no mutant) must pass first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from mutants import MUTANTS, Mutant  # noqa: E402

COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build",
                                     ".pytest_cache", ".hypothesis", "out", "plots")
TIMEOUT_S = 900     # a mutant that makes the suite loop forever is caught by this


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str          # caught | survived | timeout
    test: str            # the first failing test (or the error) that caught it
    seconds: float


def apply(mutant: Mutant, root: Path) -> str:
    """Write the mutated file under `root`; returns the original text (to restore)."""
    path = root / mutant.file
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.id}: its text occurs {text.count(mutant.old)} times in "
                         f"{mutant.file}, not once: update benchmarks/mutants.py")
    path.write_text(text.replace(mutant.old, mutant.new))
    return text


PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
          "-m", "not snapshot"]
# tests/test_mutants.py checks that each mutant's text is in the tree: a mutated tree fails it
# by construction, so it must not count as catching anything
NOT_A_CATCH = ["--ignore", "tests/test_mutants.py"]


def pytest_runs(root: Path, mutant: Mutant | None) -> list[list[str]]:
    """The hinted test files first, in a run of their own (given with the folder they are in,
    pytest would fold them into it and keep its order), then the rest of the suite."""
    first = [t for t in (mutant.tests if mutant else ()) if (root / t).exists()]
    rest = [*PYTEST, *NOT_A_CATCH, *(a for t in first for a in ("--ignore", t)), "tests"]
    return ([[*PYTEST, *first]] if first else []) + [rest]


def frozen_into_kernels(root: Path, file: str) -> bool:
    """Does a numba module of another file import from `file`? Its kernels compiled that
    file's globals (constants, helper kernels) in, and numba's cache only notices a change to a
    kernel's own file."""
    name = Path(file).stem
    pattern = re.compile(rf"^from \.{name} import|^from \. import .*\b{name}\b", re.M)
    return any("numba" in text and pattern.search(text)
               for path in (root / "simulator").glob("*.py") if path.name != Path(file).name
               for text in [path.read_text()])


def run_suite(root: Path, cache: Path, mutant: Mutant | None) -> tuple[str, str, float]:
    """(status, first failing test or what went wrong, seconds). status: passed, failed (a test
    failed or a test module failed to import), timeout, or error (pytest did not run the tests:
    a usage error, no tests, killed)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1",
               SUTRO_HYPOTHESIS_PROFILE="mutation")
    t = time.perf_counter()
    for command in pytest_runs(root, mutant):
        try:
            proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return "timeout", f"no answer in {TIMEOUT_S} s", time.perf_counter() - t
        output = proc.stdout + proc.stderr
        status = classify(proc.returncode, output)
        if status != "passed":
            what = (f"the suite died of {signal.Signals(-proc.returncode).name}"
                    if proc.returncode < 0 else first_failure(output))
            return status, what, time.perf_counter() - t
    return "passed", "", time.perf_counter() - t


CRASHES = {-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT, -signal.SIGFPE, -signal.SIGILL}


def classify(code: int, output: str) -> str:
    """A test failed, a test module failed to import, or the suite crashed (a numba kernel
    writing out of bounds): the mutant is caught. Any other exit (a usage error, no tests,
    killed from outside, say for memory) says nothing about the mutant."""
    if code == 0:
        return "passed"
    if code == 1 or (code == 2 and "error" in output and "collect" in output):
        return "failed"
    return "crashed" if code in CRASHES else "error"


def first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    if m:
        return m.group(1)
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


STATUS = {"failed": "caught", "crashed": "crashed", "passed": "survived", "timeout": "timeout",
          "error": "error"}


def check(mutant: Mutant, root: Path, cache: Path) -> Outcome:
    frozen = frozen_into_kernels(root, mutant.file)
    if frozen:
        shutil.rmtree(cache, ignore_errors=True)
    original = apply(mutant, root)
    try:
        status, test, seconds = run_suite(root, cache, mutant)
    finally:
        (root / mutant.file).write_text(original)
        if frozen:      # kernels compiled with the mutant's constants must not outlive it
            shutil.rmtree(cache, ignore_errors=True)
    return Outcome(mutant, STATUS[status], test, seconds)


def scratch_copy(base: Path, i: int) -> tuple[Path, Path]:
    root = base / f"tree{i}"
    shutil.copytree(ROOT, root, ignore=COPY_IGNORE)
    return root, base / f"numba{i}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.only or ()) - {m.id for m in MUTANTS})
    if unknown:
        print(f"no mutant named {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.id:44s} {m.file:30s} {m.why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="sutro-mutation-") as tmp:
        trees = [scratch_copy(Path(tmp), i) for i in range(max(1, args.jobs))]
        status, test, seconds = run_suite(*trees[0], None)
        if status != "passed":
            print(f"the unmutated suite does not pass ({test}); fix that first", file=sys.stderr)
            return 2
        print(f"baseline: the suite without snapshots passes in {seconds:.0f} s; "
              f"{len(chosen)} mutants, {len(trees)} workers", flush=True)
        outcomes = run_all(chosen, trees)
    print_report(outcomes)
    bad = [o for o in outcomes if o.status == "error"
           or (o.status == "survived" and not o.mutant.equivalent)]
    return 1 if bad else 0


def run_all(chosen: list[Mutant], trees) -> list[Outcome]:
    free = list(trees)
    outcomes: dict[str, Outcome] = {}

    def work(m: Mutant) -> Outcome:
        tree = free.pop()
        try:
            return check(m, *tree)
        finally:
            free.append(tree)

    with ThreadPoolExecutor(len(trees)) as pool:
        for o in pool.map(work, chosen):
            outcomes[o.mutant.id] = o
            print(f"  {o.status:8s} {o.seconds:5.0f} s  {o.mutant.id}  {o.test}", flush=True)
    return [outcomes[m.id] for m in chosen]


def print_report(outcomes: list[Outcome]) -> None:
    survived = [o for o in outcomes if o.status == "survived"]
    equivalent = [o for o in survived if o.mutant.equivalent]
    real = [o for o in survived if not o.mutant.equivalent]
    count = {s: sum(o.status == s for o in outcomes)
             for s in ("caught", "crashed", "timeout", "error")}
    print(f"\n{len(outcomes)} mutants: {count['caught']} caught by a test, {count['crashed']} "
          f"crashed the suite, {count['timeout']} timed out, {len(equivalent)} equivalent "
          f"(survive by design), {len(real)} survived, {count['error']} errors")
    for o in outcomes:
        if o.status == "error":
            print(f"  ERROR       {o.mutant.id}: pytest did not run the tests ({o.test})")
    for o in equivalent:
        print(f"  equivalent  {o.mutant.id}: {o.mutant.equivalent}")
    for o in real:
        print(f"  SURVIVED    {o.mutant.id} ({o.mutant.file}): {o.mutant.why}")
    wrongly = [o for o in outcomes if o.status != "survived" and o.mutant.equivalent]
    for o in wrongly:
        print(f"  note: {o.mutant.id} is marked equivalent but was caught by {o.test}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:     # `--list | head`
        sys.exit(0)
