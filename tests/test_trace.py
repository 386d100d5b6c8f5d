"""The trace contract: building by hand, the file format, and clear errors for bad files."""

import json
import zipfile

import numpy as np
import pytest

from simulator import SimError, TraceBuilder, load, make_chunk
from simulator.trace import Buffer, Kernel, Trace


def small_trace():
    b = TraceBuilder(chunk_accesses=3)
    w = b.buffer("W", 4, role="param")
    x = b.buffer("x", 2, dtype="f16", role="data")
    k = b.kernel("matvec", ops=("matmul",), source="mlp.sir:3:5", arith={"fma.f32": 4})
    b.read(w, kernel=k)
    b.step(1)
    b.write(x, [1], kernel=k, instr=9)
    return b.build(meta={"traced_steps": "all"})


def test_builder_lays_out_aligned_buffers_and_chunks_by_step():
    t = small_trace()
    assert [(b.name, b.base, b.nbytes) for b in t.buffers] == [("W", 0, 16), ("x", 64, 4)]
    chunks = list(t)
    assert [(c.step, len(c)) for c in chunks] == [(0, 3), (0, 1), (1, 1)]
    assert chunks[0].addr.tolist() == [0, 4, 8] and chunks[0].instr is None
    assert chunks[2].addr.tolist() == [66] and chunks[2].instr.tolist() == [9]


def test_save_load_round_trip(tmp_path):
    t = small_trace()
    t.save(tmp_path / "t.npz")
    u = load(tmp_path / "t.npz")
    assert u.buffers == t.buffers and u.kernels == t.kernels and u.meta == t.meta
    for a, b in zip(t, u):
        assert a.step == b.step
        for name, col in a.columns().items():
            assert np.array_equal(col, b.columns()[name]) and col.dtype == b.columns()[name].dtype


def test_buffer_ids_from_addresses_when_the_column_is_absent():
    t = Trace.from_chunks([Buffer("a", 0, 8), Buffer("b", 64, 8)], [], [])
    chunk = make_chunk(0, [0, 7, 8, 64, 71, 72], 1, False)
    assert t.buffer_ids(chunk).tolist() == [0, 0, -1, 1, 1, -1]


def expect_error(path, text):
    with pytest.raises(SimError) as e:
        list(load(path))
    assert str(e.value) == f"{path}: error: {text}"


def test_truncated_file(tmp_path):
    small_trace().save(tmp_path / "t.npz")
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    expect_error(tmp_path / "cut.npz",
                 "not a sutro-sim trace: the file is truncated or is not a zip archive")


def test_missing_file_and_not_a_trace(tmp_path):
    expect_error(tmp_path / "none.npz", "no such trace file")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("meta.json", json.dumps({"format": "other"}))
    expect_error(tmp_path / "other.npz", "not a sutro-sim trace (meta.json has no format 'sutro-trace')")


def rewrite(src, dst, edit_meta=None, drop=None, replace=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name == drop:
                continue
            data = zin.read(name)
            if name == "meta.json" and edit_meta:
                meta = json.loads(data)
                edit_meta(meta)
                data = json.dumps(meta)
            if replace and name in replace:
                data = replace[name]
            zout.writestr(name, data)


def test_missing_column_is_truncation(tmp_path):
    small_trace().save(tmp_path / "t.npz")
    rewrite(tmp_path / "t.npz", tmp_path / "bad.npz", drop="c000001_kernel.npy")
    expect_error(tmp_path / "bad.npz", "truncated trace: chunk 1 has no column 'kernel' (c000001_kernel.npy)")


def test_inconsistent_length(tmp_path):
    small_trace().save(tmp_path / "t.npz")
    rewrite(tmp_path / "t.npz", tmp_path / "bad.npz", edit_meta=lambda m: m["chunks"][0].update(n=5))
    expect_error(tmp_path / "bad.npz",
                 "inconsistent trace: c000000_addr.npy has shape [3]; its chunk lists 5 accesses")


def test_kernel_id_outside_the_table(tmp_path):
    small_trace().save(tmp_path / "t.npz")
    rewrite(tmp_path / "t.npz", tmp_path / "bad.npz", edit_meta=lambda m: m.update(kernels=[]))
    expect_error(tmp_path / "bad.npz",
                 "chunk of step 0: kernel id 0 is not in the kernel table (0 rows)")


def test_corrupt_column(tmp_path):
    small_trace().save(tmp_path / "t.npz")
    rewrite(tmp_path / "t.npz", tmp_path / "bad.npz", replace={"c000000_addr.npy": b"garbage"})
    with pytest.raises(SimError, match="corrupt trace: cannot read c000000_addr.npy: the .npy header is unreadable"):
        list(load(tmp_path / "bad.npz"))


def test_bad_columns_in_memory():
    with pytest.raises(SimError, match="column 'nbytes' has 2 rows, 'addr' has 3"):
        make_chunk(0, [0, 1, 2], [4, 4], False)
    with pytest.raises(SimError, match="negative address -4"):
        make_chunk(0, [-4], 4, False)
    with pytest.raises(SimError, match="negative address -1"):   # the boundary: 0 is fine
        make_chunk(0, [8, -1, 0], 4, False)
    assert make_chunk(0, [0], 1, False).addr.tolist() == [0]
    with pytest.raises(SimError, match="access size must be positive, got 0 bytes"):
        make_chunk(0, [0], 0, False)
    with pytest.raises(SimError, match="column 'addr' must hold integers"):
        make_chunk(0, [0.5], 4, False)


def test_save_is_atomic(tmp_path):
    def bad_chunk(i):
        raise SimError("producer failed")
    t = Trace([], [Kernel("k")], 1, bad_chunk)
    with pytest.raises(SimError):
        t.save(tmp_path / "t.npz")
    assert list(tmp_path.iterdir()) == []
