"""``model.options.cwc``: torch-free, so the config loader validates them before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ffenergy.learners.backprop_options import BackpropOptions
from ffenergy.learners.options import LearnerOptionsError, is_integer, is_number


@dataclass
class CwcOptions:
    """How the channel-wise competitive layers train (``ffenergy.learners.conv.cwc``).

    Every layer has its own Adam state (one optimiser, one parameter group per layer) and its own
    local loss; layer k trains during the first ``layer_epochs[k]`` epochs and is frozen after
    (CwComp's schedule: earlier layers settle first). ``None``: every layer trains every epoch.
    """

    network_id: ClassVar[str] = "cwc"

    lr: float = 0.01  # Adam, as CwComp
    weight_decay: float = 0.0
    epochs: int | None = None  # None: model.epochs
    layer_epochs: list[int] | None = None  # per layer: epochs it trains (from the first); None: all of them
    lr_decay_at: list[float] = field(default_factory=list)  # fractions of the epochs: lr x 0.1 at each

    def total_epochs(self, model_epochs: int) -> int:
        return self.epochs or model_epochs

    def trains(self, n_layers: int, model_epochs: int) -> list[int]:
        """Epochs each of ``n_layers`` layers trains, checked against the layer count and the epochs."""
        epochs = self.total_epochs(model_epochs)
        per_layer = [epochs] * n_layers if self.layer_epochs is None else self.layer_epochs
        if len(per_layer) != n_layers or any(e > epochs for e in per_layer):
            raise LearnerOptionsError(
                f"model.options.cwc.layer_epochs: {per_layer!r}; give {n_layers} positive integers "
                f"(one per layer), none above the {epochs} training epochs"
            )
        return per_layer

    def validate(self) -> None:
        checks = {
            "lr": (is_number(self.lr) and self.lr > 0, "a positive number, e.g. 0.01"),
            "weight_decay": (is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0"),
            "epochs": (
                self.epochs is None or (is_integer(self.epochs) and self.epochs >= 1),
                "a positive integer, or leave it out for model.epochs",
            ),
            "layer_epochs": (
                self.layer_epochs is None
                or (
                    isinstance(self.layer_epochs, list)
                    and bool(self.layer_epochs)
                    and all(is_integer(e) and e >= 1 for e in self.layer_epochs)
                ),
                "a list of positive integers, one per layer, e.g. [11, 16, 20, 20]",
            ),
            "lr_decay_at": (
                isinstance(self.lr_decay_at, list) and all(is_number(f) and 0 < f <= 1 for f in self.lr_decay_at),
                "a list of fractions in (0, 1], e.g. [0.5, 0.75]",
            ),
        }
        for key, (ok, fix) in checks.items():
            if not ok:
                raise LearnerOptionsError(f"model.options.cwc.{key}: invalid value {getattr(self, key)!r}; use {fix}")


@dataclass
class BpConvOptions(BackpropOptions):
    """``model.options.bp-conv-exits``: the fields of ``bp-exits``."""

    network_id: ClassVar[str] = "bp-conv-exits"
