"""Figure 6 (several runs): joules per inference per target and mode, one bar per run and meter."""

from __future__ import annotations

import numpy as np

from ffenergy.analysis.load import RunData
from ffenergy.plot.style import Drawn, Skipped, badge, log_axis, new_figure, procedure_label, title
from ffenergy.units import energy_unit
from ffenergy.vocabulary import depth_of

MODES = ("full", "light")


def draw(runs: list[RunData]) -> list[Drawn | Skipped]:
    rows = [(run, r) for run in runs for r in run.summary if r.mode in MODES and r.energy_j_per_inference is not None]
    if not rows:
        return [Skipped("energy per inference across runs", "no run has energy in summary.csv (MACs only)")]
    targets = list(dict.fromkeys(r.target for _, r in rows))
    colors = {key: f"C{i % 10}" for i, key in enumerate(dict.fromkeys((run.run_id, r.meter) for run, r in rows))}
    fig = new_figure(9.0, 1.2 + 3.0 * len(targets), right_in=2.4, hspace=0.45)
    axes = fig.subplots(len(targets), 1, squeeze=False)[:, 0]
    for ax, target in zip(axes, targets):
        mine = [(run, r) for run, r in rows if r.target == target]
        groups = sorted(dict.fromkeys((r.procedure, r.mode) for _, r in mine), key=_group_order)
        series = list(dict.fromkeys((run.run_id, r.meter) for run, r in mine))
        values = np.array([r.energy_j_per_inference for _, r in mine], dtype=float)
        scale, unit = energy_unit(values)
        width = 0.8 / len(series)
        for si, (run_id, meter) in enumerate(series):
            found = {(r.procedure, r.mode): r for run, r in mine if (run.run_id, r.meter) == (run_id, meter)}
            x = np.arange(len(groups)) + (si - (len(series) - 1) / 2) * width
            y = (
                np.array([found[g].energy_j_per_inference if g in found else np.nan for g in groups], dtype=float)
                / scale
            )
            err = [(found[g].energy_ci95_j or 0) / scale if g in found else 0 for g in groups]
            provenance = next(iter(found.values())).provenance
            ax.bar(
                x,
                y,
                width * 0.95,
                yerr=err,
                capsize=2,
                color=colors[(run_id, meter)],
                label=f"{run_id}\n{meter} ({provenance})",
            )
        if values.max() / values.min() > 30:
            log_axis(ax, "y")
        ax.set_xticks(range(len(groups)), [f"{procedure_label(p)}\n{m}" for p, m in groups], fontsize=8)
        ax.set_ylabel(f"energy / inference ({unit})")
        ax.set_title(target, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncols=max(1, len(series) // 8), loc="upper left", bbox_to_anchor=(1.01, 1.0))
    datasets = ", ".join(dict.fromkeys(run.dataset for run in runs))
    n_runs = len({run.run_id for run, _ in rows})
    title(fig, f"Energy per inference across {n_runs} runs (error bars: 95% CI)", datasets)
    badge(fig, " + ".join(dict.fromkeys(r.provenance for _, r in rows if r.provenance)))
    without = [run.run_id for run in runs if not any(r is not None for r in _energies(run))]
    notes: list[Drawn | Skipped] = [
        Skipped(f"energy of run {rid}", "no energy in summary.csv (MACs only)") for rid in without
    ]
    return notes + [
        Drawn(
            "energy_per_inference", "Energy per inference (full and light) per target, one bar per run and meter.", fig
        )
    ]


def _energies(run: RunData) -> list[float | None]:
    return [r.energy_j_per_inference for r in run.summary if r.mode in MODES]


def _group_order(group: tuple[str, str]) -> tuple:
    """Procedures in a fixed order; within one, full, light, then depth-1..L."""
    procedure, mode = group
    depth = depth_of(mode) or 0
    return (procedure, {"full": 0, "light": 1}.get(mode, 2), depth)
