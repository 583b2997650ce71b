"""Greedy, local Forward-Forward training of the layers, with the OP heads trained alongside.

Per minibatch: positive samples carry their true label, negative samples a random wrong one.
Each layer sees detached inputs and minimises BCE on ``goodness - width`` (positive high,
negative low) plus a peer-normalisation term; the OP heads learn a softmax on detached
neutral-label activations. One backward pass and one optimiser step per minibatch.
``model.options.ff`` (``FFOptions``) may change the loss's steepness and train the heads further,
alone, on the frozen network after the FF epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ffenergy.learners.checkpoint import EpochCheckpoint, epoch_bar
from ffenergy.learners.ff.model import FFNetwork
from ffenergy.learners.ff.options import FFOptions
from ffenergy.learners.local import layer_features, train_frozen_heads

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig


@dataclass
class TrainLog:
    """What training did, for the manifest."""

    epochs: int
    seconds: float  # training time over every run that contributed epochs
    device: str
    ff_loss: list[float]
    head_loss: list[float]  # per FF epoch, summed over the heads
    frozen_head_loss: list[float]  # each head's mean loss in the last frozen-head epoch (empty: none)
    resumed_after: int  # epochs a previous, interrupted run had finished (0: trained in one go)


def random_wrong_labels(y: torch.Tensor, n_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from y, per sample."""
    shift = torch.randint(1, n_classes, y.shape, generator=gen, device="cpu").to(y.device)
    return (y + shift) % n_classes


def train(
    net: FFNetwork,
    x: np.ndarray,
    y: np.ndarray,
    cfg: ModelConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
    checkpoint: EpochCheckpoint | None = None,
    options: FFOptions | None = None,
) -> TrainLog:
    """Train ``net`` in place on (x, y); deterministic on CPU for a given seed, resumed or not."""
    checkpoint = checkpoint or EpochCheckpoint()
    options = options or FFOptions()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net.to(device).train()
    xs = torch.from_numpy(x).to(device)
    ys = torch.from_numpy(y).to(device)
    groups = [
        {"params": net.layers.parameters(), "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": net.heads.parameters(), "lr": cfg.head_lr, "weight_decay": cfg.head_weight_decay},
    ]
    opt: torch.optim.Optimizer
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(groups)
    else:
        opt = torch.optim.SGD(groups, momentum=cfg.momentum)
    base_lrs = [g["lr"] for g in opt.param_groups]
    peer_means = [torch.full((d,), 0.5, device=device) for d in net.dims[1:]]
    done = checkpoint.resume("ff", net, opt, gen, peer_means)
    hist = {"ff_loss": [], "head_loss": [], "epoch_seconds": [], **done.history}
    bar = epoch_bar(done, cfg.epochs, "FF training", progress)
    for epoch in bar:
        start = time.perf_counter()
        for group, lr in zip(opt.param_groups, base_lrs):
            group["lr"] = _cooldown_lr(lr, epoch + 1, cfg.epochs)
        order = torch.randperm(len(xs), generator=gen).to(device)
        ff_sum = head_sum = 0.0
        n_batches = 0
        for i in range(0, len(xs), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            ff_loss, head_loss = _batch_loss(net, xs[idx], ys[idx], cfg, options, peer_means, gen)
            opt.zero_grad(set_to_none=True)
            (ff_loss + head_loss).backward()
            opt.step()
            ff_sum += float(ff_loss.detach())
            head_sum += float(head_loss.detach())
            n_batches += 1
        hist["ff_loss"].append(ff_sum / n_batches)
        hist["head_loss"].append(head_sum / n_batches)
        hist["epoch_seconds"].append(time.perf_counter() - start)
        checkpoint.save("ff", epoch + 1, net, opt, gen, hist, peer_means)
        bar.set_postfix(ff_loss=f"{hist['ff_loss'][-1]:.3f}", head_loss=f"{hist['head_loss'][-1]:.3f}")
    frozen: dict[str, list[float]] = {"head_loss": [], "epoch_seconds": []}
    if options.head_epochs:
        checkpoint.finish("ff", cfg.epochs, hist)
        net.eval()
        frozen = train_frozen_heads(
            net,
            list(net.heads),
            partial(neutral_features, net),
            xs,
            ys,
            cfg.head_lr,
            options.head_epochs,
            cfg.batch_size,
            gen,
            progress,
            checkpoint,
            "OP heads (frozen FF layers)",
        )
    net.eval()
    seconds = sum(hist["epoch_seconds"]) + sum(frozen["epoch_seconds"])
    return TrainLog(cfg.epochs, seconds, device, hist["ff_loss"], hist["head_loss"], frozen["head_loss"], done.epochs)


def neutral_features(net: FFNetwork, x: torch.Tensor) -> list[torch.Tensor]:
    """Each OP head's input: the concatenated neutral-label activations of layers 1..k."""
    acts = layer_features(net, net.n_layers)(net.neutral(x))
    return [torch.cat(acts[: k + 1], dim=1) for k in range(net.n_layers)]


def _cooldown_lr(lr: float, epoch: int, epochs: int) -> float:
    """Constant for the first half, then linearly down towards zero."""
    if epoch <= epochs // 2:
        return lr
    return lr * 2 * (1 + epochs - epoch) / (epochs + 1)


def _batch_loss(
    net: FFNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ModelConfig,
    options: FFOptions,
    peer_means: list[torch.Tensor],
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    batch = len(x)
    pos = net.overlay(x, y)
    neg = net.overlay(x, random_wrong_labels(y, net.n_classes, gen))
    h = torch.cat([pos, neg])
    target = torch.cat([torch.ones(batch), torch.zeros(batch)]).to(x.device)
    ff_loss = torch.zeros((), device=x.device)
    for k in range(net.n_layers):
        z = net.layer(k, h, train=True)
        width = z.shape[1]
        logits = (z * z).sum(dim=1) - width  # G - d: the loeweX logit, loss_scale = None
        if options.loss_scale is not None:
            logits = logits * (options.loss_scale / width)
        ff_loss = ff_loss + F.binary_cross_entropy_with_logits(logits, target)
        if cfg.peer_weight > 0:
            batch_mean = z[:batch].mean(dim=0)
            peer_means[k] = cfg.peer_momentum * peer_means[k].detach() + (1 - cfg.peer_momentum) * batch_mean
            ff_loss = ff_loss + cfg.peer_weight * ((peer_means[k].mean() - peer_means[k]) ** 2).mean()
        h = z.detach()
    head_loss = torch.zeros((), device=x.device)
    with torch.no_grad():
        acts, h = [], net.neutral(x)
        for k in range(net.n_layers):
            h = net.layer(k, h, train=True)
            acts.append(h)
    for k, head in enumerate(net.heads):
        head_loss = head_loss + F.cross_entropy(head(torch.cat(acts[: k + 1], dim=1)), y)
    return ff_loss, head_loss
