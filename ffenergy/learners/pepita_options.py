"""``model.options.pepita``: torch-free, so the config loader validates them before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ffenergy.learners.options import LearnerOptionsError


@dataclass
class PepitaOptions:
    """``model.options.pepita``."""

    network_id: ClassVar[str] = "pepita"

    lr: float = 0.01
    momentum: float = 0.9
    f_scale: float = 0.05  # F ~ U[-1, 1] * f_scale * sqrt(6 / d_0)
    epochs: int | None = None  # None: model.epochs
    lr_decay_at: list[float] = field(default_factory=lambda: [0.6, 0.9])  # fractions of the epochs: lr x 0.1
    head_lr: float = 1e-3
    head_epochs: int = 10
    keep: float = 1.0  # dropout keep rate of the hidden units in training (the paper: 0.9); 1: no dropout

    def validate(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "momentum": 0 <= self.momentum < 1,
            "f_scale": self.f_scale > 0,
            "epochs": self.epochs is None or self.epochs >= 1,
            "lr_decay_at": all(0 < f <= 1 for f in self.lr_decay_at),
            "head_lr": self.head_lr > 0,
            "head_epochs": self.head_epochs >= 1,
            "keep": 0 < self.keep <= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise LearnerOptionsError(f"model.options.pepita.{key}: invalid value {getattr(self, key)!r}")
