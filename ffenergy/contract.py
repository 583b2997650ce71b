"""The result contract (DESIGN.md section 5): every result file's columns, its row types, and
append-safe writers. The experiment layer writes through it; analysis and plots read through it.

Every row is flushed and fsync'd as soon as it is written, so an interrupted run keeps what
it measured; readers skip a torn last line.
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSN_CLASS_COLUMNS = ["insn_ldst", "insn_mul", "insn_fpu", "insn_branch", "insn_other"]  # instructions by class
SAMPLES_COLUMNS = [
    "target",
    "procedure",
    "mode",
    "sample",
    "label",
    "pred",
    "exit_layer",
    "macs",
    "correct",
    "energy_j",
    "instructions",  # executed per inference, where the target counts them (mcu-qemu); else empty
    *INSN_CLASS_COLUMNS,
]
WINDOWS_COLUMNS = [
    "target",
    "meter",
    "domain",
    "procedure",
    "mode",
    "repeat",
    "n_inferences",
    "duration_s",
    "energy_j",
    "idle_power_w",
    "net_energy_j",
    "energy_lo_j",  # the edge band of energy_j (each edge one sample inward / outward), where the meter has one
    "energy_hi_j",
]
SUMMARY_COLUMNS = [
    "dataset",
    "target",
    "meter",
    "provenance",
    "procedure",
    "mode",
    "accuracy",
    "macro_f1",
    "mean_layers",
    "macs_per_inference",
    "macs_per_inference_naive",
    "mac_reduction",
    "energy_j_per_inference",
    "energy_ci95_j",
    "energy_reduction",
    "n_samples",
    "n_repeats",
    "co2_g_per_1000_inferences",
    "idle_drift_max",
    "gross_energy_j_per_inference",  # energy_j_per_inference and energy_ci95_j are net (idle subtracted)
    "gross_energy_ci95_j",
    "mac_reduction_as_run",  # full / mode of macs_per_inference (what ran); mac_reduction is the paper's count
]
# additions to DESIGN.md section 5 (see docs/DESIGN.md)
# a sweep directory's index (ffenergy sweep): the point id, one column per grid key (JSON values), then these
SWEEP_INDEX_COLUMNS = ["node", "status", "attempts", "error", "run_dir"]
PER_CLASS_COLUMNS = ["target", "procedure", "mode", "class", "n_samples", "sensitivity"]
SWEEP_COLUMNS = [
    "target",
    "procedure",
    "statistic",
    "alpha",
    "accuracy",
    "macro_f1",
    "mean_layers",
    "macs_per_inference",
    "macs_per_inference_naive",
    "mac_reduction",
    "exit_fractions",
    "energy_j_per_inference",
]
TRACE_COLUMNS = ["t_s", "current_a", "voltage_v", "trigger"]
FIT_KEYS = [
    "target",
    "meter",
    "procedure",
    "joules_per_mac",
    "static_power_w",
    "intercept_j_per_inference",
    "r2",
    "n_points",
    "predicted_light_j",
    "measured_light_j",
    "prediction_error",
]
EXPECTED_FILES = ("summary.csv", "samples.csv", "sweep.csv")  # every finished run has these
# An imported recording's run (ffenergy import) also holds this JSON object: the source's format, files
# (with sha256), board, meter, sample rate and voltage, and per window the energy beside the figures the
# source published, with the verdict of each comparison.
RECORDING_FILE = "recording.json"
# manifest.json key: rows each result file held when the run finished ({"summary.csv": 15, ...}); a reader
# refuses a file with fewer (cut short by a full disk or an interrupted copy)
ROW_COUNTS_KEY = "rows"


COUNTED_FILES = (*EXPECTED_FILES, "windows.csv")


def data_rows(path: Path) -> int:
    """Complete data rows of a result CSV: its whole lines, less the header."""
    return max(Path(path).read_bytes().count(b"\n") - 1, 0)


def row_counts(run_dir: Path) -> dict[str, int]:
    """Complete data rows of each result CSV of ``run_dir`` (for the manifest's ``rows``)."""
    return {name: data_rows(Path(run_dir) / name) for name in COUNTED_FILES if (Path(run_dir) / name).is_file()}


# A run committed as an example (results/examples/) holds this JSON object: {"trimmed": [file names
# left out for size], "note": "..."}. Its report.md and figures were drawn before trimming, so
# `ffenergy plot` reads it (for comparisons) but never rewrites it.
EXAMPLE_FILE = "example.json"
# The ffenergy version that last changed the result files' columns. A committed example made by an older
# version carries "schema_note" in its example.json: what it lacks and how its numbers still read.
SCHEMA_SINCE = "0.3.0"


@dataclass(frozen=True)
class SummaryRow:
    dataset: str
    target: str
    meter: str
    provenance: str
    procedure: str
    mode: str
    accuracy: float
    macro_f1: float | None
    mean_layers: float
    macs_per_inference: float
    mac_reduction: float | None
    energy_j_per_inference: float | None
    energy_ci95_j: float | None
    energy_reduction: float | None
    n_samples: int | None
    n_repeats: int | None
    idle_drift_max: float | None = None  # absent from runs before ffenergy 0.2
    macs_per_inference_naive: float = math.nan  # the paper's count; NaN in runs before ffenergy 0.2
    gross_energy_j_per_inference: float | None = None  # absent from runs before ffenergy 0.3
    gross_energy_ci95_j: float | None = None
    mac_reduction_as_run: float | None = None  # absent from runs before ffenergy 0.3


@dataclass(frozen=True)
class Fit:
    """An attribution fit: energy per inference = joules_per_mac * MACs + intercept."""

    target: str
    meter: str
    procedure: str
    joules_per_mac: float
    static_power_w: float | None
    intercept_j_per_inference: float
    r2: float | None
    n_points: int | None
    predicted_light_j: float | None
    measured_light_j: float | None
    prediction_error: float | None


@dataclass(frozen=True)
class ModeCost:
    """One mode of an MCU attribution entry's ``early_exit.modes``: costs per inference, and
    reductions against the baseline procedure's full mode (full / mode, > 1 means savings)."""

    mode: str
    uj_per_inference: float | None
    pj_per_mac: float | None
    instructions_per_inference: float | None
    instructions_per_mac: float | None
    energy_reduction: float | None
    mac_reduction: float | None


@dataclass(frozen=True)
class EarlyExitCosts:
    """attribution.json ``early_exit`` of one (target, meter, procedure): per mode costs and the exit
    check's own cost (light exiting at k against depth-k of the same sample, per check: measured,
    and priced from the simulator's joules per instruction class where the meter has them)."""

    target: str
    meter: str
    procedure: str
    baseline: str
    modes: tuple[ModeCost, ...]
    check_instructions: float | None
    check_measured_uj: float | None
    check_priced_uj: float | None


@dataclass(frozen=True)
class SweepRow:
    target: str
    procedure: str
    statistic: str
    alpha: float
    accuracy: float
    macro_f1: float | None
    mean_layers: float
    macs_per_inference: float
    mac_reduction: float | None
    exit_fractions: tuple[float, ...]
    energy_j_per_inference: float | None
    meter: str | None
    macs_per_inference_naive: float = math.nan  # the paper's count; NaN in runs before ffenergy 0.2


class CsvAppender:
    """Appends rows to a CSV with a fixed header; creates the file (with header) if needed."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = Path(path)
        self.columns = columns
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _truncate_torn_tail(self.path)
            _migrate_header(self.path, columns)
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=columns, extrasaction="raise")
        if new:
            self._writer.writeheader()
            self._sync()

    def write(self, row: dict[str, Any]) -> None:
        self.write_many([row])

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rewrite_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` with exactly ``rows`` (a temporary file renamed into place: never half-written)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with CsvAppender(tmp, columns) as out:
        out.write_many(rows)
    tmp.replace(path)


def read_rows(path: Path) -> list[dict[str, str]]:
    """All complete rows of a result CSV (a torn last line from a crash is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    return list(csv.DictReader(lines))


def write_json(path: Path, obj: Any) -> None:
    """Write valid JSON atomically (temp file + rename); NaN and infinities become null."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _migrate_header(path: Path, columns: list[str]) -> None:
    """A file from an older ffenergy whose header is a prefix of ``columns`` (columns were added at
    the end, e.g. samples.csv's instruction counts) is rewritten with the new header, the new cells
    empty; any other header is an error rather than misaligned rows."""
    with open(path, newline="") as fh:
        header = next(csv.reader(fh), [])
    if header == columns:
        return
    if header != columns[: len(header)]:
        raise ValueError(f"{path}: its columns {header} are not {columns}; write the results to a new run directory")
    rows = read_rows(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _truncate_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.9g}"
    return value


LOCK_FILE = ".lock"  # held (flock) by the one process writing a run directory; names it while held


class RunBusy(RuntimeError):
    """Another live process is writing this run directory."""


class RunLock:
    """An advisory lock on a run directory: one writer at a time, released on exit or death.

    The kernel drops an ``flock`` when its process dies (kill -9 included), so a lock left by a
    dead process is simply taken over; its file still names that process, which is logged.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.previous = ""  # what the lock file said before we took it (a dead holder, or "")

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunBusy(
                f"{self.path.parent} is being written by {holder}; wait for it to finish or stop it"
                " (two writers would measure the same windows twice)"
            ) from None
        self.previous = os.pread(fd, 256, 0).decode(errors="replace").strip()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node() or 'this host'}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def lock_held(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir``'s lock (a stage left 'running' without one was cut off)."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
