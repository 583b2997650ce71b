"""The learner seam: what every early-exit learner provides, whatever trains it.

A learner class says how its network is built and trained (``build``, ``fit``; the trained
weights are cached by ``network_id``, ``training_version`` and the config) and, bound to a
trained network, how it infers layer by layer: ``start`` opens a pass over a batch whose
``step(k)`` runs layer k on the rows still active and returns their scores, and whose
``keep(idx)`` drops the rows that exited (compaction), so later layers run on fewer rows, and
whose ``merge`` pools the rows of several batches that reached the same depth.
``confidence`` is the label-free exit statistic of a row of scores, ``layer_macs`` the
multiply-accumulates each layer adds as implemented (``naive_layer_macs``: as the paper counts
them, where the implementation shortcuts that count), and ``firmware`` the numpy hand-off for export, the
reference and the C firmware (learners the firmware cannot run say so).

Registered by name in ``ffenergy.learners.LEARNERS``; that name is the result files'
``procedure``. Nothing outside a learner's own module compares learner names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import numpy as np
import torch
from torch import nn

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.options import LearnerOptionsError as LearnerOptionsError
from ffenergy.learners.options import learner_options as learner_options

if TYPE_CHECKING:
    from ffenergy.config import InferenceConfig, ModelConfig


class NotDeployable(ValueError):
    """The learner has no firmware implementation (the message names what it lacks)."""


class LayerPass(Protocol):
    """One batch moving through a network; ``rows`` are the batch positions still active."""

    rows: torch.Tensor

    def step(self, k: int) -> torch.Tensor:
        """Run layer k (0-based) on the active rows; their scores, shape (n_active, C)."""
        ...

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the active rows at positions ``idx`` (compaction)."""
        ...

    def merge(self, others: list[Self]) -> None:
        """Append the active rows of ``others``, passes of the same learner at the same depth."""
        ...


class RowState:
    """``keep`` and ``merge`` for a pass whose per-row state is the tensors, or lists of tensors
    (one per layer so far), named in ``row_state``, each with the rows along dimension 0."""

    row_state: ClassVar[tuple[str, ...]]
    rows: torch.Tensor

    def keep(self, idx: torch.Tensor) -> None:
        """index_select: several times faster than boolean or advanced indexing on CPU."""
        for name in ("rows", *self.row_state):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, [t.index_select(0, idx) for t in value])
            else:
                setattr(self, name, value.index_select(0, idx))

    def merge(self, others: list[Self]) -> None:
        for name in ("rows", *self.row_state):
            parts = [getattr(p, name) for p in (self, *others)]
            if isinstance(parts[0], list):
                setattr(self, name, [torch.cat(layer) for layer in zip(*parts, strict=True)])
            else:
                setattr(self, name, torch.cat(parts))


class Learner(ABC):
    """A trained early-exit network of one learner, with its inference procedure."""

    network_id: ClassVar[str]  # learners with the same id share one trained network (and cache entry)
    training_version: ClassVar[int]  # bump when a change to training would change the weights

    def __init__(self, name: str, net: nn.Module, inference: InferenceConfig):
        self.name = name
        self.net = net

    # -- training ---------------------------------------------------------------------------
    @classmethod  # noqa: B027 - a hook: most learners need no check
    def check(cls, inference: InferenceConfig, n_classes: int) -> None:
        """Refuse settings that make no sense for this task (raise LearnerOptionsError) before any training."""

    @classmethod
    @abstractmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> nn.Module:
        """An untrained network with layer widths ``dims`` (input first)."""

    @classmethod
    @abstractmethod
    def fit(
        cls,
        net: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        model: ModelConfig,
        seed: int,
        device: str,
        progress: bool,
        checkpoint: EpochCheckpoint,
    ) -> dict[str, Any]:
        """Train ``net`` in place; what training did, for the manifest (JSON-serialisable).

        Save to ``checkpoint`` after every epoch and resume from it first, so an interrupted training
        continues where it stopped and ends with the weights of an uninterrupted one.
        """

    # -- inference --------------------------------------------------------------------------
    @property
    @abstractmethod
    def statistic(self) -> str:
        """Name of the confidence statistic (recorded in calibration.json and sweep.csv)."""

    @property
    @abstractmethod
    def dims(self) -> list[int]: ...

    @property
    @abstractmethod
    def n_classes(self) -> int: ...

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    @property
    def confidence_floor(self) -> float:
        """The least value ``confidence`` can take: a threshold at or below it lets every sample exit."""
        return float("-inf")

    @property
    def reference(self) -> str:
        """The procedure whose full mode is this one's honest baseline for reductions."""
        return self.name

    @abstractmethod
    def start(self, x: torch.Tensor) -> LayerPass:
        """A pass over the batch ``x`` (N, d0), before layer 1."""

    @abstractmethod
    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        """Label-free confidence of each row of ``scores`` (higher: more confident)."""

    def confidence_of_row(self, scores: list[float]) -> float:
        """``confidence`` of a single row given as Python floats, for a batch of one. Learners
        override it with the statistic on floats, which checks an exit without the batched
        form's kernel launches; in double precision it can differ from the float32 batched value
        in the last bits, as the logits of a batch of one already differ from those of a larger
        batch (another GEMM summation order). The default is the batched form on one row."""
        return float(self.confidence(torch.tensor([scores])))

    @abstractmethod
    def layer_macs(self) -> np.ndarray:
        """MACs each layer adds to one inference that reaches it (int64, shape (L,))."""

    def naive_layer_macs(self) -> np.ndarray:
        """The published count of ``layer_macs`` where the implementation shortcuts it (default: the same)."""
        return self.layer_macs()

    def macs_at_exit(self) -> np.ndarray:
        """Total MACs of one inference that exits at layer k (index k-1)."""
        return np.cumsum(self.layer_macs())

    def naive_macs_at_exit(self) -> np.ndarray:
        """``macs_at_exit`` in the published count (``naive_layer_macs``)."""
        return np.cumsum(self.naive_layer_macs())

    def calibration_facts(self) -> dict[str, Any]:
        """Learner settings that calibration.json records beside the thresholds."""
        return {}

    def firmware(self, thresholds: np.ndarray) -> tuple[NetworkArrays, ExitPolicy]:
        """The float32 arrays and exit rule the firmware runs (default: none)."""
        raise NotDeployable(f"{self.name}: the firmware has no implementation of this learner")

    def device(self) -> torch.device:
        return next(self.net.parameters()).device
