"""Label-free confidence statistics, and the exit rule of learners whose scores are exit-head logits."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ffenergy.learners.base import Learner

if TYPE_CHECKING:
    from ffenergy.config import InferenceConfig


def top_gap(scores: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 of each row (inf with a single candidate; pruned ones hold -inf)."""
    if scores.shape[1] < 2:
        return torch.full_like(scores[:, 0], float("inf"))
    top = torch.topk(scores, k=2, dim=1).values
    return top[:, 0] - top[:, 1]


def top_probability(logits: torch.Tensor) -> torch.Tensor:
    """Top softmax probability = 1 / sum_c exp(s_c - s_max); one pass, no (N, C) softmax."""
    return (logits - logits.amax(dim=1, keepdim=True)).exp().sum(dim=1).reciprocal()


def top_gap_of_row(scores: list[float]) -> float:
    """``top_gap`` of one row, on Python floats."""
    if len(scores) < 2:
        return math.inf
    ranked = sorted(scores)  # faster than heapq.nlargest on a row of a few classes
    return ranked[-1] - ranked[-2]


def top_probability_of_row(logits: list[float]) -> float:
    """``top_probability`` of one row, on Python floats."""
    top = max(logits)
    return 1.0 / sum([math.exp(s - top) for s in logits])


class HeadExits(Learner):
    """Scores are a softmax exit head's logits: confidence is ``inference.op_statistic`` of them (FF OP, bp-exits,
    PEPITA share it, so all of them are calibrated and exited by the same rule)."""

    def __init__(self, name: str, net: Any, inference: InferenceConfig):
        super().__init__(name, net, inference)
        self._statistic = inference.op_statistic

    @property
    def statistic(self) -> str:
        return self._statistic

    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        return top_gap(scores) if self._statistic == "gap" else top_probability(scores)

    def confidence_of_row(self, scores: list[float]) -> float:
        return top_gap_of_row(scores) if self._statistic == "gap" else top_probability_of_row(scores)

    @property
    def confidence_floor(self) -> float:
        return 0.0 if self._statistic == "gap" else 1.0 / self.n_classes
