"""Fuzz tests of the command line's error contract, on hostile input of every kind a user gives:
.sir programs, options, trace files and hierarchy files (tests/fuzzcases.py makes the cases).

The contract (README, sutro_sim/cli.py): a user's mistake prints `WHERE: error: WHAT` on stderr
and exits 2; `run` and `compare` exit 3 when training diverges; success is 0. Never a Python
traceback, never a hang, never unbounded memory.

The budget is fixed and small (hypothesis, derandomized by tests/conftest.py): the cases run
in this process, each under an alarm and an address-space limit; a handful more, the heavy
ones, run in a fresh `python -m sutro_sim` under RLIMIT_AS and a timeout. The long campaign
is `python benchmarks/fuzz_campaign.py --cases 10000` (docs in its header). A failing example
is saved, and its message says how to run it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import fuzzcases as fc  # noqa: E402

CASE_SECONDS = 20              # an in-process case past this is a hang
CASE_HEADROOM = 4 << 30        # address space an in-process case may add to this process's
SUBPROCESS_SECONDS = 60
SUBPROCESS_MEMORY = 8 << 30    # a normal small run peaks near 0.6 GiB of address space
FAILED_DIR = Path(tempfile.gettempdir()) / "sutro-fuzz-failures"
CAMPAIGN = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_campaign.py"


def budget(n: int) -> settings:
    """A fixed number of examples (on top of the loaded profile: derandomized, no deadline)."""
    return settings(max_examples=n, suppress_health_check=[HealthCheck.too_slow,
                                                           HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- running cases

def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_case(case: fc.Case) -> tuple[str, fc.Outcome]:
    """Run a case in this process, in its own folder, under an alarm and an address-space
    limit (this process's mapped bytes plus CASE_HEADROOM; restored afterwards)."""
    folder = tempfile.mkdtemp(prefix="sutro-fuzz-")
    cwd = os.getcwd()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        argv = fc.materialize(case, folder)
        os.chdir(folder)
        limit = _mapped_bytes() + CASE_HEADROOM
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            out = fc.run_in_process(argv, timeout=CASE_SECONDS)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    finally:
        os.chdir(cwd)
        fc.cleanup(folder)
    return fc.classify(case.command, out), out


def save_failure(case: fc.Case, out: fc.Outcome) -> Path:
    """Keep a failing case where `fuzz_campaign.py --replay` can run it again."""
    blob = json.dumps(case.to_json(), sort_keys=True)
    folder = FAILED_DIR / hashlib.sha1(blob.encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "case.json").write_text(blob)
    (folder / "stderr.txt").write_text(out.stderr, errors="backslashreplace")
    return folder


def describe(case: fc.Case, kind: str, out: fc.Outcome) -> str:
    argv = " ".join(a if len(a) < 120 else a[:100] + f"...({len(a)} chars)" for a in case.argv)
    folder = save_failure(case, out)
    return (f"{fc.signature(kind, out, case)}\n"
            f"case: {case.category}: {case.note[:300]}\n"
            f"argv: sutro-sim {argv}\n"
            f"exit {out.code} after {out.seconds:.1f} s; stderr ends:\n{out.stderr_tail[-3000:]}\n"
            f"run it again: {sys.executable} {CAMPAIGN} --replay {folder}")


def check(case: fc.Case) -> str:
    kind, out = run_case(case)
    assert kind not in fc.FAILURES, describe(case, kind, out)
    return kind


# ----------------------------------------------------------------------------- the fuzz tests

# Each example is a seed for random.Random, which the generators use: hypothesis's own
# st.randoms() draws simple values first and made a third as many distinct cases in a trial.
# The seed is printed with a failure, and the failing case is saved with its replay command.
SEEDS = st.integers(min_value=0, max_value=2 ** 64 - 1)


@budget(500)
@given(seed=SEEDS)
def test_fuzz_programs(seed):
    """Mutated .sir programs (tokens, lines, numbers, sizes, nesting, odd characters, bytes that
    are not UTF-8), run, printed or compared: a clean error or a run."""
    check(fc.program_case(random.Random(seed)))


@budget(400)
@given(seed=SEEDS)
def test_fuzz_options(seed):
    """Random --set, --trace-steps, --passes, --hierarchy, --energy, --plot, --target-accuracy,
    --seed and flags on small valid programs and traces."""
    check(fc.options_case(random.Random(seed)))


@budget(500)
@given(seed=SEEDS)
def test_fuzz_traces(seed):
    """`simulate` on mutated trace files: meta.json, .npy members, the zip archive, paths that
    are not files."""
    check(fc.trace_case(random.Random(seed)))


@budget(300)
@given(seed=SEEDS)
def test_fuzz_hierarchies(seed):
    """Mutated hierarchy TOML files, through simulate, run, compare and recompute{policy=auto}."""
    check(fc.hierarchy_case(random.Random(seed)))


# ----------------------------------------------------------------------------- heavy cases

def _program(name: str, old: str, new: str) -> bytes:
    text = fc.base_programs()[name]
    assert old in text, (name, old)
    return text.replace(old, new, 1).encode()


def _trace_with(member_column: str, data: bytes) -> bytes:
    meta, arrays, order = fc._base_trace("matvec.npz")
    members = {m: fc.npy_bytes(a) for m, a in arrays.items()}
    members[f"c000000_{member_column}.npy"] = data
    members["meta.json"] = json.dumps(meta).encode()
    return fc._zip(random.Random(0), members, order, [])


def heavy_cases() -> list[fc.Case]:
    """Inputs whose danger is time or memory, not a wrong type: each must end, quickly and
    within the address-space limit, with a clean outcome."""
    T = fc.TMP
    hier = fc._base_hierarchy("cpu-like.toml")
    hier["level"][2]["capacity"] = "8 GiB"
    big_hier = fc.toml_dumps(hier).encode()
    return [
        fc.Case("programs", ["run", f"{T}/p.sir", "--set", "epochs=1"],
                {"p.sir": _program("xor.sir", "train=16", "train=1000000000")},
                "a training set of 10**9 examples"),
        fc.Case("programs", ["run", f"{T}/p.sir", "--set", "epochs=1"],
                {"p.sir": _program("xor.sir", "hidden = 8",
                                   "hidden = " + "(" * 20000 + "8" + ")" * 20000)},
                "20,000 nested brackets"),
        fc.Case("programs", ["graph", f"{T}/p.sir"],
                {"p.sir": _program("xor.sir", "h = relu(h_pre)",
                                   "h = " + "-" * 50000 + "h_pre")},
                "50,000 unary minus"),
        fc.Case("options", ["run", f"{T}/p.sir", "--set", "epochs=1", "hidden=100000000"],
                {"p.sir": fc.base_programs()["mlp_backprop.sir"].encode()},
                "parameters of 6.4 GB"),
        fc.Case("traces", ["simulate", f"{T}/t.npz"],
                {"t.npz": _trace_with("addr", fc.npy_raw("<i8", (10 ** 12,), b"\0" * 64))},
                "a column whose header claims 10**12 elements"),
        fc.Case("traces", ["simulate", f"{T}/t.npz"], {"t.npz": fc.Special("fifo")},
                "a named pipe"),
        fc.Case("hierarchies", ["simulate", f"{T}/t.npz", "--hierarchy", f"{T}/h.toml"],
                {"h.toml": big_hier,
                 "t.npz": (fc.EXAMPLES_DIR / "matvec.npz").read_bytes()},
                "an 8 GiB cache level"),
    ] + [fc.any_case(random.Random(f"heavy:{i}"), big=True) for i in range(3)]


def _run_heavy(case: fc.Case):
    folder = tempfile.mkdtemp(prefix="sutro-fuzz-heavy-")
    try:
        argv = fc.materialize(case, folder)
        out = fc.run_in_subprocess(argv, folder, SUBPROCESS_SECONDS, SUBPROCESS_MEMORY)
    finally:
        fc.cleanup(folder)
    return case, fc.classify(case.command, out), out


def test_heavy_cases_end_in_time_and_memory():
    """Each in a fresh `python -m sutro_sim` under RLIMIT_AS (8 GiB) and a timeout (60 s)."""
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(_run_heavy, heavy_cases()))
    bad = [describe(case, kind, out) for case, kind, out in results if kind in fc.FAILURES]
    assert not bad, "\n\n".join(bad)


# ----------------------------------------------------------------------------- the harness

def test_base_inputs_are_valid_and_fast():
    """The fuzz starts from valid inputs that run in well under a second, so that a mutant that
    still compiles is exercised end to end, not refused for its size."""
    T = fc.TMP
    cases = [fc.Case("programs", ["run", f"{T}/p.sir", "--trace-steps", "2"],
                     {"p.sir": text.encode()}, name)
             for name, text in fc.base_programs().items()]
    cases += [fc.Case("traces", ["simulate", f"{T}/t.npz", "--cost-models"],
                      {"t.npz": (fc.EXAMPLES_DIR / name).read_bytes()}, name)
              for name in ("matvec.npz", "seed_mlp_step.npz")]
    meta, arrays, order = fc._base_trace("matvec.npz")      # rebuilt as the mutators rebuild it
    members = {m: fc.npy_bytes(a) for m, a in arrays.items()}
    members["meta.json"] = json.dumps(meta).encode()
    cases.append(fc.Case("traces", ["simulate", f"{T}/t.npz"],
                         {"t.npz": fc._zip(random.Random(1), members, order, [])}, "rebuilt"))
    cases += [fc.Case("hierarchies", ["simulate", f"{T}/t.npz", "--hierarchy", f"{T}/h.toml"],
                      {"h.toml": fc.toml_dumps(fc._base_hierarchy(p.name)).encode(),
                       "t.npz": (fc.EXAMPLES_DIR / "matvec.npz").read_bytes()}, p.name)
              for p in sorted(fc.PRESETS_DIR.glob("*.toml"))]
    for case in cases:
        kind, out = run_case(case)
        assert kind == "exit 0", describe(case, kind, out)
        assert out.seconds < 1.5, f"{case.note} took {out.seconds:.1f} s"


def test_generators_make_every_kind_of_mutation():
    """The generators reach every family of mutation (so none silently stops being made), and
    every mutated file differs from its base."""
    want = {
        "programs": ["token-delete", "token-insert", "token-replace", "token-duplicate",
                     "line-swap", "number-weird", "size-weird", "deep-parens", "deep-unary",
                     "long-sum", "deep-calls", "deep-if-blocks", "char-insert", "bad-utf8",
                     "whole-file", "long-"],
        "options": ["set", "trace", "passes", "hierarchy", "energy", "plot", "target", "seed",
                    "flag"],
        "traces": ["meta-chunk-n", "meta-set", "meta-delete", "column-addr-value",
                   "column-nbytes", "-dtype-", "-shape-0d", "npy-", "claims-huge", "zip-truncate",
                   "meta.json-deep", "meta.json-not-utf8", "path-fifo", "path-dir"],
        "hierarchies": ["capacity=", "line=", "ways=", "policy=", "energy=", "missing-",
                        "extra-key", "toml-not-utf8", "toml-empty", "levels-"],
    }
    for category, needles in want.items():
        notes = " ".join(fc.GENERATORS[category](random.Random(f"cover{i}")).note
                         for i in range(250))
        if category == "traces":        # 1 case in 8 is a path that is not a trace file
            notes += " ".join(" path-" + fc._path_case(random.Random(i))[2] for i in range(200))
        missing = [n for n in needles if n not in notes]
        assert not missing, f"{category}: never made {missing}"
    base = set(t.encode() for t in fc.base_programs().values())
    for i in range(100):
        case = fc.program_case(random.Random(f"diff{i}"))
        data = next(iter(case.files.values()))
        assert data not in base or case.note.endswith("whole-file"), case.note


def test_toml_writer_round_trips_every_value_kind():
    import tomllib

    doc = {"name": "x", "description": "a \"quoted\" \\ \u2028 é", "pycachesim_compat": False,
           "level": [{"name": "L1", "capacity": "1 KiB", "line": 64, "ways": 2,
                      "energy_fj_per_bit": 1.5, "seed": 10 ** 30, "extra": [1, {"a": 2}]}],
           "memory": {"name": "M", "energy_fj_per_bit": float("inf")}}
    assert tomllib.loads(fc.toml_dumps(doc)) == doc
    nan = tomllib.loads(fc.toml_dumps({"memory": {"e": float("nan")}}))["memory"]["e"]
    assert nan != nan


def test_npy_writer_claims_what_it_is_told():
    data = fc.npy_raw("<i8", (10 ** 12,), b"")
    import io
    f = io.BytesIO(data)
    assert np.lib.format.read_magic(f) == (1, 0)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    assert shape == (10 ** 12,) and not fortran and dtype == np.int64


def test_case_survives_json_and_materializes_special_files(tmp_path):
    case = fc.Case("traces", ["simulate", f"{fc.TMP}/t.npz", f"--plot={fc.TMP}/\udcff"],
                   {"t.npz": b"\x00\xff", "d": fc.Special("dir"), "p": fc.Special("fifo"),
                    "l": fc.Special("symlink", b"t.npz"), "u": fc.Special("unreadable", b"x")})
    again = fc.Case.from_json(json.loads(json.dumps(case.to_json())))
    assert again == case
    argv = fc.materialize(again, tmp_path)
    assert argv == ["simulate", f"{tmp_path}/t.npz", f"--plot={tmp_path}/\udcff"]
    assert (tmp_path / "t.npz").read_bytes() == b"\x00\xff" and (tmp_path / "d").is_dir()
    assert (tmp_path / "p").is_fifo() and (tmp_path / "l").resolve() == tmp_path / "t.npz"
    assert (tmp_path / "u").stat().st_mode & 0o777 == 0
    fc.cleanup(tmp_path)
    assert not tmp_path.exists()


@pytest.mark.parametrize("command, code, stderr, kind", [
    ("run", 0, "", "exit 0"),
    ("run", 2, "p.sir:3:4: error: unknown name 'x'\n    x\n    ^\n", "exit 2"),
    ("simulate", 2, "--plot: error: give a directory\n", "exit 2"),
    ("run", 2, "usage: sutro-sim run [-h]\nsutro-sim run: error: argument --seed: invalid\n",
     "exit 2"),
    ("run", 3, "p.sir:5:3: error: training diverged at step 1\n", "exit 3"),
    ("simulate", 3, "x: error: diverged?\n", "bad exit code"),
    ("run", 2, "error: no location\n", "bad message"),
    ("run", 2, "", "bad message"),
    ("run", 2, "usage: sutro-sim run [-h]\n", "bad message"),
    ("run", 2, "Warning: something\np.sir:1:1: error: x\n", "bad message"),
    ("run", 1, "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
               "ValueError: boom\n", "traceback"),
    ("run", 2, "Traceback (most recent call last):\nValueError: boom\np: error: x\n",
     "traceback"),
    ("run", 1, "", "traceback"),
    ("run", 1, "Traceback (most recent call last):\nMemoryError\n", "memory"),
    ("run", 5, "", "bad exit code"),
])
def test_classify(command, code, stderr, kind):
    assert fc.classify(command, fc.Outcome(code, "", stderr, 0.1)) == kind
    assert (kind in fc.FAILURES) == (kind not in ("exit 0", "exit 2", "exit 3"))


def test_classify_hangs_and_crashes():
    assert fc.classify("run", fc.Outcome(None, "", "", 30.0, timed_out=True)) == "hang"
    assert fc.classify("run", fc.Outcome(None, "", "", 0.1, signal=11)) == "crash"


def test_in_process_runner_reports_tracebacks_exits_and_hangs(monkeypatch, tmp_path):
    import sutro_sim.cli

    def boom(argv):
        raise ValueError("boom")
    monkeypatch.setattr(sutro_sim.cli, "main", boom)
    out = fc.run_in_process(["run", "x"])
    assert fc.classify("run", out) == "traceback" and "ValueError: boom" in out.stderr

    def exits(argv):
        raise SystemExit(2)
    monkeypatch.setattr(sutro_sim.cli, "main", exits)
    assert fc.run_in_process(["run", "x"]).code == 2

    def warns(argv):
        import warnings
        warnings.warn("careful", RuntimeWarning)
        return 0
    monkeypatch.setattr(sutro_sim.cli, "main", warns)
    out = fc.run_in_process(["run", "x"])
    assert out.code == 0 and "RuntimeWarning: careful" in out.stderr   # seen as a user sees it

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    def blocks(argv):
        open(pipe).read()           # no writer: blocks until the alarm
    monkeypatch.setattr(sutro_sim.cli, "main", blocks)
    out = fc.run_in_process(["run", "x"], timeout=0.5)
    assert fc.classify("run", out) == "hang" and out.seconds < 5


def test_check_accepts_a_located_error_and_rejects_a_traceback(monkeypatch, tmp_path):
    """A known mistake passes the check (exit 2, located message); a main() that raises fails
    it, with the saved case's replay command in the message."""
    monkeypatch.setattr(sys.modules[__name__], "FAILED_DIR", tmp_path)
    case = fc.Case("programs", ["run", f"{fc.TMP}/p.sir"], {"p.sir": b"config x = \n"}, "bad")
    assert check(case) == "exit 2"
    import sutro_sim.cli

    def boom(argv):
        raise KeyError("boom")
    monkeypatch.setattr(sutro_sim.cli, "main", boom)
    with pytest.raises(AssertionError, match="(?s)traceback: KeyError.*--replay"):
        check(case)


def test_subprocess_runner_reports_hang_memory_and_crash(tmp_path):
    def run(code: str, timeout: float = 20) -> fc.Outcome:
        return fc.run_in_subprocess([], str(tmp_path), timeout, 2 << 30,
                                    python_args=("-c", code))
    assert fc.classify("run", run("import time; time.sleep(30)", timeout=1)) == "hang"
    assert fc.classify("run", run("bytearray(8 << 30)")) == "memory"
    assert fc.classify("run", run("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")) \
        == "crash"
    assert fc.classify("run", run("import sys; sys.exit(0)")) == "exit 0"
