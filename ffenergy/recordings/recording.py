"""The ``Recording`` type: what every reader returns, whatever the file format."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

Quantity = Literal["power", "energy"]  # watts per sample, or joules per sample period


class RecordingError(ValueError):
    """A recording cannot be read or is inconsistent; the message names the file and the fault."""


@dataclass(frozen=True)
class Published:
    """Figures the recording's source published beside it (read for comparison only, never used)."""

    window_energy_j: tuple[float, ...]  # gross, per window, in the recording's window order
    median_j_per_inference: float | None
    source_file: str


@dataclass(frozen=True)
class Recording:
    """A real meter's sample stream with the DUT's trigger windows.

    ``edges`` is an (n, 2) array of [start, end) sample indices; each edge is known to within
    ``edge_uncertainty`` samples (0: the format stores exact indices; 1: times rounded to a sample
    period, or a trigger sampled with the current). ``inferences`` holds the inferences run in
    each window (0 where the source does not say). ``t_s`` is set only for streams that are not
    uniformly sampled (their samples are then energy per sample, and durations come from it).
    """

    samples: np.ndarray
    quantity: Quantity
    sample_rate_hz: float
    voltage_v: float | None
    edges: np.ndarray
    edge_uncertainty: int
    inferences: np.ndarray
    meter: str
    board: str
    workload: str
    format: str
    files: dict[str, str]  # path -> sha256 of every source file read
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts, for the manifest
    published: Published | None = None
    t_s: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_windows(self) -> int:
        return len(self.edges)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def energy_per_sample_j(self) -> np.ndarray:
        return self.samples if self.quantity == "energy" else self.samples / self.sample_rate_hz

    def power_w(self) -> np.ndarray:
        return self.samples if self.quantity == "power" else self.samples * self.sample_rate_hz

    def trigger(self) -> np.ndarray:
        """The trigger line the windows imply: 1 inside a window, 0 elsewhere, one value per sample."""
        level = np.zeros(self.n_samples + 1, np.int64)
        np.add.at(level, self.edges[:, 0], 1)
        np.add.at(level, self.edges[:, 1], -1)
        return (np.cumsum(level[:-1]) > 0).astype(np.uint8)

    def with_inferences(self, n: int) -> Recording:
        """The same recording with ``n`` inferences in every window (for formats that do not record it)."""
        if n <= 0:
            raise RecordingError(f"inferences per window {n}: must be a positive count")
        return replace(self, inferences=np.full(self.n_windows, n, np.int64))

    def check(self, where: str) -> None:
        """Raise ``RecordingError`` naming ``where`` if the recording is unusable."""
        if not (math.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise RecordingError(f"{where}: sample rate {self.sample_rate_hz!r} Hz; it must be a positive number")
        if self.n_samples == 0:
            raise RecordingError(f"{where}: no samples")
        bad = np.flatnonzero(~np.isfinite(self.samples))
        if bad.size:
            raise RecordingError(
                f"{where}: {bad.size} samples are NaN or infinite (the first at sample {bad[0]},"
                f" {bad[0] / self.sample_rate_hz:.6g} s); the recording is damaged"
            )
        if self.voltage_v is not None and not (math.isfinite(self.voltage_v) and self.voltage_v > 0):
            raise RecordingError(f"{where}: supply voltage {self.voltage_v!r} V; it must be a positive number")
        if self.n_windows == 0:
            raise RecordingError(f"{where}: no complete trigger window in the recording")
        start, end = self.edges[:, 0], self.edges[:, 1]
        if start.min() < 0 or end.max() > self.n_samples:
            last = int(end.max())
            raise RecordingError(
                f"{where}: a window edge lies at sample {last} ({last / self.sample_rate_hz:.6g} s), beyond the"
                f" trace's {self.n_samples} samples ({self.duration_s:.6g} s): the trace is truncated or the edges"
                " belong to another recording"
            )
        if np.any(end <= start) or np.any(start[1:] < end[:-1]):
            raise RecordingError(f"{where}: window edges are not increasing, non-overlapping [start, end) pairs")
        if len(self.inferences) != self.n_windows:
            raise RecordingError(
                f"{where}: {len(self.inferences)} inference counts for {self.n_windows} windows; they must match"
            )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a ``RecordingError`` saying which file of which format is missing."""
    if not path.is_file():
        raise RecordingError(f"{path}: missing; {what}")
    return path
