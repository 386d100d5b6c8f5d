"""PNG plots of a Result: reuse-distance histogram and CDF, energy by level and by buffer."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False   # a `$` in a file or buffer name is a `$`
import matplotlib.pyplot as plt  # noqa: E402

from .errors import SimError  # noqa: E402
from .report import ENERGY_UNITS, energy, size  # noqa: E402
from .simulate import Result, step_ranges  # noqa: E402


def write_plots(result: Result, folder: str, history: list[dict] | None = None,
                title: str = "") -> list[str]:
    """Write the four plots into folder (created if needed), and with `history` (a run's
    epochs: dicts with epoch, train_accuracy, test_accuracy, learning_energy_fj) a fifth:
    accuracy against the learning energy spent so far, the figure that compares algorithms.
    Returns their paths."""
    plots = [("reuse_histogram", _histogram), ("reuse_cdf", _cdf),
             ("energy_by_level", _energy_by_level), ("energy_by_buffer", _energy_by_buffer)]
    if history:
        plots.append(("history", lambda _, ax: _history((history, title), ax)))
    return write_figures(folder, result, (7, 4), plots, caption(result))


def caption(r: Result) -> str:
    """What a figure is of: the program (or trace), the hierarchy, the energy preset and the
    traced steps (a long list of sampled steps cut short)."""
    steps = step_ranges(r.steps)
    steps = steps if len(steps) <= 40 else steps[:37] + "..."
    source = str(r.meta.get("program") or r.trace)
    return (f"{os.path.basename(source) or source}  |  hierarchy {r.hierarchy}  |  energy "
            f"{r.energy.preset}  |  steps {steps}")


def caption_of_many(results: list[Result]) -> str:
    """caption() of several results: each program, hierarchy and preset they cover."""
    if not results:
        return ""
    def each(values) -> str:
        return ", ".join(dict.fromkeys(values))
    sources = [str(r.meta.get("program") or r.trace) for r in results]
    steps = step_ranges(results[0].steps)
    steps = steps if len(steps) <= 40 else steps[:37] + "..."
    return (f"{each(os.path.basename(s) or s for s in sources)}  |  hierarchy "
            f"{each(r.hierarchy for r in results)}  |  energy "
            f"{each(r.energy.preset for r in results)}  |  steps {steps}")


def write_figures(folder: str, data, figsize: tuple, plots: list,
                  caption: str = "") -> list[str]:
    """Each (name, draw) of `plots` drawn from `data` into folder/name.png, with `caption` above
    it; the paths."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise SimError(f"cannot make {folder}: {e.strerror}", "--plot") from None
    for name, _ in plots:         # every target checked before the first is written
        if os.path.isdir(os.path.join(folder, f"{name}.png")):
            raise SimError(f"{os.path.join(folder, name)}.png is a directory", "--plot")
    paths, written = [], []
    try:
        for name, draw in plots:
            fig, ax = plt.subplots(figsize=figsize)
            try:
                draw(data, ax)
                if caption:
                    fig.suptitle(caption, fontsize=8, color="0.35")
                fig.tight_layout()
                path = os.path.join(folder, f"{name}.png")
                tmp = os.path.join(folder, f".{name}.png.tmp")
                written.append(tmp)
                fig.savefig(tmp, dpi=110, format="png")
            finally:
                plt.close(fig)
            paths.append(path)
        for tmp, path in zip(written, paths):       # every figure drawn: then all appear
            os.replace(tmp, path)
    except OSError as e:
        for tmp in written:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise SimError(f"cannot write the plots into {folder}: {e.strerror or e}",
                       "--plot") from None
    return paths


def _bin_labels(n: int) -> list[str]:
    return (["0"] + [f"{1 << (k - 1)}" for k in range(1, n)])[:n]


def _histogram(r: Result, ax) -> None:
    h = r.reuse.histogram
    ax.bar(range(len(h)), h, color="#4472c4")
    ax.set_xticks(range(len(h)), _bin_labels(len(h)), rotation=60, fontsize=7)
    ax.set_xlabel("LRU stack distance (elements), log2 bins: [label, 2 x label)")
    ax.set_ylabel("reads")
    ax.set_title(f"Reuse distance: ARD {r.reuse.ard:,.1f} elements, "
                 f"{r.reuse.cold_reads:,} cold reads not shown")


def log_scale(ax, axis: str = "x", base: float = 10) -> None:
    """A log axis whose tick labels are plain numbers: the default labels are mathtext, which
    is off here (text.parse_math), so they would print as `$\\mathdefault{10^{3}}$`."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{axis}scale")("log", base=base)
    which = ax.xaxis if axis == "x" else ax.yaxis
    which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
    which.set_minor_formatter(NullFormatter())


def _cdf(r: Result, ax) -> None:
    cdf = r.reuse.cdf()
    if cdf:
        ax.step([b for b, _ in cdf], [f for _, f in cdf], where="post", color="#4472c4")
    log_scale(ax, "x", 2)
    ax.set_ylim(0, 1.02)
    _capacities(r, ax)
    ax.set_xlabel("LRU stack distance below (elements); dotted: level capacities")
    ax.set_ylabel("fraction of finite reads")
    ax.set_title("Reuse distance CDF")


def _capacities(r: Result, ax) -> None:
    """A dotted line at each cache level's capacity, in elements of the mean read size."""
    elem_bytes = r.reuse.read_bytes / r.reuse.reads if r.reuse.reads else 4.0
    for s in r.levels[:-1]:
        elements = s.capacity_bytes / elem_bytes
        ax.axvline(elements, color="gray", ls=":", lw=1)
        ax.text(elements, 0.02, f" {s.name} ({size(s.capacity_bytes)})", rotation=90,
                fontsize=7, color="gray")


LABEL_CHARS = 40


def _short(labels: list[str]) -> list[str]:
    """Labels cut to LABEL_CHARS (a buffer name or a pipeline can be any length), still one
    apiece."""
    out = [s if len(s) <= LABEL_CHARS else s[:LABEL_CHARS - 1] + "\u2026" for s in labels]
    seen: dict[str, int] = {}
    for i, s in enumerate(out):
        seen[s] = seen.get(s, 0) + 1
        if seen[s] > 1:
            out[i] = f"{s} ({seen[s]})"
    return out


def _barh(ax, labels, values_fj, title) -> None:
    labels = _short(labels)
    scale, unit = next(((s, u) for s, u in ENERGY_UNITS if max(values_fj, default=0) >= s),
                       (1.0, "fJ"))
    ax.barh(labels[::-1], [v / scale for v in values_fj[::-1]], color="#ed7d31")
    ax.set_xlabel(f"energy ({unit})")
    ax.set_title(title)


def _energy_by_level(r: Result, ax) -> None:
    e = r.energy
    labels = list(e.by_level) + ["arithmetic"]
    _barh(ax, labels, list(e.by_level.values()) + [e.arithmetic],
          f"Energy by level ({r.energy.preset}), total {energy(e.total)}")


def _energy_by_buffer(r: Result, ax) -> None:
    items = sorted(r.energy.by_buffer.items(), key=lambda kv: -kv[1])[:20]
    _barh(ax, [k for k, _ in items], [v for _, v in items], "Energy by buffer (top 20)")


def write_comparison(results: list[tuple[str, Result]], folder: str,
                     tradeoff: list[tuple[int, int]] | None = None) -> list[str]:
    """Several labelled results of one program: reuse-distance CDFs overlaid, and energy by
    level (plus arithmetic) as bars side by side; with `tradeoff` ((arithmetic ops, peak live
    bytes) per result), energy against arithmetic too. Returns the paths."""
    results = list(zip(_short([label for label, _ in results]), [r for _, r in results]))
    plots = [("compare_reuse_cdf", _cdf_overlay), ("compare_energy", _energy_bars)]
    if tradeoff is not None:
        plots.append(("compare_tradeoff", lambda res, ax: _tradeoff(res, tradeoff, ax)))
    return write_figures(folder, results, (8, 4.5), plots,
                         caption_of_many([r for _, r in results]))


STYLES = ("-", "--", "-.", ":")     # curves that coincide stay told apart


def _cdf_overlay(results, ax) -> None:
    for k, (label, r) in enumerate(results):
        cdf = r.reuse.cdf()
        if cdf:
            ax.step([b for b, _ in cdf], [f for _, f in cdf], where="post",
                    ls=STYLES[k % len(STYLES)], lw=1.5 + 0.5 * (k % 2),
                    label=f"{label} (ARD {r.reuse.ard:,.0f})")
    log_scale(ax, "x", 2)
    ax.set_ylim(0, 1.02)
    if results:
        _capacities(results[0][1], ax)
    ax.set_xlabel("LRU stack distance below (elements); dotted: level capacities")
    ax.set_ylabel("fraction of finite reads")
    ax.set_title("Reuse distance CDF by pipeline")
    ax.legend(fontsize=7, loc="upper left")


def _energy_bars(results, ax) -> None:
    totals = [r.energy.total for _, r in results]
    scale, unit = next(((s, u) for s, u in ENERGY_UNITS if max(totals, default=0) >= s),
                       (1.0, "fJ"))
    parts = list(dict.fromkeys(lv for _, r in results for lv in r.energy.by_level))
    parts.append("arithmetic")                 # every row's levels (hierarchies may differ)
    x = range(len(results))
    bottom = [0.0] * len(results)
    for part in parts:
        values = [(r.energy.arithmetic if part == "arithmetic" else r.energy.by_level.get(part, 0.0))
                  / scale for _, r in results]
        ax.bar(x, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    for i, total in zip(x, totals):     # each bar's total above it
        ax.text(i, total / scale, energy(total), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x), [label for label, _ in results], rotation=20, fontsize=7, ha="right")
    ax.set_ylabel(f"energy ({unit})")
    ax.set_title("Energy by level, per pipeline (same traced steps)")
    ax.legend(fontsize=7)


def _tradeoff(results, tradeoff, ax) -> None:
    """Energy against arithmetic, each point labelled with its peak live bytes."""
    totals = [r.energy.total for _, r in results]
    scale, unit = next(((s, u) for s, u in ENERGY_UNITS if max(totals, default=0) >= s),
                       (1.0, "fJ"))
    for (label, r), (ops, peak) in zip(results, tradeoff):
        ax.scatter(ops, r.energy.total / scale, label=f"{label} (peak live {size(peak)})")
    log_scale(ax, "y")
    ax.legend(fontsize=7)
    ax.set_xlabel("arithmetic operations per step")
    ax.set_ylabel(f"energy ({unit})")
    ax.set_title("Trade-off: arithmetic, energy and peak live bytes")


def _history(data, ax) -> None:
    history, title = data
    energies = [e["learning_energy_fj"] for e in history]
    scale, unit = next(((s, u) for s, u in ENERGY_UNITS if max(energies, default=0) >= s),
                       ENERGY_UNITS[-1])
    x = [v / scale for v in energies]
    for key, style in (("test_accuracy", "-o"), ("train_accuracy", "--s")):
        points = [(xi, e[key]) for xi, e in zip(x, history) if e[key] is not None]
        if points:
            ax.plot(*zip(*points), style, ms=3, label=key.replace("_", " "))
    ax.set_xlabel(f"learning energy so far ({unit}); one point per epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "Accuracy against learning energy")
