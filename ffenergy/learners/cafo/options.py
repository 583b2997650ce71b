"""``model.options.cafo``: torch-free, so the config loader validates them before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ffenergy.learners.options import LearnerOptionsError, is_integer, is_number

BLOCK_RULES = ("dfa", "random")


@dataclass
class CafoOptions:
    """How CaFo's blocks and per-block predictors train (``ffenergy.learners.cafo.learner``)."""

    network_id: ClassVar[str] = "cafo"

    blocks: str = "dfa"  # dfa: blocks pre-trained by direct feedback alignment; random: left at initialisation
    lr: float = 0.01  # DFA, SGD with momentum
    momentum: float = 0.9
    epochs: int | None = None  # DFA epochs; None: model.epochs
    lr_decay_at: list[float] = field(default_factory=list)  # fractions of the DFA epochs: lr x 0.1 at each
    head_lr: float = 1e-3  # the predictors (Adam, cross-entropy)
    head_epochs: int = 10

    def validate(self) -> None:
        checks = {
            "blocks": (self.blocks in BLOCK_RULES, f"{' or '.join(BLOCK_RULES)}"),
            "lr": (is_number(self.lr) and self.lr > 0, "a positive number, e.g. 0.01"),
            "momentum": (is_number(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1), e.g. 0.9"),
            "epochs": (
                self.epochs is None or (is_integer(self.epochs) and self.epochs >= 1),
                "a positive integer, or leave it out for model.epochs",
            ),
            "lr_decay_at": (
                isinstance(self.lr_decay_at, list) and all(is_number(f) and 0 < f <= 1 for f in self.lr_decay_at),
                "a list of fractions in (0, 1], e.g. [0.5, 0.75]",
            ),
            "head_lr": (is_number(self.head_lr) and self.head_lr > 0, "a positive number, e.g. 0.001"),
            "head_epochs": (is_integer(self.head_epochs) and self.head_epochs >= 1, "a positive integer"),
        }
        for key, (ok, fix) in checks.items():
            if not ok:
                raise LearnerOptionsError(f"model.options.cafo.{key}: invalid value {getattr(self, key)!r}; use {fix}")
