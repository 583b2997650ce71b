"""Trigger windows in a meter's own sample stream, and their energy. Pure functions on numpy arrays.

A sample stream is ``t`` (s), ``v`` (V), ``i`` (A) and ``trig`` (0/1), all sampled together, so
windows come from the trigger channel alone and need no clock sync. Integration uses the forward
rectangle rule: sample k stands for [t_k, t_{k+1}), so a window [start, end) in sample indices
has energy sum(v*i*dt) over k = start..end-1 and lasts t[end] - t[start].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_WINDOW_SAMPLES = 100  # below this the +-1 sample edge uncertainty exceeds ~1 %


@dataclass(frozen=True)
class WindowEnergyDetail:
    """One trigger window: gross energy, idle level from samples outside windows, net energy."""

    start_index: int  # first sample with the trigger high
    end_index: int  # first sample with the trigger low again
    start_s: float
    duration_s: float
    gross_j: float
    idle_power_w: float
    net_j: float  # gross - idle_power * duration
    n_idle_samples: int
    warnings: tuple[str, ...] = ()

    @property
    def n_samples(self) -> int:
        return self.end_index - self.start_index


def find_windows(trig: np.ndarray, offset: int = 0) -> list[tuple[int, int]]:
    """Complete windows as (first high index, first low index after it), plus ``offset``.

    A stream that starts high has its first (partial) window dropped; a window still open at
    the end of the stream is not returned.
    """
    high = np.asarray(trig).astype(bool)
    if high.size == 0:
        return []
    change = np.flatnonzero(np.diff(high.astype(np.int8))) + 1
    rises = change[high[change]]
    falls = change[~high[change]]
    nxt = np.searchsorted(falls, rises, side="right")
    return [(int(r) + offset, int(falls[j]) + offset) for r, j in zip(rises, nxt) if j < len(falls)]


def integrate(t: np.ndarray, p: np.ndarray, start: int, end: int) -> float:
    """sum p_k * (t_{k+1} - t_k) for k in [start, end); needs t[end] to exist."""
    if not 0 <= start < end < len(t):
        raise ValueError(f"window [{start}, {end}) needs samples up to index {end}; the stream has {len(t)}")
    dt = np.diff(t[start : end + 1])
    return float(np.dot(p[start:end], dt))


def idle_power(
    t: np.ndarray, p: np.ndarray, trig: np.ndarray, start: int, end: int, span_s: float, guard: int = 2
) -> tuple[float, int]:
    """Mean power of trigger-low samples within ``span_s`` before ``start`` and after ``end``.

    ``guard`` samples next to each edge are skipped (the meter may average across an edge), and
    so are the samples of any other window. Returns (watts, samples used); NaN if none.
    """
    low = ~np.asarray(trig).astype(bool)
    before = np.arange(len(t)) < start - guard
    after = np.arange(len(t)) >= end + guard
    near = ((t >= t[start] - span_s) & before) | ((t <= t[min(end, len(t) - 1)] + span_s) & after)
    mask = near & low
    n = int(mask.sum())
    if n == 0:
        return math.nan, 0
    return float(p[mask].mean()), n


def measure_window(
    t: np.ndarray,
    v: np.ndarray,
    i: np.ndarray,
    trig: np.ndarray,
    start: int,
    end: int,
    idle_span_s: float = 0.05,
    min_samples: int = MIN_WINDOW_SAMPLES,
) -> WindowEnergyDetail:
    """Gross, idle and net energy of the window [start, end) of a sample stream."""
    t = np.asarray(t, np.float64)
    p = np.asarray(v, np.float64) * np.asarray(i, np.float64)
    gross = integrate(t, p, start, end)
    duration = float(t[end] - t[start])
    idle_w, n_idle = idle_power(t, p, trig, start, end, idle_span_s)
    warnings = []
    if end - start < min_samples:
        period = duration / (end - start)
        warnings.append(
            f"window of {end - start} samples ({duration * 1e3:.3g} ms at a {period * 1e6:.3g} us sample period):"
            f" edges are only known to +-1 sample, so energy may be off by up to {200 / (end - start):.2g} %;"
            f" repeat inferences inside the window (INFER repeats) so it spans >= {min_samples} samples"
        )
    if n_idle == 0:
        warnings.append(
            f"no trigger-low samples within {idle_span_s} s of the window: idle level unknown, net energy NaN"
        )
    return WindowEnergyDetail(
        start_index=start,
        end_index=end,
        start_s=float(t[start]),
        duration_s=duration,
        gross_j=gross,
        idle_power_w=idle_w,
        net_j=gross - idle_w * duration,
        n_idle_samples=n_idle,
        warnings=tuple(warnings),
    )
