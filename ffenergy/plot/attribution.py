"""Figure 3: joules against layers used, with the attribution fit (energy = J/MAC * MACs + intercept).

Per-sample energies (samples.csv ``energy_j``, MCU meters) are drawn as a jittered scatter;
otherwise the depth-k means of summary.csv with their 95% CI. The light mode is drawn at its mean
depth, measured and predicted (sum_k p_k * E(depth-k)) side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.artist import Artist

from ffenergy.analysis.load import Fit, RunData, Samples, SummaryRow
from ffenergy.plot import costs
from ffenergy.plot.style import (
    Drawn,
    Skipped,
    badge,
    new_figure,
    procedure_color,
    procedure_label,
    slug,
    title,
    warn_nonpositive,
)
from ffenergy.units import energy_unit

MAX_SCATTER = 2500


def draw(run: RunData) -> list[Drawn | Skipped]:
    out: list[Drawn | Skipped] = []
    for target in costs.targets(run):
        meters = costs.energy_meters(run, target)
        if not meters:
            out.append(Skipped(f"energy vs layers ({target})", "no energy measured for this target (MACs only)"))
        for meter in meters:
            if not any(_depth_rows(run, target, meter, p) for p in run.procedures):
                out.append(Skipped(f"energy vs layers ({target}, {meter})", "no depth-k modes were measured"))
                continue
            out.append(_draw_one(run, target, meter))
    return out


def _depth_rows(run: RunData, target: str, meter: str, procedure: str) -> list:
    rows = [
        r
        for r in run.summary
        if (r.target, r.meter, r.procedure) == (target, meter, procedure)
        and r.mode.startswith("depth-")
        and r.energy_j_per_inference is not None
    ]
    return sorted(rows, key=lambda r: r.mean_layers)


def _draw_one(run: RunData, target: str, meter: str) -> Drawn:
    procedures = list(dict.fromkeys(r.procedure for r in run.summary if (r.target, r.meter) == (target, meter)))
    fig = new_figure(3.4 * len(procedures) + 0.6, 4.6, bottom_in=1.0, top_in=1.0)
    axes = fig.subplots(1, len(procedures), squeeze=False)[0]
    samples = run.samples
    if samples is not None and not np.isfinite(samples.energy_j[samples.target == target]).any():
        samples = None  # no per-sample energies for this target
    per_sample = samples is not None
    rng = np.random.default_rng(0)
    plotted: list[float] = []
    for ax, proc in zip(axes, procedures):
        plotted += _panel(ax, run, target, meter, proc, samples, rng)
    labelled: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    fig.legend(labelled.values(), labelled.keys(), loc="lower center", ncols=3, fontsize=7.5, frameon=False)
    warn_nonpositive(fig, plotted)
    provenance = run.provenance(target, meter)
    title(fig, "Energy per inference vs layers used", run.dataset, target, meter)
    badge(fig, provenance)
    source = "per-inference energies from the meter's trigger windows" if per_sample else "depth-k means with 95% CI"
    return Drawn(
        f"attribution_{slug(target)}_{slug(meter)}",
        f"Energy per inference against layers used on {target} ({meter}, {provenance}): {source}; "
        "grey line: attribution fit; diamonds: light inference, measured and predicted.",
        fig,
    )


def _panel(
    ax: Any, run: RunData, target: str, meter: str, proc: str, samples: Samples | None, rng: np.random.Generator
) -> list[float]:
    """One procedure's panel: per-inference energies (where the meter has them), the depth-k means, the
    fit and light; returns the energies drawn."""
    color = procedure_color(proc, run.procedures)
    depth = _depth_rows(run, target, meter, proc)
    energies = [r.energy_j_per_inference for r in depth]
    if samples is not None:
        rows = samples.select(target=target, procedure=proc) & np.isfinite(samples.energy_j)
        energies += list(samples.energy_j[rows])
    scale, unit = energy_unit(energies)
    if samples is not None:
        _scatter(ax, samples, rows, color, scale, rng)
    fit = _depth_and_fit(ax, run, (target, meter, proc), depth, "black" if samples is not None else color, scale)
    _light(ax, run, target, meter, proc, fit, scale)
    ax.set_title(procedure_label(proc) + ("" if fit is None else "\n" + _fit_label(fit, scale, unit)), fontsize=8.5)
    ax.set_xlabel("layers used (exit layer)")
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.set_xticks(range(1, 1 + max([round(r.mean_layers) for r in depth] or [1])))
    ax.grid(alpha=0.3)
    return energies


def _depth_and_fit(
    ax: Any, run: RunData, key: tuple[str, str, str], depth: list[SummaryRow], color: str, scale: float
) -> Fit | None:
    """The depth-k means with their CI and the attribution fit through them; returns the fit of ``key``."""
    if depth:
        ax.errorbar(
            [r.mean_layers for r in depth],
            [(r.energy_j_per_inference or 0) / scale for r in depth],
            yerr=[(r.energy_ci95_j or 0) / scale for r in depth],
            fmt="s",
            ms=5,
            capsize=4,
            color=color,
            label="depth-k mean ± 95% CI",
        )
    fit = next((f for f in run.fits if (f.target, f.meter, f.procedure) == key), None)
    if fit is not None and depth:
        k = [r.mean_layers for r in depth]
        y = [(fit.joules_per_mac * r.macs_per_inference + fit.intercept_j_per_inference) / scale for r in depth]
        ax.plot(k, y, "-", color="gray", lw=1.2, label="attribution fit: J/MAC × MACs + intercept")
    return fit


def _scatter(ax: Any, samples: Samples, rows: np.ndarray, color: str, scale: float, rng: np.random.Generator) -> None:
    """Per-inference energies against exit layer, jittered, at most MAX_SCATTER of them."""
    idx = np.flatnonzero(rows)
    if idx.size > MAX_SCATTER:
        idx = rng.choice(idx, MAX_SCATTER, replace=False)
    x = samples.exit_layer[idx] + rng.uniform(-0.18, 0.18, idx.size)
    ax.plot(
        x,
        samples.energy_j[idx] / scale,
        "o",
        ms=1.8,
        alpha=0.3,
        color=color,
        mew=0,
        label=f"per inference (jittered; at most {MAX_SCATTER} shown per panel)",
    )


def _fit_label(fit: Fit, scale: float, unit: str) -> str:
    r2 = "" if fit.r2 is None else f", R² = {fit.r2:.4f}"
    return f"fit {fit.joules_per_mac * 1e9:.3g} nJ/MAC + {fit.intercept_j_per_inference / scale:.3g} {unit}{r2}"


def _light(ax, run: RunData, target: str, meter: str, proc: str, fit: Fit | None, scale: float) -> None:
    light = next(
        (r for r in run.summary if (r.target, r.meter, r.procedure, r.mode) == (target, meter, proc, "light")), None
    )
    if light is None:
        return
    measured = light.energy_j_per_inference
    if measured is not None:
        ax.errorbar(
            light.mean_layers,
            measured / scale,
            yerr=(light.energy_ci95_j or 0) / scale,
            fmt="D",
            ms=7,
            color="gold",
            mec="black",
            capsize=3,
            label="light, measured",
        )
    if fit is not None and fit.predicted_light_j is not None:
        ax.plot(
            light.mean_layers + 0.12,
            fit.predicted_light_j / scale,
            "D",
            ms=7,
            mfc="none",
            mec="black",
            label="light, predicted Σ p_k·E(depth-k)",
        )
        if measured:
            ax.text(
                0.97,
                0.04,
                f"light predicted {(fit.predicted_light_j / measured - 1) * 100:+.1f}% vs measured",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=7.5,
            )
