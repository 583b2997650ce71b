"""The inference side shared by the convolutional learners, and the backprop multi-exit CNN.

``ConvExitLearner``: an ``ExitNetLearner`` on a ``ConvExitNet`` (compaction drops exited rows of
the (N, C, H, W) activations; OP's label-free exit statistic), its MACs, and no firmware.
``BackpropConvExits``: the fair baseline of ``cwc``: the same blocks and widths, a global-average-
pooling linear head per block, every block and head trained end to end by back-propagation on the
weighted sum of the exit cross-entropies (``backprop.train_end_to_end``, options
``model.options.bp-conv-exits``, those of ``bp-exits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.learners.backprop import ExitNetLearner, train_end_to_end
from ffenergy.learners.base import NotDeployable, learner_options
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.conv.model import ConvExitNet, GapHead
from ffenergy.learners.conv.options import BpConvOptions

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig


class ConvExitLearner(ExitNetLearner):
    """Inference of a ``ConvExitNet``: scores are the exit of the last block run."""

    net: ConvExitNet

    def layer_macs(self) -> np.ndarray:
        return self.net.layer_macs()

    def firmware(self, thresholds: np.ndarray) -> tuple[NetworkArrays, ExitPolicy]:
        raise NotDeployable(
            f"{self.name}: convolutional layers, pooling and batch norm are in no firmware scheme (the firmware runs "
            "dense layers only); run it on a host target"
        )


class BackpropConvExits(ConvExitLearner):
    """The backprop multi-exit CNN: ``cwc``'s blocks, a linear head on each block's pooled channels."""

    network_id: ClassVar[str] = BpConvOptions.network_id
    training_version: ClassVar[int] = 1

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ConvExitNet:
        """PyTorch's default initialisation; biases everywhere."""
        return ConvExitNet(dims[0], dims[1:], n_classes, GapHead)

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
        """Deterministic on CPU for a seed."""
        opts = learner_options(BpConvOptions, model, cls.network_id)
        return train_end_to_end(net, x, y, model, opts, seed, device, progress, checkpoint)
