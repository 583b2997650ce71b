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


def _num(row: dict[str, str], key: str) -> float | None:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept and len(kept) == len(values) else None


def mode_figures(rows: list[dict[str, str]], baseline_rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Per mode: mean energy (µJ), pJ per MAC, instructions, and reductions vs the baseline's full mode."""
    by_mode: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_mode[r["mode"]].append(r)
    full = [r for r in baseline_rows if r["mode"] == "full"]
    base_e = _mean([_num(r, "energy_j") for r in full]) if full else None
    base_m = float(np.mean([float(r["macs"]) for r in full])) if full else None
    base_i = _mean([_num(r, "instructions") for r in full]) if full else None
    out: dict[str, dict[str, Any]] = {}
    for mode, rs in sorted(by_mode.items()):
        e = _mean([_num(r, "energy_j") for r in rs])
        macs = float(np.mean([float(r["macs"]) for r in rs]))
        insn = _mean([_num(r, "instructions") for r in rs])
        out[mode] = {
            "uj_per_inference": e * 1e6 if e is not None else None,
            "pj_per_mac": e / macs * 1e12 if e is not None and macs else None,
            "instructions_per_inference": insn,
            "instructions_per_mac": insn / macs if insn is not None and macs else None,
            "energy_reduction": base_e / e if base_e and e else None,
            "mac_reduction": base_m / macs if base_m and macs else None,
            "instruction_reduction": base_i / insn if base_i and insn else None,
        }
    return out


def exit_check_cost(
    rows: list[dict[str, str]], joules_per_class: dict[str, float] | None = None
) -> dict[str, Any] | None:
    """Instructions and joules per exit check, from pairs (light exiting at k, depth-k) of one sample;
    ``joules_per_class`` (``insn_<class>`` column -> net J per instruction) also prices them."""
    by = {(r["mode"], r["sample"]): r for r in rows}
    n_layers = max((int(r["exit_layer"]) for r in rows if r["mode"] == "full"), default=0)
    per_layer: dict[int, list[tuple[float, float | None, float | None]]] = defaultdict(list)
    for (mode, sample), light in by.items():
        if mode != "light":
            continue
        k = int(light["exit_layer"])
        forced = by.get((f"depth-{k}", sample))
        checks = k if k < n_layers else k - 1
        e_l, e_f = _num(light, "energy_j"), _num(forced, "energy_j") if forced else None
        if forced is None or checks == 0 or e_l is None or e_f is None:
            continue
        i_l, i_f = _num(light, "instructions"), _num(forced, "instructions")
        d_insn = (i_l - i_f) / checks if i_l is not None and i_f is not None else None
        priced = None
        if joules_per_class and d_insn is not None:
            priced = sum((float(light[c]) - float(forced[c])) * j for c, j in joules_per_class.items()) / checks
        per_layer[k].append(((e_l - e_f) / checks, d_insn, priced))
    if not per_layer:
        return None
    pairs = [p for ps in per_layer.values() for p in ps]
    return {
        **_check_figures(pairs),
        "by_exit_layer": {str(k): _check_figures(ps) for k, ps in sorted(per_layer.items())},
    }


def _check_figures(pairs: list[tuple[float, float | None, float | None]]) -> dict[str, Any]:
    priced = _mean([p[2] for p in pairs])
    return {
        "energy_uj_per_check": float(np.mean([p[0] for p in pairs])) * 1e6,
        "priced_energy_uj_per_check": priced * 1e6 if priced is not None else None,
        "instructions_per_check": _mean([p[1] for p in pairs]),
        "n_pairs": len(pairs),
    }
