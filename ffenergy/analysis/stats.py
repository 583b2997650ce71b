"""Per-key energy summaries over repeated windows: mean joules per inference and a 95% CI.

The CI is Student's t over repeats (each window gives one joules-per-inference value).
Works on measured windows (``contract.MeasuredWindow``, e.g. ``measure.WindowResult``) or on ``windows.csv`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

from ffenergy.contract import MeasuredWindow

WINDOW_KEY_FIELDS = ("target", "meter", "procedure", "mode")


@dataclass(frozen=True)
class EnergySummary:
    """Mean energy per inference of one key over its repeats (NaN CI with one repeat)."""

    n_repeats: int
    gross_j_per_inference: float
    gross_ci95_j: float
    net_j_per_inference: float
    net_ci95_j: float
    macs_per_inference: float  # NaN when the windows do not carry MACs (windows.csv)
    mean_duration_s: float


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% Student-t confidence interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci95: no values")
    if x.size < 2:
        return float(x.mean()), math.nan
    half = _scipy_stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


def _summary(points: list[tuple[float, float, float, float]]) -> EnergySummary:
    gross, net, macs, dur = (list(col) for col in zip(*points))
    g_mean, g_ci = mean_ci95(gross)
    n_mean, n_ci = mean_ci95(net)
    return EnergySummary(len(points), g_mean, g_ci, n_mean, n_ci, float(np.mean(macs)), float(np.mean(dur)))


def summarise(windows: Iterable[MeasuredWindow], domain: str = "total") -> dict[Hashable, EnergySummary]:
    """Summaries per key of measured windows (idle windows are skipped)."""
    groups: dict[Hashable, list[tuple[float, float, float, float]]] = {}
    for w in windows:
        if w.kind != "work":
            continue
        n = w.n_inferences
        groups.setdefault(w.key, []).append((w.joules[domain] / n, w.net_joules[domain] / n, w.macs / n, w.duration_s))
    return {k: _summary(v) for k, v in groups.items()}


def summarise_rows(
    rows: Iterable[Mapping[str, str]], domain: str = "total", key_fields: Sequence[str] = WINDOW_KEY_FIELDS
) -> dict[tuple[str, ...], EnergySummary]:
    """Summaries per ``key_fields`` tuple of ``windows.csv`` rows (rows of other domains are skipped)."""
    groups: dict[tuple[str, ...], list[tuple[float, float, float, float]]] = {}
    for row in rows:
        if row["domain"] != domain:
            continue
        n = float(row["n_inferences"])
        if n <= 0:
            continue  # idle windows
        groups.setdefault(tuple(row[f] for f in key_fields), []).append(
            (float(row["energy_j"]) / n, float(row["net_energy_j"]) / n, math.nan, float(row["duration_s"]))
        )
    return {k: _summary(v) for k, v in groups.items()}


def round_drifts(idle_powers_w: Sequence[float]) -> list[float]:
    """Relative change of idle power across each round: from the idle window opening round r to the
    one opening round r + 1 (the last closes the run). A round's work windows subtract its opening
    idle power, so this is the error a drifting baseline puts into their net energies, at most."""
    return [(b - a) / a if a > 0 else math.nan for a, b in zip(idle_powers_w, idle_powers_w[1:])]


@dataclass(frozen=True)
class IdleDrift:
    """How far idle power moved across the rounds of one (target, meter)."""

    max_abs: float | None  # the largest relative change between consecutive idle windows; None without two
    moved: tuple[str, ...]  # "idle 2->3: +7.1%" for every change above the limit

    @property
    def ok(self) -> bool:
        return not self.moved


def idle_drift(idle: Sequence[tuple[int, float]], limit: float) -> IdleDrift:
    """Drift of ``(idle window index, idle power W)`` pairs (any order) against a relative ``limit``."""
    ordered = sorted(idle)
    drifts = round_drifts([power for _, power in ordered])
    moved = tuple(
        f"idle {ordered[i][0]}->{ordered[i + 1][0]}: {d:+.1%}" for i, d in enumerate(drifts) if abs(d) > limit
    )
    return IdleDrift(max(abs(d) for d in drifts) if drifts else None, moved)


def r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    """Coefficient of determination; NaN when ``y`` is flat (R² is undefined there)."""
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan
