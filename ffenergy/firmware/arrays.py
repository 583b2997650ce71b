"""A trained FF network as plain numpy arrays: the hand-off to export, firmware and references.

Semantics (the same in torch, the numpy reference and the C firmware):
- input x (d0 floats); the first C values are overwritten by the label overlay:
  MP candidate c: one-hot(c) * label_value; OP: label_value / C in every slot.
- layer l: h = x_{l-1} / (sqrt(mean(x_{l-1}^2)) + norm_eps); z_l = ReLU(W_l h + b_l)
  (W_l has shape (d_l, d_{l-1})); z_l is the next layer's input.
- MP score of candidate c at depth k: sum_{l<=k} sum_j z_l(c)_j^2 (accumulated goodness).
- OP score at depth k: logits = H_k concat(z_1..z_k) (H_k has shape (C, d_1+..+d_k), no bias),
  computed on the neutral-label pass.
- confidence at depth k: ``gap`` = top1 - top2 of the scores; ``max`` = top1 score (MP) or
  top softmax probability (OP). Exit at the first k < L whose confidence >= thresholds[k-1];
  depth L always exits. Prediction = argmax of the scores at the exit depth.
- MP label pruning: after layer ``prune_after`` only the ``prune_keep`` candidates with the
  highest accumulated goodness continue (ties: lower label first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Scheme = Literal["mp", "op"]
Statistic = Literal["gap", "max"]


@dataclass
class ExitPolicy:
    """Label-free early-exit rule of one network."""

    statistic: Statistic
    thresholds: np.ndarray  # float32, shape (L,); thresholds[L-1] is unused (last layer always exits)
    prune_after: int = 0  # MP only; 0 = no pruning
    prune_keep: int = 0


@dataclass
class NetworkArrays:
    """Weights of one network, float32, in the layout documented above."""

    scheme: Scheme  # "mp" (one pass per candidate label) | "op" (neutral label, heads)
    weights: list[np.ndarray]  # W_l, shape (d_l, d_{l-1})
    biases: list[np.ndarray]  # b_l, shape (d_l,)
    heads: list[np.ndarray]  # OP only: H_k, shape (C, d_1+..+d_k); empty for MP
    n_classes: int
    label_value: float
    norm_eps: float

    @property
    def dims(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def n_layers(self) -> int:
        return len(self.weights)
