"""The input contract (docs/input-contract.md): every mistake in a program, an option, a trace
file or a hierarchy file is `WHERE: error: WHAT` with exit status 2, found before the work
starts; nesting, sizes and memory are bounded up front. One test (or one row) per case of
issue 12, with the expected message written here, not copied from our output."""

from __future__ import annotations

import io
import json
import os
import re
import resource
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import SimError
from simulator.trace import (CHUNK_BYTES_PER_ACCESS, MAX_ACCESS_BYTES, MAX_ADDRESS, Buffer,
                             Trace, load, make_chunk)
from sutro_ir import datasets
from sutro_ir.compile import MAX_SOURCE_BYTES, compile_file, compile_program
from sutro_ir.errors import SirError
from sutro_ir.lower import MAX_NESTING
from sutro_sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
XOR = (ROOT / "programs/xor.sir").read_text().replace("epochs = 200", "epochs = 2")
MATVEC = ROOT / "examples/matvec.npz"


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, argv, where, message):
    """Exit 2, nothing on stdout, and the first line `WHERE: error: ...MESSAGE...`."""
    code, out, err = cli(capsys, *argv)
    first = err.splitlines()[0] if err else ""
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert first.startswith(f"{where}: error: ") and message in first, first


def compile_error(text: str) -> SirError:
    with pytest.raises(SirError) as e:
        compile_program(text, "p.sir")
    return e.value


# ----------------------------------------------------------------------------- nesting

def nested(kind: str, depth: int) -> str:
    """A program whose deepest expression or block is `depth` levels down, counting the
    statement's expression as level 1."""
    if kind == "calls":           # relu(relu(...(h_pre)...)): depth - 1 calls around a name
        expr = "relu(" * (depth - 1) + "h_pre" + ")" * (depth - 1)
        return XOR.replace("h = relu(h_pre)", f"h = {expr}")
    if kind == "neg":             # - - ... - h_pre
        return XOR.replace("h = relu(h_pre)", "h = " + "-" * (depth - 1) + "h_pre")
    if kind == "config":          # seed = min(min(...(1, 2)..., 2), 2)
        expr = "min(" * (depth - 1) + "1" + ", 2)" * (depth - 1)
        return XOR.replace("seed = 1", f"seed = {expr}")
    if kind == "ifs":             # the update inside depth - 1 blocks, plus its expression
        body = "  b1 -= lr * db1\n"
        return XOR.replace(body, "if step >= 0 {\n" * (depth - 2) + body + "}\n" * (depth - 2))
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["calls", "neg", "config", "ifs"])
def test_nesting_is_accepted_to_its_limit_and_refused_past_it_where_it_passes(kind):
    compile_program(nested(kind, MAX_NESTING), "p.sir")
    e = compile_error(nested(kind, MAX_NESTING + 1))
    assert f"this nests more than {MAX_NESTING} levels deep" in e.message
    deepest = {"calls": "h_pre)", "neg": "h_pre", "config": "1, 2)", "ifs": None}[kind]
    if deepest:                   # the caret is at the level past the limit: the innermost
        assert e.loc.text[e.loc.col - 1:].startswith(deepest), (e.loc.text, e.loc.col)


def test_a_program_at_the_nesting_limit_trains_and_prices(capsys):
    """The limit exists so that every later walk (passes, schedule, executor, trace) stays
    inside Python's recursion limit: the deepest program runs through all of them."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"deep_{os.getpid()}.sir"
    path.write_text(nested("ifs", MAX_NESTING))
    try:
        code, out, err = cli(capsys, "run", path, "--no-eval", "--passes",
                             "recompute{policy=sqrt},layer-local-update,fuse,liveness-layout")
    finally:
        path.unlink()
    assert code == 0 and "Traceback" not in err


def test_inlined_function_bodies_count_towards_the_nesting():
    fns = "".join(f"def f{i}(x) {{\n  return f{i + 1}(x) + 0.0\n}}\n" for i in range(60))
    text = XOR.replace("param W1", fns + "def f60(x) {\n  return x\n}\nparam W1")
    e = compile_error(text.replace("h = relu(h_pre)", "h = relu(f0(h_pre))"))
    assert f"this nests more than {MAX_NESTING} levels deep" in e.message
    compile_program(text.replace("h = relu(h_pre)", "h = relu(f30(h_pre))"), "p.sir")


def test_a_long_chain_of_one_operator_is_one_level():
    """`a + b + c + ...` is walked in a loop: a thousand terms are fine, and mean what they say."""
    terms = " + ".join(str(i) for i in range(1, 1001))
    program = compile_program(XOR.replace("seed = 1", f"seed = 1, total = {terms}"), "p.sir")
    assert program.config_dict["total"] == 1000 * 1001 // 2
    program = compile_program(XOR.replace("h = relu(h_pre)", "h = relu(h_pre" + " - h_pre" * 999
                                          + ")"), "p.sir")
    subs = [n for n in program.train.graph.all_nodes if n.op == "sub" and n.loc.line == 13]
    assert len(subs) == 999
    # left-associative: each subtraction takes the previous one's result as its left operand
    assert all(b.operands[0] == a.name for a, b in zip(subs, subs[1:]))


def test_a_deep_until_condition_is_refused_at_its_place():
    cond = "not " * (MAX_NESTING + 1) + "train_accuracy >= 1.0"
    e = compile_error(XOR.replace("until train_accuracy >= 1.0", f"until {cond}"))
    assert f"this nests more than {MAX_NESTING} levels deep" in e.message and e.loc.line == 11


# ----------------------------------------------------------------------------- program files

@pytest.mark.parametrize("char", ["\f", "\v", "\x85", "\u2028", "\u2029", "\x1c"])
def test_a_line_is_what_ends_at_a_newline(char):
    """Python's splitlines() also breaks at these; the parser and an editor do not: the error
    shows the line the parser means."""
    text = XOR.replace("# XOR", f"# XOR{char}x").replace("h = relu(h_pre)", "h = relu(h_pre))")
    e = compile_error(text)
    assert e.loc.line == 13 and e.loc.text == "  h = relu(h_pre))", (e.loc, e.loc.text)


def test_program_files_that_cannot_be_read(tmp_path, capsys):
    refused(capsys, ["run", tmp_path], str(tmp_path), "this is a directory, not a program file")
    os.mkfifo(tmp_path / "pipe.sir")          # would block a reader forever
    refused(capsys, ["run", tmp_path / "pipe.sir"], str(tmp_path / "pipe.sir"),
            "this is not a regular file (a pipe or a device?)")
    big = tmp_path / "big.sir"
    with open(big, "wb") as f:
        f.truncate(MAX_SOURCE_BYTES + 1)      # sparse: no disk, refused before reading
    refused(capsys, ["run", big], str(big), f"at most {MAX_SOURCE_BYTES:,} are read")


def test_invalid_utf8_is_located(tmp_path, capsys):
    path = tmp_path / "p.sir"
    path.write_bytes(XOR.encode().replace(b"h = relu(h_pre)", b"h = relu(h_\xffpre)"))
    refused(capsys, ["run", path], f"{path}:13:14",
            "the program is not UTF-8 text: byte 0xff cannot start or continue a character")


def test_crlf_programs_read_as_their_lines(tmp_path):
    path = tmp_path / "p.sir"
    path.write_bytes(XOR.replace("h = relu(h_pre)", "h = relu(h_pre))").replace("\n", "\r\n")
                     .encode())
    with pytest.raises(SirError) as e:
        compile_file(str(path))
    assert e.value.loc.line == 13 and e.value.loc.text == "  h = relu(h_pre))"


# ----------------------------------------------------------------------------- sizes and numbers

@pytest.mark.parametrize("edit,where,message", [
    (("f32[hidden, 2]", "f32[10 ** 30, 2]"), "p.sir:6:11", "this array, f32[1e+30, 2], takes"),
    (("h = relu(h_pre)", "h = relu(h_pre) + zeros([10 ** 6, 10 ** 6])"), "p.sir:13:21",
     "this array, f32[1,000,000, 1,000,000], takes 3,725.3 GiB, more than 80% of "),
    (("lr = 0.1", "lr = 10.0 ** 400"), "p.sir:2:25",
     "this constant is too large (past the largest float"),
    (("lr = 0.1", "lr = 1e308 * 10"), "p.sir:2:31", "this constant is inf"),
])
def test_sizes_and_constants_are_refused_at_their_source(edit, where, message):
    e = compile_error(XOR.replace(*edit))
    assert str(e).startswith(f"{where}: error: ") and message in str(e)


def test_a_step_whose_trace_would_not_fit_is_refused_before_training(capsys):
    from sutro_sim.run import TRACE_BYTES_PER_ACCESS
    path = ROOT / "programs/mlp_backprop.sir"
    code, out, err = cli(capsys, "run", path, "--set", "hidden=1000000")
    assert code == 2 and out == ""
    assert err.startswith(f"{path}: error: one training step makes 339,000,022 memory accesses;"
                          f" tracing it needs about {339_000_022 * TRACE_BYTES_PER_ACCESS / 2**30:,.1f}"
                          f" GiB ({TRACE_BYTES_PER_ACCESS} bytes an access), more than 80% of")


def test_generated_data_is_counted_at_what_generating_it_takes():
    """The dataset check counts GENERATED_BYTES_PER_BIT; generating really takes less (the
    peak numpy allocation, by tracemalloc), and going by blocks gives the numbers a
    whole-array generation gives."""
    program = compile_file(str(ROOT / "programs/mlp_backprop.sir"),
                           {"n_train": "300000", "n_test": "1000"})
    tracemalloc.start()
    got = datasets.generate(program.data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= datasets.nbytes(program.data)
    # the whole-array reference: the same generator stream, drawn in one call per set
    kwargs = dict(program.data.kwargs)
    rng = np.random.default_rng([kwargs["seed"], 2])
    idx = datasets.relevant_bits(program.data)
    for m, x, y in ((300000, got[0], got[1]), (1000, got[2], got[3])):
        bits = rng.integers(0, 2, size=(m, kwargs["n"]))
        sign = np.where(bits == 1, 1.0, -1.0)
        ref = (sign * rng.uniform(*datasets.MAGNITUDE, size=bits.shape)).astype(np.float32)
        assert np.array_equal(x, ref)
        assert np.array_equal(y, np.where(bits[:, idx].sum(axis=1) % 2 == 1, 1, -1))


def test_memory_follows_an_address_space_limit():
    """Under `ulimit -v`, what is left of it (not the machine's RAM) is the memory, and an
    over-large dataset is refused with that figure instead of dying in numpy."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30));"
            "from simulator.limits import memory; size, phrase = memory();"
            "print(size <= 6 << 30, phrase)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.startswith("True the ") and "left under this process's address-space limit " \
                                               "(ulimit -v)" in out


def test_an_over_large_dataset_is_refused_under_a_memory_limit():
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    p = subprocess.run([sys.executable, "-m", "sutro_sim", "run", "programs/mlp_backprop.sir",
                        "--set", "n_train=100000000"], capture_output=True, text=True, cwd=ROOT,
                       preexec_fn=limit, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert re.match(r"\S+mlp_backprop.sir:5:1: error: the data takes [\d.,]+ GiB, more than 80% "
                    r"of the [\d.,]+ GiB left under this process's address-space limit "
                    r"\(ulimit -v\)", p.stderr), p.stderr


# ----------------------------------------------------------------------------- trace files

def npy(arr) -> bytes:
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


def mutated(tmp_path, name, meta=None, members=None, raw_meta=None) -> Path:
    """examples/matvec.npz with meta.json edited (`meta(dict)` or `raw_meta` bytes) or members
    replaced (`members[name](bytes) -> bytes`)."""
    out = tmp_path / f"{name}.npz"
    with zipfile.ZipFile(MATVEC) as zin, zipfile.ZipFile(out, "w") as zout:
        for member in zin.namelist():
            data = zin.read(member)
            if member == "meta.json" and (meta or raw_meta is not None):
                if raw_meta is not None:
                    data = raw_meta
                else:
                    d = json.loads(data)
                    meta(d)
                    data = json.dumps(d).encode()
            if members and member in members:
                data = members[member](data)
            zout.writestr(member, data)
    return out


def buffer0(**kv):
    return lambda m: m["buffers"][0].update(kv)


def column(values, dtype):
    return lambda data: npy(np.asarray(values, dtype=dtype))


def huge_header(data: bytes) -> bytes:
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + data[128:]


N = 18   # accesses in matvec.npz's one chunk
TRACE_CASES = {
    "base 2^63": (dict(meta=buffer0(base=2 ** 63)), "meta.json: buffer 0: 'base' is "
                  "9223372036854775808; expected 0 to"),
    "nbytes 2^64": (dict(meta=buffer0(nbytes=2 ** 64)), "buffer 0: 'nbytes' is 18446744073709551616"),
    "buffer past the end": (dict(meta=buffer0(base=MAX_ADDRESS - 2)),
                            "buffer 'A': it ends at byte"),
    "base a float": (dict(meta=buffer0(base=1.5)), "buffer 0: 'base' is the number 1.5; expected "
                     "an integer"),
    "buffer name twice": (dict(meta=lambda m: m["buffers"][1].update(name="A")),
                          "buffer 1: the name 'A' is taken by buffer 0"),
    "meta a list": (dict(meta=lambda m: m.update(meta=[1, 2])),
                    "meta.json: 'meta' is a list; expected an object"),
    "meta.json a list": (dict(raw_meta=b"[1, 2]"), "meta.json has no format 'sutro-trace'"),
    "deep JSON": (dict(raw_meta=b"[" * 100000 + b"]" * 100000), "meta.json nests too deep"),
    "not JSON": (dict(raw_meta=b"{'format': 1"), "meta.json is not valid JSON"),
    "not UTF-8": (dict(raw_meta=b'{"format": "sutro-trace\xff"}'), "meta.json is not UTF-8 text"),
    "version a string": (dict(meta=lambda m: m.update(version="1")),
                         "trace format version '1' is not supported (this sutro-sim reads "
                         "versions 1 and 2, written as numbers)"),
    "extra column": (dict(meta=lambda m: m["chunks"][0]["columns"].append("bogus")),
                     "chunk 0: unknown column 'bogus'"),
    "column twice": (dict(meta=lambda m: m["chunks"][0]["columns"].append("addr")),
                     "chunk 0: a column is listed twice"),
    "n a string": (dict(meta=lambda m: m["chunks"][0].update(n="18")),
                   "chunk 0: 'n' is the string '18'; expected an integer"),
    "chunk too large": (dict(meta=lambda m: m["chunks"][0].update(n=2 ** 40)),
                        f"chunk 0 holds 1,099,511,627,776 accesses; simulating it takes about "
                        f"{2 ** 40 * CHUNK_BYTES_PER_ACCESS / 2 ** 30:,.1f} GiB"),
    "arith negative": (dict(meta=lambda m: m["kernels"][0]["arith"].update({"mul.f32": -1})),
                       "kernel 0: arith 'mul.f32' is -1"),
    "0-d column": (dict(members={"c000000_addr.npy": column(5, np.int64)}),
                   "c000000_addr.npy has shape []; its chunk lists 18 accesses"),
    "2-d column": (dict(members={"c000000_addr.npy": column(np.zeros((18, 1)), np.int64)}),
                   "c000000_addr.npy has shape [18, 1]; its chunk lists 18 accesses"),
    "float column": (dict(members={"c000000_addr.npy": column(np.zeros(18), np.float64)}),
                     "c000000_addr.npy holds float64; column 'addr' holds integers"),
    "header claims 10^12": (dict(members={"c000000_addr.npy": huge_header}),
                            "c000000_addr.npy has shape [1000000000000]"),
    "column member too small": (dict(members={"c000000_addr.npy": lambda d: d[:10]}),
                                "c000000_addr.npy is 10 bytes, which cannot hold chunk 0's 18 "
                                "values"),
    "truncated column": (dict(members={"c000000_addr.npy": lambda d: d[:-40]}),
                         "truncated trace: c000000_addr.npy holds 13 of its 18 values"),
    "nbytes 2^32 + 4": (dict(members={"c000000_nbytes.npy": column([2 ** 32 + 4] * N, np.int64)}),
                        "column 'nbytes' holds 4294967300, which does not fit its type int32"),
    "kernel 2^40": (dict(members={"c000000_kernel.npy": column([2 ** 40] * N, np.int64)}),
                    "column 'kernel' holds 1099511627776, which does not fit its type int32"),
    "is_write 2": (dict(members={"c000000_is_write.npy": column([2] * N, np.int64)}),
                   "column 'is_write' must hold 0 or 1, got 2"),
    "access of 2^30 bytes": (dict(members={"c000000_nbytes.npy": column([2 ** 30] * N, np.int32)}),
                             f"an access of 1,073,741,824 bytes; an access touches at most "
                             f"{MAX_ACCESS_BYTES:,}"),
    "address past the end": (dict(members={"c000000_addr.npy": column([MAX_ADDRESS] * N,
                                                                       np.int64)}),
                             "is past the address space"),
}


@pytest.mark.parametrize("case", TRACE_CASES)
def test_trace_files_are_validated_with_a_message(tmp_path, capsys, case):
    kwargs, message = TRACE_CASES[case]
    path = mutated(tmp_path, "t", **kwargs)
    refused(capsys, ["simulate", path], str(path), message)


def test_the_unmutated_trace_passes_the_same_checks(tmp_path, capsys):
    """The mutation helper itself changes nothing when asked to change nothing."""
    path = mutated(tmp_path, "same", members={"c000000_addr.npy": lambda d: d})
    code, out, err = cli(capsys, "simulate", path)
    assert code == 0 and err == ""


def test_trace_paths_that_are_not_files(tmp_path, capsys):
    refused(capsys, ["simulate", tmp_path], str(tmp_path), "this is a directory, not a trace file")
    os.mkfifo(tmp_path / "pipe.npz")
    refused(capsys, ["simulate", tmp_path / "pipe.npz"], str(tmp_path / "pipe.npz"),
            "this is not a regular file")


def test_make_chunk_refuses_what_a_cast_would_change():
    with pytest.raises(SimError, match="holds 4294967300, which does not fit its type int32"):
        make_chunk(0, [0], [2 ** 32 + 4], False)
    with pytest.raises(SimError, match="an access touches at most 4,096"):
        Trace.from_chunks([Buffer("a", 0, 8192)], [], [make_chunk(0, [0], 8192, False)]).chunk(0)


# ----------------------------------------------------------------------------- hierarchy files

def test_hierarchy_files_that_cannot_be_read(tmp_path, capsys):
    toml = (ROOT / "simulator/presets/hierarchies/cpu-like.toml").read_bytes()
    latin = tmp_path / "latin.toml"
    latin.write_bytes(toml.replace(b'name = "L1"', b'name = "L\xe91"'))
    line = toml[:toml.index(b'name = "L1"')].count(b"\n") + 1
    refused(capsys, ["simulate", MATVEC, "--hierarchy", latin], f"{latin}:{line}:10",
            "the hierarchy file is not UTF-8 text: byte 0xe9")
    refused(capsys, ["run", ROOT / "programs/xor.sir", "--passes",
                     f"recompute{{policy=auto,hierarchy={latin}}}"], "--passes",
            f"{latin}:{line}:10: the hierarchy file is not UTF-8 text")
    refused(capsys, ["simulate", MATVEC, "--hierarchy", tmp_path], str(tmp_path),
            "this is a directory, not a hierarchy file")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100000 + "]" * 100000 + "\n")
    refused(capsys, ["simulate", MATVEC, "--hierarchy", deep], str(deep), "invalid TOML")


def test_an_energy_preset_that_cannot_price_a_level_is_refused_before_reading_the_trace(
        tmp_path, capsys):
    toml = (ROOT / "simulator/presets/hierarchies/h100-like.toml").read_text()
    (tmp_path / "h.toml").write_text(toml)
    refused(capsys, ["simulate", tmp_path / "missing.npz", "--hierarchy", "h100-like"],
            str(tmp_path / "missing.npz"), "no such trace file")
    refused(capsys, ["simulate", MATVEC, "--hierarchy", tmp_path / "h.toml", "--energy",
                     "horowitz-45nm"], str(tmp_path / "h.toml"), "is off-chip 'hbm'")


# ----------------------------------------------------------------------------- the docs page

def test_the_contract_page_gives_the_limits_the_code_uses():
    from simulator import cells, grid, hierarchy, limits, trace
    from sutro_ir import chars, lower
    from sutro_ir.dally import lowering as dally_lowering
    from sutro_ir.dally import problems as dally_problems
    from sutro_ir.dally import score as dally_score
    from sutro_ir.dally import text as dally_text
    from sutro_sim.run import TRACE_BYTES_PER_ACCESS
    page = " ".join((ROOT / "docs/input-contract.md").read_text().split())
    rows = {
        "| nesting of an expression or block |": f"{lower.MAX_NESTING} levels",
        "| functions inlined inside one another |": f"{lower.MAX_CALL_DEPTH} |",
        "| operations in one step (loops unrolled) |": f"{lower.MAX_NODES:,} |",
        "| training steps in a run (epochs × steps an epoch) |": f"{lower.MAX_STEPS:,} |",
        "| an integer constant |": f"{lower.CONST_INT_BITS:,} bits",
        "| a program file |": f"{MAX_SOURCE_BYTES >> 10} KiB",
        "| a hierarchy file |": f"{hierarchy.MAX_FILE_BYTES >> 20} MiB",
        "| a text for `chars(path=...)` |": f"{chars.MAX_TEXT_BYTES >> 20} MiB",
        "| the built-in corpus (`chars(length=...)`) |": f"{chars.MAX_LENGTH:,} characters",
        "| a `chars` window (`block`) |": f"1 to {datasets.MAX_BLOCK:,} characters",
        "| recorded index values |": f"{lower.PATH_BYTES_PER_VALUE} bytes a value",
        "| a `chars` dataset |": f"(block + {datasets.CHARS_BYTES[0]}) × "
                              f"{datasets.CHARS_BYTES[1]} bytes a character",
        "| a trace file's meta.json |": f"{trace.MAX_META_BYTES >> 20} MiB",
        "| one access in a trace |": f"{MAX_ACCESS_BYTES:,} bytes",
        "| a cache line |": f"{hierarchy.MAX_LINE:,} bytes",
        "| an address in a trace |": f"below 2^63 - {(1 << 63) - MAX_ADDRESS:,}",
        "| a generated dataset |": f"{datasets.GENERATED_BYTES_PER_BIT} bytes a bit of an "
                                    f"example (inputs and label), {datasets.EXAMPLE_BYTES} bytes "
                                    f"an example, plus {datasets.BLOCK_BYTES >> 20} MiB",
        "| one traced step (`run`) |": f"{TRACE_BYTES_PER_ACCESS} bytes an access",
        "| one chunk of a trace file (`simulate`) |": f"{CHUNK_BYTES_PER_ACCESS} bytes an access",
        "| a hierarchy's cache state |": f"{hierarchy.STATE_BYTES_PER_LINE} bytes a line",
        "| an address-IR file |": f"{dally_score.MAX_IR_BYTES >> 20} MiB",
        "| an address in the address IR |": f"1 to 2^{dally_text.MAX_ADDRESS.bit_length() - 1}",
        "| an integer item in the address IR |": f"{dally_text.MAX_DIGITS} digits",
        "| a cell for the address models |": f"up to 2^{cells.MAX_CELL.bit_length() - 1}",
        "| a cell on Model 2's grid |": f"up to {grid.Y_MAX ** 2:,} (shell {grid.Y_MAX:,})",
        "| the matmul symbolic check |": f"{dally_problems.MAX_SYMBOLIC_WORK:,} term",
        "| a program lowered to the address IR (`lower`) |":
            f"{dally_lowering.MAX_INSTRUCTIONS:,} instructions",
        "| an address-IR program's lines |": f"{dally_text.DEFAULT_MAX_LINES:,} (the legacy "
                                            f"sparse-parity tasks, symmetry), "
                                            f"{dally_problems.get('sparse-parity-mask32').max_lines:,}"
                                            " (mask32)",
    }
    for row, figure in rows.items():
        assert f"{row} {figure}" in page, row
    assert f"passes {limits.MEMORY_FRACTION:.0%} of the memory the process may use" in page
    assert "access sizes are from 1 to 4,096 bytes" in page


def test_the_contract_page_gives_what_generating_a_dataset_takes():
    """The page's two tracemalloc figures (bytes a bit at the peak, by blocks and by whole
    arrays) for 10^6 examples of 20 bits, measured again."""
    program = compile_file(str(ROOT / "programs/mlp_backprop.sir"), {"n_train": "1000000"})
    bits = (1_000_000 + 200) * 21

    def whole_arrays():
        kwargs = dict(program.data.kwargs)
        rng = np.random.default_rng([kwargs["seed"], 2])
        for m in (kwargs["train"], kwargs["test"]):
            b = rng.integers(0, 2, size=(m, kwargs["n"]))
            (np.where(b == 1, 1.0, -1.0) * rng.uniform(0.5, 1.5, size=b.shape)).astype(np.float32)

    peaks = []
    for make in (lambda: datasets.generate(program.data), whole_arrays):
        tracemalloc.start()
        make()
        peaks.append(tracemalloc.get_traced_memory()[1] / bits)
        tracemalloc.stop()
    page = " ".join((ROOT / "docs/input-contract.md").read_text().split())
    assert f"| {peaks[0]:.1f} bytes a bit for 10^6 examples of 20 bits |" in page
    assert f"the whole-array float64 temporaries took {peaks[1]:.1f} bytes a bit" in page


# ----------------------------------------------------------------------------- found by review

@pytest.mark.parametrize("edit,where,message", [
    (("f32[hidden, 2]", "f32[2 ** 1100, 2]"), "p.sir:6:11", "this array, f32[~2^1100, 2], takes "
     "more than 2^1103 bytes"),
    (("h = relu(h_pre)", "h = relu(h_pre) + zeros([2 ** 4000])"), "p.sir:13:21",
     "takes more than 2^4002 bytes"),
    (("train=64", "train=2 ** 4000"), "p.sir:4:1", "the data takes more than 2^"),
    (("seed = 1", "seed = 1" + "0" * 5000), "p.sir:2:49",
     "has 5,001 digits; an integer has at most 1,233 (4,096 bits)"),
    (("seed = 1", 'seed = 1, t = "a" + (1 / 0)'), "p.sir:2:56",
     "expected a number, got the string 'a'"),
])
def test_huge_numbers_are_refused_at_their_source_without_arithmetic(edit, where, message):
    e = compile_error(XOR.replace(*edit))
    assert str(e).startswith(f"{where}: error: ") and message in str(e), str(e)


def test_a_long_until_chain_is_one_level():
    cond = " or ".join(f"epoch > {i}" for i in range(150))
    program = compile_program(XOR.replace("until train_accuracy >= 1.0", f"until {cond}"), "p.sir")
    assert program.train.until.holds({"epoch": 3}) and not program.train.until.holds({"epoch": 0})


@pytest.mark.parametrize("edit,message", [
    (('capacity = "32 KiB"', f"capacity = {2 ** 1100}"), "capacity: must be at most 2^62"),
    (('capacity = "32 KiB"', "capacity = 9223372036854775807"), "capacity: must be at most 2^62"),
    (('line = 64\nways = 8', f"line = {2 ** 62 * 2 - 1}\nways = 8"), "line: must be a positive"),
    (('line = 64\nways = 8', "line = 1048576\nways = 8"),
     "line: must be at most 65,536 bytes, got 1,048,576"),
    (('capacity = "32 KiB"', 'capacity = "' + "9" * 400 + ' TiB"'), "is too large (at most 2^62"),
    (('policy = "lru"', "policy = \"lru\"\nenergy_fj_per_bit = " + "9" * 5000), "invalid TOML"),
    (('policy = "lru"', "policy = \"lru\"\nenergy_fj_per_bit = " + "9" * 40),
     "energy_fj_per_bit: must be a finite number >= 0, at most 1e30; got a larger integer"),
])
def test_hierarchy_numbers_past_the_range_are_refused(tmp_path, capsys, edit, message):
    toml = (ROOT / "simulator/presets/hierarchies/cpu-like.toml").read_text()
    assert edit[0] in toml
    path = tmp_path / "h.toml"
    path.write_text(toml.replace(edit[0], edit[1], 1))
    refused(capsys, ["simulate", MATVEC, "--hierarchy", path], str(path), message)


def test_empty_paths_say_which_path(capsys):
    refused(capsys, ["run", ""], "program file", "the path is empty")
    refused(capsys, ["simulate", ""], "trace file", "the path is empty")
    refused(capsys, ["run", ROOT / "programs/xor.sir", "--passes",
                     "recompute{policy=auto,hierarchy=}"], "--passes", "no hierarchy preset")


def test_a_corrupt_compressed_member_is_a_corrupt_trace(tmp_path, capsys):
    path = tmp_path / "lzma.npz"
    with zipfile.ZipFile(MATVEC) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_LZMA) as zout:
        for member in zin.namelist():
            zout.writestr(member, zin.read(member))
    code, out, err = cli(capsys, "simulate", path)        # intact: read as usual
    assert code == 0
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("c000000_addr.npy")
    start = info.header_offset + 30 + len(info.filename) + 20
    data[start:start + 40] = bytes(40)                    # inside the compressed stream
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    refused(capsys, ["simulate", tmp_path / "bad.npz"], str(tmp_path / "bad.npz"),
            "corrupt trace: cannot read")


def test_an_arithmetic_key_the_model_cannot_read_is_refused_before_simulating(tmp_path, capsys):
    path = mutated(tmp_path, "t", meta=lambda m: m["kernels"][0].update(arith={"nonsense": 5}))
    refused(capsys, ["simulate", path], str(path),
            "kernel 'mul': arithmetic key 'nonsense' should look like 'op.dtype'")


def test_narrow_examples_are_counted_at_what_generating_them_takes():
    program = compile_program(XOR.replace("xor(train=64, test=64, seed=seed)",
                                          'sparse_parity(n=1, k=1, train=20000000, test=10, '
                                          'encoding="pm1", seed=seed)')
                               .replace("f32[hidden, 2]", "f32[hidden, 1]"), "p.sir")
    tracemalloc.start()
    datasets.generate(program.data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= datasets.nbytes(program.data)


def test_cr_line_ends_count_the_same_for_every_error(tmp_path):
    text = XOR.replace("h = relu(h_pre)", "h = relu(h_pre)) # \xe9").replace("\n", "\r")
    path = tmp_path / "p.sir"
    path.write_bytes(text.encode())
    with pytest.raises(SirError) as syntax:
        compile_file(str(path))
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SirError) as utf8:
        compile_file(str(path))
    assert syntax.value.loc.line == utf8.value.loc.line == 13


def test_an_empty_trace_simulates_and_plots(tmp_path, capsys):
    """Found by the fuzz campaign: a trace with no accesses drew a histogram of no bins with
    one label."""
    from simulator.trace import TraceBuilder
    b = TraceBuilder()
    b.buffer("A", 4)
    b.build().save(tmp_path / "empty.npz")
    code, out, err = cli(capsys, "simulate", tmp_path / "empty.npz", "--plot", tmp_path / "plots")
    assert code == 0 and err == ""
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "energy_by_buffer.png", "energy_by_level.png", "reuse_cdf.png", "reuse_histogram.png"]


def test_the_testing_page_gives_the_fuzz_budgets_the_tests_use():
    source = (ROOT / "tests/test_fuzz.py").read_text()
    page = " ".join((ROOT / "docs/testing.md").read_text().split())
    for n, test in ((500, "programs"), (400, "options"), (500, "traces"), (300, "hierarchies")):
        assert f"@budget({n})\n@given(seed=SEEDS)\ndef test_fuzz_{test}(" in source
    for phrase in ("500 mutated programs", "400 option sets", "500 trace files",
                   "300 hierarchy files", "Ten heavy cases", "under an 8 GiB address-space"):
        assert phrase in page, phrase
    sys.path.insert(0, str(ROOT / "tests"))
    import test_fuzz
    assert len(test_fuzz.heavy_cases()) == 10 and test_fuzz.SUBPROCESS_MEMORY == 8 << 30


def test_a_zip_of_a_newer_version_is_not_a_trace(tmp_path, capsys):
    """Found by the fuzz campaign: zipfile raises NotImplementedError for an archive that
    needs a later zip version to extract."""
    data = bytearray(MATVEC.read_bytes())
    at = data.index(b"PK\x01\x02")                   # the first central directory entry
    data[at + 6:at + 8] = (148).to_bytes(2, "little")  # "version needed to extract": 14.8
    (tmp_path / "v.npz").write_bytes(bytes(data))
    refused(capsys, ["simulate", tmp_path / "v.npz"], str(tmp_path / "v.npz"),
            "not a sutro-sim trace: the file is truncated or is not a zip archive")


def test_an_initializer_that_draws_past_the_dtype_is_refused_at_its_line():
    """Found by the fuzz campaign: normal(std=1e149) for an f32 parameter overflowed in numpy's
    cast and the run ended as diverged at initialization."""
    e = compile_error(XOR.replace("normal(std=1.0)", "normal(std=1e38)"))
    assert str(e).startswith("p.sir:6:28: error: normal(): std=1e+38 draws values past the "
                             "largest f32 (3.4e+38)")
    compile_program(XOR.replace("normal(std=1.0)", "normal(std=1e37)"), "p.sir")


def test_a_run_longer_than_the_step_counter_is_refused_at_its_epochs():
    """Found by the fuzz campaign: `for 10**400 epochs` trained until the timeout."""
    from sutro_ir.lower import MAX_STEPS
    e = compile_error(XOR.replace("for epochs epochs", "for 10 ** 400 epochs"))
    assert str(e).startswith("p.sir:11:35: error: about 2^1328 epochs of 16 steps is more than "
                             f"{MAX_STEPS:,} steps")
    per_epoch = 64 // 4
    compile_program(XOR.replace("for epochs epochs", f"for {MAX_STEPS // per_epoch} epochs"),
                    "p.sir")
    e = compile_error(XOR.replace("for epochs epochs", f"for {MAX_STEPS // per_epoch + 1} epochs"))
    assert "epochs of 16 steps is more than" in str(e)


def test_plot_labels_are_cut_and_stay_one_per_bar():
    """Found by the fuzz campaign: a buffer named with thousands of characters left no room
    for the plot (matplotlib warned that it could not lay it out)."""
    from simulator.plots import LABEL_CHARS, _short
    long = "b" * 5000
    out = _short(["a", long, long + "x", "a"])
    assert out[0] == "a" and out[3] == "a (2)"
    assert len(out[1]) == LABEL_CHARS and out[1].endswith("\u2026") and out[2] == out[1] + " (2)"


def test_a_hierarchy_whose_line_ratios_would_blow_the_fused_buffers_takes_the_level_kernels(
        tmp_path, capsys):
    """Found by the fuzz campaign: a 1 MiB L1 line over 64-byte lines made the fused kernel
    allocate its request buffers as the product of the line ratios. Lines are now at most
    64 KiB, and a hierarchy whose ratios still multiply past the fused kernel's scratch limit
    runs on the per-level kernels (checked against the reference in test_cache_oracle.py)."""
    from simulator import cache_fused
    from simulator.hierarchy import load_hierarchy
    from simulator.simulate import simulate
    toml = (ROOT / "simulator/presets/hierarchies/cpu-like.toml").read_text()
    path = tmp_path / "h.toml"
    path.write_text(toml.replace('capacity = "32 KiB"\nline = 64', 'capacity = "4 MiB"\n'
                                 'line = 65536', 1).replace("ways = 8", "ways = 4", 1))
    hierarchy = load_hierarchy(str(path))
    assert hierarchy.levels[0].line_bytes == 65536
    assert not cache_fused.eligible(hierarchy.levels[:-1])
    assert cache_fused._below_bytes(hierarchy.levels[:-1]) > cache_fused.SCRATCH_MAX_BYTES
    trace = load(ROOT / "examples/seed_mlp_step.npz")
    result = simulate(trace, hierarchy)
    assert sum(s.hits + s.misses for s in result.levels[:1]) > 0
    code, out, err = cli(capsys, "simulate", ROOT / "examples/seed_mlp_step.npz", "--hierarchy",
                         path)
    assert code == 0 and err == ""


def test_a_plot_folder_whose_name_is_not_utf8(tmp_path, capsys):
    """Found by the fuzz campaign: a byte that is not UTF-8 in --plot (argv carries it as a
    surrogate) made the name-length check raise UnicodeEncodeError."""
    folder = tmp_path / os.fsdecode(b"plots\xff")
    code, out, err = cli(capsys, "simulate", MATVEC, "--plot", folder)
    assert code == 0 and err == "" and len(list(folder.iterdir())) == 4


def test_an_npy_header_numpy_cannot_tokenize_is_a_corrupt_trace(tmp_path, capsys):
    """Found by the fuzz campaign: an unbalanced bracket in a column's header escaped numpy's
    header parser as tokenize.TokenError."""
    def unbalanced(data: bytes) -> bytes:
        header = "{'descr': '<i8', 'fortran_order': False, 'shape': ((18,), }".ljust(117) + "\n"
        return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + \
            data[128:]
    path = mutated(tmp_path, "t", members={"c000000_addr.npy": unbalanced})
    refused(capsys, ["simulate", path], str(path),
            "corrupt trace: cannot read c000000_addr.npy: the .npy header is unreadable")
