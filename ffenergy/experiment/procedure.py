"""What the stages of a run hand each other: a calibrated procedure, and the error that stops a run."""

from __future__ import annotations

from dataclasses import dataclass

from ffenergy.learners.base import Learner
from ffenergy.learners.calibrate import Calibration


class RunError(RuntimeError):
    """The run cannot go on; the message says what happened and how to continue."""


@dataclass
class Procedure:
    """One inference procedure of the run: a trained learner with its calibrated exit rule."""

    learner: Learner
    calibration: Calibration
    thresholds: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.learner.name


def to_cpu(procedures: list[Procedure]) -> None:
    """Move every procedure's network back to the CPU (after a CUDA target ran it)."""
    for proc in procedures:
        proc.learner.net.to("cpu")
