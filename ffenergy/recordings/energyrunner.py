"""EEMBC EnergyRunner sessions (MLPerf Tiny energy mode), as their submitters publish them.

A session folder holds ``trace1-energy.bin`` (a 0xF1 byte, then little-endian float32: the sample
rate in Hz, then the energy of each sample period in µJ), ``trace1-timestamps.json`` (the times in s,
rounded to 1 ms, of the DUT's timestamp-pin edges: an opening edge, then a start and an end edge per
window), ``log.txt`` (the runner's log: inferences per window, supply voltage, meter, model) and
``results.txt`` (the runner's published figures, read for comparison only). An edge time t is sample
round(t * rate), known to +-1 sample because of the rounding.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from ffenergy.recordings.formats import ReadOptions
from ffenergy.recordings.recording import Published, Recording, RecordingError, require, sha256

HEADER_BYTE = 0xF1
TRACE, TIMESTAMPS, LOG, RESULTS = "trace1-energy.bin", "trace1-timestamps.json", "log.txt", "results.txt"
_BOARD_IN_NAME = re.compile(r"nucleo[-_][a-z0-9]+(?:[-_]q)?", re.IGNORECASE)


def detect(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    return (folder / TRACE).is_file() or (folder / TIMESTAMPS).is_file()


def read(path: Path, options: ReadOptions) -> Recording:
    folder = path if path.is_dir() else path.parent
    what = "an EnergyRunner session folder holds trace1-energy.bin, trace1-timestamps.json and log.txt"
    trace, stamps, log = (require(folder / name, what) for name in (TRACE, TIMESTAMPS, LOG))
    rate, energy_uj = read_trace(trace)
    rate = options.sample_rate_hz or rate
    times = read_timestamps(stamps)
    log_text = log.read_text(errors="replace")
    edges = window_edges(times, rate)
    inferences = _inferences(log_text, len(edges), log)
    voltage = options.voltage_v or _voltage(log_text)
    files = {str(p): sha256(p) for p in (trace, stamps, log)}
    published = None
    if (folder / RESULTS).is_file():
        published = read_results(folder / RESULTS)
        files[str(folder / RESULTS)] = sha256(folder / RESULTS)
    meter = _match(r"m-regfile-fn\[[^]]*\]-type\[emon\]-name\[([^]]+)\]", log_text) or "unknown"
    model = _match(r"-key\[model\]-val\[([^]]+)\]", log_text)
    board_guess = _BOARD_IN_NAME.search(folder.resolve().name)
    return Recording(
        samples=energy_uj * 1e-6,
        quantity="energy",
        sample_rate_hz=rate,
        voltage_v=voltage,
        edges=edges,
        edge_uncertainty=1,
        inferences=inferences,
        meter=meter,
        board=options.board or (board_guess.group(0).lower().replace("_", "-") if board_guess else "unknown"),
        workload=options.workload or model or folder.name,
        format="energyrunner",
        files=files,
        details={
            "runner_version": _match(r"m-version\[([^]]+)\]", log_text),
            "dut_profile": _match(r"m-profile-\[([^]]+)\]", log_text),
            "board_from": "--board" if options.board else ("folder name" if board_guess else "unknown"),
            "edge_times_s": times,
        },
        published=published,
    )


def read_trace(path: Path) -> tuple[float, np.ndarray]:
    """(sample rate in Hz, energy per sample in µJ) of an EnergyRunner ``*-energy.bin``."""
    raw = path.read_bytes()
    if not raw or raw[0] != HEADER_BYTE:
        first = f"0x{raw[0]:02X}" if raw else "nothing"
        raise RecordingError(f"{path}: starts with {first}, not 0xF1: not an EnergyRunner energy trace")
    body = raw[1:]
    if len(body) % 4:
        raise RecordingError(
            f"{path}: {len(body)} bytes after the header are not whole float32 values: the file is truncated"
        )
    values = np.frombuffer(body, "<f4").astype(np.float64)
    if len(values) < 2:
        raise RecordingError(f"{path}: no samples after the sample rate")
    return float(values[0]), values[1:]


def read_timestamps(path: Path) -> list[float]:
    try:
        times = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not JSON ({exc})") from None
    if not isinstance(times, list) or not all(isinstance(t, (int, float)) for t in times):
        raise RecordingError(f"{path}: expected a JSON list of edge times in seconds")
    if any(not math.isfinite(t) or t < 0 for t in times) or any(b < a for a, b in zip(times, times[1:])):
        raise RecordingError(f"{path}: edge times must be finite, non-negative and increasing")
    return [float(t) for t in times]


def window_edges(times: list[float], rate: float) -> np.ndarray:
    """[start, end) sample indices of the windows: edges 1-2, 3-4, ... (edge 0 opens the session)."""
    index = np.rint(np.asarray(times, np.float64) * rate).astype(np.int64)
    n = (len(index) - 1) // 2
    return np.stack([index[1 : 2 * n : 2], index[2 : 2 * n + 1 : 2]], axis=1) if n else np.zeros((0, 2), np.int64)


def _inferences(log_text: str, n_windows: int, path: Path) -> np.ndarray:
    starts = [int(k) for k in re.findall(r"m-infer-start-(\d+)", log_text)]
    if len(starts) == n_windows:
        return np.asarray(starts, np.int64)
    per_window = _match(r"-key\[iterInfer\]-val\[(\d+)\]", log_text)
    if per_window is None:
        raise RecordingError(
            f"{path}: no inference count (m-infer-start-N or iterInfer) for the {n_windows} windows of the trace"
        )
    return np.full(n_windows, int(per_window), np.int64)


def _voltage(log_text: str) -> float | None:
    mv = _match(r"m-voltage-mv\[(\d+(?:\.\d+)?)\]", log_text)
    return float(mv) / 1000.0 if mv else None


def _match(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


def read_results(path: Path) -> Published:
    """The runner's published per-window energies (µJ) and median µJ/inference, in joules."""
    text = path.read_text(errors="replace")
    windows = [float(x) * 1e-6 for x in re.findall(r"Energy\s*:\s*([\d.eE+-]+)\s*uJ\b", text)]
    median = _match(r"Median energy cost is\s*([\d.eE+-]+)\s*uJ/inf", text)
    return Published(tuple(windows), float(median) * 1e-6 if median else None, str(path))
