"""Figures across several runs: joules per inference per target and mode (one bar per run and
meter), and accuracy against MACs per inference of every run's procedures with their Pareto front."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ffenergy.analysis.learners import LearnerRow, learner_rows
from ffenergy.analysis.load import RunData, SummaryRow
from ffenergy.plot.style import Drawn, Skipped, badge, log_axis, mac_unit, new_figure, procedure_label, title
from ffenergy.plot.tradeoff import pareto_front
from ffenergy.units import energy_unit
from ffenergy.vocabulary import depth_of

MODES = ("full", "light")


def draw(runs: list[RunData]) -> list[Drawn | Skipped]:
    return [*_energy_bars(runs), _accuracy_vs_macs(runs)]


def _accuracy_vs_macs(runs: list[RunData]) -> Drawn | Skipped:
    """Every (run, procedure)'s operating points (full, α sweep, light), one Pareto front over all."""
    rows = [row for run in runs for row in learner_rows(run)]
    if len(rows) < 2:
        return Skipped("accuracy vs MACs across runs", "fewer than two procedures with full and light rows")
    macs = np.array([p.macs_per_inference for row in rows for p in row.points], dtype=float)
    accuracy = np.array([p.accuracy for row in rows for p in row.points], dtype=float) * 100
    scale, unit = mac_unit(macs)
    fig = new_figure(9.0, 4.6, right_in=3.0)
    ax = fig.subplots()
    front = pareto_front(macs, accuracy)
    ax.plot(
        macs[front] / scale, accuracy[front], color="0.8", lw=6, solid_capstyle="round", label="Pareto front", zorder=1
    )
    for i, row in enumerate(rows):
        label = f"{row.run_id}: {procedure_label(row.procedure)}" if len(runs) > 1 else procedure_label(row.procedure)
        _procedure_points(ax, row, f"C{i % 10}", label, scale)
    ax.plot([], [], "*", ms=11, mec="k", color="w", label="full network")
    ax.plot([], [], "D", ms=7, mec="k", color="w", label="light (α chosen on validation)")
    if np.nanmax(macs) / max(np.nanmin(macs[macs > 0]), 1) > 20:
        log_axis(ax, "x")
    ax.set_xlabel(f"MACs per inference ({unit})")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    title(
        fig,
        "Accuracy vs MACs per inference: every procedure's α sweep",
        ", ".join(dict.fromkeys(r.dataset for r in runs)),
    )
    return Drawn(
        "accuracy_vs_macs",
        "Accuracy against MACs per inference of each run's procedures (curve: the α sweep; star: full; "
        "diamond: light at the validation-chosen α), with the Pareto front over all of them.",
        fig,
    )


def _procedure_points(ax: Any, row: LearnerRow, color: str, label: str, scale: float) -> None:
    """A procedure's α sweep as a curve, its full network a star and light a diamond."""
    sweep = sorted((p for p in row.points if p.label.startswith("α")), key=lambda p: p.macs_per_inference)
    ax.plot(
        [p.macs_per_inference / scale for p in sweep],
        [p.accuracy * 100 for p in sweep],
        "-o",
        ms=3,
        color=color,
        label=label,
        zorder=2,
    )
    full, light = row.points[0], row.points[-1]
    ax.plot(full.macs_per_inference / scale, full.accuracy * 100, "*", ms=13, mec="k", color=color, zorder=3)
    ax.plot(light.macs_per_inference / scale, light.accuracy * 100, "D", ms=8, mec="k", color=color, zorder=3)


def _energy_bars(runs: list[RunData]) -> list[Drawn | Skipped]:
    rows = [(run, r) for run in runs for r in run.summary if r.mode in MODES and run.headline_energy(r)[0] is not None]
    if not rows:
        return [Skipped("energy per inference across runs", "no run has energy in summary.csv (MACs only)")]
    targets = list(dict.fromkeys(r.target for _, r in rows))
    colors = _colors(dict.fromkeys((run.run_id, r.meter) for run, r in rows))
    fig = new_figure(9.0, 1.2 + 3.0 * len(targets), right_in=2.4, hspace=0.45)
    axes = fig.subplots(len(targets), 1, squeeze=False)[:, 0]
    for ax, target in zip(axes, targets):
        _target_bars(ax, target, [(run, r) for run, r in rows if r.target == target], colors)
    datasets = ", ".join(dict.fromkeys(run.dataset for run in runs))
    n_runs = len({run.run_id for run, _ in rows})
    title(fig, f"Energy per inference across {n_runs} runs (error bars: 95% CI)", datasets)
    badge(fig, " + ".join(dict.fromkeys(r.provenance for _, r in rows if r.provenance)))
    return _without_energy(runs) + [
        Drawn(
            "energy_per_inference", "Energy per inference (full and light) per target, one bar per run and meter.", fig
        )
    ]


Bar = tuple[RunData, SummaryRow]


def _colors(series: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A colour per (run, meter), the same in every target's panel."""
    return {key: f"C{i % 10}" for i, key in enumerate(series)}


def _target_bars(ax: Any, target: str, mine: list[Bar], colors: dict[tuple[str, str], str]) -> None:
    """One target's panel: a group of bars per (procedure, mode), one bar per (run, meter)."""
    groups = sorted(dict.fromkeys((r.procedure, r.mode) for _, r in mine), key=_group_order)
    series = list(dict.fromkeys((run.run_id, r.meter) for run, r in mine))
    values = np.array([run.headline_energy(r)[0] for run, r in mine], dtype=float)
    scale, unit = energy_unit(values)
    width = 0.8 / len(series)
    for si, (run_id, meter) in enumerate(series):
        bars = [(run, r) for run, r in mine if (run.run_id, r.meter) == (run_id, meter)]
        run = bars[0][0]
        found = {(r.procedure, r.mode): run.headline_energy(r) for _, r in bars}
        x = np.arange(len(groups)) + (si - (len(series) - 1) / 2) * width
        y = np.array([found[g][0] if g in found else np.nan for g in groups], dtype=float) / scale
        err = [(found[g][1] or 0) / scale if g in found else 0 for g in groups]
        ax.bar(
            x,
            y,
            width * 0.95,
            yerr=err,
            capsize=2,
            color=colors[(run_id, meter)],
            label=f"{run_id}\n{meter} ({bars[0][1].provenance}, {run.energy_headline})",
        )
    if values.max() / values.min() > 30:
        log_axis(ax, "y")
    ax.set_xticks(range(len(groups)), [f"{procedure_label(p)}\n{m}" for p, m in groups], fontsize=8)
    ax.set_ylabel(f"energy / inference ({unit})\neach run's headline: net or gross")
    ax.set_title(target, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=max(1, len(series) // 8), loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _without_energy(runs: list[RunData]) -> list[Drawn | Skipped]:
    """A note for each run without any full or light energy."""
    return [
        Skipped(f"energy of run {run.run_id}", "no energy in summary.csv (MACs only)")
        for run in runs
        if all(run.headline_energy(r)[0] is None for r in run.summary if r.mode in MODES)
    ]


def _group_order(group: tuple[str, str]) -> tuple:
    """Procedures in a fixed order; within one, full, light, then depth-1..L."""
    procedure, mode = group
    depth = depth_of(mode) or 0
    return (procedure, {"full": 0, "light": 1}.get(mode, 2), depth)
