"""Host targets: the FF network run with torch on this machine's CPU or CUDA GPU."""

from __future__ import annotations

import itertools

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ffenergy.ff.inference import ExitSpec, infer, predict
from ffenergy.ff.macs import macs_at_exit
from ffenergy.ff.model import FFNetwork
from ffenergy.targets.base import Predictions

HOST_TARGETS = ("cpu", "cuda")


class TargetUnavailable(RuntimeError):
    """The target cannot run here; the message says why and what to do."""


@dataclass
class HostTarget:
    """Runs inference on ``device`` and exposes batches as measurable workloads."""

    name: str
    device: str

    @classmethod
    def open(cls, name: str) -> "HostTarget":
        if name == "cpu":
            return cls("cpu", "cpu")
        if name == "cuda":
            if not torch.cuda.is_available():
                raise TargetUnavailable(
                    "target cuda: torch sees no CUDA device (torch.cuda.is_available() is False); "
                    "install a CUDA build of torch on a machine with an NVIDIA GPU, or remove cuda from targets"
                )
            return cls("cuda", "cuda")
        raise TargetUnavailable(f"target {name!r} is not a host target ({', '.join(HOST_TARGETS)})")

    def describe(self) -> str:
        if self.device == "cuda":
            return torch.cuda.get_device_name(0)
        return f"CPU, {torch.get_num_threads()} torch threads"

    def deploy(self, net: FFNetwork) -> FFNetwork:
        return net.to(self.device).eval()

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def predict(self, net: FFNetwork, x: np.ndarray, spec: ExitSpec, depth: int | None, batch_size: int) -> Predictions:
        return predict(net, x, spec, depth, batch_size, self.device)

    def batch_runner(
        self, net: FFNetwork, x: np.ndarray, spec: ExitSpec, depth: int | None, batch_size: int
    ) -> Callable[[], tuple[int, int]]:
        """A function that runs the next batch of ``x`` (cycling, inputs already on the device) and
        returns (n, MACs). Cycling over all of ``x`` makes light mode's exit mix the evaluated one."""
        cost = macs_at_exit(net.dims, net.n_classes, spec.procedure, spec.prune_after, spec.prune_keep)
        batches, batch_macs = [], []
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size]).to(self.device)
            _, exits = infer(net, xb, spec, depth)  # exits are fixed by the data: count MACs once
            batches.append(xb)
            batch_macs.append(int(cost[exits.cpu().numpy() - 1].sum()))
        turn = itertools.cycle(range(len(batches)))

        def run_once() -> tuple[int, int]:
            i = next(turn)
            infer(net, batches[i], spec, depth)
            return len(batches[i]), batch_macs[i]

        return run_once
