"""Figure 2: where samples exit under light inference, one bar group per layer, one bar per procedure."""

from __future__ import annotations

import numpy as np

from ffenergy.analysis.load import RunData
from ffenergy.plot.style import Drawn, Skipped, new_figure, procedure_color, procedure_label, slug, title


def draw(run: RunData) -> list[Drawn | Skipped]:
    samples = run.samples
    if samples is None:
        return [Skipped("exit-layer histogram", "samples.csv is missing")]
    light = samples.mode == "light"
    if not light.any():
        return [Skipped("exit-layer histogram", "samples.csv has no rows with mode 'light'")]
    out: list[Drawn | Skipped] = []
    for target in dict.fromkeys(samples.target[light]):
        in_target = light & (samples.target == target)
        procedures = list(dict.fromkeys(samples.procedure[in_target]))
        n_layers = int(samples.exit_layer[in_target].max())
        layers = np.arange(1, n_layers + 1)
        fig = new_figure(7.0, 4.0)
        ax = fig.add_subplot()
        width = 0.8 / len(procedures)
        for i, proc in enumerate(procedures):
            rows = in_target & (samples.procedure == proc)
            exits = samples.exit_layer[rows]
            frac = np.bincount(exits, minlength=n_layers + 1)[1:] / exits.size * 100
            x = layers + (i - (len(procedures) - 1) / 2) * width
            label = (
                f"{procedure_label(proc)}: mean {exits.mean():.2f} layers, "
                f"accuracy {samples.correct[rows].mean() * 100:.2f}% (n={exits.size})"
            )
            bars = ax.bar(x, frac, width * 0.95, color=procedure_color(proc, run.procedures), label=label)
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        ax.set_xticks(layers)
        ax.set_xlabel("exit layer")
        ax.set_ylabel("samples exiting (%)")
        ax.set_ylim(0, 112)
        title(fig, "Exit layer under light inference", run.dataset, target)
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
        out.append(
            Drawn(
                f"exits_{slug(target)}",
                f"Share of test samples exiting at each layer on {target} (light inference, calibrated thresholds).",
                fig,
            )
        )
    return out
