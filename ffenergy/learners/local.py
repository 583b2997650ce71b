"""Training loops of the forward-only learners on an ``ExitMLP`` (PEPITA, CaFo).

``train_local_rule``: epochs of a rule that sets each weight's ``.grad`` itself from forward
passes only (PEPITA's two passes, CaFo's direct feedback alignment), applied by SGD with
momentum. ``train_frozen_heads``: exit heads trained afterwards on frozen activations (each on its
own layer's, ``layer_features``, or FF OP's concatenated neutral-label ones).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ffenergy.learners.backprop import ExitMLP, decayed_lr
from ffenergy.learners.checkpoint import EpochCheckpoint, epoch_bar
from ffenergy.learners.options import LearnerOptionsError

# (x, y) of a minibatch -> (its mean cross-entropy, its number of errors), with every weight's .grad set
LocalStep = Callable[[torch.Tensor, torch.Tensor], tuple[float, int]]


@dataclass
class LocalSchedule:
    """Epochs, batches and the learning rate of a ``train_local_rule`` stage."""

    network_id: str  # whose model.options.<network_id>.lr a divergence names
    stage: str  # the checkpoint stage; the history's loss is ``<stage>_loss``
    desc: str  # the progress bar's
    lr: float
    momentum: float
    lr_decay_at: list[float]  # fractions of the epochs: lr x 0.1 at each
    epochs: int
    batch_size: int


def train_local_rule(
    net: ExitMLP,
    params: list[torch.Tensor],
    step: LocalStep,
    xs: torch.Tensor,
    ys: torch.Tensor,
    schedule: LocalSchedule,
    gen: torch.Generator,
    progress: bool,
    checkpoint: EpochCheckpoint,
) -> tuple[dict[str, list[float]], int]:
    """(history, epochs resumed after) of ``step`` over shuffled minibatches, SGD with momentum on ``params``."""
    s = schedule
    loss_key = f"{s.stage}_loss"
    opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum)
    done = checkpoint.resume(s.stage, net, opt, gen)
    hist = {loss_key: [], "train_error": [], "epoch_seconds": [], **done.history}
    bar = epoch_bar(done, s.epochs, s.desc, progress)
    for epoch in bar:
        start = time.perf_counter()
        opt.param_groups[0]["lr"] = decayed_lr(s.lr, s.lr_decay_at, epoch, s.epochs)
        order = torch.randperm(len(xs), generator=gen).to(xs.device)
        loss_sum = wrong = 0.0
        for i in range(0, len(xs), s.batch_size):
            idx = order[i : i + s.batch_size]
            loss, n_wrong = step(xs[idx], ys[idx])
            opt.step()
            loss_sum += loss * len(idx)
            wrong += n_wrong
        hist[loss_key].append(loss_sum / len(xs))
        hist["train_error"].append(wrong / len(xs))
        hist["epoch_seconds"].append(time.perf_counter() - start)
        if not math.isfinite(hist[loss_key][-1]):
            raise LearnerOptionsError(
                f"model.options.{s.network_id}.lr: training diverged in epoch {epoch + 1} "
                f"(loss {hist[loss_key][-1]}); use a smaller lr than {s.lr}"
            )
        checkpoint.save(s.stage, epoch + 1, net, opt, gen, hist)
        bar.set_postfix(loss=f"{hist[loss_key][-1]:.4f}", train_error=f"{hist['train_error'][-1]:.4f}")
    checkpoint.finish(s.stage, s.epochs, hist)
    return hist, done.epochs


HeadFeatures = Callable[[torch.Tensor], list[torch.Tensor]]  # a minibatch -> each head's (frozen) input


class Layered(Protocol):
    """A network whose layer k maps the previous layer's output on (``ExitMLP``, ``FFNetwork``)."""

    def layer(self, k: int, x: torch.Tensor, /) -> torch.Tensor: ...


def layer_features(net: Layered, n_heads: int) -> HeadFeatures:
    """Heads 1..``n_heads`` read their own layer's activations (layers 1..``n_heads``)."""

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        acts, h = [], x
        for k in range(n_heads):
            h = net.layer(k, h)
            acts.append(h)
        return acts

    return features


def train_frozen_heads(
    net: nn.Module,
    heads: list[nn.Module],
    features: HeadFeatures,
    xs: torch.Tensor,
    ys: torch.Tensor,
    lr: float,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    progress: bool,
    checkpoint: EpochCheckpoint,
    desc: str,
) -> dict[str, list[float]]:
    """Train ``heads`` (Adam, cross-entropy) on the frozen inputs ``features`` gives them; ``net`` holds them.

    The history holds each head's mean loss over the last epoch (``head_loss``) and the seconds
    of every epoch; checkpointed as stage ``heads``.
    """
    if not heads:
        return {"head_loss": [], "epoch_seconds": []}
    opt = torch.optim.Adam([p for h in heads for p in h.parameters()], lr=lr)
    sums = torch.zeros(len(heads))
    done = checkpoint.resume("heads", net, opt, gen)
    hist = {"head_loss": [], "epoch_seconds": [], **done.history}
    bar = epoch_bar(done, epochs, desc, progress)
    for epoch in bar:
        start = time.perf_counter()
        order = torch.randperm(len(xs), generator=gen).to(xs.device)
        sums.zero_()
        for i in range(0, len(xs), batch_size):
            idx = order[i : i + batch_size]
            with torch.no_grad():
                acts = features(xs[idx])
            losses = torch.stack([F.cross_entropy(head(a), ys[idx]) for head, a in zip(heads, acts)])
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # heads are independent: the sum trains each on its own loss
            opt.step()
            sums += losses.detach().cpu() * len(idx)
        hist["head_loss"] = (sums / len(xs)).tolist()
        hist["epoch_seconds"].append(time.perf_counter() - start)
        checkpoint.save("heads", epoch + 1, net, opt, gen, hist)
        bar.set_postfix(head_loss=" ".join(f"{v:.3f}" for v in hist["head_loss"]))
    return hist
