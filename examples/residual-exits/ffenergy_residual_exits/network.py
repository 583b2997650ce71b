"""A residual multi-exit MLP as an ffenergy learner.

Stage k (1..L) widens or narrows the features with a projection, adds a residual block and ends
in an exit head:

    h = relu(P_k h);  h = h + relu(R_k h);  logits_k = H_k h

so a sample that leaves at stage k has paid for stages 1..k only. Training is deep supervision
(Adam on the sum of every head's cross-entropy); the exit rule is ffenergy's: max softmax
against the thresholds ffenergy calibrates on the validation split.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ffenergy.learners.base import Learner, RowState
from ffenergy.learners.checkpoint import EpochCheckpoint, epoch_bar

log = logging.getLogger(__name__)
LEARNING_RATE = 2e-3


class ResidualExitNet(nn.Module):
    """Widths ``dims`` (input first): one projection, one residual block and one head per stage."""

    def __init__(self, dims: list[int], n_classes: int):
        super().__init__()
        self.dims = list(dims)
        self.projections = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))
        self.blocks = nn.ModuleList(nn.Linear(b, b) for b in dims[1:])
        self.heads = nn.ModuleList(nn.Linear(b, n_classes) for b in dims[1:])

    def stage(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Stage k (0-based) on features ``h``."""
        h = torch.relu(self.projections[k](h))
        return h + torch.relu(self.blocks[k](h))

    def exit_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every head's logits for the batch ``x`` (training and tests)."""
        logits, h = [], x
        for k, head in enumerate(self.heads):
            h = self.stage(k, h)
            logits.append(head(h))
        return logits


class ResidualPass(RowState):
    """A batch moving stage by stage; ``h`` is its per-row state (ffenergy compacts and pools it)."""

    row_state = ("h",)

    def __init__(self, net: ResidualExitNet, x: torch.Tensor):
        self.net, self.h = net, x
        self.rows = torch.arange(len(x), device=x.device)

    def step(self, k: int) -> torch.Tensor:
        self.h = self.net.stage(k, self.h)
        logits: torch.Tensor = self.net.heads[k](self.h)
        return logits


class ResidualExits(Learner):
    """ffenergy's learner seam over :class:`ResidualExitNet` (docs/DESIGN.md section 1.2)."""

    network_id: ClassVar[str] = "residual-exits"
    training_version: ClassVar[int] = 1

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ResidualExitNet:
        return ResidualExitNet(dims, n_classes)

    @classmethod
    def fit(
        cls,
        net: Any,
        x: np.ndarray,
        y: np.ndarray,
        model: Any,
        seed: int,
        device: str,
        progress: bool,
        checkpoint: EpochCheckpoint,
    ) -> dict[str, Any]:
        """``model.epochs`` epochs of minibatch Adam, shuffled by a seeded generator; resumable per epoch."""
        gen = torch.Generator().manual_seed(seed)
        net.to(device).train()
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
        done = checkpoint.resume(cls.network_id, net, opt, gen)
        history: dict[str, list[float]] = {"loss": [], **done.history}
        for epoch in epoch_bar(done, model.epochs, "residual-exits training", progress):
            order = torch.randperm(len(xs), generator=gen).to(device)
            losses = []
            for i in range(0, len(xs), model.batch_size):
                idx = order[i : i + model.batch_size]
                loss = torch.stack([nn.functional.cross_entropy(z, ys[idx]) for z in net.exit_logits(xs[idx])]).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            history["loss"].append(sum(losses) / len(losses))
            checkpoint.save(cls.network_id, epoch + 1, net, opt, gen, history)
        net.eval()
        log.info("residual-exits: %d epochs, final summed exit loss %.4f", model.epochs, history["loss"][-1])
        return {"epochs": model.epochs, "lr": LEARNING_RATE, "loss": history["loss"]}

    @property
    def statistic(self) -> str:
        return "max"

    @property
    def dims(self) -> list[int]:
        return list(self.net.dims)

    @property
    def n_classes(self) -> int:
        return int(self.net.heads[0].out_features)

    @property
    def confidence_floor(self) -> float:
        return 1.0 / self.n_classes  # the least a max softmax can be

    def start(self, x: torch.Tensor) -> ResidualPass:
        return ResidualPass(self.net, x)

    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=1).amax(dim=1)

    def layer_macs(self) -> np.ndarray:
        """Stage k: projection d_{k-1}·d_k, residual block d_k², head d_k·C."""
        c = self.n_classes
        return np.array([a * b + b * b + b * c for a, b in pairwise(self.dims)], dtype=np.int64)
