"""Forward-Forward as learners: multi-pass (MP), MP with label pruning, and one-pass (OP).

One FF network (``model.FFNetwork``, trained by ``train.train``) serves all three, so they share
one cache entry. MP runs one pass per candidate label and accumulates goodness over layers; its
confidence is ``inference.mp_statistic`` of the accumulated goodness. Pruned MP keeps only the
``inference.prune_keep`` best candidates after layer ``inference.prune_after``, and reports its
reductions against unpruned MP. OP runs one neutral-label pass with a softmax head per depth;
its confidence is ``inference.op_statistic`` of the head's logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.learners.base import Learner, LearnerOptionsError, RowState
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.confidence import HeadExits, top_gap, top_gap_of_row
from ffenergy.learners.ff.macs import mp_layer_macs, mp_layer_macs_naive, op_layer_macs
from ffenergy.learners.ff.model import FFNetwork
from ffenergy.learners.ff.options import FFOptions
from ffenergy.learners.ff.train import train
from ffenergy.learners.options import learner_options

if TYPE_CHECKING:
    from ffenergy.config import InferenceConfig, ModelConfig


class _FFLearner(Learner):
    network_id: ClassVar[str] = "ff"
    training_version: ClassVar[int] = 1
    net: FFNetwork

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> FFNetwork:
        return FFNetwork(dims, n_classes, label_value)

    @classmethod
    def fit(
        cls,
        net: Any,
        x: np.ndarray,
        y: np.ndarray,
        model: ModelConfig,
        seed: int,
        device: str,
        progress: bool,
        checkpoint: EpochCheckpoint,
    ) -> dict[str, Any]:
        options = learner_options(FFOptions, model, cls.network_id)
        log = train(net, x, y, model, seed, device, progress, checkpoint, options)
        return {
            "train_seconds": round(log.seconds, 2),
            "train_device": device,
            "resumed_after_epoch": log.resumed_after,
            "ff_loss": log.ff_loss,
            "head_loss": log.head_loss,
            "frozen_head_loss": log.frozen_head_loss,
        }

    prune_after: int = 0
    prune_keep: int = 0

    @property
    def dims(self) -> list[int]:
        return self.net.dims

    def calibration_facts(self) -> dict[str, Any]:
        return {"prune_after": self.prune_after, "prune_keep": self.prune_keep}

    @property
    def n_classes(self) -> int:
        return self.net.n_classes


class FFMultiPass(_FFLearner):
    """MP: one pass per candidate label; scores = goodness accumulated up to each depth."""

    pruned: ClassVar[bool] = False

    def __init__(self, name: str, net: FFNetwork, inference: InferenceConfig):
        super().__init__(name, net, inference)
        self._statistic = inference.mp_statistic
        self.prune_after = inference.prune_after if self.pruned else 0
        self.prune_keep = inference.prune_keep if self.pruned else 0

    @property
    def statistic(self) -> str:
        return self._statistic

    def start(self, x: torch.Tensor) -> _MultiPass:
        return _MultiPass(self, x)

    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        return top_gap(scores) if self._statistic == "gap" else scores.amax(dim=1)

    def confidence_of_row(self, scores: list[float]) -> float:
        return top_gap_of_row(scores) if self._statistic == "gap" else max(scores)

    @property
    def confidence_floor(self) -> float:
        return 0.0  # goodness is a sum of squares: its gap and its maximum are never negative

    def layer_macs(self) -> np.ndarray:
        return mp_layer_macs(self.dims, self.n_classes, self.prune_after, self.prune_keep)

    def naive_layer_macs(self) -> np.ndarray:
        return mp_layer_macs_naive(self.dims, self.n_classes, self.prune_after, self.prune_keep)

    def firmware(self, thresholds: np.ndarray) -> tuple[NetworkArrays, ExitPolicy]:
        policy = ExitPolicy(
            self._statistic,
            np.asarray(thresholds, np.float32),  # type: ignore[arg-type]
            self.prune_after,
            self.prune_keep,
        )
        return self.net.to_arrays("mp"), policy


class FFPrunedMultiPass(FFMultiPass):
    """MP that keeps only the best candidate labels after ``inference.prune_after``."""

    pruned: ClassVar[bool] = True

    @classmethod
    def check(cls, inference: InferenceConfig, n_classes: int) -> None:
        if inference.prune_keep >= n_classes:
            raise LearnerOptionsError(
                f"inference.prune_keep: {inference.prune_keep} keeps all {n_classes} classes, so mp-pruned would be "
                f"mp; use 2..{n_classes - 1}, or drop mp-pruned from inference.procedures"
            )

    @property
    def reference(self) -> str:
        return "mp"  # the honest baseline is the full unpruned network


class FFOnePass(HeadExits, _FFLearner):
    """OP: one neutral-label pass; scores at depth k = head k on the activations so far."""

    def start(self, x: torch.Tensor) -> _OnePass:
        return _OnePass(self.net, x)

    def layer_macs(self) -> np.ndarray:
        return op_layer_macs(self.dims, self.n_classes)

    def firmware(self, thresholds: np.ndarray) -> tuple[NetworkArrays, ExitPolicy]:
        policy = ExitPolicy(self._statistic, np.asarray(thresholds, np.float32))  # type: ignore[arg-type]
        return self.net.to_arrays("op"), policy


class _MultiPass(RowState):
    """A batch in MP: one copy of each row per live candidate label, with running goodness.

    Layer 1 runs factorised (``FFNetwork.label_layer``): every row starts with every label.
    """

    row_state = ("h", "cand", "goodness")

    def __init__(self, learner: FFMultiPass, x: torch.Tensor):
        net, c = learner.net, learner.n_classes
        self.net, self.prune_after, self.prune_keep = net, learner.prune_after, learner.prune_keep
        n = len(x)
        self.rows = torch.arange(n, device=x.device)
        self.h = x  # (n, d0) before layer 1, then (n, m, d): one copy per candidate label
        self.cand = torch.arange(c, device=x.device).repeat(n, 1)  # (n, m) label of each copy
        self.goodness = torch.zeros(n, c, device=x.device)

    def step(self, k: int) -> torch.Tensor:
        if k == 0:
            z = self.net.label_layer(self.h, self.cand[0])
        else:
            n, m, d = self.h.shape
            z = self.net.layer(k, self.h.reshape(n * m, d)).reshape(n, m, -1)
        self.goodness = self.goodness + (z * z).sum(dim=2)
        self.h = z
        if self.prune_after == k + 1 and 0 < self.prune_keep < z.shape[1]:
            self._prune(self.prune_keep)
        scores = torch.full((len(self.rows), self.net.n_classes), float("-inf"), device=z.device)
        return scores.scatter(1, self.cand, self.goodness)

    def _prune(self, keep: int) -> None:
        """Keep the ``keep`` best candidates of each row (ties: lower label), in label order."""
        order = torch.sort(self.goodness, dim=1, descending=True, stable=True).indices[:, :keep]
        order = torch.sort(order, dim=1).values  # candidates stay in ascending label order
        self.cand = torch.gather(self.cand, 1, order)
        self.goodness = torch.gather(self.goodness, 1, order)
        self.h = torch.gather(self.h, 1, order[:, :, None].expand(-1, -1, self.h.shape[2]))


class _OnePass(RowState):
    """A batch in OP: the neutral-label activations of every layer so far (the heads' input);
    before layer 1, the neutral-label input alone."""

    row_state = ("acts",)

    def __init__(self, net: FFNetwork, x: torch.Tensor):
        self.net = net
        self.rows = torch.arange(len(x), device=x.device)
        self.acts = [net.neutral(x)]

    def step(self, k: int) -> torch.Tensor:
        h = self.net.layer(k, self.acts[-1])
        self.acts = [h] if k == 0 else [*self.acts, h]  # the input is not kept past layer 1
        return self.net.heads[k](torch.cat(self.acts, dim=1) if k else h)
