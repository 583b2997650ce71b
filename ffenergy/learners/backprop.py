"""A back-propagation multi-exit MLP (Shallow-Deep Networks / BranchyNet style) as a learner.

``ExitMLP`` is a ReLU MLP with one linear exit head per depth; head k reads **only depth k's
activations** (not the concatenation of all layers so far, as the FF OP heads do). Its MACs are
counted exactly for what inference runs: layer k adds ``d_{k-1} d_k`` for the layer plus
``d_k C`` for its head (bias additions, ReLU, softmax and argmax are not counted, as for FF).
The last head is the network's output, so full mode runs every layer and one head.

``BackpropMultiExit`` trains all layers and heads end to end on a weighted sum of the exit
cross-entropies. Its confidence is ``inference.op_statistic`` of a head's logits (``max``: top
softmax probability; ``gap``: top-1 minus top-2 logit), so it is calibrated and exited with the
same label-free rule and alpha selection as FF OP. ``ExitNetLearner`` holds the inference side
shared by every learner built on an ``ExitNet`` (layers with an exit head each: this MLP, the
convolutional networks of ``ffenergy.learners.conv``), ``ExitMLPLearner`` adds the MLP's MACs and
firmware export (scheme ``exit`` of ``ffenergy.firmware.arrays``; ``ffenergy.learners.pepita``,
``cafo``), and ``train_end_to_end`` is the training of any ``ExitNet`` on its weighted exit losses.

Training reads ``model.hidden``, ``model.epochs`` and ``model.batch_size``; everything else comes
from ``model.options.bp-exits`` (``BackpropOptions``), not from the FF fields of ``model``.
"""

from __future__ import annotations

import logging
import time
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.learners.backprop_options import BackpropOptions
from ffenergy.learners.base import RowState, learner_options
from ffenergy.learners.checkpoint import EpochCheckpoint, epoch_bar
from ffenergy.learners.confidence import HeadExits

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig

log = logging.getLogger(__name__)


class ExitNet(nn.Module):
    """Layers ``layers[k]`` with an exit head ``heads[k]`` on each depth's activations; ``dims`` are the
    widths, input first (an MLP's features, a CNN's input values then channels)."""

    layers: nn.ModuleList
    heads: nn.ModuleList
    dims: list[int]
    n_classes: int

    def layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Activations of layer k (0-based) from the previous layer's activations ``h``."""
        return cast(torch.Tensor, self.layers[k](h))

    def exit(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Logits of exit head k on layer k's activations ``h``."""
        return cast(torch.Tensor, self.heads[k](h))


class ExitMLP(ExitNet):
    """ReLU layers ``layers[k]`` with a linear exit head ``heads[k]`` on each depth's activations."""

    def __init__(self, layers: list[nn.Linear], heads: list[nn.Linear]):
        super().__init__()
        if len(layers) != len(heads):
            raise ValueError(f"{len(layers)} layers need as many exit heads, got {len(heads)}")
        self.layers = nn.ModuleList(layers)
        self.heads = nn.ModuleList(heads)
        self.dims = [layers[0].in_features, *(layer.out_features for layer in layers)]
        self.n_classes = heads[0].out_features

    def layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.layers[k](h))


def exit_mlp_layer_macs(dims: list[int], n_classes: int) -> np.ndarray:
    """MACs layer k and its exit head add: d_{k-1} d_k + d_k C (index k-1 = layer k)."""
    return np.array([a * b + b * n_classes for a, b in pairwise(dims)], dtype=np.int64)


def exit_mlp_arrays(net: ExitMLP) -> NetworkArrays:
    """The float32 numpy hand-off of an ``ExitMLP`` (scheme ``exit``)."""

    def weight_bias(lin: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
        w = lin.weight.detach().cpu().numpy().astype(np.float32).copy()
        b = np.zeros(lin.out_features, np.float32) if lin.bias is None else lin.bias.detach().cpu().numpy()
        return w, b.astype(np.float32).copy()

    layers = [weight_bias(cast(nn.Linear, lin)) for lin in net.layers]
    heads = [weight_bias(cast(nn.Linear, lin)) for lin in net.heads]
    return NetworkArrays(
        scheme="exit",
        weights=[w for w, _ in layers],
        biases=[b for _, b in layers],
        heads=[w for w, _ in heads],
        n_classes=net.n_classes,
        label_value=0.0,
        norm_eps=0.0,
        head_biases=[b for _, b in heads],
    )


class ExitPass(RowState):
    """A batch in an ``ExitNet``: the active rows' activations of the last layer run; scores: the exit's logits."""

    row_state: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(self, net: ExitNet, x: torch.Tensor):
        self.net = net
        self.h = x
        self.rows = torch.arange(len(x), device=x.device)

    def step(self, k: int) -> torch.Tensor:
        self.h = self.net.layer(k, self.h)
        return self.net.exit(k, self.h)


class ExitNetLearner(HeadExits):
    """Inference of any ``ExitNet``: per-depth heads, OP's exit statistic, compaction."""

    net: ExitNet

    @property
    def dims(self) -> list[int]:
        return self.net.dims

    @property
    def n_classes(self) -> int:
        return self.net.n_classes

    def start(self, x: torch.Tensor) -> ExitPass:
        return ExitPass(self.net, x)


class ExitMLPLearner(ExitNetLearner):
    """An ``ExitNetLearner`` on an ``ExitMLP``: its MACs, and its firmware export (scheme ``exit``)."""

    net: ExitMLP

    def layer_macs(self) -> np.ndarray:
        return exit_mlp_layer_macs(self.dims, self.n_classes)

    def firmware(self, thresholds: np.ndarray) -> tuple[NetworkArrays, ExitPolicy]:
        """The firmware's ``exit`` scheme: the layers and heads as they are (zero biases where a Linear has none)."""
        policy = ExitPolicy(self.statistic, np.asarray(thresholds, np.float32))  # type: ignore[arg-type]
        return exit_mlp_arrays(self.net), policy


class BackpropMultiExit(ExitMLPLearner):
    """A multi-exit MLP trained end to end by back-propagation on the weighted exit losses."""

    network_id: ClassVar[str] = BackpropOptions.network_id
    training_version: ClassVar[int] = 1

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ExitMLP:
        """PyTorch's default (Kaiming-uniform) initialisation, biases everywhere."""
        return ExitMLP([nn.Linear(a, b) for a, b in pairwise(dims)], [nn.Linear(b, n_classes) for b in dims[1:]])

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
        opts = learner_options(BackpropOptions, model, cls.network_id)
        return train_end_to_end(net, x, y, model, opts, seed, device, progress, checkpoint)


def train_end_to_end(
    net: ExitNet,
    x: np.ndarray,
    y: np.ndarray,
    model: ModelConfig,
    opts: BackpropOptions,
    seed: int,
    device: str,
    progress: bool,
    checkpoint: EpochCheckpoint,
) -> dict[str, Any]:
    """Train every layer and head of ``net`` by back-propagation on the weighted sum of the exit
    cross-entropies (checkpoint stage ``opts.network_id``); what training did, for the manifest."""
    name = opts.network_id
    raw = torch.tensor(opts.exit_weights_of(len(net.layers)), dtype=torch.float32)
    weights = (raw / raw.sum()).to(device)
    epochs = opts.epochs or model.epochs
    gen = torch.Generator().manual_seed(seed)
    net.to(device).train()
    xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    opt: torch.optim.Optimizer
    if opts.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay)
    done = checkpoint.resume(name, net, opt, gen)
    hist = {"loss": [], "epoch_seconds": [], **done.history}
    bar = epoch_bar(done, epochs, f"{name} training", progress)
    for epoch in bar:
        start = time.perf_counter()
        opt.param_groups[0]["lr"] = decayed_lr(opts.lr, opts.lr_decay_at, epoch, epochs)
        order = torch.randperm(len(xs), generator=gen).to(device)
        total, n_batches = 0.0, 0
        for i in range(0, len(xs), model.batch_size):
            idx = order[i : i + model.batch_size]
            loss = _exit_loss(net, xs[idx], ys[idx], weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            n_batches += 1
        hist["loss"].append(total / n_batches)
        hist["epoch_seconds"].append(time.perf_counter() - start)
        checkpoint.save(name, epoch + 1, net, opt, gen, hist)
        bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}")
        log.debug("%s: epoch %d, weighted exit loss %.4f", name, epoch + 1, hist["loss"][-1])
    net.eval()
    seconds = sum(hist["epoch_seconds"])
    log.info("%s: %d epochs in %.1f s, final weighted exit loss %.4f", name, epochs, seconds, hist["loss"][-1])
    return {
        "train_seconds": round(seconds, 2),
        "train_device": device,
        "resumed_after_epoch": done.epochs,
        "epochs": epochs,
        "exit_weights": weights.tolist(),
        "loss": hist["loss"],
    }


def decayed_lr(lr: float, decay_at: list[float], epoch: int, epochs: int) -> float:
    """``lr`` times 0.1 for every fraction in ``decay_at`` that epoch (0-based) has reached."""
    return lr * 0.1 ** sum(epoch >= round(f * epochs) for f in decay_at)


def _exit_loss(net: ExitNet, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_k w_k CE(head_k(h_k), y), back-propagated through every layer below each head."""
    loss, h = torch.zeros((), device=x.device), x
    for k in range(len(net.layers)):
        h = net.layer(k, h)
        loss = loss + weights[k] * F.cross_entropy(net.exit(k, h), y)
    return loss
