"""Per-inference energy against the exit layer on a microcontroller (attribution.json ``per_sample``):
a line through every sample's energy, the energy each layer adds and, for a simulated meter, the same
from the simulator's ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ffenergy.analysis.stats import r_squared
from ffenergy.contract import ENERGY_MODEL_INSTRUCTIONS, ENERGY_MODEL_MACS, INSN_CLASS_COLUMNS, INSN_CLASSES


@dataclass(frozen=True)
class ExitFit:
    """Least-squares line energy = intercept + slope * exit_layer over per-sample rows."""

    slope_j_per_layer: float
    intercept_j: float
    r2: float
    n: int


def fit_energy_vs_exit(exit_layers: np.ndarray, energy_j: np.ndarray) -> ExitFit:
    """Fit per-inference energy against the exit layer (needs two or more distinct layers)."""
    x = np.asarray(exit_layers, np.float64)
    y = np.asarray(energy_j, np.float64)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        raise ValueError(
            f"energy vs exit layer needs samples at two or more exit layers; got layers {sorted(set(x))}"
            " (measure depth-k modes too)"
        )
    slope, intercept = np.polyfit(x, y, 1)
    return ExitFit(float(slope), float(intercept), r_squared(y, intercept + slope * x), len(x))


def per_sample_attribution(
    samples: list[dict[str, str]], target: str, procedure: str, layer_macs: np.ndarray, meter: dict[str, Any]
) -> dict[str, Any] | None:
    """Per-inference energy vs exit layer over an MCU target's samples, and the energy each layer
    adds; with a simulated meter, the same from the simulator's ground truth: the MACs of each
    layer priced per MAC (energy model ``macs``), or each sample's counted instructions priced per
    class (``instructions-qemu-plugin``, which also gives each sample's error)."""
    rows = [
        r for r in samples if (r["target"], r["procedure"]) == (target, procedure) and r["energy_j"] not in ("", None)
    ]
    if len({r["exit_layer"] for r in rows}) < 2:
        return None
    exits = np.array([int(r["exit_layer"]) for r in rows])
    energy = np.array([float(r["energy_j"]) for r in rows])
    fit = fit_energy_vs_exit(exits, energy)
    layer_energy = _layer_energy(exits, energy)
    out: dict[str, Any] = {
        "slope_j_per_layer": fit.slope_j_per_layer,
        "intercept_j": fit.intercept_j,
        "r2": fit.r2,
        "n": fit.n,
        "mean_energy_j_at_exit": {str(k): float(energy[exits == k].mean()) for k in sorted(set(exits.tolist()))},
        "layer_energy_j": layer_energy,
    }
    truth = _ground_truth(rows, exits, energy, layer_macs, meter)
    if truth is None:
        return out
    layer_truth, errors = truth
    if errors is not None:
        out["sample_energy_error"] = {"median": float(np.median(errors)), "max_abs": float(np.abs(errors).max())}
    out["ground_truth_layer_energy_j"] = layer_truth
    out["layer_energy_error"] = {k: v / layer_truth[k] - 1 for k, v in layer_energy.items() if k in layer_truth}
    return out


def _ground_truth(
    rows: list[dict[str, str]], exits: np.ndarray, energy: np.ndarray, layer_macs: np.ndarray, meter: dict[str, Any]
) -> tuple[dict[str, float], np.ndarray | None] | None:
    """The energy each layer adds by the simulator's ground truth, and each sample's relative error
    against its priced instructions (None where the meter prices MACs); None for a real meter."""
    params = meter.get("ground_truth") or {}
    model = meter.get("energy_model")
    if model == ENERGY_MODEL_MACS and "net_joules_per_mac" in params:
        return {str(k + 1): float(m) * params["net_joules_per_mac"] for k, m in enumerate(layer_macs)}, None
    if model == ENERGY_MODEL_INSTRUCTIONS and all(r[INSN_CLASS_COLUMNS[0]] for r in rows):
        per_class = np.array([params[f"net_joules_per_{c}"] for c in INSN_CLASSES])
        counts = np.array([[float(r[c]) for c in INSN_CLASS_COLUMNS] for r in rows])
        sample_truth = counts @ per_class
        return _layer_energy(exits, sample_truth), energy / sample_truth - 1
    return None


def _layer_energy(exits: np.ndarray, energy: np.ndarray) -> dict[str, float]:
    """The energy each layer adds: mean energy at exit k minus at exit k - 1."""
    mean_at = {k: float(energy[exits == k].mean()) for k in sorted(set(exits.tolist()))}
    return {str(k): mean_at[k] - mean_at.get(k - 1, 0.0) for k in mean_at if k == 1 or k - 1 in mean_at}
