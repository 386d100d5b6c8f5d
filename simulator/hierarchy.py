"""Memory-hierarchy configurations: the `Level` and `Hierarchy` objects, TOML loading, presets.

This module owns *what* a hierarchy is (levels nearest first, the last one main memory) and the
validation of a config: every mistake is a `SimError` naming the file, the level and the field,
e.g. `cpu.toml: error: level 'L2': ways: 7 does not divide the 16384 lines`. It does not
simulate anything (that is `simulator.cache`) and does not price anything (the energy presets).

TOML format::

    name = "cpu-like"
    description = "..."
    pycachesim_compat = false          # optional, see simulator.cache

    [[level]]                          # nearest first
    name = "L1"
    capacity = "32 KiB"                # int bytes or "N B|KiB|MiB|GiB"
    line = 64                          # bytes, a power of two
    ways = 8                           # omit = fully associative
    policy = "lru"                     # lru | fifo | random | opt
    write_back = true                  # false = write-through
    write_allocate = true
    seed = 0                           # for "random"
    energy_fj_per_bit = 12.5           # omit = derived by the energy preset

    [memory]
    name = "DRAM"
    line = 64                          # optional, default: the last level's line
    offchip = "dram"                   # dram | hbm
    energy_fj_per_bit = 20000.0        # optional
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SimError
from .inputs import decode_utf8, read_bytes
from .limits import allowance, gib

POLICIES = ("lru", "fifo", "random", "opt")
OFFCHIP = ("dram", "hbm")
PRESET_DIR = Path(__file__).parent / "presets" / "hierarchies"

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          # as memory sizes are quoted (JEDEC): a cache's "32 KB" is 32 KiB
          "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\s*$")
_LEVEL_KEYS = ("name", "capacity", "line", "ways", "policy", "write_back", "write_allocate",
               "seed", "energy_fj_per_bit", "offchip")
_MEMORY_KEYS = ("name", "line", "offchip", "energy_fj_per_bit")
_TOP_KEYS = ("name", "description", "pycachesim_compat", "level", "memory")


@dataclass(frozen=True)
class Level:
    """One level: a cache (capacity in bytes) or, last, main memory (capacity None)."""

    name: str
    capacity_bytes: int | None
    line_bytes: int
    ways: int | None = None
    policy: str = "lru"
    write_back: bool = True
    write_allocate: bool = True
    seed: int = 0
    energy_fj_per_bit: float | None = None
    offchip: str | None = None

    def __post_init__(self):
        check_level(self)

    @property
    def is_memory(self) -> bool:
        return self.capacity_bytes is None

    @property
    def n_lines(self) -> int | None:
        return None if self.is_memory else self.capacity_bytes // self.line_bytes

    @property
    def n_sets(self) -> int | None:
        if self.is_memory:
            return None
        return 1 if self.ways is None else self.n_lines // self.ways

    @property
    def assoc(self) -> int | None:
        """Lines per set (the ways, or all lines when fully associative)."""
        return None if self.is_memory else self.n_lines // self.n_sets


@dataclass(frozen=True)
class Hierarchy:
    """Levels nearest first; the last is main memory, which serves everything."""

    name: str
    levels: tuple[Level, ...]
    description: str = ""
    source: str = ""
    pycachesim_compat: bool = False

    def __post_init__(self):
        check_hierarchy(self)


# ----------------------------------------------------------------------------- validation

def _fail(level: str, field: str, message: str):
    raise SimError(f"level '{level}': {field}: {message}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_level(lv: Level) -> None:
    """Raise SimError (message `level 'NAME': FIELD: ...`) if a level is inconsistent."""
    if not isinstance(lv.name, str) or not lv.name:
        raise SimError(f"level {lv.name!r}: name: must be a non-empty string")
    _check_line(lv)
    if lv.capacity_bytes is not None:
        _check_capacity(lv)
    if lv.policy not in POLICIES:
        _fail(lv.name, "policy", f"unknown policy '{lv.policy}' (expected one of "
                                 f"{', '.join(POLICIES)})")
    for field in ("write_back", "write_allocate"):
        if not isinstance(getattr(lv, field), bool):
            _fail(lv.name, field, f"must be true or false, got {getattr(lv, field)!r}")
    if not _is_int(lv.seed) or lv.seed < 0:
        _fail(lv.name, "seed", f"must be an integer >= 0, got {lv.seed!r}")
    _check_energy(lv)


def _check_line(lv: Level) -> None:
    line = lv.line_bytes
    if not _is_int(line):
        _fail(lv.name, "line", f"must be an integer number of bytes, got {line!r}")
    if line <= 0 or line & (line - 1):
        _fail(lv.name, "line", f"must be a positive power of two, got {line}")
    if line > MAX_LINE:
        _fail(lv.name, "line", f"must be at most {MAX_LINE:,} bytes, got {line:,}")


def _check_capacity(lv: Level) -> None:
    cap, line = lv.capacity_bytes, lv.line_bytes
    if not _is_int(cap):
        _fail(lv.name, "capacity", f"must be an integer number of bytes, got {cap!r}")
    if cap <= 0:
        _fail(lv.name, "capacity", f"must be positive, got {cap}")
    if cap > MAX_SIZE:
        _fail(lv.name, "capacity", "must be at most 2^62 bytes")
    if cap % line:
        _fail(lv.name, "capacity", f"{cap} bytes is not a multiple of the {line}-byte line")
    ways, n_lines = lv.ways, cap // line
    if ways is None:
        return
    if not _is_int(ways) or ways <= 0:
        _fail(lv.name, "ways", f"must be a positive integer, got {ways!r}")
    if n_lines % ways:
        _fail(lv.name, "ways", f"{ways} does not divide the {n_lines} lines")


def _check_energy(lv: Level) -> None:
    e = lv.energy_fj_per_bit
    if e is not None and (not isinstance(e, (int, float)) or isinstance(e, bool)
                          or not 0 <= e <= 1e30):     # (a comparison: no float() of a huge int)
        got = repr(e) if not isinstance(e, int) or e < 1e30 else "a larger integer"
        _fail(lv.name, "energy_fj_per_bit", f"must be a finite number >= 0, at most 1e30; got {got}")
    if lv.offchip is not None and lv.offchip not in OFFCHIP:
        _fail(lv.name, "offchip", f"unknown off-chip kind '{lv.offchip}' (expected one of "
                                  f"{', '.join(OFFCHIP)})")


def check_hierarchy(h: Hierarchy) -> None:
    """At least one cache level, then exactly one memory level, last; unique names; no OPT
    level in pycachesim compatibility mode."""
    if len(h.levels) < 2:
        raise SimError(f"hierarchy '{h.name}': needs at least one cache level and a memory level")
    for lv in h.levels[:-1]:
        if lv.is_memory:
            raise SimError(f"level '{lv.name}': capacity: only the last level (main memory) may "
                           f"have no capacity")
    if not h.levels[-1].is_memory:
        raise SimError(f"level '{h.levels[-1].name}': the last level must be main memory "
                       f"(capacity None)")
    names = [lv.name for lv in h.levels]
    for name in names:
        if names.count(name) > 1:
            raise SimError(f"level '{name}': name: defined twice")
    for lv in h.levels[:-1]:
        if h.pycachesim_compat and lv.policy == "opt":
            _fail(lv.name, "policy", "'opt' cannot be combined with pycachesim_compat, which "
                                     "reproduces pycachesim (it has no OPT policy)")
    _check_state_memory(h)


STATE_BYTES_PER_LINE = 96   # the most a simulated line costs: tag, dirty bit, owner, recency
#                             links and its share of the hash table (simulator/cache.py)


def _check_state_memory(h: Hierarchy) -> None:
    """Refuse, up front, a hierarchy whose simulated lines would not fit in this machine."""
    lines = sum(lv.n_lines for lv in h.levels[:-1])
    need, (have, allowed) = lines * STATE_BYTES_PER_LINE, allowance()
    if need > have:
        big = max(h.levels[:-1], key=lambda lv: lv.n_lines)
        _fail(big.name, "capacity", f"{big.capacity_bytes:,} bytes in {big.line_bytes}-byte lines "
              f"is {big.n_lines:,} lines; simulating the hierarchy's {lines:,} lines takes about "
              f"{gib(need)} ({STATE_BYTES_PER_LINE} bytes a line), more than "
              f"{allowed}")


# ----------------------------------------------------------------------------- TOML

MAX_SIZE = 1 << 62     # a capacity, in bytes: int64 arithmetic stays exact
MAX_LINE = 1 << 16
"""A line, in bytes (real ones are 32 to 256; a DRAM page 8 KiB). A miss in a level fetches its
line from the level below in that level's lines, so one access can send (line / line below)
requests down; a 2^40-byte line would need buffers of terabytes."""


def parse_size(value, level: str, field: str = "capacity") -> int:
    """An int of bytes, or a string like "32 KiB" / "1.5 MiB" that is a whole number of bytes."""
    if _is_int(value):
        return value
    if not isinstance(value, str):
        _fail(level, field, f"must be an integer or a string like \"32 KiB\", got {value!r}")
    m = _SIZE_RE.match(value)
    if not m:
        _fail(level, field, f"cannot read size \"{value}\" (expected e.g. \"32 KiB\", \"50 MiB\")")
    size = float(m.group(1)) * _UNITS[m.group(2) or "B"]
    if not size <= MAX_SIZE:
        _fail(level, field, f"\"{value}\" is too large (at most 2^62 bytes)")
    if size != int(size):
        _fail(level, field, f"\"{value}\" is not a whole number of bytes")
    return int(size)


def _expect(table: dict, key: str, kinds, level: str, default, what: str):
    if key not in table:
        return default
    value = table[key]
    if kinds is int and not _is_int(value) or not isinstance(value, kinds):
        _fail(level, key, f"must be {what}, got {value!r}")
    return value


def _unknown_keys(table: dict, allowed, level: str) -> None:
    for key in table:
        if key not in allowed:
            _fail(level, key, f"unknown key (expected one of {', '.join(allowed)})")


def _level_from_table(t: dict, index: int) -> Level:
    if not isinstance(t, dict):
        raise SimError(f"level {index + 1}: must be a table")
    name = t.get("name", f"#{index + 1}")
    if not isinstance(name, str):
        raise SimError(f"level {index + 1}: name: must be a string, got {name!r}")
    _unknown_keys(t, _LEVEL_KEYS, name)
    if "capacity" not in t:
        _fail(name, "capacity", "missing")
    if "line" not in t:
        _fail(name, "line", "missing")
    return Level(
        name=name, capacity_bytes=parse_size(t["capacity"], name),
        line_bytes=_expect(t, "line", int, name, None, "an integer number of bytes"),
        ways=_expect(t, "ways", int, name, None, "an integer"),
        policy=_expect(t, "policy", str, name, "lru", "a string"),
        write_back=_expect(t, "write_back", bool, name, True, "true or false"),
        write_allocate=_expect(t, "write_allocate", bool, name, True, "true or false"),
        seed=_expect(t, "seed", int, name, 0, "an integer"),
        energy_fj_per_bit=_expect(t, "energy_fj_per_bit", (int, float), name, None, "a number"),
        offchip=_expect(t, "offchip", str, name, None, "a string"))


def _memory_from_table(t: dict, last_line: int) -> Level:
    if not isinstance(t, dict):
        raise SimError("memory: must be a table")
    name = t.get("name", "memory")
    if not isinstance(name, str):
        raise SimError(f"memory: name: must be a string, got {name!r}")
    _unknown_keys(t, _MEMORY_KEYS, name)
    return Level(
        name=name, capacity_bytes=None,
        line_bytes=_expect(t, "line", int, name, last_line, "an integer number of bytes"),
        energy_fj_per_bit=_expect(t, "energy_fj_per_bit", (int, float), name, None, "a number"),
        offchip=_expect(t, "offchip", str, name, None, "a string"))


def hierarchy_from_dict(d: dict, source: str = "") -> Hierarchy:
    """Build a Hierarchy from a parsed TOML document (errors carry no file; see load_hierarchy)."""
    for key in d:
        if key not in _TOP_KEYS:
            raise SimError(f"unknown top-level key '{key}' (expected one of {', '.join(_TOP_KEYS)})")
    tables = d.get("level")
    if not isinstance(tables, list) or not tables:
        raise SimError("needs at least one [[level]] table")
    if "memory" not in d:
        raise SimError("needs a [memory] table")
    levels = [_level_from_table(t, i) for i, t in enumerate(tables)]
    levels.append(_memory_from_table(d["memory"], levels[-1].line_bytes))
    name, desc = d.get("name", Path(source).stem), d.get("description", "")
    compat = d.get("pycachesim_compat", False)
    if not isinstance(name, str) or not isinstance(desc, str) or not isinstance(compat, bool):
        raise SimError("name and description must be strings, pycachesim_compat true or false")
    return Hierarchy(name, tuple(levels), desc, source, compat)


MAX_FILE_BYTES = 1 << 20     # a hierarchy file is a few tables; larger is refused unread


def _load_file(path: str, source: str) -> Hierarchy:
    text = decode_utf8(read_bytes(path, "hierarchy file", MAX_FILE_BYTES), "hierarchy file", path)
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:    # ValueError: 5,000-digit integer
        raise SimError(f"invalid TOML: {exc}", path) from None
    except RecursionError:
        raise SimError("invalid TOML: nested too deep", path) from None
    try:
        return hierarchy_from_dict(doc, source)
    except SimError as exc:
        raise SimError(exc.message, path) from None


def load_hierarchy(name_or_path: str) -> Hierarchy:
    """A preset by name (`cpu-like`) or a `.toml` file by path."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path or os.path.exists(name_or_path):
        return _load_file(name_or_path, name_or_path)
    path = PRESET_DIR / f"{name_or_path}.toml"
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.toml")))
        raise SimError(f"no hierarchy preset named '{name_or_path}' (presets: {names})",
                       name_or_path or "--hierarchy")
    return _load_file(str(path), f"preset:{name_or_path}")


def list_presets() -> list[Hierarchy]:
    """Every preset hierarchy, sorted by name."""
    return [load_hierarchy(p.stem) for p in sorted(PRESET_DIR.glob("*.toml"))]
