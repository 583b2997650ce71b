"""Host targets: a learner's network run with torch on this machine's CPU or CUDA GPU."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ffenergy.learners.base import Learner
from ffenergy.learners.exits import infer, infer_pooled, predict
from ffenergy.targets.allocator import keep_freed_memory
from ffenergy.targets.registry import TARGETS
from ffenergy.vocabulary import Predictions


class TargetUnavailable(RuntimeError):
    """The target cannot run here; the message says why and what to do."""


@dataclass
class HostTarget:
    """Runs inference on ``device`` and exposes batches as measurable workloads."""

    name: str
    device: str
    freed_memory_kept: bool = False

    @classmethod
    def open(cls, name: str) -> HostTarget:
        device = TARGETS.entry(name).fact("device")
        if device is None:
            raise TargetUnavailable(f"target {name!r} is not a host target")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise TargetUnavailable(
                "target cuda: torch sees no CUDA device (torch.cuda.is_available() is False); "
                "install a CUDA build of torch on a machine with an NVIDIA GPU, or remove cuda from targets"
            )
        return cls(name, device, keep_freed_memory())

    def describe(self) -> str:
        memory = "freed memory kept" if self.freed_memory_kept else "freed memory returned to the OS"
        if self.device.startswith("cuda"):
            return f"{torch.cuda.get_device_name(self.device)}, host {memory}"
        return f"CPU, {torch.get_num_threads()} torch threads, {memory}"

    def deploy(self, learner: Learner) -> Learner:
        learner.net.to(self.device).eval()
        return learner

    def sync(self) -> None:
        if self.device.startswith("cuda"):  # cuda or cuda:N
            torch.cuda.synchronize(self.device)

    def predict(
        self, learner: Learner, x: np.ndarray, thresholds: Sequence[float] | None, depth: int | None, batch_size: int
    ) -> Predictions:
        return predict(learner, x, thresholds, depth, batch_size)

    def batch_runner(
        self,
        learner: Learner,
        x: np.ndarray,
        thresholds: Sequence[float] | None,
        depth: int | None,
        batch_size: int,
        pooled: bool = False,
    ) -> Callable[[], tuple[int, int]]:
        """A function that runs the next batch of ``x`` (cycling, inputs already on the device) and
        returns (n, MACs). Cycling over all of ``x`` makes light mode's exit mix the evaluated one.

        ``pooled`` (light mode only): each call runs the whole of ``x`` through ``infer_pooled``,
        the rows that stay pooled across its batches by depth (a throughput mode)."""
        cost = learner.macs_at_exit()
        if pooled and depth is None:
            assert thresholds is not None, "light inference needs calibrated thresholds"
            xs = torch.from_numpy(x).to(self.device)
            _, exits = infer_pooled(learner, xs, thresholds, batch_size)
            macs = int(cost[exits.cpu().numpy() - 1].sum())

            def run_all() -> tuple[int, int]:
                infer_pooled(learner, xs, thresholds, batch_size)
                return len(xs), macs

            return run_all
        batches, batch_macs = [], []
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size]).to(self.device)
            _, exits = infer(learner, xb, thresholds, depth)  # exits are fixed by the data: count MACs once
            batches.append(xb)
            batch_macs.append(int(cost[exits.cpu().numpy() - 1].sum()))
        turn = itertools.cycle(range(len(batches)))

        def run_once() -> tuple[int, int]:
            i = next(turn)
            infer(learner, batches[i], thresholds, depth)
            return len(batches[i]), batch_macs[i]

        return run_once
