"""The summary table printed at the end of ``ffenergy run``."""

from __future__ import annotations

import math
from typing import Any

from ffenergy.units import energy_unit, format_energy


def _num(value, fmt: str) -> str:
    if value in (None, ""):
        return "-"
    value = float(value)
    return "-" if math.isnan(value) else format(value, fmt)


def _energy(row: dict[str, Any], unit: tuple[float, str]) -> str:
    e, ci = (row.get(k) for k in ("energy_j_per_inference", "energy_ci95_j"))
    return format_energy(
        float(e) if e not in (None, "") else None, float(ci) if ci not in (None, "") else None, unit, missing="-"
    )


_HEADER = [
    "target",
    "meter",
    "procedure",
    "mode",
    "acc %",
    "F1",
    "layers",
    "MMAC/inf (run)",
    "MAC red. (run)",
    "MAC red. (paper)",
    "energy/inf (net, 95% CI)",
    "energy red.",
]


def _cells(r: dict[str, Any], unit: tuple[float, str]) -> list[str]:
    return [
        r["target"],
        f"{r['meter']} ({r['provenance']})" if r.get("provenance") else r["meter"],
        r["procedure"],
        r["mode"],
        _num(100 * float(r["accuracy"]), ".2f"),
        _num(r["macro_f1"], ".3f"),
        _num(r["mean_layers"], ".2f"),
        _num(float(r["macs_per_inference"]) / 1e6, ".3f"),
        _num(r.get("mac_reduction_as_run"), ".2f") + "x",
        _num(r["mac_reduction"], ".2f") + "x",
        _energy(r, unit),
        _num(r["energy_reduction"], ".2f") + ("x" if r.get("energy_reduction") not in (None, "") else ""),
    ]


def format_summary(rows: list[dict]) -> str:
    """A fixed-width table: one line per (target, meter, procedure, mode)."""
    order = {"full": 0, "light": 1}
    ordered = sorted(rows, key=lambda r: (r["target"], r["meter"], r["procedure"], order.get(r["mode"], 2), r["mode"]))
    unit = energy_unit(
        [float(r["energy_j_per_inference"]) for r in rows if r.get("energy_j_per_inference") not in (None, "")]
    )
    header = list(_HEADER)
    body = [_cells(r, unit) for r in ordered]
    if any(r.get("co2_g_per_1000_inferences") not in (None, "") for r in rows):
        header.append("gCO2e/1k inf")
        for cells, r in zip(body, ordered):
            cells.append(_num(r.get("co2_g_per_1000_inferences"), ".3g"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(
        str(c).rjust(w) if i >= 4 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(b) for b in body] + _notes(ordered))


def _notes(ordered: list[dict]) -> list[str]:
    depth_1 = dict.fromkeys(
        (r["procedure"], r["target"]) for r in ordered if r["mode"] == "light" and float(r["mean_layers"]) == 1.0
    )
    return [
        f"note: {procedure} light on {target} = depth-1: every test sample exited at layer 1, so it is no adaptive exit"
        for procedure, target in depth_1
    ]
