"""Lightweight (early-exit) FF inference, batched, with compaction.

After every layer the samples that exited leave the batch, so later layers really run on
fewer rows (on CPU and CUDA alike). The exit rule reads only the network's own scores, never
a label. ``depth_scores`` runs every sample through every layer and keeps the scores of each
depth: calibration, the alpha sweep and the compaction-equals-masking test use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ffenergy.ff.macs import macs_at_exit
from ffenergy.ff.model import FFNetwork
from ffenergy.targets.base import Predictions


@dataclass(frozen=True)
class ExitSpec:
    """How one procedure decides: scores, confidence statistic, thresholds, MP label pruning."""

    procedure: str  # "mp" or "op"
    statistic: str  # "gap" or "max"
    thresholds: tuple[float, ...] | None = None  # per layer; needed for light mode
    prune_after: int = 0
    prune_keep: int = 0


def confidence(scores: torch.Tensor, statistic: str, procedure: str) -> torch.Tensor:
    """Label-free confidence of each row of ``scores`` (pruned candidates hold -inf)."""
    if statistic == "max" and procedure == "op":
        # top softmax probability = 1 / sum_c exp(s_c - s_max); one pass, no (N, C) softmax
        return (scores - scores.amax(dim=1, keepdim=True)).exp().sum(dim=1).reciprocal()
    top = torch.topk(scores, k=min(2, scores.shape[1]), dim=1).values
    if statistic == "max":
        return top[:, 0]
    if statistic == "gap":
        if top.shape[1] < 2:
            return torch.full_like(top[:, 0], float("inf"))
        return top[:, 0] - top[:, 1]
    raise ValueError(f"unknown statistic {statistic!r}: use gap or max")


class _Pass:
    """State of one batch moving through the network: active rows and their running scores."""

    def __init__(self, net: FFNetwork, x: torch.Tensor, spec: ExitSpec):
        self.net, self.spec = net, spec
        n, c = len(x), net.n_classes
        self.rows = torch.arange(n, device=x.device)
        if spec.procedure == "mp":
            h = x[:, None, :].repeat(1, c, 1)
            h[:, :, :c] = torch.eye(c, device=x.device) * net.label_value
            self.h = h  # (n, m, d): one copy per candidate label
            self.cand = torch.arange(c, device=x.device).repeat(n, 1)  # (n, m) label of each copy
            self.goodness = torch.zeros(n, c, device=x.device)
        else:
            self.h = net.neutral(x)
            self.acts: list[torch.Tensor] = []

    def step(self, k: int) -> torch.Tensor:
        """Run layer k (0-based) on the active rows; return full-width scores (n_active, C)."""
        net, spec = self.net, self.spec
        if spec.procedure == "mp":
            n, m, d = self.h.shape
            z = net.layer(k, self.h.reshape(n * m, d)).reshape(n, m, -1)
            self.goodness = self.goodness + (z * z).sum(dim=2)
            self.h = z
            if spec.prune_after == k + 1 and 0 < spec.prune_keep < m:
                self._prune(spec.prune_keep)
            scores = torch.full((len(self.rows), net.n_classes), float("-inf"), device=z.device)
            return scores.scatter(1, self.cand, self.goodness)
        self.h = net.layer(k, self.h)
        self.acts.append(self.h)
        return net.heads[k](torch.cat(self.acts, dim=1) if k else self.h)

    def _prune(self, keep: int) -> None:
        """Keep the ``keep`` best candidates of each row (ties: lower label), in label order."""
        order = torch.sort(self.goodness, dim=1, descending=True, stable=True).indices[:, :keep]
        order = torch.sort(order, dim=1).values  # candidates stay in ascending label order
        self.cand = torch.gather(self.cand, 1, order)
        self.goodness = torch.gather(self.goodness, 1, order)
        self.h = torch.gather(self.h, 1, order[:, :, None].expand(-1, -1, self.h.shape[2]))

    def keep(self, idx: torch.Tensor) -> None:
        """Compaction: keep only the active rows at positions ``idx`` (index_select: several
        times faster than boolean or advanced indexing on CPU)."""
        self.rows = self.rows.index_select(0, idx)
        if self.spec.procedure == "mp":
            self.h, self.cand, self.goodness = (t.index_select(0, idx) for t in (self.h, self.cand, self.goodness))
        else:
            self.acts = [a.index_select(0, idx) for a in self.acts]
            self.h = self.acts[-1]


@torch.inference_mode()
def infer(net: FFNetwork, x: torch.Tensor, spec: ExitSpec, forced_depth: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, exit_layer) for one batch; ``forced_depth`` None means light (early exit)."""
    n_layers = net.n_layers
    if forced_depth is None and spec.thresholds is None:
        raise ValueError("light inference needs calibrated thresholds")
    last = n_layers if forced_depth is None else forced_depth
    pred = torch.empty(len(x), dtype=torch.long, device=x.device)
    exit_layer = torch.empty(len(x), dtype=torch.long, device=x.device)
    state = _Pass(net, x, spec)
    for k in range(last):
        scores = state.step(k)
        if k + 1 == last:
            done = torch.ones(len(state.rows), dtype=torch.bool, device=x.device)
        elif forced_depth is None:
            done = confidence(scores, spec.statistic, spec.procedure) >= spec.thresholds[k]
        else:
            continue
        exited = done.nonzero().squeeze(1)
        if len(exited) == 0:
            continue
        rows = state.rows.index_select(0, exited)
        pred[rows] = scores.index_select(0, exited).argmax(dim=1)
        exit_layer[rows] = k + 1
        if len(exited) == len(done):
            break
        state.keep((~done).nonzero().squeeze(1))
    return pred, exit_layer


@torch.no_grad()
def depth_scores(net: FFNetwork, x: torch.Tensor, spec: ExitSpec) -> list[torch.Tensor]:
    """Scores (N, C) at every depth 1..L for every sample, no exits (the masking view)."""
    state = _Pass(net, x, spec)
    return [state.step(k) for k in range(net.n_layers)]


def batched_depth_scores(
    net: FFNetwork, x: np.ndarray, spec: ExitSpec, batch_size: int = 1024, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """``depth_scores`` over a whole array in batches, gathered on the CPU."""
    chunks = [depth_scores(net, torch.from_numpy(x[i : i + batch_size]).to(device), spec)
              for i in range(0, len(x), batch_size)]
    return [torch.cat([c[k] for c in chunks]).cpu() for k in range(net.n_layers)]


def exits_from_scores(scores: list[torch.Tensor], spec: ExitSpec, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pred, exit_layer) the light rule gives, computed from per-depth scores by masking."""
    n_layers = len(scores)
    n = len(scores[0])
    exit_layer = np.full(n, n_layers, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    for k in range(n_layers - 1):
        conf = confidence(scores[k], spec.statistic, spec.procedure).cpu().numpy()
        hit = undecided & (conf >= thresholds[k])
        exit_layer[hit] = k + 1
        undecided &= ~hit
    stacked = torch.stack([s.argmax(dim=1) for s in scores], dim=1).cpu().numpy()
    return stacked[np.arange(n), exit_layer - 1], exit_layer


def predict(
    net: FFNetwork,
    x: np.ndarray,
    spec: ExitSpec,
    mode_depth: int | None,
    batch_size: int = 1024,
    device: str = "cpu",
) -> Predictions:
    """Batched inference over a whole array; MACs per sample from the exit layers."""
    preds, exits = [], []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(device)
        p, e = infer(net, xb, spec, mode_depth)
        preds.append(p.cpu().numpy())
        exits.append(e.cpu().numpy())
    exit_layer = np.concatenate(exits)
    cost = macs_at_exit(net.dims, net.n_classes, spec.procedure, spec.prune_after, spec.prune_keep)
    return Predictions(pred=np.concatenate(preds), exit_layer=exit_layer, macs=cost[exit_layer - 1])
