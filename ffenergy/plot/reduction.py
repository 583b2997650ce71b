"""Figure 4: MAC reduction against measured energy reduction, per target, with the ideal diagonal."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from ffenergy.analysis.load import RunData, SummaryRow
from ffenergy.plot.style import Drawn, Skipped, badge, new_figure, procedure_label, procedure_marker, title

_TICKS = (0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 10, 15, 20, 30, 50, 100)


def mac_basis(run: RunData) -> tuple[str, str]:
    """Which MAC reduction the figure plots: as run (what the energy follows) where the run has it, else the
    paper's count (runs before ffenergy 0.3); (summary field, axis label)."""
    if any(r.mac_reduction_as_run for r in run.summary):
        return "mac_reduction_as_run", "MAC reduction as run (full ÷ mode; the paper's count: report.md)"
    return "mac_reduction", "MAC reduction by the paper's count (full ÷ mode; this run has no as-run count)"


def _modes(run: RunData, basis: str) -> tuple[list[SummaryRow], list[SummaryRow]]:
    """The modes with both reductions, and those of them whose ratio is of positive net energies."""
    full = {(r.target, r.meter, r.procedure): r.energy_j_per_inference for r in run.summary if r.mode == "full"}
    candidates = [r for r in run.summary if r.mode != "full" and getattr(r, basis) and r.energy_reduction]
    rows = [
        r
        for r in candidates
        if (r.energy_j_per_inference or 0) > 0 and (full.get((r.target, r.meter, r.procedure)) or 0) > 0
    ]
    return candidates, rows


def draw(run: RunData) -> list[Drawn | Skipped]:
    basis, xlabel = mac_basis(run)
    candidates, rows = _modes(run, basis)
    if not rows:
        why = (
            "every energy ratio involves a net energy <= 0 (idle subtraction exceeds the signal)"
            if candidates
            else "no energy_reduction in summary.csv (no meter, or summary missing)"
        )
        return [Skipped("MAC vs energy reduction", why)]
    fig = new_figure(5.6, 5.4)
    ax = fig.add_subplot()
    pairs = list(dict.fromkeys((r.target, r.meter) for r in rows))
    for ci, pair in enumerate(pairs):
        for r in (r for r in rows if (r.target, r.meter) == pair):
            _point(ax, run, r, getattr(r, basis), f"C{ci}")
    _diagonal_axes(ax, np.array([[getattr(r, basis), r.energy_reduction] for r in rows]), xlabel)
    provenances = [run.provenance(t, m) for t, m in pairs]
    _legend(ax, run, rows, pairs, provenances)
    if len(rows) < len(candidates):
        fig.text(
            0.995,
            0.955,
            f"{len(candidates) - len(rows)} modes left out: net energy ≤ 0",
            ha="right",
            va="top",
            fontsize=7.5,
            color="#b71c1c",
        )
    title(fig, "MAC reduction vs energy reduction", run.dataset, "all targets")
    badge(fig, " + ".join(dict.fromkeys(provenances)))
    return [
        Drawn(
            "reduction",
            "Savings in MACs against savings in energy (full ÷ mode) per target and meter; "
            "points below the diagonal save less energy than MACs (static power, overheads).",
            fig,
        )
    ]


def _point(ax: Any, run: RunData, r: SummaryRow, macs: float, color: str) -> None:
    """One mode at MAC reduction ``macs``: light large, depth-k small and labelled ``dk`` where it saves MACs."""
    assert macs and r.energy_reduction  # draw keeps only these
    light = r.mode == "light"
    ax.plot(
        macs,
        r.energy_reduction,
        procedure_marker(r.procedure, run.procedures),
        color=color,
        ms=9 if light else 5,
        mec="black" if light else color,
        alpha=1 if light else 0.6,
    )
    if not light and macs > 1.001:
        ax.annotate(
            r.mode.replace("depth-", "d"),
            (macs, r.energy_reduction),
            fontsize=6,
            xytext=(3, -8),
            textcoords="offset points",
            color=color,
        )


def _diagonal_axes(ax: Any, values: np.ndarray, xlabel: str) -> None:
    """Equal log axes around the points, with the diagonal where energy falls in step with MACs."""
    lo, hi = min(1.0, values.min()) / 1.15, values.max() * 1.15
    ax.plot([lo, hi], [lo, hi], "--", color="gray", lw=1)
    ax.text(
        hi / 1.5,
        hi / 1.5,
        "ideal: energy ∝ MACs",
        rotation=45,
        ha="right",
        va="bottom",
        fontsize=8,
        color="gray",
        rotation_mode="anchor",
        transform_rotates_text=True,
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator([v for v in _TICKS if lo <= v <= hi]))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("energy reduction (full ÷ mode)")
    ax.grid(alpha=0.3)


def _legend(
    ax: Any, run: RunData, rows: list[SummaryRow], pairs: list[tuple[str, str]], provenances: list[str]
) -> None:
    handles = [
        Line2D([], [], ls="", marker="o", color=f"C{i}", label=f"{t} / {m} ({p})")
        for i, ((t, m), p) in enumerate(zip(pairs, provenances))
    ]
    handles += [
        Line2D([], [], ls="", marker=procedure_marker(proc, run.procedures), color="gray", label=procedure_label(proc))
        for proc in run.procedures
        if any(r.procedure == proc for r in rows)
    ]
    handles.append(
        Line2D([], [], ls="", marker="o", ms=9, mfc="white", mec="black", label="light (large); dk = depth-k")
    )
    ax.legend(handles=handles, fontsize=7, loc="best")
