"""Trigger windows in a meter's own sample stream, and their energy. Pure functions on numpy arrays.

A sample stream is ``t`` (s), ``v`` (V), ``i`` (A) and ``trig`` (0/1), all sampled together, so
windows come from the trigger channel alone and need no clock sync. Integration uses the forward
rectangle rule: sample k stands for [t_k, t_{k+1}), so a window [start, end) in sample indices
has energy sum(v*i*dt) over k = start..end-1 and lasts t[end] - t[start].

The edge band. An edge is known to one sample at best (the trigger is sampled with the current,
and a recording's edge times may be rounded to the sample period), so every window also reports
the energy with each edge moved by one sample: ``gross_lo_j`` (both edges moved inward) and
``gross_hi_j`` (both outward). The short-window rule: a window warns when half that band exceeds
``EDGE_SHARE_LIMIT`` of its gross energy (at flat power: windows under 400 samples).

``integrate_windows`` is the same integration for a uniformly sampled stream of many windows at
once (a recording, a 1 Msps Joulescope stream): one cumulative sum, no loop over samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

EDGE_SHARE_LIMIT = 0.005  # warn when +-1 sample at the edges moves a window's energy by more than 0.5 %
IDLE_GUARD_SAMPLES = 2  # samples next to an edge left out of the idle level (a meter may average across it)


@dataclass(frozen=True)
class WindowEnergyDetail:
    """One trigger window: gross energy, idle level from samples outside windows, net energy."""

    start_index: int  # first sample with the trigger high
    end_index: int  # first sample with the trigger low again
    start_s: float
    duration_s: float
    gross_j: float
    gross_lo_j: float  # both edges one sample inward
    gross_hi_j: float  # both edges one sample outward (= gross_j where the stream has no sample there)
    idle_power_w: float
    net_j: float  # gross - idle_power * duration
    n_idle_samples: int
    warnings: tuple[str, ...] = ()

    @property
    def n_samples(self) -> int:
        return self.end_index - self.start_index

    @property
    def edge_share(self) -> float:
        """Half the edge band as a share of the gross energy (what one sample at each edge may move)."""
        return edge_share(self.gross_j, self.gross_lo_j, self.gross_hi_j)


def edge_share(gross_j: float, lo_j: float, hi_j: float) -> float:
    """Half the edge band [lo, hi] as a share of the gross energy; inf for a window of no energy."""
    return math.inf if gross_j == 0 else (hi_j - lo_j) / (2 * abs(gross_j))


def short_window_warning(
    n_samples: int, duration_s: float, share: float, limit: float = EDGE_SHARE_LIMIT
) -> str | None:
    """The short-window rule's message, or None when one sample at each edge moves the energy by at most ``limit``."""
    if not share > limit:
        return None
    return (
        f"window of {n_samples} samples ({duration_s * 1e3:.3g} ms): one sample at each edge moves its energy by"
        f" {100 * share:.2g} % (limit {100 * limit:.2g} %); repeat inferences inside the window (INFER repeats)"
        " so it spans more samples"
    )


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
    t: np.ndarray, p: np.ndarray, trig: np.ndarray, start: int, end: int, span_s: float, guard: int = IDLE_GUARD_SAMPLES
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
    edge_share_limit: float = EDGE_SHARE_LIMIT,
) -> WindowEnergyDetail:
    """Gross, idle and net energy of the window [start, end) of a sample stream, with its edge band."""
    t = np.asarray(t, np.float64)
    p = np.asarray(v, np.float64) * np.asarray(i, np.float64)
    gross = integrate(t, p, start, end)
    e = p[:-1] * np.diff(t)  # the energy of each sample but the last (whose period is unknown)
    inner = float(e[start] + (e[end - 1] if end - 1 > start else 0.0))
    outer = float((e[start - 1] if start > 0 else 0.0) + (e[end] if end < len(e) else 0.0))
    duration = float(t[end] - t[start])
    idle_w, n_idle = idle_power(t, p, trig, start, end, idle_span_s)
    warnings = []
    short = short_window_warning(
        end - start, duration, edge_share(gross, gross - inner, gross + outer), edge_share_limit
    )
    if short:
        warnings.append(short)
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
        gross_lo_j=gross - inner,
        gross_hi_j=gross + outer,
        idle_power_w=idle_w,
        net_j=gross - idle_w * duration,
        n_idle_samples=n_idle,
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class WindowEnergies:
    """Many windows of one uniformly sampled stream (``integrate_windows``); arrays, one entry per window."""

    start_index: np.ndarray
    end_index: np.ndarray
    duration_s: np.ndarray
    gross_j: np.ndarray
    gross_lo_j: np.ndarray  # both edges one sample inward
    gross_hi_j: np.ndarray  # both edges one sample outward (clipped at the ends of the stream)
    idle_power_w: np.ndarray  # NaN where no trigger-low sample lies within the idle span
    net_j: np.ndarray
    n_idle_samples: np.ndarray

    @property
    def edge_share(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = (self.gross_hi_j - self.gross_lo_j) / (2 * np.abs(self.gross_j))
        return np.where(self.gross_j == 0, np.inf, share)

    def __len__(self) -> int:
        return len(self.gross_j)


def integrate_windows(
    samples: np.ndarray,
    edges: np.ndarray,
    sample_rate_hz: float,
    *,
    quantity: Literal["power", "energy"] = "power",
    idle_span_s: float = 0.05,
    guard: int = IDLE_GUARD_SAMPLES,
    t_s: np.ndarray | None = None,
) -> WindowEnergies:
    """Gross and net joules of windows [start, end) of a uniformly sampled stream, with the edge band.

    ``samples`` are watts (``quantity="power"``) or joules per sample period (``"energy"``); ``edges``
    is an (n, 2) array of sample indices. The idle level of a window is the mean power of the samples
    within ``idle_span_s`` before and after it that lie in no window, ``guard`` samples next to each
    edge left out (as ``measure_window`` does). Vectorised: one cumulative sum over the stream.
    ``t_s`` (the sample times, one more than the samples) gives exact durations to a stream that is
    not uniformly sampled; its samples must then be energies.
    """
    if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample rate {sample_rate_hz!r} Hz: must be a positive number")
    x = np.asarray(samples, np.float64)
    energy = x if quantity == "energy" else x / sample_rate_hz
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    start, end = edges[:, 0], edges[:, 1]
    n = len(energy)
    if len(edges) and (start.min() < 0 or end.max() > n or np.any(end <= start)):
        raise ValueError(f"window edges must satisfy 0 <= start < end <= {n} (the stream's length)")
    csum = np.concatenate(([0.0], np.cumsum(energy)))
    gross = csum[end] - csum[start]
    inner = energy[start] + np.where(end - 1 > start, energy[end - 1], 0.0)
    outer = np.where(start > 0, energy[np.maximum(start - 1, 0)], 0.0) + np.where(
        end < n, energy[np.minimum(end, n - 1)], 0.0
    )
    duration = (end - start) / sample_rate_hz if t_s is None else np.asarray(t_s, np.float64)[end] - t_s[start]
    # idle: samples of no window, in [start - span, start - guard) and [end + guard, end + span]
    in_window = np.zeros(n + 1, np.int64)
    np.add.at(in_window, start, 1)
    np.add.at(in_window, end, -1)
    outside = (np.cumsum(in_window[:-1]) == 0).astype(np.float64)
    c_out = np.concatenate(([0.0], np.cumsum(outside)))
    c_out_e = np.concatenate(([0.0], np.cumsum(outside * energy)))
    span = round(idle_span_s * sample_rate_hz)

    def _range(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)
        hi = np.maximum(hi, lo)
        return c_out[hi] - c_out[lo], c_out_e[hi] - c_out_e[lo]

    k_before, e_before = _range(start - span, start - guard)
    k_after, e_after = _range(end + guard, end + span + 1)
    n_idle = k_before + k_after
    with np.errstate(invalid="ignore", divide="ignore"):
        idle_w = np.where(n_idle > 0, (e_before + e_after) / n_idle * sample_rate_hz, np.nan)
    return WindowEnergies(
        start_index=start,
        end_index=end,
        duration_s=duration,
        gross_j=gross,
        gross_lo_j=gross - inner,
        gross_hi_j=gross + outer,
        idle_power_w=idle_w,
        net_j=gross - idle_w * duration,
        n_idle_samples=n_idle.astype(np.int64),
    )
