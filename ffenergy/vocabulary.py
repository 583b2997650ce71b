"""The words every layer shares: inference modes, per-sample predictions, provenances.

A *mode* is how a run stops inference: ``full`` (every layer), ``light`` (early exit by the
learner's label-free confidence) or ``depth-k`` (forced exit at layer k). A *procedure* is one
registered learner's early-exit inference, by the name result files use (``mp``, ``op``, ...).
A *provenance* says where an energy figure came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

_DEPTH = re.compile(r"^depth-(\d+)$")

Provenance = Literal["measured", "estimated", "simulated"]
PROVENANCES: tuple[str, ...] = get_args(Provenance)


@dataclass
class Predictions:
    """Per-sample outcome of one inference mode: int arrays of shape (N,)."""

    pred: np.ndarray
    exit_layer: np.ndarray  # 1-based layer at which the sample exited
    macs: np.ndarray


def depth_of(mode: str) -> int | None:
    """``"depth-3"`` -> 3; any other mode name -> None."""
    match = _DEPTH.match(mode)
    return int(match.group(1)) if match else None


def forced_depth(mode: str, n_layers: int) -> int | None:
    """The forced exit depth of a mode: L for ``full``, k for ``depth-k``, None for ``light``."""
    if mode == "full":
        return n_layers
    if mode == "light":
        return None
    depth = depth_of(mode)
    if depth is not None and 1 <= depth <= n_layers:
        return depth
    raise ValueError(f"unknown mode {mode!r}: use full, light or depth-k with 1 <= k <= {n_layers}")


def all_modes(n_layers: int) -> list[str]:
    """full, light and every forced depth, in that order."""
    return ["full", "light"] + [f"depth-{k}" for k in range(1, n_layers + 1)]
