"""CaFo (Cascaded Forward, Zhao et al. 2023) on an MLP: blocks without end-to-end backprop, a
locally trained predictor per block, and the sum of the predictors so far as each exit's scores.

Network: an ``ExitMLP`` of bias-free He-uniform ReLU blocks (``model.hidden``) with one linear
predictor (with bias) per block. Training, in two stages and never back-propagating through a
block:

1. blocks (``model.options.cafo.blocks``): ``dfa`` pre-trains them by direct feedback alignment,
   the output error e = softmax(P_L(h_L)) - onehot(y) of the last predictor sent to every block l
   through a fixed random matrix B_l (C x d_l, U[-sqrt(6/d_l), sqrt(6/d_l)], drawn from the
   training seed): dW_l = ((e B_l) * relu'(W_l h_{l-1}))^T h_{l-1}, dP_L = e^T h_L, batch-averaged,
   SGD with momentum; ``random`` leaves them at their random initialisation (CaFo's "Rand").
2. predictors: each P_l trained on its own block's frozen output by cross-entropy (Adam),
   independently of the others (P_L from where DFA left it; CaFo's CE predictors, its MSE and
   sparsemax losses are not built). The paper's blocks are convolutional; these are dense.

Inference: the scores at depth k are the summed logits P_1(h_1) + ... + P_k(h_k) (CaFo predicts
with the sum of every predictor; a depth-k exit sums those it has run), so full mode is CaFo's own
prediction. Confidence, calibration and compaction are those of every ``ExitMLP`` learner; each
depth adds d_{k-1} d_k + d_k C MACs (the C additions of the running sum are not MACs).
"""

from __future__ import annotations

import logging
import math
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.learners.backprop import ExitMLP, ExitMLPLearner, ExitPass
from ffenergy.learners.base import NotDeployable, learner_options
from ffenergy.learners.cafo.options import CafoOptions
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.local import LocalSchedule, layer_features, train_frozen_heads, train_local_rule
from ffenergy.learners.pepita import he_uniform

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig

log = logging.getLogger(__name__)


class CascadePass(ExitPass):
    """An ``ExitPass`` whose scores are the running sum of the exit logits of the active rows."""

    row_state = ("h", "total")

    def __init__(self, net: ExitMLP, x: torch.Tensor):
        super().__init__(net, x)
        self.total = torch.zeros(len(x), net.n_classes, device=x.device, dtype=x.dtype)

    def step(self, k: int) -> torch.Tensor:
        self.total = self.total + super().step(k)
        return self.total


class Cafo(ExitMLPLearner):
    """CaFo: DFA-trained or random blocks, a cross-entropy predictor per block, summed predictions."""

    network_id: ClassVar[str] = CafoOptions.network_id
    training_version: ClassVar[int] = 1

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ExitMLP:
        """Bias-free He-uniform blocks; He-uniform predictors with a zero bias."""
        return ExitMLP(
            [he_uniform(a, b) for a, b in pairwise(dims)], [he_uniform(d, n_classes, True) for d in dims[1:]]
        )

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
        """The blocks (DFA, or left random), then the predictors; deterministic on CPU for a seed."""
        opts = learner_options(CafoOptions, model, cls.network_id)
        gen = torch.Generator().manual_seed(seed)
        net.to(device).train()
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        info: dict[str, Any] = {"blocks": opts.blocks}
        seconds, resumed_after = 0.0, 0
        if opts.blocks == "dfa":
            # drawn before anything else reads the generator, so a resumed training draws the same ones
            feedback = [feedback_matrix(net.n_classes, d, gen).to(device) for d in net.dims[1:]]
            out = net.heads[-1]
            params = [*(layer.weight for layer in net.layers), out.weight, out.bias]
            epochs = opts.epochs or model.epochs
            schedule = LocalSchedule(
                cls.network_id,
                "dfa",
                "CaFo DFA blocks",
                opts.lr,
                opts.momentum,
                opts.lr_decay_at,
                epochs,
                model.batch_size,
            )
            step = partial(_dfa_step, net, feedback=feedback)
            dfa_log, resumed_after = train_local_rule(net, params, step, xs, ys, schedule, gen, progress, checkpoint)
            seconds += sum(dfa_log.pop("epoch_seconds"))
            info.update(dfa_log)
        heads_log = train_frozen_heads(
            net,
            list(net.heads),
            layer_features(net, len(net.heads)),
            xs,
            ys,
            opts.head_lr,
            opts.head_epochs,
            model.batch_size,
            gen,
            progress,
            checkpoint,
            "CaFo predictors",
        )
        net.eval()
        seconds += sum(heads_log["epoch_seconds"])
        log.info(
            "cafo: %s blocks, predictor loss %s, %.1f s",
            opts.blocks,
            ", ".join(f"{v:.3f}" for v in heads_log["head_loss"]),
            seconds,
        )
        return {
            "train_seconds": round(seconds, 2),
            "train_device": device,
            "resumed_after_epoch": resumed_after,
            **info,
            "head_loss": heads_log["head_loss"],
        }

    def start(self, x: torch.Tensor) -> CascadePass:
        return CascadePass(self.net, x)

    def firmware(self, thresholds: np.ndarray) -> tuple[NetworkArrays, ExitPolicy]:
        """Not the inherited ``exit`` scheme: that reads head k alone, CaFo's exit k sums heads 1..k."""
        raise NotDeployable(
            f"{self.name}: its exit k sums the predictors of blocks 1..k, which no firmware scheme implements"
            " (the exit scheme reads head k alone); run it on a host target"
        )


def feedback_matrix(n_classes: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """A fixed DFA feedback matrix B (C, width), U[-sqrt(6/width), sqrt(6/width)]."""
    return (torch.rand(n_classes, width, generator=gen) * 2 - 1) * math.sqrt(6.0 / width)


@torch.no_grad()
def _dfa_step(net: ExitMLP, x: torch.Tensor, y: torch.Tensor, feedback: list[torch.Tensor]) -> tuple[float, int]:
    """Set the blocks' and the last predictor's .grad to their DFA updates; (cross-entropy, errors)."""
    inputs, pre = [], []
    h = x
    for layer in net.layers:
        inputs.append(h)
        pre.append(layer(h))
        h = torch.relu(pre[-1])
    out = net.heads[-1]
    probs = torch.softmax(out(h), dim=1)
    err = probs - F.one_hot(y, net.n_classes).to(x.dtype)
    n = len(x)
    for layer, b, a, inp in zip(net.layers, feedback, pre, inputs, strict=True):
        layer.weight.grad = ((err @ b) * (a > 0)).T @ inp / n
    out.weight.grad = err.T @ h / n
    out.bias.grad = err.mean(dim=0)
    loss = -torch.log(probs.gather(1, y[:, None]).clamp_min(1e-12)).mean()
    return float(loss), int((probs.argmax(dim=1) != y).sum())
