"""Energy presets and per-access energies, in femtojoules.

This module owns the physical constants (each with the source it came from), the named presets
built from them, and the three prices the simulator needs:

- a memory level's read/write energy per bit (`level_energy`): given in the hierarchy config,
  an off-chip device plus an on-die route, or derived from capacity by the sqrt law
  `E0 + kappa * e_w * sqrt(a * C_bits)`;
- arithmetic energy per op and dtype (`arith_fj`);
- the energy of one ByteDMD cost unit for one byte (`distance_unit_fj`), which ties the
  continuous distance model to the same wire constants.

Provenance tags in source strings: [P] primary text read, [S] secondary compilation quoting the
primary, [C] computed with CACTI 7, [D] derived by arithmetic or a stated assumption.
See docs/energy.md for the user-facing description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from .errors import SimError
from .trace import DTYPE_BYTES

PER_BIT = "fJ/bit"              # unit of a constant scaled by operand width in bits
PER_OP_32 = "fJ/op at 32 bits"  # unit of a constant scaled by (bits / 32) ** 2
PER_OP = "fJ/op"                # unit of an exact per-dtype row: not scaled
QUADRATIC_OPS = frozenset({"mul", "fma", "exp"})  # array multipliers grow with width squared
FLOAT_DTYPES = frozenset({"f64", "f32", "f16", "bf16"})
OFFCHIP_KINDS = ("dram", "hbm")


@dataclass(frozen=True)
class Constant:
    """One number with its unit and where it comes from (author, venue, year, page, tag)."""

    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class OffChip:
    """An off-chip memory: per-bit device energy plus an on-die route priced at e_w per mm."""

    device_fj_per_bit: Constant
    route_mm: Constant


@dataclass(frozen=True)
class EnergyPreset:
    """A named, sourced set of energy constants for one technology point."""

    name: str
    description: str
    wire_fj_per_bit_mm: Constant     # e_w, per random bit
    area_um2_per_bit: Constant       # a, effective area per bit including periphery
    kappa: Constant                  # wire mm per access per mm of array side
    sram_fixed_fj_per_bit: Constant  # E0
    arith: Mapping[str, Constant]    # keys "op", "op.int", "op.float" or "op.<dtype>"
    offchip: Mapping[str, OffChip]   # keys from OFFCHIP_KINDS


GIVEN = "given in the hierarchy config"


@dataclass(frozen=True)
class LevelEnergy:
    """Per-bit access energy of one memory level, split into a fixed part and a wire part."""

    fj_per_bit: float
    fixed_fj_per_bit: float
    wire_fj_per_bit: float
    source: str

    def to_dict(self) -> dict:
        return {"fj_per_bit": self.fj_per_bit, "fixed_fj_per_bit": self.fixed_fj_per_bit,
                "wire_fj_per_bit": self.wire_fj_per_bit, "source": self.source}


# ---------------------------------------------------------------------------------------------
# Sources shared by several presets

CACM2020 = "Dally, Turakhia, Han, 'Domain-Specific Hardware Accelerators', CACM 63(7) 2020, p.56"
CACM2022 = "Dally, 'On the Model of Computation: Point', CACM 65(9) 2022, pp.30-32"
AHA2023 = "Dally, Stanford AHA retreat keynote 2023"
HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, pp.10-14 [S]"
OCONNOR = "O'Connor et al., 'Fine-Grained DRAM', MICRO-50 2017, p.3 and Table 3 [S]"
HBM_ROUTE = Constant(24.0, "mm", f"{AHA2023}, slide 31: 48 mm round trip on a GPU die, "
                                 "24 mm one way [S] -> [D]")
KAPPA3 = Constant(3.0, "mm/mm", f"{CACM2022}: 256 MB (~10 mm side) moves 57.4 pJ per 64 b over "
                                "15 mm each way, 90 fJ/bit per mm of side = 3 x 30 [S] -> [D]; "
                                "CACTI 7 22 nm RAM gives 310-370 fJ/bit per mm of side [C]")
DALLY_AREA = Constant(0.047, "um^2/bit", f"{CACM2022}: 256 MB on ~100 mm^2 [S] -> [D]")
NO_ROUTE = Constant(0.0, "mm", "[D] the device figure is already the whole access")


def _derived_arith(add: Constant, mul: Constant) -> dict[str, Constant]:
    """Fill in the ops that no source prices from an add (per bit) and a 32-bit multiply."""
    fma = Constant(mul.value + 32 * add.value, PER_OP_32,
                   f"[D] one 32-bit multiply + one 32-bit add ({mul.value:g} + 32 x "
                   f"{add.value:g}); scaled by (bits/32)^2")
    compare = Constant(add.value, PER_BIT, "[D] priced as an add: a comparator is a subtractor")
    exp = Constant(4 * fma.value, PER_OP_32,
                   "[D] assumption: 4 FMAs (range reduction + short polynomial); scaled by "
                   "(bits/32)^2")
    return {"add": add, "sub": add, "mul": mul, "fma": fma,
            "cmp": compare, "max": compare, "min": compare, "exp": exp}


def _dram(fj_per_bit: float, source: str) -> OffChip:
    return OffChip(Constant(fj_per_bit, PER_BIT, source), NO_ROUTE)


def _hbm(fj_per_bit: float, source: str) -> OffChip:
    return OffChip(Constant(fj_per_bit, PER_BIT, source), HBM_ROUTE)


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(dict(mapping))


# ---------------------------------------------------------------------------------------------
# The presets

def _dally_2020() -> EnergyPreset:
    add = Constant(1.0, PER_BIT, f"{AHA2023}, slide 8, '~1 fJ/bit' [S]; {CACM2020}: 8-bit add "
                                 "10 fJ [S]")
    mul = Constant(1250.0, PER_OP_32, f"{CACM2020}: DP FP multiply 5 pJ [S]; scaled (32/64)^2 "
                                      "to 32 bits [D]; scaled by (bits/32)^2")
    return EnergyPreset(
        name="dally-2020",
        description="Dally's 14 nm cost model (CACM 2020, restated at AHA / Hot Chips 2023): "
                    "100 fJ/bit-mm wire, 50 fJ/bit small SRAM, 1 fJ/bit add",
        wire_fj_per_bit_mm=Constant(100.0, "fJ/bit/mm", f"{CACM2020} (14 nm) [S]; {AHA2023}, "
                                                        "slide 8 [S]"),
        area_um2_per_bit=DALLY_AREA,
        kappa=KAPPA3,
        sram_fixed_fj_per_bit=Constant(33.4, PER_BIT, f"[D] 8 KB SRAM = 50 fJ/bit ({CACM2020} "
                                                      f"[S]; {AHA2023}, slide 8 [S]) minus its "
                                                      "wire part with a=0.047, kappa=3"),
        arith=_frozen(_derived_arith(add, mul)),
        offchip=_frozen({
            "dram": _dram(20_000.0, f"{CACM2022}: two 32-bit words from main memory = 1.3 nJ [P]"),
            "hbm": _hbm(3_900.0, f"{OCONNOR}: HBM2 access"),
        }),
    )


def _dally_2022() -> EnergyPreset:
    add = Constant(0.625, PER_BIT, f"{CACM2022}: 32-bit add = 20 fJ [P]")
    mul = Constant(1250.0, PER_OP_32, f"[D] CACM 2022 prices no multiply: carried over from "
                                      f"{CACM2020}, DP FP multiply 5 pJ [S], scaled (32/64)^2; "
                                      "scaled by (bits/32)^2")
    return EnergyPreset(
        name="dally-2022",
        description="Dally's CACM 2022 'today' numbers: 30 fJ/bit-mm wire, 20 fJ per 32-bit "
                    "add, 20 pJ/bit main memory",
        wire_fj_per_bit_mm=Constant(30.0, "fJ/bit/mm", f"{CACM2022}: 64 bits x 1 mm = 1.9 pJ, "
                                                       "64 bits x 40 mm = 77 pJ [P]"),
        area_um2_per_bit=DALLY_AREA,
        kappa=KAPPA3,
        sram_fixed_fj_per_bit=Constant(45.0, PER_BIT, f"[D] 8 KB SRAM = 50 fJ/bit ({CACM2020} "
                                                      "[S]) minus its wire part with e_w=30; "
                                                      "gives 256 MB = 60.7 pJ per 64 b "
                                                      "(CACM 2022: 58)"),
        arith=_frozen(_derived_arith(add, mul)),
        offchip=_frozen({
            "dram": _dram(20_000.0, f"{CACM2022}: two 32-bit words from main memory = 1.3 nJ [P]"),
            "hbm": _hbm(3_900.0, f"{OCONNOR}: HBM2 access"),
        }),
    )


def _horowitz_arith() -> dict[str, Constant]:
    table = f"{HOROWITZ} (45 nm, 0.9 V)"
    int_add = Constant(100 / 32, PER_BIT, f"{table}: 32-bit int add 0.1 pJ")
    int_mul = Constant(3100.0, PER_OP_32, f"{table}: 32-bit int mult 3.1 pJ; scaled by (bits/32)^2")
    fp_add = Constant(900 / 32, PER_BIT, f"{table}: 32-bit FP add 0.9 pJ")
    fp_mul = Constant(3700.0, PER_OP_32, f"{table}: 32-bit FP mult 3.7 pJ; scaled by (bits/32)^2")
    floats = {f"{op}.float": c for op, c in _derived_arith(fp_add, fp_mul).items()
              if op not in ("cmp", "max", "min")}
    rows = {"add.i8": Constant(30.0, PER_OP, f"{table}: 8-bit int add 0.03 pJ"),
            "mul.i8": Constant(200.0, PER_OP, f"{table}: 8-bit int mult 0.2 pJ"),
            "add.f16": Constant(400.0, PER_OP, f"{table}: 16-bit FP add 0.4 pJ"),
            "mul.f16": Constant(1100.0, PER_OP, f"{table}: 16-bit FP mult 1.1 pJ")}
    return {**_derived_arith(int_add, int_mul), **floats, **rows}


def _horowitz_kappa() -> float:
    """kappa that makes e_w * sqrt(a * C) reproduce E64(C) = 3.5 pJ * sqrt(C / 1 KB), E0 = 0."""
    fj_per_bit_at_1kb = 3500.0 / 64
    wire_fj_per_bit_per_kappa = 121.0 * math.sqrt(0.36 * 8 * 1024) / 1000
    return fj_per_bit_at_1kb / wire_fj_per_bit_per_kappa


def _horowitz_45nm() -> EnergyPreset:
    fit = ("fit E64(C) = 3.5 pJ x sqrt(C / 1 KB) to the cache rows 8 KB / 32 KB / 1 MB = "
           f"10 / 20 / 100 pJ per 64 b of {HOROWITZ}")
    return EnergyPreset(
        name="horowitz-45nm",
        description="Horowitz's ISSCC 2014 energy table (45 nm, 0.9 V), caches by a sqrt fit "
                    "to its three cache rows; DRAM, no HBM",
        wire_fj_per_bit_mm=Constant(121.0, "fJ/bit/mm", "Keckler, Dally et al., 'GPUs and the "
                                                        "Future of Parallel Computing', IEEE Micro "
                                                        "31(5) 2011, Table 1 p.9: 40 nm, 0.9 V, "
                                                        "per random bit [S]"),
        area_um2_per_bit=Constant(0.36, "um^2/bit", "CACTI 7 RAM area per bit, 45 nm itrs-hp [C]"),
        kappa=Constant(_horowitz_kappa(), "mm/mm", f"[D] effective kappa of 8-way caches "
                                                   f"(tags, parallel ways), from the {fit}"),
        sram_fixed_fj_per_bit=Constant(0.0, PER_BIT, f"[D] the {fit} has no fixed term"),
        arith=_frozen(_horowitz_arith()),
        offchip=_frozen({
            "dram": _dram(20_000.0, f"{HOROWITZ}: DRAM read 1.3-2.6 nJ per 64 b; low end, "
                                    "20 pJ/bit [D]"),
        }),
    )


def _modern_5nm_hbm3() -> EnergyPreset:
    add = Constant(0.625, PER_BIT, f"{CACM2022}: 32-bit add = 20 fJ [P]")
    mul = Constant(5000 / 2.25 / 4, PER_OP_32,
                   f"[D] {CACM2020}: DP FP multiply 5 pJ at 14 nm [S], / 2.25 for 16 -> 5 nm "
                   "(Dally 2021 talk via DALLY-NODES row 22 [S]), scaled (32/64)^2; scaled by "
                   "(bits/32)^2")
    return EnergyPreset(
        name="modern-5nm-hbm3",
        description="A 5 nm accelerator: 5 nm NoC wires, N5/N3E SRAM density, HBM3-class memory",
        wire_fj_per_bit_mm=Constant(50.0, "fJ/bit/mm", "Dally, NOCS 2022 keynote, slide at 14:10 "
                                                       "(5 nm NoC) [S]; Dally, Hot Interconnects "
                                                       "2023 keynote, 21:50 [S]"),
        area_um2_per_bit=Constant(0.030, "um^2/bit", "WikiChip, 'IEDM 2022: Did we just witness "
                                                     "the death of SRAM?': N3E 31.8 Mib/mm^2 incl. "
                                                     "periphery [S] -> [D]"),
        kappa=KAPPA3,
        sram_fixed_fj_per_bit=Constant(15.3, PER_BIT, f"[D] 8 KB SRAM = 22 fJ/bit (50 fJ/bit "
                                                      f"from {CACM2020} [S], / 2.25 for 16 -> 5 "
                                                      "nm, Dally 2021 talk via DALLY-NODES row "
                                                      "22 [S]) minus its wire part"),
        arith=_frozen(_derived_arith(add, mul)),
        offchip=_frozen({
            "dram": _dram(20_000.0, f"{CACM2022}: two 32-bit words from main memory = 1.3 nJ "
                                    "[P]; no 5 nm-era DDR figure in the sources, so the 'today' "
                                    "one [D]"),
            "hbm": _hbm(3_500.0, "Moon, Son, Lee (SK hynix), IEDM 2023 paper 15-6, handout p.2: "
                                 "HBM3E ~3.44 pJ/bit (range 3.4-4.3) [S]"),
        }),
    )


PRESETS: dict[str, EnergyPreset] = {p.name: p for p in (
    _dally_2020(), _dally_2022(), _horowitz_45nm(), _modern_5nm_hbm3())}


def get_preset(name: str, where: str = "energy preset") -> EnergyPreset:
    """The preset called `name`; a SimError listing the known names otherwise."""
    if name not in PRESETS:
        raise SimError(f"unknown energy preset '{name}'; known presets: {', '.join(PRESETS)}",
                       where)
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------
# Memory levels

def sram_fj_per_bit(preset: EnergyPreset, capacity_bytes: int) -> tuple[float, float]:
    """(fixed E0, wire kappa * e_w * sqrt(a * C_bits)) per bit for an on-chip array.

    a * C_bits is an area in um^2, so its square root is the array side in um; / 1000 -> mm.
    """
    if capacity_bytes <= 0:
        raise SimError(f"capacity must be > 0 bytes, got {capacity_bytes}", "energy")
    side_mm = math.sqrt(preset.area_um2_per_bit.value * 8 * capacity_bytes) / 1000
    wire = preset.kappa.value * preset.wire_fj_per_bit_mm.value * side_mm
    return preset.sram_fixed_fj_per_bit.value, wire


def level_energies(hierarchy, preset_name: str) -> list[LevelEnergy]:
    """Every level of `hierarchy` priced by the preset: what a command checks before its long
    part. A level the preset cannot price is an error placed at the hierarchy's file, or at
    --energy when the hierarchy is a preset too."""
    preset = get_preset(preset_name, where="--energy")
    try:
        return [level_energy(level, preset) for level in hierarchy.levels]
    except SimError as e:
        source = getattr(hierarchy, "source", "")
        raise SimError(e.message, "--energy" if not source or source.startswith("preset:")
                       else source) from None


def level_energy(level, preset: EnergyPreset) -> LevelEnergy:
    """Per-bit energy of one access to `level` (duck-typed hierarchy Level).

    Order: a given `energy_fj_per_bit` wins (all of it fixed: we cannot split an opaque number);
    then an off-chip kind (device is fixed, route is wire); then the sqrt law on capacity.
    """
    if getattr(level, "energy_fj_per_bit", None) is not None:
        return _given_energy(level)
    if getattr(level, "offchip", None) is not None:
        return _offchip_energy(level, preset)
    if getattr(level, "capacity_bytes", None) is None:
        raise SimError(f"level '{level.name}' has no capacity, no off-chip kind and no "
                       "energy_fj_per_bit, so its energy cannot be priced", f"level '{level.name}'")
    return _onchip_energy(level, preset)


def _given_energy(level) -> LevelEnergy:
    value = float(level.energy_fj_per_bit)
    if not value >= 0:
        raise SimError(f"energy_fj_per_bit must be >= 0, got {level.energy_fj_per_bit}",
                       f"level '{level.name}'")
    return LevelEnergy(value, value, 0.0, GIVEN)


def _offchip_energy(level, preset: EnergyPreset) -> LevelEnergy:
    kind = level.offchip
    if kind not in preset.offchip:
        raise SimError(f"level '{level.name}' is off-chip '{kind}', which energy preset "
                       f"'{preset.name}' does not price (it has: {', '.join(preset.offchip)}); "
                       f"choose another --energy or give the level an energy_fj_per_bit",
                       f"energy preset '{preset.name}'")
    chip = preset.offchip[kind]
    device = chip.device_fj_per_bit.value
    route = chip.route_mm.value * preset.wire_fj_per_bit_mm.value
    source = (f"{preset.name} {kind}: device {device:g} fJ/bit + {chip.route_mm.value:g} mm "
              f"route x {preset.wire_fj_per_bit_mm.value:g} fJ/bit/mm")
    return LevelEnergy(device + route, device, route, source)


def _onchip_energy(level, preset: EnergyPreset) -> LevelEnergy:
    fixed, wire = sram_fj_per_bit(preset, level.capacity_bytes)
    source = (f"{preset.name} sqrt law: E0 {fixed:g} + kappa {preset.kappa.value:.4g} x e_w "
              f"{preset.wire_fj_per_bit_mm.value:g} x sqrt({preset.area_um2_per_bit.value:g} "
              f"um^2 x {8 * level.capacity_bytes} bits)")
    return LevelEnergy(fixed + wire, fixed, wire, source)


# ---------------------------------------------------------------------------------------------
# Arithmetic

def check_arith(kernels, preset_name: str, where: str) -> None:
    """Every kernel's arithmetic priced once, before a trace file is simulated: a key the model
    cannot read is an error at the file, not after the simulation."""
    preset = get_preset(preset_name, where="--energy")
    for k in kernels:
        for key, count in k.arith.items():
            try:
                arith_fj(key, count, preset)
            except SimError as e:
                raise SimError(f"kernel '{k.name}': {e.message}", where) from None


def arith_fj(op_key: str, count: int, preset: EnergyPreset) -> float:
    """Energy of `count` ops `op_key` ("add.f32", "fma.f16", ...) in fJ.

    Lookup: "op.<dtype>" (an exact row, fJ per op), then "op.float" / "op.int", then "op"; an op
    the preset does not list at all is priced as an add of the same dtype. Per-bit constants
    scale with the dtype's width, QUADRATIC_OPS with (bits / 32) ** 2.
    """
    op, dtype = _split_op_key(op_key)
    if count < 0:
        raise SimError(f"op count must be >= 0, got {count} for '{op_key}'", "energy")
    return count * _per_op_fj(op, dtype, preset)


def _split_op_key(op_key: str) -> tuple[str, str]:
    op, sep, dtype = op_key.partition(".")
    if not sep or not op:
        raise SimError(f"arithmetic key '{op_key}' should look like 'op.dtype', "
                       "for example 'add.f32'", "energy")
    if dtype not in DTYPE_BYTES:
        raise SimError(f"arithmetic key '{op_key}': unknown dtype '{dtype}'; known dtypes: "
                       f"{', '.join(DTYPE_BYTES)}", "energy")
    return op, dtype


def _per_op_fj(op: str, dtype: str, preset: EnergyPreset) -> float:
    family = "float" if dtype in FLOAT_DTYPES else "int"
    for key in (f"{op}.{dtype}", f"{op}.{family}", op):
        if key in preset.arith:
            return _scaled(op, key == f"{op}.{dtype}", preset.arith[key], 8 * DTYPE_BYTES[dtype])
    if op == "add":
        raise SimError(f"energy preset '{preset.name}' prices no 'add'", "energy")
    return _per_op_fj("add", dtype, preset)


def _scaled(op: str, exact_row: bool, constant: Constant, bits: int) -> float:
    if exact_row:
        return constant.value
    if op in QUADRATIC_OPS:
        return constant.value * (bits / 32) ** 2
    return constant.value * bits


# ---------------------------------------------------------------------------------------------
# The continuous distance model

def distance_unit_fj(preset: EnergyPreset, kappa: float | None = None) -> float:
    """u = 8 * kappa * e_w * sqrt(8 a): energy of one ByteDMD cost unit for one byte, in fJ.

    A byte at LRU depth d sits sqrt(d) cell pitches away, and a pitch is sqrt(8 a) um; e_w is
    taken per um. `kappa` defaults to the preset's (pass 1 for data moving one way only).
    """
    k = preset.kappa.value if kappa is None else kappa
    e_w_per_um = preset.wire_fj_per_bit_mm.value / 1000
    return 8 * k * e_w_per_um * math.sqrt(8 * preset.area_um2_per_bit.value)


# ---------------------------------------------------------------------------------------------
# Rendering

def preset_constants(preset: EnergyPreset) -> list[tuple[str, Constant]]:
    """Every constant of a preset, named as in docs/energy.md."""
    rows = [("e_w", preset.wire_fj_per_bit_mm), ("a", preset.area_um2_per_bit),
            ("kappa", preset.kappa), ("E0", preset.sram_fixed_fj_per_bit)]
    rows += [(f"arith {key}", c) for key, c in preset.arith.items()]
    for kind, chip in preset.offchip.items():
        rows += [(f"{kind} device", chip.device_fj_per_bit), (f"{kind} route", chip.route_mm)]
    return rows


def preset_table(preset: EnergyPreset) -> str:
    """A markdown table of a preset's constants with their sources (used in docs/energy.md)."""
    lines = ["| constant | value | unit | source |", "|---|---|---|---|"]
    lines += [f"| {name} | {_number(c.value)} | {c.unit} | {c.source} |"
              for name, c in preset_constants(preset)]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:.5g}"
