"""Score a folder of sutro-problems submissions and compare with their published costs.

    python benchmarks/score_submissions.py DIR [--index FILE] [--seed N]

The submissions are not in this repository (they belong to cybertronai/sutro-problems); fetch
them into DIR. The index is a tab-separated file with a header and at least the columns
`saved_filename` (or `file`), `problem` and `claimed_cost`; by default DIR/index.tsv. A problem
in the index may be written as the task's name in the repository (for example "matmul-16" or
"sparse-parity small (100%)"); it is mapped to ours. Prints one row per file: our cost, the
published one, whether they agree, the check's verdict, the seconds it took.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simulator.errors import SimError            # noqa: E402
from simulator.report import table                # noqa: E402
from sutro_ir.dally.score import score            # noqa: E402

ALIASES = [("mask32", "sparse-parity-mask32"), ("approx50", "sparse-parity-medium-approx50"),
           ("sparse-parity small", "sparse-parity-small"),
           ("sparse-parity medium", "sparse-parity-medium"),
           ("symmetry n=6", "symmetry-6"), ("symmetry n=8", "symmetry-8")]


def problem_of(text: str) -> str:
    for key, name in ALIASES:
        if key in text:
            return name
    return text.split()[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--index")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    index = args.index or os.path.join(args.folder, "index.tsv")
    rows, agree = [], 0
    with open(index, newline="") as f:
        entries = list(csv.DictReader(f, delimiter="\t"))
    for e in entries:
        name = e.get("saved_filename") or e["file"]
        claimed = int(e["claimed_cost"].replace(",", "").split()[0])
        problem = problem_of(e["problem"])
        t = time.perf_counter()
        try:
            r = score(os.path.join(args.folder, name), problem, seed=args.seed)
            verdict = "yes" if r.verdict.correct else "NO"
            detail = r.verdict.detail.split(";")[0][:60]
            ours = r.cost
        except SimError as err:
            verdict, detail, ours = "error", str(err).splitlines()[0][-60:], None
        agree += ours == claimed
        rows.append([name, problem, f"{claimed:,}", "-" if ours is None else f"{ours:,}",
                     "yes" if ours == claimed else "NO", verdict, detail,
                     f"{time.perf_counter() - t:.2f}"])
    print(table(["file", "problem", "published", "ours", "same", "correct", "check", "s"],
                rows, left=(0, 1, 5, 6)))
    print(f"\n{agree} of {len(rows)} published costs reproduced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
