"""What early exit saves on a microcontroller, from one (target, procedure)'s samples.csv rows
(per-inference energy, MACs and, where counted, executed instructions).

- per mode: µJ per inference, pJ per MAC, instructions per inference, and the reductions of
  energy, MACs and instructions against the baseline's full mode (``mac_reduction`` convention:
  full / mode, > 1 means savings);
- the exit check's own cost: the same sample in ``light`` (exiting at k) and ``depth-k`` runs the
  same layers, but light also evaluates the exit rule after each layer it runs (k checks, k - 1
  when it reaches the last layer), so the difference per check is that check's instructions and
  energy. The measured energy of a check is a small difference of two noisy windows; with the
  simulator's net joules per instruction class, ``priced_energy_uj_per_check`` is the exact price of
  the check's counted instructions.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ffenergy.contract import ENERGY_MODEL_INSTRUCTIONS, INSN_CLASS_COLUMNS, INSN_CLASSES, SummaryRow


def _num(row: dict[str, str], key: str) -> float | None:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept and len(kept) == len(values) else None


def _means(rows: list[dict[str, str]]) -> tuple[float | None, float | None, float | None]:
    """Mean energy (J), MACs and instructions per inference of rows (None where not every row has one)."""
    if not rows:
        return None, None, None
    macs = float(np.mean([float(r["macs"]) for r in rows]))
    return _mean([_num(r, "energy_j") for r in rows]), macs, _mean([_num(r, "instructions") for r in rows])


def _per_mac(value: float | None, macs: float | None, scale: float) -> float | None:
    return value / macs * scale if value is not None and macs else None


def _reduction(base: float | None, value: float | None) -> float | None:
    return base / value if base and value else None


def mode_figures(rows: list[dict[str, str]], baseline_rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Per mode: mean energy (µJ), pJ per MAC, instructions, and reductions vs the baseline's full mode."""
    by_mode: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_mode[r["mode"]].append(r)
    base_e, base_m, base_i = _means([r for r in baseline_rows if r["mode"] == "full"])
    out: dict[str, dict[str, Any]] = {}
    for mode, rs in sorted(by_mode.items()):
        e, macs, insn = _means(rs)
        out[mode] = {
            "uj_per_inference": e * 1e6 if e is not None else None,
            "pj_per_mac": _per_mac(e, macs, 1e12),
            "instructions_per_inference": insn,
            "instructions_per_mac": _per_mac(insn, macs, 1.0),
            "energy_reduction": _reduction(base_e, e),
            "mac_reduction": _reduction(base_m, macs),
            "instruction_reduction": _reduction(base_i, insn),
        }
    return out


Check = tuple[float, float | None, float | None]  # per check: joules measured, instructions, joules priced


def exit_check_cost(
    rows: list[dict[str, str]], joules_per_class: dict[str, float] | None = None
) -> dict[str, Any] | None:
    """Instructions and joules per exit check, from pairs (light exiting at k, depth-k) of one sample;
    ``joules_per_class`` (``insn_<class>`` column -> net J per instruction) also prices them."""
    by = {(r["mode"], r["sample"]): r for r in rows}
    n_layers = max((int(r["exit_layer"]) for r in rows if r["mode"] == "full"), default=0)
    per_layer: dict[int, list[Check]] = defaultdict(list)
    for (mode, sample), light in by.items():
        if mode != "light":
            continue
        k = int(light["exit_layer"])
        forced = by.get((f"depth-{k}", sample))
        checks = k if k < n_layers else k - 1
        if forced is not None and checks > 0 and (pair := _check(light, forced, checks, joules_per_class)):
            per_layer[k].append(pair)
    if not per_layer:
        return None
    pairs = [p for ps in per_layer.values() for p in ps]
    return {
        **_check_figures(pairs),
        "by_exit_layer": {str(k): _check_figures(ps) for k, ps in sorted(per_layer.items())},
    }


def _check(
    light: dict[str, str], forced: dict[str, str], checks: int, joules_per_class: dict[str, float] | None
) -> Check | None:
    """One sample's cost per check: light (exiting at k, ``checks`` checks) minus depth-k; None without energies."""
    e_l, e_f = _num(light, "energy_j"), _num(forced, "energy_j")
    if e_l is None or e_f is None:
        return None
    i_l, i_f = _num(light, "instructions"), _num(forced, "instructions")
    d_insn = (i_l - i_f) / checks if i_l is not None and i_f is not None else None
    priced = None
    if joules_per_class and d_insn is not None:
        priced = sum((float(light[c]) - float(forced[c])) * j for c, j in joules_per_class.items()) / checks
    return (e_l - e_f) / checks, d_insn, priced


def _check_figures(pairs: list[Check]) -> dict[str, Any]:
    priced = _mean([p[2] for p in pairs])
    return {
        "energy_uj_per_check": float(np.mean([p[0] for p in pairs])) * 1e6,
        "priced_energy_uj_per_check": priced * 1e6 if priced is not None else None,
        "instructions_per_check": _mean([p[1] for p in pairs]),
        "n_pairs": len(pairs),
    }


def light_reductions(light: SummaryRow | None) -> dict[str, float | None]:
    """attribution.json's light-mode savings from its summary row: energy reduction, MAC reduction
    and their ratio (> 1: energy falls faster than MACs; < 1: early exit's overhead eats into it)."""
    e = light.energy_reduction if light else None
    m = light.mac_reduction if light else None
    return {
        "light_energy_reduction": e,
        "light_mac_reduction": m,
        "light_energy_vs_mac_reduction": e / m if e is not None and m else None,
    }


def early_exit_savings(
    samples: list[dict[str, str]], target: str, procedure: str, baseline: str, meter: dict[str, Any]
) -> dict[str, Any]:
    """Per mode figures and the exit check's cost (``analysis.mcu_savings``) of an MCU target; an
    instruction-priced simulated meter's ground truth also prices the check."""
    rows = [r for r in samples if (r["target"], r["procedure"]) == (target, procedure)]
    base = [r for r in samples if (r["target"], r["procedure"]) == (target, baseline)] or rows
    truth = meter.get("ground_truth") or {}
    per_class = (
        {col: truth[f"net_joules_per_{c}"] for col, c in zip(INSN_CLASS_COLUMNS, INSN_CLASSES, strict=True)}
        if meter.get("energy_model") == ENERGY_MODEL_INSTRUCTIONS
        else None
    )
    return {"baseline": baseline, "modes": mode_figures(rows, base), "exit_check": exit_check_cost(rows, per_class)}
