"""``model.options.ff`` (the network that ``mp``, ``mp-pruned`` and ``op`` share): torch-free, so the
config loader validates them before any work. The defaults are the loeweX/LightFF main-code recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ffenergy.learners.options import LearnerOptionsError


@dataclass
class FFOptions:
    """The FF loss's temperature and the OP heads' extra training (``ffenergy.learners.ff.train``)."""

    network_id: ClassVar[str] = "ff"

    loss_scale: float | None = None
    """Layer k's FF logit is ``loss_scale * (mean(z^2) - 1)``, i.e. ``(G_k - d_k) * loss_scale / d_k``
    with G_k the sum of squares: the threshold stays at the width, only the sigmoid's steepness
    changes. None: ``d_k`` itself, so the logit is ``G_k - d_k`` (loeweX)."""
    head_epochs: int = 0
    """After the FF epochs, this many epochs of Adam (``model.head_lr``) on the OP heads alone, on the
    frozen neutral-label activations. 0: the heads train only alongside the layers."""

    def validate(self) -> None:
        scale = self.loss_scale
        if scale is not None and not (_number(scale) and scale > 0):
            raise LearnerOptionsError(
                f"model.options.ff.loss_scale: invalid value {scale!r}; use a positive number, e.g. 1.0, "
                "or leave it out for the layer width"
            )
        if not (isinstance(self.head_epochs, int) and not isinstance(self.head_epochs, bool) and self.head_epochs >= 0):
            raise LearnerOptionsError(
                f"model.options.ff.head_epochs: invalid value {self.head_epochs!r}; use an integer >= 0 (0: none)"
            )


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
