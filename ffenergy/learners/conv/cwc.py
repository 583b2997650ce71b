"""CwComp (channel-wise competitive learning, Papachristodoulou et al., AAAI 2024) as an early-exit learner.

A ``ConvExitNet`` whose exit k is ``GroupGoodness``: block k's output channels are split into C
class groups, and class c's score is the mean square of group c. Training is forward-only and
layer-local: block k's loss is the cross-entropy of its own class goodness against the label
(the goodness vector is the logits: the groups compete, so no negative data is needed), on the
**detached** output of block k − 1, so no gradient crosses a block; each block has its own Adam
state (one parameter group per block; Adam's update of a parameter reads only that parameter's
gradient) and trains during the first ``model.options.cwc.layer_epochs[k]`` epochs, then is frozen
(evaluation mode: its batch norm uses the running statistics from then on).

Inference runs one pass: the scores at depth k are block k's own goodness vector (trained as its
logits; at the last block this is CwComp's goodness-argmax prediction), and the label-free exit
statistic is ``inference.op_statistic`` of them (``max``: top softmax probability). Not the sum
over blocks 1..k: on CIFAR-10 validation (20-40-80-160, 3 epochs) the sums were 3.0, 5.6 and
2.1 pp below the blocks alone at depths 2, 3 and 4 (55.2% against 57.3% at the last), the weak
early blocks (2 channels per class in block 1) dragging the sum down (docs/reproduction.md). MACs:
``ConvExitNet.layer_macs``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ffenergy.learners.backprop import decayed_lr
from ffenergy.learners.base import LearnerOptionsError, learner_options
from ffenergy.learners.checkpoint import EpochCheckpoint, epoch_bar
from ffenergy.learners.conv.learner import ConvExitLearner
from ffenergy.learners.conv.model import ConvExitNet, GroupGoodness
from ffenergy.learners.conv.options import CwcOptions

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig

log = logging.getLogger(__name__)


class ChannelwiseCompetitive(ConvExitLearner):
    """CwComp: layer-local channel-wise competitive blocks, block k's class goodness at exit k."""

    network_id: ClassVar[str] = CwcOptions.network_id
    training_version: ClassVar[int] = 1

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ConvExitNet:
        """PyTorch's default initialisation; the exits have no parameters."""
        return ConvExitNet(dims[0], dims[1:], n_classes, GroupGoodness)

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
        """Deterministic on CPU for a seed (shuffling from a seeded generator)."""
        opts = learner_options(CwcOptions, model, cls.network_id)
        n_layers = len(net.layers)
        layer_epochs = opts.trains(n_layers, model.epochs)
        epochs = opts.total_epochs(model.epochs)
        gen = torch.Generator().manual_seed(seed)
        net.to(device)
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        opt = torch.optim.Adam(
            [{"params": list(block.parameters())} for block in net.layers], lr=opts.lr, weight_decay=opts.weight_decay
        )
        done = checkpoint.resume(cls.network_id, net, opt, gen)
        keys = [f"layer{k + 1}_{what}" for k in range(n_layers) for what in ("loss", "train_error")]
        hist: dict[str, list[float]] = {key: [] for key in [*keys, "epoch_seconds"]} | done.history
        bar = epoch_bar(done, epochs, "CwComp training", progress)
        for epoch in bar:
            start = time.perf_counter()
            trains = [epoch < e for e in layer_epochs]
            for block, on in zip(net.layers, trains, strict=True):
                block.train(on)
            for group in opt.param_groups:
                group["lr"] = decayed_lr(opts.lr, opts.lr_decay_at, epoch, epochs)
            order = torch.randperm(len(xs), generator=gen).to(device)
            loss_sum, wrong = torch.zeros(n_layers), torch.zeros(n_layers)
            for i in range(0, len(xs), model.batch_size):
                idx = order[i : i + model.batch_size]
                losses, errors = _local_step(net, xs[idx], ys[idx], trains)
                opt.step()
                loss_sum += losses * len(idx)
                wrong += errors
            for k in range(n_layers):
                if trains[k]:
                    hist[f"layer{k + 1}_loss"].append(float(loss_sum[k]) / len(xs))
                    hist[f"layer{k + 1}_train_error"].append(float(wrong[k]) / len(xs))
            hist["epoch_seconds"].append(time.perf_counter() - start)
            trained = [k for k in range(n_layers) if trains[k]]
            if not all(math.isfinite(hist[f"layer{k + 1}_loss"][-1]) for k in trained):
                raise LearnerOptionsError(
                    f"model.options.cwc.lr: training diverged in epoch {epoch + 1}; use a smaller lr than {opts.lr}"
                )
            checkpoint.save(cls.network_id, epoch + 1, net, opt, gen, hist)
            summary = " ".join(f"{hist[f'layer{k + 1}_train_error'][-1]:.3f}" for k in trained)
            bar.set_postfix(train_error=summary)
            log.info(
                "cwc: epoch %d/%d, %.0f s, train error of blocks %s: %s",
                epoch + 1,
                epochs,
                hist["epoch_seconds"][-1],
                ",".join(str(k + 1) for k in trained),
                summary,
            )
        net.eval()
        seconds = sum(hist["epoch_seconds"])
        return {
            "train_seconds": round(seconds, 2),
            "train_device": device,
            "resumed_after_epoch": done.epochs,
            "epochs": epochs,
            "layer_epochs": layer_epochs,
            **{key: hist[key] for key in keys},
        }


def local_losses(
    net: ConvExitNet, x: torch.Tensor, y: torch.Tensor, trains: list[bool]
) -> list[tuple[torch.Tensor, int] | None]:
    """(loss, errors) of each block that trains (None for a frozen one): the cross-entropy of its class
    goodness and how many rows its goodness alone misclassifies, on the detached output of the block
    below, so that no gradient crosses a block. Stops after the last block that trains."""
    out: list[tuple[torch.Tensor, int] | None] = [None] * len(trains)
    h = x
    last = max((k for k, on in enumerate(trains) if on), default=-1)
    for k in range(last + 1):
        if trains[k]:
            act = net.layer(k, h)
            goodness = net.exit(k, act)
            out[k] = (F.cross_entropy(goodness, y), int((goodness.detach().argmax(dim=1) != y).sum()))
            h = act.detach()
        else:
            with torch.no_grad():
                h = net.layer(k, h)
    return out


def _local_step(
    net: ConvExitNet, x: torch.Tensor, y: torch.Tensor, trains: list[bool]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set the gradient of every training block from its own loss; (loss, errors) per block (0 where frozen)."""
    net.zero_grad(set_to_none=True)  # frozen blocks keep no gradient, so Adam leaves them (and their state) alone
    outcomes = local_losses(net, x, y, trains)
    live = [o[0] for o in outcomes if o is not None]
    if live:
        torch.stack(live).sum().backward()  # the blocks share no graph: each gets only its own loss's gradient
    losses = torch.tensor([0.0 if o is None else float(o[0].detach()) for o in outcomes])
    errors = torch.tensor([0.0 if o is None else float(o[1]) for o in outcomes])
    return losses, errors
