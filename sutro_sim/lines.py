"""`run --by-line`: energy, accesses and reuse distance per source line, printed beside the
program like a line profiler.

A line is charged for the values it defines (sutro_ir.tracegen.StepTrace.sources: the first
node writing each buffer; a parameter's is its `param` line, the example's its `train` line):
every write of them and every read of them, wherever the reader is, at the level that served
it; and for the arithmetic of the kernels it ends. The buffer table is exact, so the lines' sums
are too: what is left unattributed is energy the trace names no line for (bytes outside every
buffer, kernels made by the simulator)."""

from __future__ import annotations

from simulator.report import count, energy, table
from sutro_ir.syntax import source_lines


def by_line(sim, program_text: str) -> dict:
    """Per line of the program: energy (memory and arithmetic), reads, writes, the ARD of
    the reads of its values, and the buffers it defines; with the fraction attributed."""
    text = source_lines(program_text)
    rows: dict[int, dict] = {}

    def row(line: int) -> dict:
        return rows.setdefault(line, {"line": line, "text": text[line - 1] if 0 < line <= len(text)
                                      else "", "energy_fj": 0.0, "memory_fj": 0.0,
                                      "arithmetic_fj": 0.0, "reads": 0, "writes": 0,
                                      "ard": None, "buffers": [], "_finite": 0, "_dist": 0.0})
    by_buffer = sim.energy.by_buffer
    for b in sim.reuse.buffers:
        src = sim.source(b.name)
        if src is None:
            continue
        r = row(src["line"])
        e = by_buffer.get(b.name, 0.0)
        r["memory_fj"] += e
        r["reads"] += b.reads
        r["writes"] += b.writes
        finite = b.reads - b.cold_reads
        if finite and b.min is not None:
            r["_finite"] += finite
            r["_dist"] += b.ard * finite
        r["buffers"].append(b.name)
    lines_of = sim.meta.get("kernel_lines", {})
    for kernel, e in sim.energy.by_kernel.items():
        if kernel in lines_of and e:
            row(lines_of[kernel])["arithmetic_fj"] += e
    out = []
    for line in sorted(rows):
        r = rows[line]
        r["energy_fj"] = r["memory_fj"] + r["arithmetic_fj"]
        finite, dist = r.pop("_finite"), r.pop("_dist")
        r["ard"] = dist / finite if finite else None
        out.append(r)
    total = sim.energy.total
    attributed = sum(r["energy_fj"] for r in out)
    return {"attributed_fraction": attributed / total if total else 1.0,
            "unattributed_fj": total - attributed, "total_fj": total, "lines": out}


SOURCE_WIDTH = 100     # a longer source line is cut, in the table only


def render_by_line(d: dict, program_text: str, path: str) -> str:
    """The program's lines with their figures beside them."""
    rows = {r["line"]: r for r in d["lines"]}
    total = d["total_fj"] or 1.0
    body = []
    for number, line in enumerate(source_lines(program_text), start=1):
        r = rows.get(number)
        figures = (["", "", "", "", ""] if r is None else
                   [energy(r["energy_fj"]), f"{100 * r['energy_fj'] / total:.1f}%",
                    count(r["reads"]), count(r["writes"]),
                    "-" if r["ard"] is None else f"{r['ard']:,.1f}"])
        line = line.rstrip()
        body.append([str(number), *figures,
                     line if len(line) <= SOURCE_WIDTH else line[:SOURCE_WIDTH - 3] + "..."])
    head = (f"by line    {path}: each line is charged for the values it defines (their writes "
            "and every read of them) and the arithmetic of the kernels it ends; "
            f"{100 * d['attributed_fraction']:.2f}% of {energy(d['total_fj'])} attributed")
    return head + "\n\n" + table(["line", "energy", "share", "reads", "writes", "ARD (elem)",
                                  "source"], body, left=(6,))
