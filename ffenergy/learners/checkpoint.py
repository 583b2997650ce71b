"""Per-epoch training checkpoints, so an interrupted training continues from its last finished epoch.

A training loop names its stage (a learner may train in several, e.g. PEPITA's layers, then its
exit heads), asks ``resume`` how far that stage got, and calls ``save`` after every epoch. A
checkpoint restores everything the next epoch depends on: the weights, the optimiser's state,
the shuffling generator, any running statistics the loop keeps, and the per-epoch history, so
the resumed training ends with the same weights as one that was never interrupted (on CPU).
Without a path (``EpochCheckpoint()``) nothing is kept: tests and one-off training use that.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class StageProgress:
    """How far one training stage got before: epochs finished and their history."""

    epochs: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)


class EpochCheckpoint:
    """The training state of one network, saved after each epoch at ``path`` (nothing kept without one)."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._saved: dict[str, Any] | None = None
        self._finished: dict[str, StageProgress] = {}
        if path is not None and path.exists():
            try:
                self._saved = torch.load(path, map_location="cpu", weights_only=True)
                self._finished = {
                    stage: StageProgress(done["epochs"], done["history"])
                    for stage, done in self._saved["finished"].items()
                }
            except Exception as exc:  # a checkpoint cut short by a crash: start that training again
                log.warning("training checkpoint %s is unreadable (%s); training from the start", path, exc)
                self._saved = None

    def resume(
        self,
        stage: str,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        tensors: list[torch.Tensor] | None = None,
    ) -> StageProgress:
        """Restore ``stage``'s state as last saved (in place); what that stage had done."""
        if stage in self._finished:
            return self._finished[stage]
        saved = self._saved
        if saved is None or saved["stage"] != stage:
            return StageProgress()
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        for dst, src in zip(tensors or [], saved["tensors"], strict=True):
            dst.copy_(src)
        log.info("training %s: resuming after epoch %d (checkpoint %s)", stage, saved["epochs"], self.path)
        return StageProgress(saved["epochs"], {k: list(v) for k, v in saved["history"].items()})

    def save(
        self,
        stage: str,
        epochs: int,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        history: dict[str, list[float]],
        tensors: list[torch.Tensor] | None = None,
    ) -> None:
        """Record that ``stage`` has finished ``epochs`` epochs (atomically: a crash keeps the previous one)."""
        if self.path is None:
            return
        state = {
            "stage": stage,
            "epochs": epochs,
            "net": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "tensors": [t.detach().cpu() for t in tensors or []],
            "history": history,
            "finished": {s: {"epochs": d.epochs, "history": d.history} for s, d in self._finished.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")  # one per writer: runs may share a cache
        torch.save(state, tmp)
        tmp.replace(self.path)

    def finish(self, stage: str, epochs: int, history: dict[str, list[float]]) -> None:
        """``stage`` is done; the next stage's first ``save`` records it, with the weights it left."""
        self._finished[stage] = StageProgress(epochs, history)

    def discard(self) -> None:
        """Training is complete and cached: the checkpoint is no longer needed."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def epoch_bar(done: StageProgress, epochs: int, desc: str, progress: bool) -> tqdm:
    """The epochs (0-based) a stage still has to run, under a progress bar that counts the finished ones."""
    todo = range(done.epochs, epochs)
    return tqdm(todo, desc=desc, unit="epoch", initial=done.epochs, total=epochs, disable=not progress)
