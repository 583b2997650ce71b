"""The Nordic Power Profiler (nRF Connect, PPK2) CSV export: ``Timestamp(ms),Current(uA),D0-D7``.

``D0-D7`` holds the eight logic inputs as a string of bits, D0 first. The export has no voltage:
pass ``--voltage-v`` (the source-meter setting, or the DUT's supply in ampere mode). The sample rate
is the median timestamp step; the trigger is ``D0`` unless ``--trigger Dn`` says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ffenergy.meters.trigger_windows import find_windows
from ffenergy.recordings.formats import ReadOptions
from ffenergy.recordings.recording import Recording, RecordingError, sha256

TIME, CURRENT, LOGIC = "Timestamp(ms)", "Current(uA)", "D0-D7"


def _header(path: Path) -> list[str]:
    with open(path, errors="replace") as fh:
        return [h.strip() for h in fh.readline().split(",")]


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".csv" and _header(path)[:2] == [TIME, CURRENT]


def read(path: Path, options: ReadOptions) -> Recording:
    header = _header(path)
    if options.voltage_v is None:
        raise RecordingError(f"{path}: the PPK2 export has no voltage; pass --voltage-v (e.g. 3.0)")
    channel = options.trigger or "D0"
    if not re.fullmatch(r"D[0-7]", channel):
        raise RecordingError(f"{path}: trigger {channel!r}: a PPK2 logic input is D0..D7")
    if LOGIC not in header:
        raise RecordingError(f"{path}: no {LOGIC} column: export with the digital channels to get the trigger")
    try:
        table = np.loadtxt(
            path, delimiter=",", skiprows=1, usecols=(0, 1, header.index(LOGIC)), dtype=np.float64, ndmin=2
        )
    except ValueError as exc:
        raise RecordingError(f"{path}: {exc}") from None
    t_ms, current_ua, bits = table[:, 0], table[:, 1], table[:, 2].astype(np.int64)
    if len(t_ms) < 2:
        raise RecordingError(f"{path}: fewer than 2 samples")
    step_ms = float(np.median(np.diff(t_ms)))
    if not step_ms > 0:
        raise RecordingError(f"{path}: timestamps do not increase; the sample rate is unknown")
    digit = int(channel[1])
    trig = (bits // 10 ** (7 - digit)) % 10  # "10000000": D0 is the first (leftmost) digit
    edges = np.asarray(find_windows(trig), np.int64).reshape(-1, 2)
    return Recording(
        samples=current_ua * 1e-6 * options.voltage_v,
        quantity="power",
        sample_rate_hz=options.sample_rate_hz or 1000.0 / step_ms,
        voltage_v=options.voltage_v,
        edges=edges,
        edge_uncertainty=1,
        inferences=np.zeros(len(edges), np.int64),
        meter="ppk2",
        board=options.board or "unknown",
        workload=options.workload or path.stem,
        format="ppk2-csv",
        files={str(path): sha256(path)},
        details={"trigger": channel},
    )
