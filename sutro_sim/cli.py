"""The `sutro-sim` command: the one place where the simulator meets the rest.

User mistakes (SimError) print `where: error: message` on stderr and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from simulator import energy as energy_mod
from simulator.errors import SimError
from simulator.hierarchy import list_presets, load_hierarchy
from simulator.report import size, table

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SimError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sutro-sim ... | head`
        sys.stdout = None
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sutro-sim", description="Compiler and energy simulator for "
                                "inventing energy-efficient learning algorithms.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("simulate", help="replay an access trace through a memory hierarchy",
                       description="Replay an access trace (.npz) through a memory hierarchy: "
                       "reuse distances, hits per level, energy.")
    s.add_argument("trace", help="trace file (.npz, see docs/trace-format.md)")
    s.add_argument("--hierarchy", default="sutro-tiers",
                   help="preset name or TOML file (default: sutro-tiers; list: sutro-sim hierarchies)")
    s.add_argument("--energy", default="dally-2020",
                   help="energy preset (default: dally-2020; list: sutro-sim energies)")
    s.add_argument("--cost-models", action="store_true",
                   help="also compute the seed's memtracker measure, ByteDMD and the address cost")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    s.set_defaults(func=cmd_simulate)
    h = sub.add_parser("hierarchies", help="list the hierarchy presets")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_hierarchies)
    e = sub.add_parser("energies", help="list the energy presets and their sources")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_energies)
    return p


def cmd_simulate(args) -> int:
    from simulator.progress import ProgressBar
    from simulator.report import render
    from simulator.simulate import simulate
    from simulator.trace import load

    trace = load(args.trace)
    hierarchy = load_hierarchy(args.hierarchy)
    energy_mod.get_preset(args.energy, where="--energy")  # fail before the long part
    bar = ProgressBar("simulating")
    try:
        result = simulate(trace, hierarchy, args.energy, progress=bar)
    finally:
        bar.close()
    extra = _cost_models(trace) if args.cost_models else {}
    if args.plot:
        from simulator.plots import write_plots
        paths = write_plots(result, args.plot)
    if args.json:
        print(json.dumps(dict(result.to_dict(), **extra), indent=1))
    else:
        print(render(result))
        if extra:
            print("\n" + _render_cost_models(extra))
        if args.plot:
            print("\nplots: " + ", ".join(paths))
    return 0


def _cost_models(trace) -> dict:
    from simulator.costmodels import address_cost, bytedmd
    from simulator.memtracker import event_table, memtracker, with_inputs_written

    events = with_inputs_written(event_table(trace), trace)
    out = {"memtracker": memtracker(events).to_dict()}
    cell = min((b.elem_bytes for b in trace.buffers), default=1)
    origin = min((b.base for b in trace.buffers), default=0) - cell  # first element = cell 1
    out["address_cost"] = address_cost(trace, cell_bytes=cell, origin=origin).to_dict()
    has_instr = any(c.instr is not None for c in trace)
    out["bytedmd"] = bytedmd(trace).to_dict() if has_instr else None
    return out


def _render_cost_models(extra: dict) -> str:
    m = extra["memtracker"]
    lines = [f"memtracker (seed measure)  per-read ARD {m['per_read_ard_elements']:,.0f}, "
             f"per-element ARD {m['per_element_ard_elements']:,.0f}",
             f"address cost (Dally)       {extra['address_cost']['cost']:,}"]
    b = extra["bytedmd"]
    lines.append(f"ByteDMD                    {b['cost']:,}" if b else
                 "ByteDMD                    - (the trace has no instruction ids)")
    return "\n".join(lines)


def cmd_hierarchies(args) -> int:
    presets = list_presets()
    if args.json:
        print(json.dumps([_hierarchy_dict(h) for h in presets], indent=1))
        return 0
    for h in presets:
        print(f"{h.name}: {h.description}")
        rows = [_level_row(lv) for lv in h.levels]
        print(table(["level", "capacity", "line", "ways", "policy", "fJ/bit given"], rows) + "\n")
    return 0


def _level_row(lv) -> list[str]:
    given = "-" if lv.energy_fj_per_bit is None else f"{lv.energy_fj_per_bit:g}"
    if lv.capacity_bytes is None:
        return [lv.name, "memory", "-", "-", "-", given]
    return [lv.name, size(lv.capacity_bytes), f"{lv.line_bytes} B",
            "full" if lv.ways is None else str(lv.ways), lv.policy, given]


def _hierarchy_dict(h) -> dict:
    return {"name": h.name, "description": h.description,
            "levels": [{"name": lv.name, "capacity_bytes": lv.capacity_bytes,
                        "line_bytes": lv.line_bytes, "ways": lv.ways, "policy": lv.policy,
                        "energy_fj_per_bit": lv.energy_fj_per_bit, "offchip": lv.offchip}
                       for lv in h.levels]}


def cmd_energies(args) -> int:
    presets = list(energy_mod.PRESETS.values())
    if args.json:
        print(json.dumps([{"name": p.name, "description": p.description,
                           "constants": {k: {"value": c.value, "unit": c.unit, "source": c.source}
                                         for k, c in energy_mod.preset_constants(p)}}
                          for p in presets], indent=1))
        return 0
    for p in presets:
        print(f"{p.name}: {p.description}")
        rows = [[k, f"{c.value:g} {c.unit}", c.source] for k, c in energy_mod.preset_constants(p)]
        print(table(["constant", "value", "source"], rows, left=(0, 2)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
