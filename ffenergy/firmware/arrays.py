"""A trained network as plain numpy arrays: the hand-off to export, firmware and references.

Semantics (the same in torch, the numpy reference and the C firmware). FF schemes ``mp``, ``op``:
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

Scheme ``exit`` (an exit-head network: bp-exits, PEPITA), no label overlay and no normalisation:
- layer l: z_l = ReLU(W_l z_{l-1} + b_l) with z_0 = x.
- score at depth k: logits = H_k z_k + c_k (H_k has shape (C, d_k): layer k's output only).
- confidence, exit rule and prediction as for OP (``gap`` of the logits, ``max`` = top softmax
  probability).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Scheme = Literal["mp", "op", "exit"]
SCHEMES: tuple[Scheme, ...] = ("mp", "op", "exit")  # in the order of their INFO codes (hardware/protocol.md)
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

    scheme: Scheme  # "mp" (one pass per candidate label) | "op" (neutral label, heads) | "exit" (heads, no norm)
    weights: list[np.ndarray]  # W_l, shape (d_l, d_{l-1})
    biases: list[np.ndarray]  # b_l, shape (d_l,)
    heads: list[np.ndarray]  # OP: H_k, shape (C, d_1+..+d_k); exit: H_k, shape (C, d_k); empty for MP
    n_classes: int
    label_value: float  # FF only
    norm_eps: float  # FF only
    head_biases: list[np.ndarray] = field(default_factory=list)  # exit only: c_k, shape (C,)

    @property
    def dims(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def n_layers(self) -> int:
        return len(self.weights)
