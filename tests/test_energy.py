"""Energy presets: the reference's sanity numbers, the level rules, arithmetic, the ByteDMD unit u,
and every number in docs/energy.md."""

import math
import pathlib
from dataclasses import dataclass

import pytest

from simulator.energy import (
    PER_BIT,
    PER_OP,
    PER_OP_32,
    PRESETS,
    QUADRATIC_OPS,
    arith_fj,
    distance_unit_fj,
    get_preset,
    level_energy,
    preset_table,
    sram_fj_per_bit,
)
from simulator.errors import SimError

KB, MB = 1024, 1024 * 1024
DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "energy.md"


@dataclass(frozen=True)
class FakeLevel:
    """Stands in for simulator.hierarchy.Level: energy only reads these four fields."""

    name: str
    capacity_bytes: int | None = None
    energy_fj_per_bit: float | None = None
    offchip: str | None = None


def rounds_to(value: float, quoted: str) -> bool:
    """True if `value` printed to the precision of `quoted` gives `quoted` (half a last digit)."""
    decimals = len(quoted.partition(".")[2])
    return abs(value - float(quoted)) <= 0.5 * 10 ** -decimals + 1e-9


def onchip_fj_per_bit(preset_name: str, capacity_bytes: int) -> float:
    return level_energy(FakeLevel("L", capacity_bytes), get_preset(preset_name)).fj_per_bit


def offchip_fj_per_bit(preset_name: str, kind: str) -> float:
    return level_energy(FakeLevel("mem", offchip=kind), get_preset(preset_name)).fj_per_bit


# --- Section 5 of the reference: one 64-bit read -------------------------------------------------

@pytest.mark.parametrize("preset, capacity, pj_per_64b, fj_per_bit", [
    ("dally-2020", 32 * KB, "4.3", "67"),
    ("dally-2020", 2 * MB, "19.2", "300"),   # the reference prints 19.1 / 299: truncated, see docs
    ("dally-2022", 32 * KB, "3.5", "55"),
    ("dally-2022", 2 * MB, "8.0", "125"),
    ("modern-5nm-hbm3", 32 * KB, "1.8", "29"),
    ("modern-5nm-hbm3", 2 * MB, "7.8", "122"),
    ("horowitz-45nm", 8 * KB, "9.9", "155"),
    ("horowitz-45nm", 32 * KB, "19.8", "309"),
    ("horowitz-45nm", 1 * MB, "112", "1750"),
    ("horowitz-45nm", 2 * MB, "158", "2475"),
])
def test_onchip_read_matches_reference(preset, capacity, pj_per_64b, fj_per_bit):
    e = onchip_fj_per_bit(preset, capacity)
    assert rounds_to(e * 64 / 1000, pj_per_64b)
    assert rounds_to(e, fj_per_bit)


def test_dally_2020_2mb_reference_figures_are_truncated_not_rounded():
    e = onchip_fj_per_bit("dally-2020", 2 * MB)
    assert math.floor(e) == 299 and math.floor(e * 64 / 100) / 10 == 19.1
    assert not rounds_to(e * 64 / 1000, "19.1") and not rounds_to(e, "299")


@pytest.mark.parametrize("preset, kind, pj_per_64b", [
    ("dally-2020", "hbm", "403"),
    ("dally-2020", "dram", "1280"),
    ("dally-2022", "hbm", "296"),
    ("dally-2022", "dram", "1280"),
    ("modern-5nm-hbm3", "hbm", "301"),
    ("modern-5nm-hbm3", "dram", "1280"),
    ("horowitz-45nm", "dram", "1280"),
])
def test_offchip_read_matches_reference(preset, kind, pj_per_64b):
    assert rounds_to(offchip_fj_per_bit(preset, kind) * 64 / 1000, pj_per_64b)


def test_ddr_is_1_3_nj_per_64_bits():
    assert rounds_to(offchip_fj_per_bit("dally-2020", "dram") * 64 / 1e6, "1.3")


@pytest.mark.parametrize("preset, fj", [
    ("dally-2020", "64"), ("dally-2022", "40"), ("modern-5nm-hbm3", "40"), ("horowitz-45nm", "200"),
])
def test_64_bit_add(preset, fj):
    assert rounds_to(arith_fj("add.i64", 1, get_preset(preset)), fj)
    assert arith_fj("add.f64", 1, get_preset(preset)) >= arith_fj("add.i64", 1, get_preset(preset))


@pytest.mark.parametrize("preset, fj_per_bit", [
    ("dally-2020", "50"), ("dally-2022", "50"), ("modern-5nm-hbm3", "22"),
])
def test_8kb_sram_calibration(preset, fj_per_bit):
    assert rounds_to(onchip_fj_per_bit(preset, 8 * KB), fj_per_bit)


def test_dally_2022_reproduces_cacm_256mb_example():
    # CACM 2022: 256 MB on ~100 mm^2 costs 58 pJ per 64 b; the preset gives 60.7
    assert rounds_to(onchip_fj_per_bit("dally-2022", 256 * MB) * 64 / 1000, "60.7")


def test_modern_e0_is_calibrated_to_22_not_to_50_over_2_25():
    p = get_preset("modern-5nm-hbm3")
    _, wire = sram_fj_per_bit(p, 8 * KB)
    assert rounds_to(50 / 2.25, "22.2") and rounds_to(50 / 2.25 - wire, "15.57")
    assert rounds_to(22 - wire, "15.3") and rounds_to(p.sram_fixed_fj_per_bit.value + wire, "21.95")


def test_modern_ratios():
    p = get_preset("modern-5nm-hbm3")
    hbm, l1 = offchip_fj_per_bit(p.name, "hbm"), onchip_fj_per_bit(p.name, 32 * KB)
    l2 = onchip_fj_per_bit(p.name, 2 * MB)
    assert round(64 * hbm / arith_fj("add.i64", 1, p)) == 7520
    assert round(hbm / l1) == 164
    assert rounds_to(l2 / l1, "4.3")


# --- Section 3 of the reference: the ByteDMD unit ------------------------------------------------

@pytest.mark.parametrize("preset, u1, u3", [
    ("dally-2020", "0.49", "1.47"),
    ("horowitz-45nm", "1.64", "4.9"),
    ("modern-5nm-hbm3", "0.20", "0.59"),
    ("dally-2022", "0.147", "0.441"),
])
def test_bytedmd_unit_table(preset, u1, u3):
    p = get_preset(preset)
    assert rounds_to(distance_unit_fj(p, kappa=1), u1)
    assert rounds_to(distance_unit_fj(p, kappa=3), u3)


def test_horowitz_unit_with_its_own_kappa_is_what_the_table_implies():
    assert rounds_to(distance_unit_fj(get_preset("horowitz-45nm")), "13.7")
    assert rounds_to(get_preset("horowitz-45nm").kappa.value, "8.32")


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("capacity", [1, 64, 8 * KB, 3 * MB + 5, 1 << 34])
def test_per_level_law_is_bytedmd_at_the_level_edge(preset, capacity):
    # 8 * E_bit(C) = 8 * E0 + u * sqrt(C_bytes)
    p = get_preset(preset)
    fixed, wire = sram_fj_per_bit(p, capacity)
    expected = 8 * fixed + distance_unit_fj(p) * math.sqrt(capacity)
    assert 8 * (fixed + wire) == pytest.approx(expected)


# --- Level rules ------------------------------------------------------------------------------

def test_given_energy_wins_and_counts_as_fixed():
    e = level_energy(FakeLevel("L1", 32 * KB, energy_fj_per_bit=12.5, offchip="hbm"),
                     get_preset("horowitz-45nm"))
    assert (e.fj_per_bit, e.fixed_fj_per_bit, e.wire_fj_per_bit) == (12.5, 12.5, 0.0)
    assert e.source == "given in the hierarchy config"


def test_offchip_splits_device_and_route():
    e = level_energy(FakeLevel("HBM", offchip="hbm"), get_preset("dally-2020"))
    assert (e.fixed_fj_per_bit, e.wire_fj_per_bit) == (3900.0, 2400.0)
    assert e.to_dict() == {"fj_per_bit": 6300.0, "fixed_fj_per_bit": 3900.0,
                           "wire_fj_per_bit": 2400.0, "source": e.source}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_real_hierarchy_levels(preset):
    from simulator import hierarchy   # our own module: a missing one is a failure, not a skip
    l1 = hierarchy.Level("L1", 32 * KB, 64)
    mem = hierarchy.Level("DRAM", None, 64, offchip="dram")
    assert level_energy(l1, get_preset(preset)).fj_per_bit == onchip_fj_per_bit(preset, 32 * KB)
    assert level_energy(mem, get_preset(preset)).fj_per_bit == offchip_fj_per_bit(preset, "dram")


def test_offchip_beats_capacity():
    p = get_preset("modern-5nm-hbm3")
    with_capacity = level_energy(FakeLevel("HBM", 80 * 10**9, offchip="hbm"), p)
    assert with_capacity == level_energy(FakeLevel("HBM", offchip="hbm"), p)


def test_onchip_split():
    e = level_energy(FakeLevel("L1", 8 * KB), get_preset("dally-2020"))
    assert e.fixed_fj_per_bit == 33.4
    assert e.wire_fj_per_bit == pytest.approx(3 * 100 * math.sqrt(0.047 * 65536) / 1000)
    assert e.source.startswith("dally-2020 sqrt law")


def test_missing_offchip_kind_names_level_and_preset():
    with pytest.raises(SimError) as err:
        level_energy(FakeLevel("HBM", offchip="hbm"), get_preset("horowitz-45nm"))
    assert str(err.value) == ("energy preset 'horowitz-45nm': error: level 'HBM' is off-chip "
                              "'hbm', which energy preset 'horowitz-45nm' does not price (it has: "
                              "dram); choose another --energy or give the level an "
                              "energy_fj_per_bit")


def test_unpriceable_main_memory():
    with pytest.raises(SimError) as err:
        level_energy(FakeLevel("mem"), get_preset("dally-2020"))
    assert err.value.message == ("level 'mem' has no capacity, no off-chip kind and no "
                                 "energy_fj_per_bit, so its energy cannot be priced")


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_given_energy(bad):
    with pytest.raises(SimError, match="energy_fj_per_bit must be >= 0"):
        level_energy(FakeLevel("L1", energy_fj_per_bit=bad), get_preset("dally-2020"))


def test_bad_capacity():
    with pytest.raises(SimError) as err:
        level_energy(FakeLevel("L1", 0), get_preset("dally-2020"))
    assert err.value.message == "capacity must be > 0 bytes, got 0"


def test_unknown_preset_lists_known_names():
    with pytest.raises(SimError) as err:
        get_preset("dally-2023")
    assert str(err.value) == ("energy preset: error: unknown energy preset 'dally-2023'; known "
                              "presets: dally-2020, dally-2022, horowitz-45nm, modern-5nm-hbm3")


# --- Arithmetic -------------------------------------------------------------------------------

def test_arith_width_rules():
    p = get_preset("dally-2020")
    assert arith_fj("add.f32", 10, p) == 320.0
    assert arith_fj("mul.f64", 1, p) == 5000.0              # CACM 2020 DP multiply
    assert arith_fj("mul.f16", 1, p) == 1250.0 / 4
    assert arith_fj("fma.f32", 1, p) == 1250.0 + 32.0
    assert arith_fj("max.i8", 3, p) == 24.0
    assert arith_fj("exp.f32", 1, p) == 4 * 1282.0


def test_horowitz_table_rows():
    p = get_preset("horowitz-45nm")
    rows = {"add.i8": 30, "add.i32": 100, "mul.i8": 200, "mul.i32": 3100,
            "add.f16": 400, "add.f32": 900, "mul.f16": 1100, "mul.f32": 3700}
    assert {key: arith_fj(key, 1, p) for key in rows} == pytest.approx(rows)
    assert arith_fj("max.f32", 1, p) == pytest.approx(100)  # compares priced as an int add
    assert rounds_to(p.arith["mul"].value * (8 / 32) ** 2 / 1000, "0.19")  # vs the 0.2 pJ row


def test_unlisted_op_is_priced_as_an_add():
    for p in PRESETS.values():
        assert arith_fj("div.f32", 7, p) == arith_fj("add.f32", 7, p)


@pytest.mark.parametrize("key, message", [
    ("add", "arithmetic key 'add' should look like 'op.dtype', for example 'add.f32'"),
    (".f32", "arithmetic key '.f32' should look like 'op.dtype', for example 'add.f32'"),
    ("add.f128", "arithmetic key 'add.f128': unknown dtype 'f128'; known dtypes: f64, f32, f16, "
                 "bf16, i64, i32, i16, i8, u8, bool"),
])
def test_bad_arith_key(key, message):
    with pytest.raises(SimError) as err:
        arith_fj(key, 1, get_preset("dally-2020"))
    assert err.value.message == message


def test_negative_count():
    with pytest.raises(SimError, match="op count must be >= 0"):
        arith_fj("add.f32", -1, get_preset("dally-2020"))


# --- Presets are well formed --------------------------------------------------------------------

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_has_required_ops_and_units_match_rules(preset):
    p = get_preset(preset)
    assert {"add", "mul", "fma", "cmp", "max", "exp"} <= set(p.arith)
    for key, c in p.arith.items():
        op, _, suffix = key.partition(".")
        exact = suffix not in ("", "int", "float")
        expected = PER_OP if exact else PER_OP_32 if op in QUADRATIC_OPS else PER_BIT
        assert c.unit == expected, key


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_constant_has_a_tagged_source(preset):
    for line in preset_table(get_preset(preset)).splitlines()[2:]:
        source = line.rstrip(" |").rsplit(" | ", 1)[1]
        assert any(tag in source for tag in ("[P]", "[S]", "[C]", "[D]")), line


def test_presets_are_immutable():
    with pytest.raises(TypeError):
        get_preset("dally-2020").arith["add"] = None


# --- docs/energy.md ---------------------------------------------------------------------------

def sanity_table() -> str:
    """The doc's sanity table, computed by the code."""
    lines = ["| preset | 8 KB | 32 KB | 2 MB | HBM | DRAM | 64-bit add | u (kappa=1) "
             "| u (preset kappa) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in PRESETS.values():
        onchip = [onchip_fj_per_bit(p.name, c) for c in (8 * KB, 32 * KB, 2 * MB)]
        cells = [f"{e * 64 / 1000:.2f} pJ ({e:.1f})" for e in onchip]
        cells.append(f"{offchip_fj_per_bit(p.name, 'hbm') * 64 / 1000:.1f} pJ"
                     if "hbm" in p.offchip else "none")
        cells.append(f"{offchip_fj_per_bit(p.name, 'dram') * 64 / 1e6:.2f} nJ"
                     if "dram" in p.offchip else "none")
        cells += [f"{arith_fj('add.i64', 1, p):.1f} fJ", f"{distance_unit_fj(p, 1):.3f} fJ",
                  f"{distance_unit_fj(p):.3f} fJ"]
        lines.append(f"| `{p.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@pytest.mark.snapshot
def test_doc_sanity_table_is_what_the_code_computes():
    assert sanity_table() in DOC.read_text(), "\n" + sanity_table()


@pytest.mark.snapshot
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_doc_constant_tables_are_what_the_code_holds(preset):
    assert preset_table(get_preset(preset)) in DOC.read_text()
