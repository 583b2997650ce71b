"""Learners side by side at equal accuracy: what each procedure's α sweep says it costs.

A procedure's *operating points* are its full network and every α of its sweep (sweep.csv,
computed on the test split from one model). ``macs_at_accuracy`` reads off the fewest MACs per
inference among the points that reach an accuracy, with no interpolation between points, so
the table compares learners at (at least) equal accuracy rather than at one arbitrary α. The
points come from host inference (``sweep.csv``'s target ``host``), the same data split for
every procedure of a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffenergy.analysis.load import RunData

EPS = 1e-9  # accuracies are fractions of the same test split: equal means equal up to rounding


@dataclass(frozen=True)
class OperatingPoint:
    accuracy: float
    macs_per_inference: float
    label: str  # "full" or "α=…"


@dataclass(frozen=True)
class LearnerRow:
    """One procedure of one run: the summary's full and light modes and its operating points."""

    run_id: str
    procedure: str
    full_accuracy: float
    light_accuracy: float
    light_mean_layers: float
    light_macs_per_inference: float
    light_mac_reduction: float | None
    points: tuple[OperatingPoint, ...]

    def macs_at_accuracy(self, accuracy: float) -> float | None:
        """The fewest MACs per inference of a point at ``accuracy`` or above; None if none reaches it."""
        costs = [p.macs_per_inference for p in self.points if p.accuracy >= accuracy - EPS]
        return min(costs) if costs else None


def learner_rows(run: RunData) -> list[LearnerRow]:
    """One row per procedure that has full and light rows, from the first target that ran it."""
    rows = []
    for procedure in run.procedures:
        mine = [r for r in run.summary if r.procedure == procedure]
        target = mine[0].target if mine else None
        modes = {r.mode: r for r in mine if r.target == target}
        if "full" not in modes or "light" not in modes:
            continue
        full, light = modes["full"], modes["light"]
        sweep = [s for s in run.sweep if s.procedure == procedure]
        points = [OperatingPoint(full.accuracy, full.macs_per_inference, "full")] + [
            OperatingPoint(s.accuracy, s.macs_per_inference, f"α={s.alpha:g}") for s in sweep
        ]
        points.append(OperatingPoint(light.accuracy, light.macs_per_inference, "light"))
        rows.append(
            LearnerRow(
                run.run_id,
                procedure,
                full.accuracy,
                light.accuracy,
                light.mean_layers,
                light.macs_per_inference,
                light.mac_reduction,
                tuple(points),
            )
        )
    return rows


def equal_accuracy_table(rows: list[LearnerRow], label_run: bool) -> tuple[list[str], list[list[str]]]:
    """Header and cells: each row's full/light figures, then its MACs per inference at every row's light
    accuracy (``-``: its sweep never reaches that accuracy)."""
    name = (lambda r: f"{r.run_id} {r.procedure}") if label_run else (lambda r: r.procedure)
    header = ["procedure", "full", "light", "mean layers", "MACs/inference (light)", "MAC reduction"] + [
        f"MACs at ≥ {r.light_accuracy * 100:.2f}% ({name(r)} light)" for r in rows
    ]
    cells = []
    for row in rows:
        at = [row.macs_at_accuracy(ref.light_accuracy) for ref in rows]
        cells.append(
            [
                name(row),
                f"{row.full_accuracy * 100:.2f}%",
                f"{row.light_accuracy * 100:.2f}%",
                f"{row.light_mean_layers:.2f}",
                f"{row.light_macs_per_inference:,.0f}",
                "-" if row.light_mac_reduction is None else f"{row.light_mac_reduction:.2f}×",
            ]
            + ["-" if m is None else f"{m:,.0f}" for m in at]
        )
    return header, cells
