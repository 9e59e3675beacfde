"""A PNG bar chart of one run (for the docs' "Performance" page), if matplotlib is here."""

from __future__ import annotations

import importlib.util
import math
from typing import TYPE_CHECKING, Any

from benchmarks.stats import median

if TYPE_CHECKING:
    from benchmarks.results import Results

__all__ = ["draw"]

_COLOURS = {"raw": "#9e9e9e", "lockkit": "#1f77b4", "peer": "#ff7f0e"}


def _bars(axis: Any, title: str, unit: str, items: list[tuple[str, str, float]]) -> None:
    """Horizontal bars on a log scale, top to bottom in the order given."""
    items = [item for item in items if math.isfinite(item[2]) and item[2] > 0]
    if not items:
        axis.set_visible(False)
        return
    labels = [name for name, _, _ in items]
    values = [value for _, _, value in items]
    colours = [_COLOURS.get(kind, "#333333") for _, kind, _ in items]
    positions = range(len(items))
    axis.barh(positions, values, color=colours)
    axis.set_yticks(list(positions), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel(unit)
    axis.set_title(title, fontsize=10)
    axis.grid(axis="x", which="both", alpha=0.3)
    for position, value in zip(positions, values, strict=True):
        axis.text(value, position, f" {_short(value)}", va="center", fontsize=7)


def _short(value: float) -> str:
    """``135k``, ``2.9k``, ``47.2``, ``0.562``: three significant digits, no exponent."""
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


def draw(results: Results, path: str) -> str:
    """Write the chart to ``path``; return a message saying what was done."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed; no chart written (pip install matplotlib)"
    import matplotlib as mpl  # noqa: PLC0415 - optional

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    figure, axes = plt.subplots(2, 2, figsize=(14, 10), constrained_layout=True)
    _bars(
        axes[0][0],
        "Uncontended acquire+release (higher is better)",
        "pairs/s",
        [(r.subject, r.kind, r.pairs_per_second) for r in results.uncontended],
    )
    _bars(
        axes[0][1],
        "Hand-off latency p50 (lower is better)",
        "ms",
        [(r.subject, r.kind, r.ms(50)) for r in results.handoff if not r.error],
    )
    _bars(
        axes[1][0],
        f"Contended: {results.sizes.processes} processes x "
        f"{results.sizes.increments} increments (higher is better)",
        "pairs/s",
        [(r.subject, r.kind, r.pairs_per_second) for r in results.contended if not r.error],
    )
    cost = results.importcost
    imports: list[tuple[str, str, float]] = []
    if cost is not None and not cost.error:
        imports.append(("import lockkit over bare", "lockkit", cost.over_bare_ms))
        imports.extend(
            (f"first Lock() -> {f.backend}", "lockkit", median(f.construct_ms))
            for f in cost.first_lock
        )
    _bars(axes[1][1], "Import and first Lock() (lower is better)", "ms", imports)
    figure.legend(
        handles=[Patch(color=c, label=k) for k, c in _COLOURS.items()],
        loc="outside lower center",
        ncols=len(_COLOURS),
        fontsize=9,
    )
    load = ", ".join(f"{x:.2f}" for x in results.load_before or ())
    figure.suptitle(
        f"lockkit benchmarks ({results.mode} run): {results.machine.get('cpus')} CPUs, "
        f"{results.machine.get('filesystem')}, load average {load or 'unknown'}",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart written to {path}"
