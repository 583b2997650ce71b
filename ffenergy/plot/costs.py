"""Which meters measured a target, and the predicted energy of each alpha-sweep point.

The runner measures no sweep point, so a point's energy is predicted as sum_k p_k * E(depth-k) from
the depth-k energies in summary.csv (DESIGN.md section 3); failing those, from the attribution fit
(joules_per_mac * MACs + intercept). Predicted points are always labelled as such.
"""

from __future__ import annotations

import numpy as np

from ffenergy.analysis.load import RunData, SweepRow

PREDICTED = "predicted"


def energy_meters(run: RunData, target: str) -> list[str]:
    """Meters with at least one energy value for ``target``, in manifest order."""
    found = {r.meter for r in run.summary if r.target == target and r.energy_j_per_inference is not None}
    order = [m.name for m in run.manifest.meters]
    return sorted(found, key=lambda m: order.index(m) if m in order else len(order))


def targets(run: RunData) -> list[str]:
    """Targets of summary.csv in order, else of samples.csv, else of sweep.csv."""
    names = [r.target for r in run.summary]
    if not names and run.samples is not None:
        names = list(dict.fromkeys(run.samples.target))
    return list(dict.fromkeys(names or [r.target for r in run.sweep]))


def sweep_rows(run: RunData, target: str) -> list[SweepRow]:
    """The sweep rows of ``target``; rows of a target that summary.csv lacks (``host``) apply to all."""
    own = [r for r in run.sweep if r.target == target]
    known = set(targets(run))
    return own or [r for r in run.sweep if r.target not in known]


def summary_energy(run: RunData, target: str, meter: str, procedure: str, mode: str) -> float | None:
    for row in run.summary:
        if (row.target, row.meter, row.procedure, row.mode) == (target, meter, procedure, mode):
            return row.energy_j_per_inference
    return None


def sweep_energy(run: RunData, target: str, meter: str, row: SweepRow) -> tuple[float, str | None]:
    """(predicted energy per inference in J, PREDICTED) of a sweep point; (nan, None) if unknown."""
    depth = [
        summary_energy(run, target, meter, row.procedure, f"depth-{k}") for k in range(1, len(row.exit_fractions) + 1)
    ]
    known = [e for e in depth if e is not None]
    if len(known) == len(depth):
        return float(np.dot(row.exit_fractions, known)), PREDICTED
    fit = next((f for f in run.fits if (f.target, f.meter, f.procedure) == (target, meter, row.procedure)), None)
    if fit is not None:
        return fit.joules_per_mac * row.macs_per_inference + fit.intercept_j_per_inference, PREDICTED
    return float("nan"), None
