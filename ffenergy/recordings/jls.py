"""Joulescope ``.jls`` v2 files through the maintained ``pyjls`` package (``pip install ffenergy[jls]``).

Power is the ``power`` signal where the file has one, else ``current`` x ``voltage`` sample by
sample. The trigger is a digital signal (``gpi[0]`` by default, ``trigger_in`` or another with
``--trigger``) sampled with the current, so its edges are sample-aligned and known to +-1 sample.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ffenergy.meters.trigger_windows import find_windows
from ffenergy.recordings.formats import ReadOptions
from ffenergy.recordings.recording import Recording, RecordingError, sha256

DEFAULT_TRIGGER = "gpi[0]"
PIP_HINT = "pip install 'ffenergy[jls]' (the pyjls package)"


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".jls"


def read(path: Path, options: ReadOptions) -> Recording:
    try:
        pyjls = importlib.import_module("pyjls")
    except ImportError as exc:
        raise RecordingError(f"{path}: reading .jls files needs pyjls ({exc}): {PIP_HINT}") from None
    try:
        reader = pyjls.Reader(str(path))
    except Exception as exc:  # pyjls raises RuntimeError with a C error code
        raise RecordingError(f"{path}: not a readable JLS v2 file ({exc})") from None
    try:
        signals = {s.name: s for s in reader.signals.values() if s.signal_id != 0}
        power, rate = _power(reader, signals, path)
        trigger_name = options.trigger or DEFAULT_TRIGGER
        if trigger_name not in signals:
            raise RecordingError(
                f"{path}: no trigger signal {trigger_name!r} (signals: {', '.join(signals)}); wire the DUT's trigger"
                " pin to GPI 0 or name the signal with --trigger"
            )
        trig = _read(reader, signals[trigger_name])[: len(power)]
        voltage = options.voltage_v or (
            float(np.median(_read(reader, signals["voltage"]))) if "voltage" in signals else None
        )
        source = reader.sources.get(signals[trigger_name].source_id)
    finally:
        reader.close()
    edges = np.asarray(find_windows(trig), np.int64).reshape(-1, 2)
    return Recording(
        samples=power,
        quantity="power",
        sample_rate_hz=options.sample_rate_hz or rate,
        voltage_v=voltage,
        edges=edges,
        edge_uncertainty=1,
        inferences=np.zeros(len(edges), np.int64),
        meter="joulescope",
        board=options.board or "unknown",
        workload=options.workload or path.stem,
        format="jls",
        files={str(path): sha256(path)},
        details={
            "device": f"{source.vendor} {source.model} {source.serial_number}" if source else "unknown",
            "trigger": trigger_name,
        },
    )


def _power(reader: Any, signals: dict[str, Any], path: Path) -> tuple[np.ndarray, float]:
    if "power" in signals:
        s = signals["power"]
        return _read(reader, s), float(s.sample_rate)
    if "current" in signals and "voltage" in signals:
        i, v = _read(reader, signals["current"]), _read(reader, signals["voltage"])
        n = min(len(i), len(v))
        return i[:n] * v[:n], float(signals["current"].sample_rate)
    raise RecordingError(
        f"{path}: neither a 'power' signal nor 'current' and 'voltage' (signals: {', '.join(signals)})"
    )


def _read(reader: Any, signal: Any) -> np.ndarray:
    data = np.asarray(reader.fsr(signal.signal_id, 0, signal.length))
    if data.dtype == np.uint8 and len(data) * 8 >= signal.length > len(data):  # 1-bit signals come packed
        return np.unpackbits(data, bitorder="little")[: signal.length]
    return data.astype(np.float64)
