"""The access trace: the only contract between a producer (sutro_ir, a user, a test) and the simulator.

A trace is a buffer table, a kernel table and a sequence of chunks. A chunk is columns of numpy
arrays, one row per memory access, never one Python object per access:

    addr     int64  byte address of the first byte touched
    nbytes   int32  bytes touched (the element size)
    is_write bool
    kernel   int32  row of the kernel table, -1 if unknown
    instr    int64  instruction id, optional (ByteDMD groups the reads of one instruction by it)
    buffer   int32  row of the buffer table, optional (derived from addr when absent)

Each chunk knows the training step it belongs to. Chunks come from memory, from a `.npz` file
(read lazily, one chunk at a time, so a 10^8-access trace never sits in memory whole), or from a
function that makes chunk i on demand.
"""

from __future__ import annotations

import json
import struct
import lzma
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from .errors import SimError
from .inputs import NPY_HEADER_MAX, check_file, decode_utf8, npy_header
from .limits import allowance

FORMAT = "sutro-trace"
VERSION = 2         # 2: a step plan (each kind of step stored once); 1: chunks only
CHUNK_ACCESSES = 1 << 20
ROLES = ("param", "data", "activation", "grad", "temp", "other")
DTYPE_BYTES = {"f64": 8, "f32": 4, "f16": 2, "bf16": 2, "i64": 8, "i32": 4, "i16": 2, "i8": 1,
               "u8": 1, "bool": 1}
COLUMNS = {"addr": np.int64, "nbytes": np.int32, "is_write": np.bool_, "kernel": np.int32}
OPTIONAL_COLUMNS = {"instr": np.int64, "buffer": np.int32}


@dataclass(frozen=True)
class Buffer:
    """A named region of the flat byte address space."""

    name: str
    base: int
    nbytes: int
    dtype: str = "f32"
    role: str = "other"

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def to_dict(self) -> dict:
        return {"name": self.name, "base": self.base, "nbytes": self.nbytes,
                "dtype": self.dtype, "role": self.role}


@dataclass(frozen=True)
class Kernel:
    """A kernel: one op or a fused group. `arith` counts arithmetic ops over the whole trace,
    keyed `op.dtype` (for example `{"fma.f32": 3000, "max.f32": 1000}`)."""

    name: str
    ops: tuple[str, ...] = ()
    source: str = ""
    arith: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "ops": list(self.ops), "source": self.source,
                "arith": dict(self.arith)}


@dataclass(frozen=True, eq=False)
class Chunk:
    """The accesses of one part of one step, as columns."""

    step: int
    addr: np.ndarray
    nbytes: np.ndarray
    is_write: np.ndarray
    kernel: np.ndarray
    instr: np.ndarray | None = None
    buffer: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.addr)

    def columns(self) -> dict[str, np.ndarray]:
        cols = {name: getattr(self, name) for name in COLUMNS}
        cols.update({n: getattr(self, n) for n in OPTIONAL_COLUMNS if getattr(self, n) is not None})
        return cols


def make_chunk(step: int, addr, nbytes, is_write, kernel=None, instr=None, buffer=None,
               where: str = "trace") -> Chunk:
    """Build a chunk from array-likes, broadcasting scalars, casting and checking every column."""
    addr = _cast(np.asarray(addr).ravel(), np.int64, "addr", where)
    n = len(addr)
    cols = {"addr": addr}
    given = {"nbytes": nbytes, "is_write": is_write, "kernel": -1 if kernel is None else kernel,
             "instr": instr, "buffer": buffer}
    for name, value in given.items():
        if value is None:
            cols[name] = None
            continue
        dtype = COLUMNS.get(name) or OPTIONAL_COLUMNS[name]
        arr = np.asarray(value)
        if arr.ndim == 0:
            arr = np.full(n, arr, dtype=dtype)
        cols[name] = _cast(arr.ravel(), dtype, name, where)
    chunk = Chunk(step=int(step), **cols)
    check_chunk(chunk, where)
    return chunk


def _cast(arr: np.ndarray, dtype, name: str, where: str) -> np.ndarray:
    """The column as `dtype`; a value the cast would change (2^32 + 4 as int32) is an error."""
    if arr.dtype == dtype:
        return arr
    if dtype is np.bool_:
        if arr.dtype.kind not in "biu":
            raise SimError(f"column '{name}' must be boolean, got {arr.dtype}", where)
        if arr.dtype.kind != "b" and len(arr) and (arr.min() < 0 or arr.max() > 1):
            raise SimError(f"column '{name}' must hold 0 or 1, got {_extreme(arr, 0, 1)}", where)
        return arr.astype(np.bool_)
    if arr.dtype.kind not in "iub":
        raise SimError(f"column '{name}' must hold integers, got {arr.dtype}", where)
    info = np.iinfo(dtype)
    if arr.dtype.kind != "b" and len(arr) and (int(arr.min()) < info.min or
                                              int(arr.max()) > info.max):
        raise SimError(f"column '{name}' holds {_extreme(arr, info.min, info.max)}, which does "
                       f"not fit its type {np.dtype(dtype).name}", where)
    return arr.astype(dtype)


def _extreme(arr: np.ndarray, lo: int, hi: int) -> int:
    return int(arr.min()) if int(arr.min()) < lo else int(arr.max())


MAX_ACCESS_BYTES = 4096
"""An access touches at most one page. A cache level walks an access line by line, so one
access of 2^30 bytes would be 2^24 line lookups and megabytes of output; a larger transfer is
written as several accesses."""
MAX_ADDRESS = (1 << 63) - MAX_ACCESS_BYTES   # so that an access's last byte is an int64


def check_chunk(chunk: Chunk, where: str, n_kernels: int | None = None,
                n_buffers: int | None = None) -> None:
    """Raise SimError if a chunk is inconsistent (lengths, negative addresses, bad ids)."""
    n = len(chunk.addr)
    for name, col in chunk.columns().items():
        if len(col) != n:
            raise SimError(f"chunk of step {chunk.step}: column '{name}' has {len(col)} rows, "
                           f"'addr' has {n}", where)
    if n == 0:
        return
    if chunk.addr.min() < 0:
        raise SimError(f"chunk of step {chunk.step}: negative address {chunk.addr.min()}", where)
    if chunk.addr.max() >= MAX_ADDRESS:
        raise SimError(f"chunk of step {chunk.step}: address {chunk.addr.max()} is past the "
                       f"address space (2^63 - {MAX_ACCESS_BYTES} bytes)", where)
    if chunk.nbytes.min() <= 0:
        raise SimError(f"chunk of step {chunk.step}: access size must be positive, "
                       f"got {chunk.nbytes.min()} bytes", where)
    if chunk.nbytes.max() > MAX_ACCESS_BYTES:
        raise SimError(f"chunk of step {chunk.step}: an access of {chunk.nbytes.max():,} bytes; "
                       f"an access touches at most {MAX_ACCESS_BYTES:,} (split a larger "
                       "transfer into several accesses)", where)
    _check_ids(chunk.kernel, n_kernels, "kernel", chunk.step, where)
    if chunk.buffer is not None:
        _check_ids(chunk.buffer, n_buffers, "buffer", chunk.step, where)


def _check_ids(ids: np.ndarray, n_rows: int | None, table: str, step: int, where: str) -> None:
    lo, hi = int(ids.min()), int(ids.max())
    if lo < -1 or (n_rows is not None and hi >= n_rows):
        bad = lo if lo < -1 else hi
        raise SimError(f"chunk of step {step}: {table} id {bad} is not in the {table} table "
                       f"({n_rows} rows)", where)


@dataclass(frozen=True)
class StepPlan:
    """The steps of a trace and which of them are alike, so that the simulator can account a
    step it has seen before from the same state without replaying it (simulate.py).

    Step i is `steps[i]`, made of the next `chunks[i]` chunks of the trace. Two steps of one
    kind make the same accesses in the same order (a training run's steps on one control path);
    `arith[k]` is what one step of kind k computes ({operation: count}). `phase[i]`, when given,
    is what the producer calls step i (sutro-sim: 0 a training step, 1 an example evaluated by
    an `until` check, 2 an example of the final test); the simulator only carries it."""

    steps: np.ndarray
    kinds: np.ndarray
    chunks: np.ndarray
    arith: tuple = ()
    phase: np.ndarray | None = None

    def __post_init__(self):
        if not (len(self.steps) == len(self.kinds) == len(self.chunks)):
            raise ValueError("a step plan needs one kind and one chunk count per step")
        if len(self.kinds) and (self.kinds.min() < 0 or
                                (self.arith and self.kinds.max() >= len(self.arith))):
            raise ValueError("a step's kind is not in the plan's kind table")


class Trace:
    """Buffer table, kernel table and chunks. Chunks are made on demand by `chunk(i)`.
    `plan`, when the producer knows it, tells which steps are alike (StepPlan)."""

    def __init__(self, buffers: Sequence[Buffer], kernels: Sequence[Kernel],
                 n_chunks: int, get_chunk: Callable[[int], Chunk], meta: Mapping | None = None,
                 where: str = "trace", plan: StepPlan | None = None):
        self.buffers = tuple(buffers)
        self.kernels = tuple(kernels)
        self.n_chunks = n_chunks
        self.meta = dict(meta or {})
        self.where = where
        self._get_chunk = get_chunk
        if plan is not None and int(plan.chunks.sum()) != n_chunks:
            raise ValueError(f"the step plan covers {int(plan.chunks.sum())} chunks, the trace "
                             f"has {n_chunks}")
        self.plan = plan
        self.n_accesses: int | None = None   # when known without reading the chunks (a file)
        self._bases, self._ends, self._order = _buffer_index(self.buffers, where)
        check_meta(self.meta, self.buffers, self.kernels, where)

    @classmethod
    def from_chunks(cls, buffers: Sequence[Buffer], kernels: Sequence[Kernel],
                    chunks: Sequence[Chunk], meta: Mapping | None = None) -> "Trace":
        chunks = list(chunks)
        return cls(buffers, kernels, len(chunks), chunks.__getitem__, meta)

    def chunk(self, i: int) -> Chunk:
        chunk = self._get_chunk(i)
        check_chunk(chunk, self.where, len(self.kernels), len(self.buffers))
        return chunk

    def __iter__(self) -> Iterator[Chunk]:
        return (self.chunk(i) for i in range(self.n_chunks))

    def buffer_ids(self, chunk: Chunk) -> np.ndarray:
        """Buffer-table row of each access (-1 if its address is in no buffer)."""
        if chunk.buffer is not None:
            return chunk.buffer
        if not self.buffers:
            return np.full(len(chunk), -1, dtype=np.int32)
        pos = np.searchsorted(self._bases, chunk.addr, side="right") - 1
        inside = (pos >= 0) & (chunk.addr < self._ends[np.maximum(pos, 0)])
        return np.where(inside, self._order[np.maximum(pos, 0)], -1).astype(np.int32)

    def save(self, path: str | os.PathLike) -> None:
        save(self, path)


def _buffer_index(buffers: Sequence[Buffer], where: str):
    """Sorted bases for address -> buffer lookup. Buffers may share addresses (a liveness
    layout reuses dead ones); then the chunks must carry buffer ids, as the lookup cannot tell.
    Names are unique: reports and the cost models name buffers."""
    seen: dict[str, int] = {}
    for i, b in enumerate(buffers):
        if seen.setdefault(b.name, i) != i:
            raise SimError(f"buffer {i}: the name '{b.name}' is taken by buffer {seen[b.name]}",
                           where)
        if b.role not in ROLES:
            raise SimError(f"buffer '{b.name}': role must be one of {', '.join(ROLES)}, "
                           f"got '{b.role}'", where)
        if b.dtype not in DTYPE_BYTES:
            raise SimError(f"buffer '{b.name}': unknown dtype '{b.dtype}'", where)
        if b.base < 0 or b.nbytes < 0:
            raise SimError(f"buffer '{b.name}': base and size must be >= 0, got base {b.base}, "
                           f"{b.nbytes} bytes", where)
        if b.base + b.nbytes > MAX_ADDRESS:
            raise SimError(f"buffer '{b.name}': it ends at byte {b.base + b.nbytes}, past the "
                           f"address space (2^63 - {MAX_ACCESS_BYTES} bytes)", where)
    order = np.argsort([b.base for b in buffers], kind="stable").astype(np.int32)
    bases = np.array([buffers[i].base for i in order], dtype=np.int64)
    ends = np.array([buffers[i].base + buffers[i].nbytes for i in order], dtype=np.int64)
    return bases, ends, order


META_FIELDS = ("outputs", "args", "address_cells", "tape_kernels")
"""The meta fields the cost models read (docs/trace-format.md); any other key is the producer's."""


def check_meta(meta: Mapping, buffers: Sequence[Buffer], kernels: Sequence[Kernel],
               where: str) -> None:
    """The meta fields sutro-sim reads, when present: `outputs` and `args` name buffers
    (outputs may repeat), `address_cells` is {cell_bytes >= 1, origin}, `tape_kernels` name
    kernels; `sources` and `kernel_lines` place buffers and kernels in a program."""
    def fail(what: str):
        raise SimError(f"meta.json: {what}", where)

    names = {b.name for b in buffers}
    for key in ("outputs", "args"):
        v = meta.get(key)
        if v is None:
            continue
        if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
            fail(f"'{key}' must be a list of buffer names")
        unknown = [n for n in v if n not in names]
        if unknown:
            fail(f"'{key}' names '{unknown[0][:80]}', which is not a buffer")
        if key == "args" and len(set(v)) != len(v):
            fail("'args' lists a buffer twice")
    cells = meta.get("address_cells")
    if cells is not None:
        if (not isinstance(cells, dict) or set(cells) != {"cell_bytes", "origin"}
                or not all(_is_int(cells[k]) for k in cells)):
            fail("'address_cells' must be {\"cell_bytes\": integer, \"origin\": integer}")
        if not 1 <= cells["cell_bytes"] <= MAX_ACCESS_BYTES or abs(cells["origin"]) > 1 << 62:
            fail(f"'address_cells': cell_bytes must be 1 to {MAX_ACCESS_BYTES:,} and origin at "
                 f"most 2^62 in size, got {cells['cell_bytes']} and {cells['origin']}")
    tape = meta.get("tape_kernels")
    if tape is not None:
        kernel_names = {k.name for k in kernels}
        if not isinstance(tape, list) or not all(isinstance(n, str) for n in tape):
            fail("'tape_kernels' must be a list of kernel names")
        unknown = [n for n in tape if n not in kernel_names]
        if unknown:
            fail(f"'tape_kernels' names '{unknown[0][:80]}', which is not a kernel")
    sources = meta.get("sources")       # a run's: each buffer's [line, text] in the program
    if sources is not None:
        if not isinstance(sources, dict) or not all(
                isinstance(v, list) and len(v) == 2 and _is_int(v[0]) and v[0] > 0
                and isinstance(v[1], str) for v in sources.values()):
            fail("'sources' must map buffer names to [line, text]")
        unknown = [n for n in sources if n not in names]
        if unknown:
            fail(f"'sources' names '{unknown[0][:80]}', which is not a buffer")
    lines = meta.get("kernel_lines")    # a run's: each kernel's line in the program
    if lines is not None and (not isinstance(lines, dict) or not all(
            _is_int(v) and v > 0 for v in lines.values())):
        fail("'kernel_lines' must map kernel names to line numbers")


# ----------------------------------------------------------------------------- files

def save(trace: Trace, path: str | os.PathLike) -> None:
    """Write the trace to one `.npz`-style zip, chunk by chunk; the file appears whole or not at
    all. A trace with a step plan (a run's) is written as its plan: each kind of step's chunks
    once, and per step its kind (format version 2), so a whole run takes the room of its
    distinct steps, not of every access."""
    path = os.fspath(path)
    chunk_info = []
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            def write(name: str, array: np.ndarray) -> None:
                with zf.open(name, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(array),
                                              allow_pickle=False)

            def write_chunk(chunk: Chunk) -> None:
                cols = chunk.columns()
                for name, col in cols.items():
                    write(f"c{len(chunk_info):06d}_{name}.npy", col)
                chunk_info.append({"step": chunk.step, "n": len(chunk), "columns": sorted(cols)})

            plan = _stored_plan(trace)
            header = {"format": FORMAT, "version": 1 if plan is None else VERSION}
            if plan is None:
                for chunk in trace:
                    write_chunk(chunk)
            else:
                kinds = []
                for k, first_chunk in enumerate(plan):
                    kinds.append({"first": len(chunk_info),
                                  "chunks": int(trace.plan.chunks[first_chunk[1]]),
                                  "arith": dict(trace.plan.arith[k]) if trace.plan.arith
                                  else {}})
                    for i in range(first_chunk[0], first_chunk[0] + kinds[-1]["chunks"]):
                        write_chunk(trace.chunk(i))
                for name in PLAN_COLUMNS:
                    column = getattr(trace.plan, name)
                    write(f"plan_{name}.npy", np.zeros(len(trace.plan.steps), np.int64)
                          if column is None else np.asarray(column, np.int64))
                header["plan"] = {"kinds": kinds, "steps": len(trace.plan.steps)}
            header.update({"buffers": [b.to_dict() for b in trace.buffers],
                           "kernels": [k.to_dict() for k in trace.kernels],
                           "chunks": chunk_info, "meta": trace.meta})
            zf.writestr("meta.json", json.dumps(header))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)       # as any new file (mkstemp made it private)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


PLAN_COLUMNS = ("steps", "kinds", "phase")     # members plan_NAME.npy, one row per step


def _stored_plan(trace: Trace) -> list[tuple[int, int]] | None:
    """Per kind of step, (its first chunk, its first plan row), when the trace has a plan
    whose steps of one kind have equal chunks (no per-step instruction ids); else None."""
    plan = trace.plan
    if plan is None or not len(plan.steps):
        return None
    starts = np.concatenate([[0], np.cumsum(plan.chunks)[:-1]])
    firsts: dict[int, tuple[int, int]] = {}
    for row, k in enumerate(plan.kinds.tolist()):
        firsts.setdefault(k, (int(starts[row]), row))
    if sorted(firsts) != list(range(len(firsts))):
        return None
    first = firsts[0]
    if plan.chunks[first[1]] and trace.chunk(first[0]).instr is not None:
        return None             # instruction ids differ from step to step
    return [firsts[k] for k in range(len(firsts))]


MAX_META_BYTES = 256 << 20      # meta.json: the tables and the chunk list
MAX_STEP = 1 << 62              # a chunk's step number
CHUNK_BYTES_PER_ACCESS = 128
"""What simulating one chunk costs per access: its columns (up to 29 bytes) and the simulator's
per-chunk arrays (benchmarks/bench_limits.py measures 91 to 115 bytes an access). A file whose
largest chunk would not fit is refused before it is read."""


def load(path: str | os.PathLike) -> Trace:
    """Open a trace file. The structure is checked here, before any chunk is read: the file,
    the zip container, meta.json and its fields, each column member's presence and stored size,
    and the largest chunk's memory. A chunk's .npy headers and then its values (ranges, ids)
    are checked as it is read, before it is used. Every problem is a SimError naming the file
    (docs/input-contract.md, "Trace files")."""
    where = os.fspath(path)
    check_file(where, "trace file")
    try:
        zf = zipfile.ZipFile(where)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError,
            struct.error):
        raise SimError("not a sutro-sim trace: the file is truncated or is not a zip archive",
                       where) from None
    except OSError as e:
        raise SimError(f"cannot read the trace file: {e.strerror or e}", where) from None
    header = _read_meta(zf, where)
    buffers, kernels, chunks, meta = _parse_header(header, where)
    members = {info.filename: info for info in zf.infolist()}
    _check_members(chunks, members, where)
    plan = _read_plan(zf, header, chunks, members, where)

    def stored(i: int, step: int | None = None) -> Chunk:
        info = chunks[i]
        cols = {name: _read_member(zf, f"c{i:06d}_{name}.npy", info["n"], name, where)
                for name in info["columns"]}
        return make_chunk(info["step"] if step is None else step, where=where, **cols)

    if plan is None:
        trace = Trace(buffers, kernels, len(chunks), stored, meta, where)
        trace.n_accesses = sum(c["n"] for c in chunks)
        return trace
    plan, first, sizes = plan
    ends = np.cumsum(plan.chunks)
    kind_accesses = np.array([sum(c["n"] for c in chunks[lo:lo + n])
                              for lo, n in zip(first, sizes)], np.int64)

    def get_chunk(i: int) -> Chunk:         # chunk i of the run: its step's kind's chunk
        row = int(np.searchsorted(ends, i, side="right"))
        offset = i - int(ends[row] - plan.chunks[row])
        return stored(first[int(plan.kinds[row])] + offset, int(plan.steps[row]))

    trace = Trace(buffers, kernels, int(ends[-1]) if len(ends) else 0, get_chunk, meta, where,
                  plan=plan)
    trace.n_accesses = int(kind_accesses[plan.kinds].sum()) if len(plan.kinds) else 0
    return trace


def _read_plan(zf, header: dict, chunks: list, members: dict, where: str):
    """A version-2 file's step plan, checked: (StepPlan, each kind's first stored chunk, each
    kind's number of chunks), or None for a file without one."""
    if header["version"] == 1:
        return None

    def fail(what: str):
        raise SimError(f"corrupt trace: meta.json: plan: {what}", where)

    plan = header.get("plan")
    if not isinstance(plan, dict) or not isinstance(plan.get("kinds"), list) or \
            not _is_int(plan.get("steps")) or not 0 <= plan["steps"] <= MAX_ADDRESS:
        fail("expected {\"kinds\": [...], \"steps\": a count}")
    first, sizes, arith = [], [], []
    for k, kind in enumerate(plan["kinds"]):
        if not isinstance(kind, dict) or not all(_is_int(kind.get(f)) for f in
                                                 ("first", "chunks")):
            fail(f"kind {k}: expected {{\"first\": a chunk, \"chunks\": a count, "
                 "\"arith\": {...}}")
        lo, n = kind["first"], kind["chunks"]
        if not (0 <= lo and 0 <= n and lo + n <= len(chunks)):
            fail(f"kind {k}: chunks {lo} to {lo + n - 1} are not all in the chunk list "
                 f"({len(chunks)} chunks)")
        counts = kind.get("arith", {})
        if not isinstance(counts, dict) or not all(_is_int(c) and 0 <= c < 1 << 63
                                                   for c in counts.values()):
            fail(f"kind {k}: 'arith' must map operations to counts")
        first.append(lo)
        sizes.append(n)
        arith.append(dict(counts))
    n_steps = plan["steps"]
    limit, allowed = allowance()
    if n_steps * 8 * len(PLAN_COLUMNS) > limit:
        raise SimError(f"the step plan lists {n_steps:,} steps, more than fit in {allowed}",
                       where)
    cols = {}
    for name in PLAN_COLUMNS:
        member = f"plan_{name}.npy"
        if member not in members:
            raise SimError(f"truncated trace: the step plan has no {member}", where)
        cols[name] = _read_member(zf, member, n_steps, f"plan {name}", where).astype(np.int64)
    kinds = cols["kinds"]
    if n_steps and (kinds.min() < 0 or kinds.max() >= len(first)):
        bad = int(kinds.min() if kinds.min() < 0 else kinds.max())
        raise SimError(f"corrupt trace: the step plan names kind {bad}; it lists "
                       f"{len(first)} kinds", where)
    if n_steps and (cols["steps"].min() < 0 or cols["steps"].max() > MAX_STEP):
        raise SimError("corrupt trace: a step number of the plan is out of range", where)
    return StepPlan(cols["steps"], kinds, np.array(sizes, np.int64)[kinds], tuple(arith),
                    cols["phase"]), first, sizes


def _read_meta(zf: zipfile.ZipFile, where: str):
    try:
        info = zf.getinfo("meta.json")
    except KeyError:
        raise SimError("not a sutro-sim trace: meta.json is missing (truncated file?)",
                       where) from None
    if info.file_size > MAX_META_BYTES:
        raise SimError(f"corrupt trace: meta.json is {info.file_size:,} bytes (at most "
                       f"{MAX_META_BYTES:,})", where)
    try:
        data = zf.read("meta.json")
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError,
            ValueError, zlib.error, lzma.LZMAError) as e:
        raise SimError(f"corrupt trace: cannot read meta.json ({e})", where) from None
    try:
        return json.loads(decode_utf8(data, "meta.json", where))
    except SimError as e:
        raise SimError(f"corrupt trace: {e.message}", where) from None
    except RecursionError:
        raise SimError("corrupt trace: meta.json nests too deep", where) from None
    except ValueError as e:
        raise SimError(f"corrupt trace: meta.json is not valid JSON ({e})", where) from None


def _check_members(chunks: list, members: dict, where: str) -> None:
    """Every listed column is a member whose stored size fits its rows; the largest chunk fits
    in memory. Sizes come from the zip directory, so nothing is read or inflated here."""
    limit, allowed = allowance()
    for i, c in enumerate(chunks):
        if c["n"] * CHUNK_BYTES_PER_ACCESS > limit:
            raise SimError(f"chunk {i} holds {c['n']:,} accesses; simulating it takes about "
                           f"{c['n'] * CHUNK_BYTES_PER_ACCESS / 2**30:,.1f} GiB "
                           f"({CHUNK_BYTES_PER_ACCESS} bytes an access), more than {allowed} "
                           "(write smaller chunks)", where)
        for name in c["columns"]:
            member = f"c{i:06d}_{name}.npy"
            info = members.get(member)
            if info is None:
                raise SimError(f"truncated trace: chunk {i} has no column '{name}' ({member})",
                               where)
            if not c["n"] <= info.file_size <= c["n"] * 8 + NPY_HEADER_MAX:
                raise SimError(f"corrupt trace: {member} is {info.file_size:,} bytes, which "
                               f"cannot hold chunk {i}'s {c['n']:,} values", where)


def _read_member(zf: zipfile.ZipFile, member: str, n: int, name: str, where: str) -> np.ndarray:
    """One column, its .npy header checked (a 1-d array of n integers or booleans) before the
    data is read."""
    try:
        with zf.open(member) as f:
            try:
                shape, dtype = npy_header(f)
            except ValueError as exc:
                raise SimError(f"corrupt trace: cannot read {member}: {exc}", where) from None
            if dtype.kind not in "biu" or dtype.itemsize > 8 or dtype.hasobject:
                raise SimError(f"corrupt trace: {member} holds {dtype}; column '{name}' holds "
                               "integers (or booleans)", where)
            if shape != (n,):
                whose = "the step plan lists" if member.startswith("plan_") else \
                    "its chunk lists"
                unit = "steps" if member.startswith("plan_") else "accesses"
                raise SimError(f"inconsistent trace: {member} has shape {list(shape)}; {whose} "
                               f"{n:,} {unit}", where)
            data = f.read(n * dtype.itemsize)
    except SimError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError,
            RuntimeError, zlib.error, lzma.LZMAError) as exc:
        raise SimError(f"corrupt trace: cannot read {member} ({exc})", where) from None
    if len(data) != n * dtype.itemsize:
        raise SimError(f"truncated trace: {member} holds {len(data) // dtype.itemsize:,} of its "
                       f"{n:,} values", where)
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _parse_header(header, where: str):
    """The tables and chunk list of meta.json, every field of the type and range it must have."""
    def fail(what: str):
        raise SimError(f"corrupt trace: meta.json: {what}", where)

    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SimError(f"not a sutro-sim trace (meta.json has no format '{FORMAT}')", where)
    version = header.get("version")
    if version not in (1, VERSION) or not _is_int(version):
        raise SimError(f"trace format version {version!r} is not supported (this sutro-sim "
                       f"reads versions 1 and {VERSION}, written as numbers)", where)

    def field(d, key: str, kind, what: str):
        if not isinstance(d, dict):
            fail(f"{what} is {_json_kind(d)}; expected an object")
        if key not in d:
            fail(f"{what} has no '{key}'")
        v = d[key]
        ok = _is_int(v) if kind is int else isinstance(v, kind)
        if not ok:
            fail(f"{what}: '{key}' is {_json_kind(v)}; expected {_KIND_WORDS[kind]}")
        return v

    def rows(key: str) -> list:
        v = field(header, key, list, "meta.json")
        return v

    def count(d, key: str, what: str, hi: int) -> int:
        v = field(d, key, int, what)
        if not 0 <= v <= hi:
            fail(f"{what}: '{key}' is {v}; expected 0 to {hi:,}")
        return v

    buffers = []
    for i, b in enumerate(rows("buffers")):
        what = f"buffer {i}"
        buffers.append(Buffer(field(b, "name", str, what), count(b, "base", what, MAX_ADDRESS),
                              count(b, "nbytes", what, MAX_ADDRESS), field(b, "dtype", str, what),
                              field(b, "role", str, what)))
    kernels = []
    for i, k in enumerate(rows("kernels")):
        what = f"kernel {i}"
        ops = field(k, "ops", list, what)
        if not all(isinstance(o, str) for o in ops):
            fail(f"{what}: 'ops' must be a list of strings")
        arith = field(k, "arith", dict, what)
        for op, c in arith.items():
            if not _is_int(c) or not 0 <= c < 1 << 63:
                fail(f"{what}: arith '{op}' is {c!r}; expected a count from 0 to 2^63 - 1")
        kernels.append(Kernel(field(k, "name", str, what), tuple(ops),
                              field(k, "source", str, what), dict(arith)))
    chunks = []
    for i, c in enumerate(rows("chunks")):
        what = f"chunk {i}"
        cols = field(c, "columns", list, what)
        known = {**COLUMNS, **OPTIONAL_COLUMNS}
        for name in cols:
            if not isinstance(name, str) or name not in known:
                fail(f"{what}: unknown column {name!r} (columns: {', '.join(known)})")
        if len(set(cols)) != len(cols):
            fail(f"{what}: a column is listed twice")
        missing = set(COLUMNS) - set(cols)
        if missing:
            raise SimError(f"corrupt trace: chunk {i} lacks column(s) "
                           f"{', '.join(sorted(missing))}", where)
        chunks.append({"step": count(c, "step", what, MAX_STEP),
                       "n": count(c, "n", what, MAX_ADDRESS), "columns": cols})
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        fail(f"'meta' is {_json_kind(meta)}; expected an object")
    return buffers, kernels, chunks, meta


_KIND_WORDS = {int: "an integer", str: "a string", list: "a list", dict: "an object"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _json_kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true or false"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}"
    return "a list" if isinstance(v, list) else "an object"


# ----------------------------------------------------------------------------- building by hand

class TraceBuilder:
    """Build a trace by hand (tests, examples, other producers).

        b = TraceBuilder()
        A = b.buffer("A", 4, dtype="f32", role="param")
        k = b.kernel("scale", ops=("mul",), arith={"mul.f32": 4})
        b.read(A, kernel=k); b.write(A, kernel=k)      # whole buffer, element order
        b.read(A, [0, 3], instr=7)                     # chosen elements
        trace = b.build()

    Buffers are bump-allocated from `start`, each aligned to `align` bytes.
    """

    def __init__(self, start: int = 0, align: int = 64, chunk_accesses: int = CHUNK_ACCESSES):
        self.buffers: list[Buffer] = []
        self.kernels: list[Kernel] = []
        self._next = start
        self._align = align
        self._chunk_accesses = chunk_accesses
        self._step = 0
        self._parts: list[tuple[int, dict]] = []

    def buffer(self, name: str, n_elements: int, dtype: str = "f32", role: str = "other") -> int:
        """Allocate a buffer of n_elements; returns its id."""
        if dtype not in DTYPE_BYTES:
            raise SimError(f"buffer '{name}': unknown dtype '{dtype}'")
        if any(b.name == name for b in self.buffers):
            raise SimError(f"buffer '{name}' is defined twice")
        base = -(-self._next // self._align) * self._align
        nbytes = int(n_elements) * DTYPE_BYTES[dtype]
        self.buffers.append(Buffer(name, base, nbytes, dtype, role))
        self._next = base + nbytes
        return len(self.buffers) - 1

    def kernel(self, name: str, ops: Sequence[str] = (), source: str = "",
               arith: Mapping[str, int] | None = None) -> int:
        self.kernels.append(Kernel(name, tuple(ops), source, dict(arith or {})))
        return len(self.kernels) - 1

    def step(self, step: int) -> None:
        """Accesses from here on belong to training step `step`."""
        self._step = int(step)

    def read(self, buf: int | str, index=None, kernel: int = -1, instr=None) -> None:
        self.access(buf, index, False, kernel, instr)

    def write(self, buf: int | str, index=None, kernel: int = -1, instr=None) -> None:
        self.access(buf, index, True, kernel, instr)

    def access(self, buf: int | str, index, is_write: bool, kernel: int = -1, instr=None) -> None:
        """Touch elements `index` (an int, an array, or None for all, in order) of a buffer."""
        bid = buf if isinstance(buf, (int, np.integer)) else self._buffer_id(buf)
        b = self.buffers[bid]
        n_elem = b.nbytes // b.elem_bytes
        idx = np.arange(n_elem) if index is None else np.atleast_1d(np.asarray(index, np.int64))
        if len(idx) and (idx.min() < 0 or idx.max() >= n_elem):
            raise SimError(f"buffer '{b.name}' has {n_elem} elements; index {idx.max()} is outside")
        cols = {"addr": b.base + idx * b.elem_bytes, "nbytes": b.elem_bytes,
                "is_write": is_write, "kernel": kernel, "buffer": bid,
                "instr": -1 if instr is None else instr}
        self._parts.append((self._step, {k: np.broadcast_to(v, idx.shape) for k, v in cols.items()}))

    def _buffer_id(self, name: str) -> int:
        for i, b in enumerate(self.buffers):
            if b.name == name:
                return i
        raise SimError(f"no buffer named '{name}'")

    def build(self, meta: Mapping | None = None) -> Trace:
        chunks = []
        for step, cols in _group_by_step(self._parts):
            n = len(cols["addr"])
            for lo in range(0, max(n, 1), self._chunk_accesses):
                part = {k: v[lo:lo + self._chunk_accesses] for k, v in cols.items()}
                if np.all(part["instr"] < 0):
                    part["instr"] = None
                chunks.append(make_chunk(step, **part))
        return Trace.from_chunks(self.buffers, self.kernels, chunks, meta)


def _group_by_step(parts):
    """Consecutive parts of the same step, concatenated column by column."""
    groups: list[tuple[int, list[dict]]] = []
    for step, cols in parts:
        if groups and groups[-1][0] == step:
            groups[-1][1].append(cols)
        else:
            groups.append((step, [cols]))
    for step, cols_list in groups:
        yield step, {k: np.concatenate([c[k] for c in cols_list]) for k in cols_list[0]}
