"""The mutation check: does the suite catch small deliberate bugs without its snapshot tests?

    python benchmarks/mutation.py                 # every mutant, 2 workers
    python benchmarks/mutation.py --only cache-random-last-way --jobs 1
    python benchmarks/mutation.py --list

Each mutant of benchmarks/mutants.py replaces one exact piece of text in one source file (an
off-by-one, a dropped term, a swapped index). For each, in a scratch copy of the repository (one
per worker, never the working tree), the script applies the mutant, runs
`pytest -x -m "not snapshot"` (the snapshot tests compare with our own stored output, which a
regenerated file would accept: they must not be the only guard of a behaviour), records whether
a test failed and which, and restores the file. A mutant that no test catches *survives*; the
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


def pytest_command(root: Path, mutant: Mutant | None) -> list[str]:
    first = [t for t in (mutant.tests if mutant else ()) if (root / t).exists()]
    # tests/test_mutants.py checks that each mutant's text is in the tree: a mutated tree
    # fails it by construction, so it must not count as catching anything
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
            "-m", "not snapshot", "--ignore", "tests/test_mutants.py", *first, "tests"]


def frozen_into_kernels(root: Path, file: str) -> bool:
    """Does a numba module of another file import from `file`? Its kernels compiled that
    file's globals (constants, helper kernels) in, and numba's cache only notices a change to a
    kernel's own file."""
    name = Path(file).stem
    pattern = re.compile(rf"^from \.{name} import|^from \. import .*\b{name}\b", re.M)
    return any("numba" in text and pattern.search(text)
               for path in (root / "simulator").glob("*.py") if path.name != Path(file).name
               for text in [path.read_text()])


def run_suite(root: Path, cache: Path, mutant: Mutant | None) -> tuple[int, str, float]:
    if mutant is None or frozen_into_kernels(root, mutant.file):
        shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1",
               SUTRO_HYPOTHESIS_PROFILE="mutation")
    t = time.perf_counter()
    try:
        proc = subprocess.run(pytest_command(root, mutant), cwd=root, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f"no answer in {TIMEOUT_S} s", time.perf_counter() - t
    return proc.returncode, first_failure(proc.stdout + proc.stderr), time.perf_counter() - t


def first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    if m:
        return m.group(1)
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def check(mutant: Mutant, root: Path, cache: Path) -> Outcome:
    original = apply(mutant, root)
    try:
        code, test, seconds = run_suite(root, cache, mutant)
    finally:
        (root / mutant.file).write_text(original)
    status = "timeout" if code == -1 else "survived" if code == 0 else "caught"
    return Outcome(mutant, status, test, seconds)


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
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list or not chosen:
        for m in chosen:
            print(f"{m.id:40s} {m.file:32s} {m.why}")
        return 0 if chosen else 2
    with tempfile.TemporaryDirectory(prefix="sutro-mutation-") as tmp:
        trees = [scratch_copy(Path(tmp), i) for i in range(max(1, args.jobs))]
        code, test, seconds = run_suite(*trees[0], None)
        if code != 0:
            print(f"the unmutated suite fails ({test}); fix that first", file=sys.stderr)
            return 2
        print(f"baseline: the suite without snapshots passes in {seconds:.0f} s; "
              f"{len(chosen)} mutants, {len(trees)} workers", flush=True)
        outcomes = run_all(chosen, trees)
    print_report(outcomes)
    return 1 if any(o.status == "survived" and not o.mutant.equivalent for o in outcomes) else 0


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
    caught = len(outcomes) - len(survived)
    print(f"\n{len(outcomes)} mutants: {caught} caught, {len(equivalent)} equivalent "
          f"(survive by design), {len(real)} survived")
    for o in equivalent:
        print(f"  equivalent  {o.mutant.id}: {o.mutant.equivalent}")
    for o in real:
        print(f"  SURVIVED    {o.mutant.id} ({o.mutant.file}): {o.mutant.why}")
    wrongly = [o for o in outcomes if o.status != "survived" and o.mutant.equivalent]
    for o in wrongly:
        print(f"  note: {o.mutant.id} is marked equivalent but was caught by {o.test}")


if __name__ == "__main__":
    sys.exit(main())
