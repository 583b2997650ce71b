"""Figure 1: accuracy against energy (MACs without a meter) across the alpha sweep, with the Pareto front."""

from __future__ import annotations

from typing import Any

import numpy as np

from ffenergy.analysis.load import RunData, SummaryRow, SweepRow
from ffenergy.plot import costs
from ffenergy.plot.style import (
    Drawn,
    Skipped,
    badge,
    log_axis,
    mac_unit,
    new_figure,
    procedure_color,
    procedure_label,
    slug,
    title,
    warn_nonpositive,
)
from ffenergy.units import energy_unit

PAPER_ALPHA = 1.0
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "v")


def pareto_front(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both lower cost and higher accuracy, by cost."""
    order = np.lexsort((-accuracy, cost))
    front, best = [], -np.inf
    for i in order:
        if np.isfinite(cost[i]) and accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return np.array(front, dtype=int)


# summary.csv modes marked on the curves: the full network, and light at the alpha this run used
MARKERS_OF_MODE = {"full": ("*", 14, "full network"), "light": ("D", 7, "light (this run's α)")}


def draw(run: RunData) -> list[Drawn | Skipped]:
    out: list[Drawn | Skipped] = []
    for target in costs.targets(run):
        rows = costs.sweep_rows(run, target)
        if not rows:
            out.append(Skipped(f"accuracy vs cost ({target})", "no sweep.csv rows for this target"))
            continue
        meters: list[str | None] = [
            m for m in costs.energy_meters(run, target) if any(costs.sweep_energy(run, target, m, r)[1] for r in rows)
        ]  # else: none
        for meter in meters or [None]:
            out.append(_draw_one(run, target, meter, rows))
    return out


def _cost(run: RunData, target: str, meter: str | None, row: SweepRow) -> tuple[float, str | None]:
    if meter is None:
        return row.macs_per_inference, None
    return costs.sweep_energy(run, target, meter, row)


Point = tuple[float, str | None, SweepRow]  # (cost, its source, the sweep row)


def _draw_one(run: RunData, target: str, meter: str | None, rows: list[SweepRow]) -> Drawn:
    fig = new_figure(9.0, 4.6, right_in=2.3)
    ax = fig.add_subplot()
    points: list[Point] = [(*_cost(run, target, meter, r), r) for r in rows]
    marked = _marked(run, target, meter)
    full = [(r, c) for r, c in marked if r.mode == "full"]
    all_cost = np.array([p[0] for p in points] + [c for _, c in full], dtype=float)
    all_acc = np.array([p[2].accuracy for p in points] + [r.accuracy for r, _ in full]) * 100
    scale, unit = mac_unit(all_cost) if meter is None else energy_unit(all_cost)
    _curves(ax, run, rows, points, scale)
    for r, c in marked:
        _mark(ax, run, r, c / scale)
    _front(ax, all_cost, all_acc, scale)
    ax.set_xlabel(f"{unit} per inference" if meter is None else f"energy per inference ({unit})")
    ax.set_ylabel("test accuracy (%)")
    pad = 0.1 * (all_acc.max() - all_acc.min()) + 0.2
    ax.set_ylim(max(0.0, all_acc.min() - pad), min(100.0, all_acc.max() + pad))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    caption = _label(fig, run, target, meter, all_cost, predicted=any(p[1] == costs.PREDICTED for p in points))
    stem = f"tradeoff_{slug(target)}_{slug(meter) if meter else 'macs'}"
    return Drawn(stem, caption, fig)


def _marked(run: RunData, target: str, meter: str | None) -> list[tuple[SummaryRow, float]]:
    """The summary rows marked on the curves (MARKERS_OF_MODE) with their cost: MACs, or energy with a meter."""
    rows = [r for r in run.summary if r.target == target and r.mode in MARKERS_OF_MODE]
    if meter is None:
        return [(r, r.macs_per_inference) for r in rows]
    return [(r, r.energy_j_per_inference or np.nan) for r in rows if r.meter == meter]


def _curves(ax: Any, run: RunData, rows: list[SweepRow], points: list[Point], scale: float) -> None:
    """One curve per (procedure, statistic) over alpha, the paper's alpha circled."""
    statistics = list(dict.fromkeys(r.statistic for r in rows))
    for proc, stat in dict.fromkeys((r.procedure, r.statistic) for r in rows):
        sel = sorted((p for p in points if (p[2].procedure, p[2].statistic) == (proc, stat)), key=lambda p: p[2].alpha)
        x = np.array([p[0] for p in sel]) / scale
        y = np.array([p[2].accuracy for p in sel]) * 100
        predicted = any(p[1] == costs.PREDICTED for p in sel)
        si = statistics.index(stat)
        label = f"{procedure_label(proc)} ({stat})" + (", predicted" if predicted else "")
        ax.plot(
            x,
            y,
            _LINESTYLES[si % 4],
            marker=_MARKERS[si % 4],
            ms=3.5,
            color=procedure_color(proc, run.procedures),
            label=label,
            alpha=0.9,
        )
        for i in (i for i, p in enumerate(sel) if abs(p[2].alpha - PAPER_ALPHA) < 1e-9):
            ax.plot(x[i], y[i], "o", ms=8, mfc="none", mec="black", mew=1.2)
    if any(abs(r.alpha - PAPER_ALPHA) < 1e-9 for r in rows):
        ax.plot([], [], "o", ms=8, mfc="none", mec="black", label=f"α = {PAPER_ALPHA:g} (paper)")


def _mark(ax: Any, run: RunData, r: SummaryRow, x: float) -> None:
    """A summary.csv mode (full, light) marked on the curves."""
    marker, size, what = MARKERS_OF_MODE[r.mode]
    if r.mode == "light" and r.procedure in run.policies:
        what = f"light ({run.policies[r.procedure]})"  # the exit policy's operating point
    ax.plot(
        x,
        r.accuracy * 100,
        marker,
        ms=size,
        color=procedure_color(r.procedure, run.procedures),
        mec="black",
        label=f"{procedure_label(r.procedure)} {what}",
    )


def _front(ax: Any, cost: np.ndarray, acc: np.ndarray, scale: float) -> None:
    """The Pareto front as a grey band; a log x axis where the costs span more than 20x."""
    front = pareto_front(cost, acc)
    if front.size:
        ax.step(
            cost[front] / scale,
            acc[front],
            where="post",
            color="black",
            lw=5,
            alpha=0.15,
            zorder=0,
            label="Pareto front",
        )
    finite = cost[np.isfinite(cost) & (cost > 0)]
    if finite.size and finite.max() / finite.min() > 20:
        log_axis(ax, "x")


def _label(fig: Any, run: RunData, target: str, meter: str | None, cost: np.ndarray, predicted: bool) -> str:
    """Title and provenance badge; returns the caption."""
    if meter is None:
        title(fig, "Accuracy vs MACs across the α sweep (no energy meter)", run.dataset, target)
        badge(fig, "no meter: MACs")
        return f"Accuracy against MACs per inference across the α sweep on {target} (no energy meter)."
    warn_nonpositive(fig, cost)
    provenance = run.provenance(target, meter)
    title(fig, "Accuracy vs energy across the α sweep", run.dataset, target, meter)
    badge(fig, provenance + (" + predicted" if predicted else ""))
    return (
        f"Accuracy against energy per inference across the α sweep on {target} ({meter}, {provenance}"
        + ("; points without a measurement predicted as Σ p_k·E(depth-k)" if predicted else "")
        + "). Stars: full network; grey band: Pareto front."
    )
