"""Figure 5 (MCU runs): a stretch of the external meter's current trace with trigger windows shaded."""

from __future__ import annotations

import numpy as np

from ffenergy.analysis.load import RunData
from ffenergy.plot.style import Drawn, Skipped, badge, new_figure, title

WINDOWS_SHOWN = 3
MAX_POINTS = 8000


def trigger_windows(trigger: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) sample indices of each run of trigger-high samples."""
    edges = np.diff(np.concatenate([[0], trigger.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _meter(run: RunData) -> tuple[str, str]:
    """(meter name, provenance) of the trace: the meter of the targets with per-sample energies."""
    s = run.samples
    targets = set(s.target[np.isfinite(s.energy_j)]) if s is not None else set()
    pairs = list(dict.fromkeys((r.meter, r.provenance) for r in run.summary if r.target in targets and r.meter))
    if not pairs:
        pairs = [(m.name, m.provenance) for m in run.manifest.meters]
    names = ", ".join(p[0] for p in pairs) or "unknown meter"
    return names, " + ".join(dict.fromkeys(p[1] for p in pairs)) or "unknown"


def draw(run: RunData) -> list[Drawn | Skipped]:
    trace = run.trace
    if trace is None:
        return []  # host-only runs have no trace; not worth a note
    windows = trigger_windows(trace.trigger)
    t = trace.t_s
    if windows:
        first, last = windows[0][0], windows[min(WINDOWS_SHOWN, len(windows)) - 1][1]
        margin = max(int(0.3 * (last - first) / WINDOWS_SHOWN), 5)
        lo, hi = max(0, first - margin), min(t.size, last + margin)
    else:
        lo, hi = 0, min(t.size, MAX_POINTS)
    step = max(1, (hi - lo) // MAX_POINTS)
    sl = slice(lo, hi, step)
    fig = new_figure(8.0, 3.8)
    ax = fig.add_subplot()
    ax.plot(t[sl], trace.current_a[sl] * 1e3, lw=0.6, color="#1f77b4", label="current")
    shown = [(a, b) for a, b in windows if a < hi and b > lo]
    for i, (a, b) in enumerate(shown):
        ax.axvspan(
            t[a],
            t[min(b, t.size - 1)],
            color="orange",
            alpha=0.25,
            lw=0,
            label="trigger high (inference window)" if i == 0 else None,
        )
    idle = ~trace.trigger
    if idle.any() and windows:
        level = float(np.median(trace.current_a[idle])) * 1e3
        ax.axhline(level, color="gray", ls="--", lw=1, label=f"idle level {level:.2f} mA")
    meter, provenance = _meter(run)
    dt = np.median(np.diff(t))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("current (mA)")
    ax.set_xlim(t[lo], t[hi - 1])
    ax.grid(alpha=0.3)
    top = float(np.max(trace.current_a[sl])) * 1e3
    ax.set_ylim(top=top * 1.3)
    ax.legend(fontsize=8, loc="upper center", ncols=3, framealpha=0.9)
    title(
        fig,
        "Current trace with trigger windows",
        run.dataset,
        meter,
        f"{1 / dt:.0f} samples/s, {len(shown)} of {len(windows)} windows shown",
    )
    badge(fig, provenance)
    return [
        Drawn(
            "trace",
            f"A stretch of the {meter} current trace ({provenance}); shaded: trigger-high inference "
            "windows, from which per-inference energies are integrated.",
            fig,
        )
    ]
