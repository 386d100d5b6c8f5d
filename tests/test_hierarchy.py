"""Hierarchy configs: presets, TOML parsing and the exact text of every config error."""

import pytest

from simulator.errors import SimError
from simulator.hierarchy import Hierarchy, Level, list_presets, load_hierarchy, parse_size

GOOD = """
name = "tiny"
description = "a test"
[[level]]
name = "L1"
capacity = "{cap}"
line = {line}
{extra}
[[level]]
name = "L2"
capacity = "1 MiB"
line = 64
ways = 16
[memory]
name = "DRAM"
offchip = "dram"
"""


def write(tmp_path, cap="32 KiB", line=64, extra="ways = 8", text=None):
    path = tmp_path / "cpu.toml"
    path.write_text(text if text is not None else GOOD.format(cap=cap, line=line, extra=extra))
    return str(path)


def error_of(path) -> str:
    with pytest.raises(SimError) as exc:
        load_hierarchy(path)
    return str(exc.value)


def test_presets_load_and_are_listed():
    assert [h.name for h in list_presets()] == ["cpu-like", "h100-like", "sutro-tiers"]
    for h in list_presets():
        assert h.source == f"preset:{h.name}" and h.levels[-1].is_memory


def test_sutro_tiers_has_the_given_energies():
    h = load_hierarchy("sutro-tiers")
    assert [lv.capacity_bytes for lv in h.levels] == [256, 64 << 10, 256 << 10, None]
    assert [lv.energy_fj_per_bit for lv in h.levels] == [156.25, 625.0, 3125.0, 20000.0]
    assert [lv.energy_fj_per_bit * 32 / 1000 for lv in h.levels] == [5, 20, 100, 640]   # pJ/value
    assert all(lv.line_bytes == 4 and lv.ways is None and lv.policy == "lru" for lv in h.levels[:-1])
    assert h.levels[-1].offchip == "hbm"


def test_cpu_like_geometry():
    l1, l2, l3, mem = load_hierarchy("cpu-like").levels
    assert (l1.capacity_bytes, l1.ways, l1.n_sets) == (32 << 10, 8, 64)
    assert (l2.capacity_bytes, l2.ways, l2.n_sets) == (1 << 20, 16, 1024)
    assert (l3.capacity_bytes, l3.ways, l3.n_sets) == (16 << 20, 16, 16384)
    assert mem.offchip == "dram" and mem.line_bytes == 64 and l1.energy_fj_per_bit is None


def test_h100_like():
    l1, l2, mem = load_hierarchy("h100-like").levels
    assert (l1.capacity_bytes, l1.line_bytes, l1.n_sets) == (256 << 10, 128, 1)
    assert (l2.capacity_bytes, l2.n_sets) == (50 << 20, 25600)
    assert mem.offchip == "hbm"


def test_a_file_loads(tmp_path):
    h = load_hierarchy(write(tmp_path))
    assert h.name == "tiny" and h.description == "a test" and h.source.endswith("cpu.toml")
    assert h.levels[0] == Level("L1", 32768, 64, 8)
    assert h.levels[-1] == Level("DRAM", None, 64, offchip="dram")
    assert h.pycachesim_compat is False


@pytest.mark.parametrize("text,size", [("32 KiB", 32768), ("50 MiB", 50 << 20), ("256 B", 256),
                                       ("1.5 KiB", 1536), ("100", 100), ("8KB", 8192),
                                       ("2 MB", 2 << 20), ("1 GB", 1 << 30)])
def test_sizes(text, size):
    assert parse_size(text, "L1") == size


@pytest.mark.parametrize("kwargs,message", [
    (dict(extra="ways = 7", cap="1 MiB"), "level 'L1': ways: 7 does not divide the 16384 lines"),
    (dict(extra="ways = 0"), "level 'L1': ways: must be a positive integer, got 0"),
    (dict(extra='ways = "8"'), "level 'L1': ways: must be an integer, got '8'"),
    (dict(cap="0 B"), "level 'L1': capacity: must be positive, got 0"),
    (dict(cap="1000 B"), "level 'L1': capacity: 1000 bytes is not a multiple of the 64-byte line"),
    (dict(cap="32 kb"), "level 'L1': capacity: cannot read size \"32 kb\" "
                        "(expected e.g. \"32 KiB\", \"50 MiB\")"),
    (dict(line=48), "level 'L1': line: must be a positive power of two, got 48"),
    (dict(line=-64), "level 'L1': line: must be a positive power of two, got -64"),
    (dict(extra='policy = "lfu"'), "level 'L1': policy: unknown policy 'lfu' "
                                   "(expected one of lru, fifo, random, opt)"),
    (dict(extra="wayz = 8"), "level 'L1': wayz: unknown key (expected one of name, capacity, "
                             "line, ways, policy, write_back, write_allocate, seed, "
                             "energy_fj_per_bit, offchip)"),
    (dict(extra="write_back = 1"), "level 'L1': write_back: must be true or false, got 1"),
    (dict(extra="energy_fj_per_bit = -1.0"),
     "level 'L1': energy_fj_per_bit: must be a finite number >= 0, at most 1e30; got -1.0"),
])
def test_bad_configs_name_file_level_and_field(tmp_path, kwargs, message):
    path = write(tmp_path, **kwargs)
    assert error_of(path) == f"{path}: error: {message}"


def test_negative_capacity(tmp_path):
    path = write(tmp_path, text=GOOD.format(cap="x", line=64, extra="").replace('"x"', "-5"))
    assert error_of(path) == f"{path}: error: level 'L1': capacity: must be positive, got -5"


def test_invalid_toml_gives_its_line(tmp_path):
    path = write(tmp_path, text='name = "x"\n[[level]\n')
    assert error_of(path).startswith(f"{path}: error: invalid TOML: ")
    assert "line 2" in error_of(path)


def test_missing_memory_and_unknown_preset(tmp_path):
    path = write(tmp_path, text=GOOD.format(cap="32 KiB", line=64, extra="").split("[memory]")[0])
    assert error_of(path) == f"{path}: error: needs a [memory] table"
    assert error_of("no-such") == ("no-such: error: no hierarchy preset named 'no-such' "
                                   "(presets: cpu-like, h100-like, sutro-tiers)")


def test_hierarchy_objects_are_checked():
    with pytest.raises(SimError, match="the last level must be main memory"):
        Hierarchy("h", (Level("L1", 64, 16), Level("L2", 128, 16)))
    with pytest.raises(SimError, match="ways: 3 does not divide the 4 lines"):
        Level("L1", 64, 16, 3)


def test_opt_is_refused_in_pycachesim_compatibility_mode(tmp_path):
    """pycachesim has no OPT policy, so its store quirks are undefined for one."""
    levels = (Level("L1", 64, 16, policy="opt"), Level("MEM", None, 16))
    with pytest.raises(SimError, match="level 'L1': policy: 'opt' cannot be combined with "
                                       "pycachesim_compat"):
        Hierarchy("h", levels, pycachesim_compat=True)
    assert Hierarchy("h", levels).levels[0].policy == "opt"
    path = tmp_path / "h.toml"
    path.write_text('pycachesim_compat = true\n[[level]]\nname = "L1"\ncapacity = 64\nline = 16\n'
                    'policy = "opt"\n[memory]\n')
    with pytest.raises(SimError, match="h.toml: error: level 'L1': policy: 'opt'"):
        load_hierarchy(str(path))
