"""``model.options.bp-exits``: torch-free, so the config loader validates them before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ffenergy.learners.options import LearnerOptionsError


@dataclass
class BackpropOptions:
    """``model.options.bp-exits`` (and of every end-to-end multi-exit learner: ``model.options.<network_id>``)."""

    network_id: ClassVar[str] = "bp-exits"

    lr: float = 1e-3
    epochs: int | None = None  # None: model.epochs
    optimizer: str = "adam"  # adam or sgd (with momentum)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    exit_weights: list[float] | None = None  # one per depth, normalised to sum 1; None: equal
    lr_decay_at: list[float] = field(default_factory=list)  # fractions of the epochs: lr x 0.1 at each

    def exit_weights_of(self, n_layers: int) -> list[float]:
        """The validated exit-loss weights of an ``n_layers`` network (the learner normalises them to sum 1)."""
        raw = [1.0] * n_layers if self.exit_weights is None else self.exit_weights
        if len(raw) != n_layers or min(raw) < 0 or sum(raw) <= 0:
            raise LearnerOptionsError(
                f"model.options.{self.network_id}.exit_weights: {raw!r}; use {n_layers} "
                "non-negative numbers (one per layer) with a positive sum"
            )
        return list(raw)

    def validate(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "epochs": self.epochs is None or self.epochs >= 1,
            "optimizer": self.optimizer in ("adam", "sgd"),
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "lr_decay_at": all(0 < f <= 1 for f in self.lr_decay_at),
        }
        for key, ok in checks.items():
            if not ok:
                raise LearnerOptionsError(
                    f"model.options.{self.network_id}.{key}: invalid value {getattr(self, key)!r}"
                )
