"""The result contract (DESIGN.md section 5): every result file's columns, its row types, and
append-safe writers. The experiment layer writes through it; analysis and plots read through it.

Every row is flushed and fsync'd as soon as it is written, so an interrupted run keeps what
it measured; readers skip a torn last line.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import json
import math
import os
import platform
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ffenergy.rows import as_dict, cell, columns

INSN_CLASSES = ("ldst", "mul", "fpu", "branch", "other")  # instruction classes of the QEMU counting plugin
INSN_CLASS_COLUMNS = [f"insn_{c}" for c in INSN_CLASSES]  # samples.csv: instructions by class
# additions to DESIGN.md section 5 (see docs/DESIGN.md)
# a sweep directory's index (ffenergy sweep): the point id, one column per grid key (JSON values), then these
SWEEP_INDEX_COLUMNS = ["node", "status", "attempts", "error", "run_dir"]
PER_CLASS_COLUMNS = ["target", "procedure", "mode", "class", "n_samples", "sensitivity"]
TRACE_COLUMNS = ["t_s", "current_a", "voltage_v", "trigger"]
# How a simulated MCU meter priced its windows (manifest.json: targets.<t>.meter.energy_model): the
# instructions the QEMU plugin counted (mcu-qemu), or the MACs the firmware reports (mcu-sim).
ENERGY_MODEL_INSTRUCTIONS = "instructions-qemu-plugin"
ENERGY_MODEL_MACS = "macs"
EXPECTED_FILES = ("summary.csv", "samples.csv", "sweep.csv")  # every finished run has these
# An imported recording's run (ffenergy import) also holds this JSON object: the source's format, files
# (with sha256), board, meter, sample rate and voltage, and per window the energy beside the figures the
# source published, with the verdict of each comparison.
RECORDING_FILE = "recording.json"
# manifest.json key: rows each result file held when the run finished ({"summary.csv": 15, ...}); a reader
# refuses a file with fewer (cut short by a full disk or an interrupted copy)
ROW_COUNTS_KEY = "rows"
# manifest.json key under targets.<t> of an MCU target: {procedure: {"dut_resets": n, "meter_restarts": m}}, the
# faults the MCU stage rode through (all its calls, resumes included); older runs lack it
HIL_FAULTS_KEY = "hil_faults"


@dataclass(frozen=True)
class HilFaults:
    """Faults the MCU stage rode through for one (target, procedure): each window was measured again."""

    dut_resets: int = 0  # the DUT rebooted (BOOT frame): input and thresholds reloaded
    meter_restarts: int = 0  # the meter's sample stream started over (port reopened, logger reset, lost samples)

    def __add__(self, other: HilFaults) -> HilFaults:
        return HilFaults(self.dut_resets + other.dut_resets, self.meter_restarts + other.meter_restarts)


def hil_faults(manifest: dict[str, Any]) -> dict[str, dict[str, HilFaults]]:
    """``{target: {procedure: HilFaults}}`` from a manifest's ``targets``; empty where none were recorded.
    Raises ValueError naming the entry that is not ``{"dut_resets": int, "meter_restarts": int}``."""
    found: dict[str, dict[str, HilFaults]] = {}
    targets = manifest.get("targets")
    for target, entry in (targets if isinstance(targets, dict) else {}).items():
        recorded = entry.get(HIL_FAULTS_KEY) if isinstance(entry, dict) else None
        if recorded is None:
            continue
        if not isinstance(recorded, dict):
            raise ValueError(f"targets.{target}.{HIL_FAULTS_KEY} must be an object of procedures")
        found[target] = {str(procedure): _hil_faults(target, procedure, f) for procedure, f in recorded.items()}
    return found


def _hil_faults(target: str, procedure: str, counts: Any) -> HilFaults:
    names = [f.name for f in dataclasses.fields(HilFaults)]
    if not isinstance(counts, dict) or not all(isinstance(counts.get(n), int) for n in names):
        raise ValueError(f"targets.{target}.{HIL_FAULTS_KEY}.{procedure} must hold integers {', '.join(names)}")
    return HilFaults(**{n: counts[n] for n in names})


COUNTED_FILES = (*EXPECTED_FILES, "windows.csv")


def data_rows(data: bytes) -> int:
    """Complete data rows of a result CSV's bytes: its whole lines, less the header."""
    return max(data.count(b"\n") - 1, 0)


def row_counts(run_dir: Path) -> dict[str, int]:
    """Complete data rows of each result CSV of ``run_dir`` (for the manifest's ``rows``)."""
    files = {name: Path(run_dir) / name for name in COUNTED_FILES}
    return {name: data_rows(path.read_bytes()) for name, path in files.items() if path.is_file()}


# A run committed as an example (results/examples/) holds this JSON object: {"trimmed": [file names
# left out for size], "note": "..."}. Its report.md and figures were drawn before trimming, so
# `ffenergy plot` reads it (for comparisons) but never rewrites it.
EXAMPLE_FILE = "example.json"
# The ffenergy version that last changed the result files' columns. A committed example made by an older
# version carries "schema_note" in its example.json: what it lacks and how its numbers still read.
SCHEMA_SINCE = "0.3.0"


@dataclass(frozen=True)
class Shown:
    """How report.md's summary table shows a column: its heading, a format spec and suffix (numbers),
    the text of an empty cell and, for an energy, the field holding its CI95 (shown with it)."""

    heading: str
    spec: str = ""
    suffix: str = ""
    empty: str = "—"
    ci: str | None = None


def column(default: Any = dataclasses.MISSING, shown: Shown | None = None) -> Any:
    """A row field: its default (a column added later: older files read it so) and its place in the report."""
    return dataclasses.field(default=default, metadata={"shown": shown} if shown else {})


# Result rows: each file's columns are its row type's fields in order (ffenergy.rows.columns), and the
# fields' types say how a cell is written and read back; adding a column is adding a field.


@dataclass(frozen=True, kw_only=True)
class SampleRow:
    """samples.csv: one test sample of one (target, procedure, mode)."""

    target: str
    procedure: str
    mode: str
    sample: int
    label: int
    pred: int
    exit_layer: int
    macs: int
    correct: bool
    energy_j: float | None = None  # where a meter gives per-inference windows
    instructions: float | None = None  # executed per inference, where the target counts them (mcu-qemu)
    insn_ldst: float | None = None  # the same by class (INSN_CLASSES)
    insn_mul: float | None = None
    insn_fpu: float | None = None
    insn_branch: float | None = None
    insn_other: float | None = None


@dataclass(frozen=True, kw_only=True)
class WindowRow:
    """windows.csv: one measured window (idle windows: procedure = mode = ``idle``, n_inferences 0)."""

    target: str
    meter: str
    domain: str
    procedure: str
    mode: str
    repeat: int
    n_inferences: int
    duration_s: float
    energy_j: float
    idle_power_w: float | None = None
    net_energy_j: float | None = None
    energy_lo_j: float | None = None  # the edge band of energy_j (each edge one sample inward / outward)
    energy_hi_j: float | None = None


@dataclass(frozen=True, kw_only=True)
class SummaryRow:
    """summary.csv: one (target, meter, procedure, mode). Energies are net (idle subtracted) unless gross."""

    dataset: str = column("")
    target: str = column(shown=Shown("target"))
    meter: str = column("", Shown("meter"))
    provenance: str = column("", Shown("provenance", empty="MACs only"))
    procedure: str = column(shown=Shown("procedure"))
    mode: str = column(shown=Shown("mode"))
    accuracy: float = column(shown=Shown("accuracy", ".2%"))
    macro_f1: float | None = None
    mean_layers: float = column(shown=Shown("mean layers", ".2f"))
    macs_per_inference: float = column(shown=Shown("MACs/inference (as run)", ",.0f"))
    macs_per_inference_naive: float = math.nan  # the paper's count; NaN in runs before ffenergy 0.2
    mac_reduction: float | None = column(None, Shown("MAC reduction (paper's count)", ".2f", "×"))
    energy_j_per_inference: float | None = column(None, Shown("net energy/inference (95% CI)", ci="energy_ci95_j"))
    energy_ci95_j: float | None = None
    energy_reduction: float | None = column(None, Shown("energy reduction", ".2f", "×"))
    n_samples: int | None = column(None, Shown("n", "d"))
    n_repeats: int | None = None
    co2_g_per_1000_inferences: float | None = None
    idle_drift_max: float | None = None  # absent from runs before ffenergy 0.2
    gross_energy_j_per_inference: float | None = column(
        None, Shown("gross energy/inference (95% CI)", ci="gross_energy_ci95_j")
    )  # absent from runs before ffenergy 0.3
    gross_energy_ci95_j: float | None = None
    # full ÷ mode of macs_per_inference (what ran, what the energy follows); mac_reduction is the paper's count
    mac_reduction_as_run: float | None = column(None, Shown("MAC reduction (as run)", ".2f", "×"))


@dataclass(frozen=True, kw_only=True)
class SweepRow:
    """sweep.csv: the alpha sweep of one procedure's exit thresholds on the test split (``target`` host:
    a property of the model, computed once). ``energy_j_per_inference`` stays empty: plots predict it
    from the depth-k energies."""

    target: str
    procedure: str
    statistic: str
    alpha: float
    accuracy: float
    macro_f1: float | None = None
    mean_layers: float
    macs_per_inference: float
    macs_per_inference_naive: float = math.nan  # the paper's count; NaN in runs before ffenergy 0.2
    mac_reduction: float | None = None
    exit_fractions: tuple[float, ...]  # p1;p2;...;pL, the fraction of samples exiting at each layer
    energy_j_per_inference: float | None = None


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


SAMPLES_COLUMNS = columns(SampleRow)
WINDOWS_COLUMNS = columns(WindowRow)
SUMMARY_COLUMNS = columns(SummaryRow)
SWEEP_COLUMNS = columns(SweepRow)
FIT_KEYS = columns(Fit)  # every attribution.json fit has these keys


class MeasuredWindow(Protocol):
    """A measured window as the statistics read it (``measure.WindowResult`` is one): per domain
    gross and net joules over ``n_inferences`` inferences; idle windows have ``kind`` idle."""

    @property
    def key(self) -> Hashable | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def n_inferences(self) -> int: ...
    @property
    def macs(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def joules(self) -> dict[str, float]: ...
    @property
    def net_joules(self) -> dict[str, float]: ...


class CsvAppender:
    """Appends rows (row dataclasses, or mappings by column) to a CSV with a fixed header; creates the
    file (with header) if needed. A key that names no column is an error, never dropped."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = Path(path)
        self.columns = columns
        self._known = frozenset(columns)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _truncate_torn_tail(self.path)
            _migrate_header(self.path, columns)
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=columns, extrasaction="raise")
        if new:
            self._writer.writeheader()
            self._sync()

    def write(self, row: Any) -> None:
        self.write_many([row])

    def write_many(self, rows: Iterable[Any]) -> None:
        for row in rows:
            cells = as_dict(row)
            unknown = [k for k in cells if k not in self._known]
            if unknown:
                raise ValueError(
                    f"{self.path}: no column {', '.join(unknown)} (the columns: {', '.join(self.columns)})"
                )
            self._writer.writerow({k: cell(cells.get(k)) for k in self.columns})
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


def rewrite_csv(path: Path, columns: list[str], rows: Iterable[Any]) -> None:
    """Replace a result CSV with ``rows`` atomically (a temp file renamed into place)."""
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
