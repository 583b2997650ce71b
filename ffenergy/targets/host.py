"""Host targets: the FF network run with torch on this machine's CPU or CUDA GPU."""

from __future__ import annotations

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
        """A function that runs one batch (inputs already on the device) and returns (n, MACs)."""
        xb = torch.from_numpy(x[:batch_size]).to(self.device)
        cost = macs_at_exit(net.dims, net.n_classes, spec.procedure, spec.prune_after, spec.prune_keep)
        _, exits = infer(net, xb, spec, depth)  # exits are fixed by the data: count MACs once
        batch_macs = int(cost[exits.cpu().numpy() - 1].sum())

        def run_once() -> tuple[int, int]:
            infer(net, xb, spec, depth)
            return len(xb), batch_macs

        return run_once
