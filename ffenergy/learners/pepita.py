"""PEPITA (Dellaferrera & Kreiman, ICML 2022) with exit heads, as in LightFF's Lightweight-PT code.

Network: a bias-free ReLU MLP with the widths ``model.hidden`` and a bias-free C-way output
layer, He-uniform initialised (U[-sqrt(6/d_in), +sqrt(6/d_in)]). Per minibatch, two forward
passes and no backward pass:

1. standard pass on x: activations h_l, error e = softmax(output) - onehot(y);
2. modulated pass on x' = x + e F^T: activations h'_l, error e'.

F (d_0 x C) is fixed and random, F ~ U[-1, 1] * f_scale * sqrt(6 / d_0) with the paper's
f_scale = 0.05 (the F of the paper and of LightFF's code), drawn from the training seed.
Layer-local updates, averaged over the batch and applied by SGD with momentum:
dW_1 = (h_1 - h'_1)^T x', dW_l = (h_l - h'_l)^T h'_{l-1}, dW_out = e'^T h'_L; W <- W - lr dW.
The learning rate drops tenfold at the fractions ``lr_decay_at`` of the epochs (the paper: 60
and 90 of 100). Dropout (``keep`` < 1; the paper's keep rate is 0.9): each minibatch draws one
inverted-dropout mask m_l / keep per hidden layer from the training generator and applies it to
h_l in *both* passes, so dropped units have h_l = h'_l = 0 and neither their incoming nor their
outgoing weights change in that step (the updates above read the masked activations). At
``keep`` = 1 no mask is drawn.

Exits: after PEPITA training, one linear head with bias per hidden layer l < L is trained on
that layer's frozen activations (Adam, cross-entropy, ``head_epochs``); the last exit is
PEPITA's own output layer. So the network is an ``ExitMLP`` whose last head is the output
layer, and inference (confidence, compaction, MACs d_{l-1} d_l + d_l C per layer) is that of
``ExitMLPLearner``: light inference really skips the layers after the exit.

Training reads ``model.hidden``, ``model.epochs`` and ``model.batch_size``; everything else comes
from ``model.options.pepita`` (``PepitaOptions``).
"""

from __future__ import annotations

import logging
import math
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffenergy.learners.backprop import ExitMLP, ExitMLPLearner
from ffenergy.learners.base import learner_options
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.local import LocalSchedule, layer_features, train_frozen_heads, train_local_rule
from ffenergy.learners.pepita_options import PepitaOptions

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig

log = logging.getLogger(__name__)


def he_uniform(d_in: int, d_out: int, bias: bool = False) -> nn.Linear:
    """A Linear layer with weights U[-sqrt(6/d_in), sqrt(6/d_in)] (and zero bias when it has one)."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    limit = math.sqrt(6.0 / d_in)
    nn.init.uniform_(layer.weight, -limit, limit)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def feedback_matrix(d_in: int, n_classes: int, scale: float, gen: torch.Generator) -> torch.Tensor:
    """The fixed projection F (d_in, C) of the output error onto the input."""
    return (torch.rand(d_in, n_classes, generator=gen) * 2 - 1) * scale * math.sqrt(6.0 / d_in)


class Pepita(ExitMLPLearner):
    """PEPITA-trained MLP with exit heads trained afterwards on each hidden layer."""

    network_id: ClassVar[str] = "pepita"
    training_version: ClassVar[int] = 1

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ExitMLP:
        """Bias-free He-uniform layers; exit heads with bias on layers 1..L-1; a bias-free output."""
        layers = [he_uniform(a, b) for a, b in pairwise(dims)]
        heads = [he_uniform(d, n_classes, bias=True) for d in dims[1:-1]] + [he_uniform(dims[-1], n_classes)]
        return ExitMLP(layers, heads)

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
        """PEPITA on the layers and output, then the exit heads; deterministic on CPU for a seed."""
        opts = learner_options(PepitaOptions, model, cls.network_id)
        gen = torch.Generator().manual_seed(seed)
        net.to(device).train()
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        epochs = opts.epochs or model.epochs
        fb = feedback_matrix(net.dims[0], net.n_classes, opts.f_scale, gen).to(device)  # drawn first: same on resume
        weights = [cast(nn.Linear, m).weight for m in [*net.layers, net.heads[-1]]]
        schedule = LocalSchedule(
            cls.network_id,
            "pepita",
            "PEPITA training",
            opts.lr,
            opts.momentum,
            opts.lr_decay_at,
            epochs,
            model.batch_size,
        )
        pepita_log, resumed_after = train_local_rule(
            net,
            weights,
            partial(_pepita_step, net, fb=fb, weights=weights, keep=opts.keep, gen=gen),
            xs,
            ys,
            schedule,
            gen,
            progress,
            checkpoint,
        )
        n_exits = len(net.heads) - 1
        heads_log = train_frozen_heads(
            net,
            list(net.heads)[:n_exits],
            layer_features(net, n_exits),
            xs,
            ys,
            opts.head_lr,
            opts.head_epochs,
            model.batch_size,
            gen,
            progress,
            checkpoint,
            "PEPITA exit heads",
        )
        head_loss = heads_log["head_loss"]
        net.eval()
        seconds = sum(pepita_log.pop("epoch_seconds")) + sum(heads_log["epoch_seconds"])
        log.info(
            "pepita: train error %.4f after %d epochs, exit-head loss %s, %.1f s",
            pepita_log["train_error"][-1],
            len(pepita_log["train_error"]),
            ", ".join(f"{v:.3f}" for v in head_loss),
            seconds,
        )
        return {
            "train_seconds": round(seconds, 2),
            "train_device": device,
            "resumed_after_epoch": resumed_after,
            **pepita_log,
            "head_loss": head_loss,
        }


@torch.no_grad()
def _forward(
    net: ExitMLP, x: torch.Tensor, target: torch.Tensor, masks: list[torch.Tensor] | None
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Activations [x, h_1 .. h_L] (times their dropout masks) and the output error softmax(out) - onehot."""
    acts = [x]
    for k in range(len(net.layers)):
        h = net.layer(k, acts[-1])
        acts.append(h if masks is None else h * masks[k])
    return acts, torch.softmax(net.heads[-1](acts[-1]), dim=1) - target


def dropout_masks(net: ExitMLP, x: torch.Tensor, keep: float, gen: torch.Generator) -> list[torch.Tensor] | None:
    """Per hidden layer, one inverted-dropout mask Bernoulli(keep) / keep for the rows of ``x``; None at keep = 1.

    Drawn on the CPU from the (CPU) training generator, then moved to ``x``'s device.
    """
    if keep == 1:
        return None
    return [(torch.bernoulli(torch.full((len(x), d), keep), generator=gen) / keep).to(x) for d in net.dims[1:]]


@torch.no_grad()
def _pepita_step(
    net: ExitMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    fb: torch.Tensor,
    weights: list[torch.Tensor],
    keep: float,
    gen: torch.Generator,
) -> tuple[float, int]:
    """Set each weight's .grad to its PEPITA update; (cross-entropy, errors) of the standard pass, masks included."""
    target = F.one_hot(y, net.n_classes).to(x.dtype)
    masks = dropout_masks(net, x, keep, gen)
    acts, err = _forward(net, x, target, masks)
    mod, mod_err = _forward(net, x + err @ fb.T, target, masks)
    n = len(x)
    for k, w in enumerate(weights[:-1]):
        w.grad = (acts[k + 1] - mod[k + 1]).T @ mod[k] / n
    weights[-1].grad = mod_err.T @ mod[-1] / n
    probs = err + target
    loss = -torch.log(probs.gather(1, y[:, None]).clamp_min(1e-12)).mean()
    return float(loss), int((probs.argmax(dim=1) != y).sum())
