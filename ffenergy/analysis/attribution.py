"""Layer-to-joule attribution from forced-depth windows (pure functions over rows/arrays).

Per (target, meter, procedure):

* fit gross window energy = ``static_power_w * duration + joules_per_mac * MACs`` over the
  ``depth-k`` windows and the idle windows (least squares without intercept; R², number of
  points). The idle windows (no MACs) pin the static power: on a saturated device every
  work window draws about the same power for about the same time, so without them duration
  and MACs are nearly collinear and the split between the two terms is arbitrary;
* fit net energy per inference = ``slope * MACs per inference + intercept``;
* predict light energy per inference = ``sum_k p_k * E(depth-k)`` from the observed exit
  distribution ``p_k`` (E = mean net joules per inference) and compare with measured light.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ffenergy.analysis.stats import r_squared
from ffenergy.vocabulary import depth_of

LIGHT = "light"
IDLE = "idle"


@dataclass(frozen=True)
class ModeWindow:
    """One window of one mode (``full``, ``light``, ``depth-k``, or ``idle`` with no inferences)."""

    mode: str
    n_inferences: int
    duration_s: float
    energy_j: float
    net_energy_j: float


@dataclass(frozen=True)
class Attribution:
    """The two fits of one (target, meter, procedure): the window fit (gross window energy = static
    power x duration + J/MAC x MACs) and the per-inference fit (net energy per inference = J/MAC x
    MACs per inference + intercept), and the light energy predicted from the depth-k energies."""

    target: str
    meter: str
    procedure: str
    window_j_per_mac: float
    window_static_power_w: float
    window_r2: float
    n_points: int  # windows in the window fit (depth-k and idle)
    window_fit_identifiable: bool  # False: durations grow in step with MACs and no idle windows
    per_inference_j_per_mac: float
    intercept_j_per_inference: float
    per_inference_r2: float
    depth_energy_j: dict[int, float]  # mean net joules per inference of each depth-k
    predicted_light_j: float | None
    measured_light_j: float | None
    prediction_error: float | None  # (predicted - measured) / measured

    def to_json(self) -> dict[str, Any]:
        """One entry of ``attribution.json``. ``joules_per_mac``, ``intercept_j_per_inference`` and
        ``r2`` are the per-inference fit (one line to draw); ``window_fit`` is the window-level split
        into static power and energy per MAC, which is only identifiable when idle windows (or
        durations not proportional to MACs) pin it down."""
        static = self.window_static_power_w if self.window_fit_identifiable else None
        return {
            "target": self.target,
            "meter": self.meter,
            "procedure": self.procedure,
            "joules_per_mac": self.per_inference_j_per_mac,
            "static_power_w": static,
            "intercept_j_per_inference": self.intercept_j_per_inference,
            "r2": self.per_inference_r2,
            "n_points": self.n_points,
            "predicted_light_j": self.predicted_light_j,
            "measured_light_j": self.measured_light_j,
            "prediction_error": self.prediction_error,
            "window_fit": {
                "joules_per_mac": self.window_j_per_mac if self.window_fit_identifiable else None,
                "static_power_w": static,
                "r2": self.window_r2,
                "identifiable": self.window_fit_identifiable,
            },
            "depth_energy_j": {str(k): v for k, v in sorted(self.depth_energy_j.items())},
        }


def windows_from_rows(
    rows: Iterable[Mapping[str, str]], *, target: str, meter: str, procedure: str, domain: str = "total"
) -> list[ModeWindow]:
    """Windows of one (target, meter, procedure, domain) from ``windows.csv`` rows.

    Idle windows (mode ``idle``) of the same target and meter are kept whatever their
    procedure column says: one idle baseline serves every procedure measured with it.
    """
    out = []
    for r in rows:
        if (r["target"], r["meter"], r["domain"]) != (target, meter, domain):
            continue
        if r["procedure"] == procedure or r["mode"] == IDLE:
            out.append(
                ModeWindow(
                    r["mode"],
                    int(float(r["n_inferences"])),
                    float(r["duration_s"]),
                    float(r["energy_j"]),
                    float(r["net_energy_j"]),
                )
            )
    return out


def exit_distribution(exit_layers: Iterable[int]) -> dict[int, float]:
    """Observed fraction of samples leaving at each layer (from the light mode's samples)."""
    counts = Counter(int(k) for k in exit_layers)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("exit_distribution: no exit layers given")
    return {k: c / total for k, c in sorted(counts.items())}


def attribute(
    windows: Sequence[ModeWindow],
    macs_per_inference: Mapping[str, float],
    exit_dist: Mapping[int, float] | None,
    *,
    target: str,
    meter: str,
    procedure: str,
) -> Attribution:
    """Fit joules per MAC and static power from depth-k windows; predict light energy.

    ``macs_per_inference`` maps each depth-k mode to its MACs per inference; ``exit_dist``
    maps exit layer k to its probability in the light mode (None: no prediction).
    """
    depth = [w for w in windows if depth_of(w.mode) is not None]
    _check_depths({w.mode for w in depth}, macs_per_inference, f"{target}/{meter}/{procedure}")
    macs_inf = np.array([macs_per_inference[w.mode] for w in depth], dtype=float)
    net_inf = np.array([w.net_energy_j / w.n_inferences for w in depth])
    slope, intercept = np.polyfit(macs_inf, net_inf, 1)
    depth_mean = _depth_means(depth, net_inf)
    predicted = _predict(depth_mean, exit_dist) if exit_dist is not None else None
    measured = _measured_light(windows)
    return Attribution(
        target=target,
        meter=meter,
        procedure=procedure,
        **_window_fit(depth, [w for w in windows if w.mode == IDLE], macs_inf),
        per_inference_j_per_mac=float(slope),
        intercept_j_per_inference=float(intercept),
        per_inference_r2=r_squared(net_inf, slope * macs_inf + intercept),
        depth_energy_j=depth_mean,
        predicted_light_j=predicted,
        measured_light_j=measured,
        prediction_error=(predicted - measured) / measured if predicted is not None and measured else None,
    )


def _check_depths(modes: set[str], macs_per_inference: Mapping[str, float], what: str) -> None:
    missing = sorted(modes - set(macs_per_inference))
    if missing:
        raise ValueError(f"attribution: no MACs per inference for modes {missing}")
    if len(modes) < 2:
        raise ValueError(
            f"attribution for {what}: need windows of at least two depth-k modes to fit joules per MAC, "
            f"got {sorted(modes)}; measure the depth-1..L modes"
        )


def _measured_light(windows: Sequence[ModeWindow]) -> float | None:
    """Mean net joules per inference of the light windows (None without any)."""
    light = [w.net_energy_j / w.n_inferences for w in windows if w.mode == LIGHT]
    return float(np.mean(light)) if light else None


def _window_fit(depth: list[ModeWindow], idle: list[ModeWindow], macs_inf: np.ndarray) -> dict[str, Any]:
    """Gross window energy = static power x duration + J/MAC x MACs (no intercept) over the depth-k and
    idle windows; the split is identifiable when idle windows or durations not in step with MACs pin it."""
    fit = depth + idle
    n = np.array([w.n_inferences for w in depth], dtype=float)
    gross = np.array([w.energy_j for w in fit])
    x = np.column_stack([[w.duration_s for w in fit], np.concatenate([macs_inf * n, np.zeros(len(idle))])])
    (static_w, j_per_mac), *_ = np.linalg.lstsq(x, gross, rcond=None)
    return {
        "window_j_per_mac": float(j_per_mac),
        "window_static_power_w": float(static_w),
        "window_r2": r_squared(gross, x @ [static_w, j_per_mac]),
        "n_points": len(fit),
        "window_fit_identifiable": bool(idle or abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.999),
    }


def _depth_means(depth: list[ModeWindow], net_inf: np.ndarray) -> dict[int, float]:
    """Mean net joules per inference of each depth k."""
    per_depth: dict[int, list[float]] = {}
    for w, e in zip(depth, net_inf):
        if (k := depth_of(w.mode)) is not None:  # always, by the caller's filter
            per_depth.setdefault(k, []).append(float(e))
    return {k: float(np.mean(v)) for k, v in per_depth.items()}


def _predict(depth_mean: Mapping[int, float], exit_dist: Mapping[int, float]) -> float:
    total = sum(exit_dist.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"attribution: exit probabilities sum to {total:g}, not 1")
    unmeasured = sorted(k for k, p in exit_dist.items() if p > 0 and k not in depth_mean)
    if unmeasured:
        raise ValueError(
            f"attribution: light exits at depths {unmeasured} that have no depth-k windows; measure those depth modes"
        )
    return float(sum(p * depth_mean[k] for k, p in exit_dist.items() if p > 0))
