"""EnergyRunner 3.x energy-mode ``results.json`` (MLPerf Tiny v1.3 on).

A JSON list with one entry per input file run; in energy mode each entry's ``power`` holds
``samples`` (the energy of each sample period in J), ``timestamps`` (named window edges as exact
sample indices, e.g. ``[["08", 1770], ["09", 13286]]``) and ``voltage`` (V); ``infer.iterations`` is
the inferences in the window. The sample rate is not stored: 1 kHz (the LPM01A's rate in these
sessions) unless ``--sample-rate-hz`` says otherwise. Entries are concatenated into one stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ffenergy.recordings.formats import ReadOptions
from ffenergy.recordings.recording import Recording, RecordingError, sha256

DEFAULT_RATE_HZ = 1000.0


def _file(path: Path) -> Path:
    return path / "results.json" if path.is_dir() else path


def detect(path: Path) -> bool:
    f = _file(path)
    if f.name != "results.json" or not f.is_file():
        return False
    with open(f, "rb") as fh:
        head = fh.read(4096)
    return b'"power"' in head or b'"mode": "e"' in head or b'"samples"' in head


def read(path: Path, options: ReadOptions) -> Recording:
    f = _file(path)
    try:
        entries = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{f}: not a readable results.json ({exc})") from None
    if not isinstance(entries, list):
        raise RecordingError(f"{f}: expected a JSON list of runner entries")
    energy = [e for e in entries if isinstance(e, dict) and isinstance(e.get("power"), dict)]
    if not energy:
        raise RecordingError(f"{f}: no energy-mode entry (one with 'power' samples); is it a performance run?")
    chunks, edges, inferences, voltages = [], [], [], set()
    offset = 0
    for k, entry in enumerate(energy):
        samples, window, volts = _entry(entry, f, k)
        chunks.append(samples)
        edges.append([window[0] + offset, window[1] + offset])
        inferences.append(int(entry.get("infer", {}).get("iterations", 0) or 0))
        voltages.add(volts)
        offset += len(samples)
    if len(voltages) > 1:
        raise RecordingError(f"{f}: entries at different voltages {sorted(voltages)}; import them one at a time")
    return Recording(
        samples=np.concatenate(chunks),
        quantity="energy",
        sample_rate_hz=options.sample_rate_hz or DEFAULT_RATE_HZ,
        voltage_v=options.voltage_v or voltages.pop(),
        edges=np.asarray(edges, np.int64),
        edge_uncertainty=0,
        inferences=np.asarray(inferences, np.int64),
        meter="energyrunner",
        board=options.board or "unknown",
        workload=options.workload or f.parent.parent.name or "unknown",
        format="energyrunner3",
        files={str(f): sha256(f)},
        details={
            "input_files": [e.get("file") for e in energy],
            "sample_rate_from": "option" if options.sample_rate_hz else "1 kHz default",
        },
    )


def _entry(entry: dict[str, Any], f: Path, k: int) -> tuple[np.ndarray, tuple[int, int], float]:
    power = entry["power"]
    try:
        samples = np.asarray(power["samples"], np.float64)
        stamps = [int(index) for _, index in power["timestamps"]]
        volts = float(power["voltage"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingError(
            f"{f}: entry {k}: 'power' needs samples, timestamps [[name, index], ...] and voltage ({exc})"
        ) from None
    if len(stamps) < 2:
        raise RecordingError(f"{f}: entry {k}: {len(stamps)} window edges; a window needs a start and an end")
    return samples, (stamps[0], stamps[-1]), volts
