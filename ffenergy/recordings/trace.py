"""ffenergy's own ``trace.csv`` (``t_s, current_a, voltage_v, trigger``): the raw stream the INA226 and
PPK2 drivers keep of an MCU run. Timestamps are the meter's own and need not be uniform, so each
sample's energy is its power times the step to the next sample (the drivers' forward rectangle rule)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffenergy.contract import TRACE_COLUMNS
from ffenergy.meters.trigger_windows import find_windows
from ffenergy.recordings.formats import ReadOptions
from ffenergy.recordings.recording import Recording, RecordingError, sha256


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    with open(path, errors="replace") as fh:
        return [h.strip() for h in fh.readline().split(",")] == TRACE_COLUMNS


def read(path: Path, options: ReadOptions) -> Recording:
    try:
        t, i, v, trig = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2).T
    except ValueError as exc:
        raise RecordingError(f"{path}: {exc}") from None
    if len(t) < 2 or np.any(np.diff(t) <= 0):
        raise RecordingError(f"{path}: needs at least 2 samples with increasing t_s")
    energy = v[:-1] * i[:-1] * np.diff(t)  # the last sample's period is unknown: it is dropped
    edges = np.asarray(find_windows(trig[:-1]), np.int64).reshape(-1, 2)
    return Recording(
        samples=energy,
        quantity="energy",
        sample_rate_hz=options.sample_rate_hz or 1.0 / float(np.median(np.diff(t))),
        voltage_v=options.voltage_v or float(np.median(v)),
        edges=edges,
        edge_uncertainty=1,
        inferences=np.zeros(len(edges), np.int64),
        meter="unknown",
        board=options.board or "unknown",
        workload=options.workload or path.parent.name,
        format="ffenergy-trace",
        files={str(path): sha256(path)},
        t_s=t,
    )
