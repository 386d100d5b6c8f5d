"""Terminal rendering of a simulation Result: one row per level, then energy, then buffers."""

from __future__ import annotations

from typing import Sequence

from .simulate import Result, step_ranges

ENERGY_UNITS = ((1e15, "J"), (1e12, "mJ"), (1e9, "uJ"), (1e6, "nJ"), (1e3, "pJ"), (1.0, "fJ"))


def energy(fj: float) -> str:
    """12.3 pJ style: femtojoules scaled to the largest unit that keeps the value >= 1."""
    for scale, unit in ENERGY_UNITS:
        if abs(fj) >= scale:
            return f"{fj / scale:,.3g} {unit}" if fj / scale < 1000 else f"{fj / scale:,.0f} {unit}"
    return f"{fj:.3g} fJ"


def count(n) -> str:
    return "-" if n is None else f"{n:,}"


def size(nbytes) -> str:
    if nbytes is None:
        return "-"
    for scale, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if nbytes >= scale:
            if not nbytes % scale:
                return f"{nbytes // scale} {unit}"
            value = nbytes / scale    # 3 significant digits, never exponent notation (1,023 KiB)
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return f"{nbytes} B"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> str:
    """Columns right-aligned except those in `left`; a rule under the header."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def render(result: Result, summary: bool = True) -> str:
    """The whole report; summary=False leaves out the head (for callers that print their own)."""
    tables = [_levels(result), _energy(result), _buffers(result)]
    return "\n\n".join([_summary(result)] * summary + tables)


def _summary(r: Result) -> str:
    return "\n".join([
        f"trace      {r.trace}",
        f"hierarchy  {r.hierarchy}    energy preset  {r.energy.preset}",
        f"steps      {len(r.steps)} traced ({_steps(r)})",
        *access_lines(r.reuse),
    ])


def access_lines(u) -> list[str]:
    """Accesses and ARD, the two lines every report opens with."""
    return [
        f"accesses   {u.reads + u.writes:,}: {u.reads:,} reads ({size(u.read_bytes)}), "
        f"{u.writes:,} writes ({size(u.write_bytes)})",
        f"reuse      ARD {u.ard:,.1f} elements = {u.ard_bytes:,.1f} bytes over "
        f"{u.finite_reads:,} reads; {u.cold_reads:,} cold reads (first touch, not averaged)",
    ]


def _steps(r: Result) -> str:
    return step_ranges(r.steps) or "none"


def _levels(r: Result) -> str:
    headers = ["level", "capacity", "line", "ways", "policy", "accesses", "hits", "misses",
               "hit rate", "evictions", "writebacks", "bytes in", "bytes out", "energy"]
    rows = [_level_row(s, r.energy.by_level[s.name]) for s in r.levels]
    return table(headers, rows)


def _level_row(s, fj: float) -> list[str]:
    if s.capacity_bytes is None:  # memory serves every request
        return [s.name, "memory", "-", "-", "-", count(s.accesses), "-", "-", "-", "-", "-", "-",
                "-", energy(fj)]
    return [s.name, size(s.capacity_bytes), f"{s.line_bytes} B",
            "full" if s.ways is None else str(s.ways), s.policy, count(s.accesses),
            count(s.hits), count(s.misses), f"{100 * s.hit_rate:.2f}%", count(s.evictions),
            count(s.writebacks), size(s.bytes_in), size(s.bytes_out), energy(fj)]


def _energy(r: Result) -> str:
    e = r.energy
    memory = sum(e.by_level.values())
    lines = [f"energy     {energy(e.total)} total = {energy(memory)} memory hierarchy "
             f"+ {energy(e.arithmetic)} arithmetic"]
    given = list(e.given)
    if len(given) == len(e.by_level):
        lines.append("           the level energies are given by the hierarchy, not derived: "
                     "--energy sets only the arithmetic and the distance unit")
    else:
        derived = memory - sum(e.by_level[n] for n in given)
        lines.append(f"           of the derived levels' {energy(derived)}, {energy(e.wire)} is "
                     f"wire ({100 * e.wire / derived if derived else 0:.0f}%)"
                     + (f"; {', '.join(given)} given by the hierarchy" if given else ""))
    lines.append(f"           sqrt-distance model (another estimate, not in the total): "
                 f"{energy(e.distance)} for reads at finite depth + {energy(e.distance_cold)} "
                 f"for cold reads at {r.levels[-1].name}")
    return "\n".join(lines)


NAME_WIDTH = 32     # a temporary's expression is cut to this many characters


def buffer_label(r: Result, name: str) -> str:
    """A buffer as a person reads it: a temporary (`%N`) with the expression that computes
    it (`%0 = W1 @ x`), else its name."""
    src = r.source(name)
    if not src or not name.split(".")[-1].startswith("%") or src["text"] == name:
        return name
    label = f"{name} = {src['text']}"
    return label if len(label) <= NAME_WIDTH else label[:NAME_WIDTH - 3] + "..."


def _buffers(r: Result) -> str:
    lines = any(r.source(b.name) for b in r.reuse.buffers)
    headers = ["buffer", *(["line"] if lines else []), "bytes", "reads", "writes", "cold",
               "ARD (elem)", "min", "max", "served by", "energy"]
    rows = [[buffer_label(r, b.name),
             *([str(r.source(b.name)["line"]) if r.source(b.name) else "-"] if lines else []),
             size(b.nbytes), count(b.reads), count(b.writes), count(b.cold_reads),
             f"{b.ard:,.1f}" if b.min is not None else "-", count(b.min), count(b.max),
             b.served_by or "-", energy(r.energy.by_buffer.get(b.name, 0.0))]
            for b in r.reuse.buffers]
    return table(headers, rows)
