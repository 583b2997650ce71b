"""Read one result directory (DESIGN.md section 5) into typed objects.

Only result files are read, so a directory copied from a lab machine loads anywhere. Besides
the files of DESIGN.md section 5 two optional files are understood:

``sweep.csv`` -- the alpha sweep of the early-exit thresholds (``contract.SweepRow``): a ``target``
    that names no target of summary.csv (the runner writes ``host``: the sweep is a property of the
    model, computed once) applies to every target.
``trace.csv`` -- MCU runs only: the external meter's raw stream, ``t_s, current_a,
    voltage_v, trigger`` (trigger 0/1: the DUT's pin, high while inferring).

A missing summary, samples or sweep file (or attribution.json when the run has a meter) makes the
run *partial* (listed in :attr:`RunData.missing`); a file that
is present but unreadable raises :class:`RunLoadError` naming the file, line and fix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ffenergy.contract import (
    COUNTED_FILES,
    EXAMPLE_FILE,
    EXPECTED_FILES,
    PER_CLASS_COLUMNS,
    RECORDING_FILE,
    ROW_COUNTS_KEY,
    SAMPLES_COLUMNS,
    SUMMARY_COLUMNS,
    SWEEP_COLUMNS,
    TRACE_COLUMNS,
    WINDOWS_COLUMNS,
    EarlyExitCosts,
    Fit,
    HilFaults,
    ModeCost,
    SummaryRow,
    SweepRow,
    data_rows,
    hil_faults,
    lock_held,
)
from ffenergy.rows import Row, Table, TableError, read_table
from ffenergy.vocabulary import PROVENANCES

if TYPE_CHECKING:
    import pandas as pd


class RunLoadError(ValueError):
    """A result directory cannot be read; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class MeterRecord:
    name: str
    provenance: str
    update_period_s: float | None
    details: dict[str, Any]


@dataclass(frozen=True)
class RunManifest:
    """What a reader needs from manifest.json (the writer is ffenergy.experiment.manifest)."""

    run_id: str
    config_name: str
    dataset: str
    data_caveat: str  # how the run's data differs from the original dataset ("" when it does not)
    meters: tuple[MeterRecord, ...]
    host: dict[str, Any]
    versions: dict[str, Any]
    stages: dict[str, str]
    raw: dict[str, Any]
    # {target: {procedure: faults}}: what the MCU stage rode through; empty in older runs
    hil_faults: dict[str, dict[str, HilFaults]] = field(default_factory=dict)

    def meter(self, name: str) -> MeterRecord | None:
        return next((m for m in self.meters if m.name == name), None)


@dataclass
class Samples:
    """samples.csv as columns (one entry per sample row); ``energy_j`` is NaN where empty."""

    target: np.ndarray
    procedure: np.ndarray
    mode: np.ndarray
    exit_layer: np.ndarray
    macs: np.ndarray
    correct: np.ndarray
    energy_j: np.ndarray

    def select(self, **equal: str) -> np.ndarray:
        """Boolean mask of rows whose string columns equal the given values."""
        mask = np.ones(len(self.target), dtype=bool)
        for column, value in equal.items():
            mask &= getattr(self, column) == value
        return mask


@dataclass
class Trace:
    t_s: np.ndarray
    current_a: np.ndarray
    voltage_v: np.ndarray
    trigger: np.ndarray


@dataclass
class RunData:
    path: Path
    manifest: RunManifest
    summary: list[SummaryRow] = field(default_factory=list)
    fits: list[Fit] = field(default_factory=list)
    early_exit: list[EarlyExitCosts] = field(default_factory=list)  # MCU targets' attribution entries
    sweep: list[SweepRow] = field(default_factory=list)
    samples: Samples | None = None
    trace: Trace | None = None
    missing: list[str] = field(default_factory=list)
    trimmed: list[str] | None = None  # a committed example (example.json): the files left out of it
    policies: dict[str, str] = field(default_factory=dict)  # procedure -> exit policy, where not the alpha grid
    damaged: list[str] = field(default_factory=list)  # result files read with a row left out (a torn last line)

    @property
    def committed_example(self) -> bool:
        """Committed under results/examples: read, never rewritten (see contract.EXAMPLE_FILE)."""
        return self.trimmed is not None

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def dataset(self) -> str:
        return self.manifest.dataset

    @property
    def procedures(self) -> list[str]:
        """The run's procedures in the order it ran them (summary, then sweep)."""
        return list(dict.fromkeys([r.procedure for r in self.summary] + [r.procedure for r in self.sweep]))

    @property
    def energy_headline(self) -> str:
        """``net`` (ffenergy runs) or ``gross`` (imported recordings): the energy this run leads with."""
        return str(self.manifest.raw.get("energy_headline", "net"))

    def headline_energy(self, row: SummaryRow) -> tuple[float | None, float | None]:
        """A summary row's energy per inference and CI95 in this run's headline (net or gross)."""
        if self.energy_headline == "gross":
            return row.gross_energy_j_per_inference, row.gross_energy_ci95_j
        return row.energy_j_per_inference, row.energy_ci95_j

    def provenance(self, target: str, meter: str) -> str:
        """Provenance of a (target, meter) pair: from summary.csv, else from the manifest."""
        for row in self.summary:
            if row.target == target and row.meter == meter and row.provenance:
                return row.provenance
        record = self.manifest.meter(meter)
        return record.provenance if record else "unknown"

    def unfinished_stages(self) -> list[str]:
        """Stages neither done nor deliberately skipped (pending, running, interrupted, failed)."""
        gone = not lock_held(self.path)  # a stage 'running' with no live writer was cut off (kill -9)
        return [
            f"{name}={'interrupted (its process is gone)' if status == 'running' and gone else status}"
            for name, status in self.manifest.stages.items()
            if status != "done" and not status.startswith("skipped")
        ]


def find_runs(path: Path) -> list[Path]:
    """Run directories at or under ``path`` (a directory holding ``manifest.json``), sorted."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return [path]
    return sorted(p.parent for p in path.rglob("manifest.json") if p.parent.name != "comparison")


def load_run(path: Path) -> RunData:
    """Load a run directory; raise :class:`RunLoadError` if it is not a readable run."""
    path = Path(path)
    if not path.is_dir():
        raise RunLoadError(f"{path}: not a directory; pass a run directory (results/<run-id>) or a folder of runs")
    manifest = _load_manifest(path / "manifest.json")
    run = RunData(path=path, manifest=manifest)
    expected = EXPECTED_FILES + (("attribution.json",) if manifest.meters else ())
    if (path / EXAMPLE_FILE).is_file():
        run.trimmed = _load_example(path / EXAMPLE_FILE)
    run.missing = [name for name in expected if not (path / name).is_file() and name not in (run.trimmed or [])]
    if (path / "summary.csv").is_file():
        run.summary = _load_summary(path / "summary.csv")
    if (path / "attribution.json").is_file():
        run.fits, run.early_exit = _load_fits(path / "attribution.json")
    if (path / "sweep.csv").is_file():
        run.sweep = _load_sweep(path / "sweep.csv")
    if (path / "samples.csv").is_file():
        run.samples = _load_samples(path / "samples.csv")
    if (path / "trace.csv").is_file():
        run.trace = _load_trace(path / "trace.csv")
    if (path / "calibration.json").is_file():
        run.policies = _load_policies(path / "calibration.json")
    run.damaged = check_row_counts(path, manifest.raw.get(ROW_COUNTS_KEY) or {})
    return run


def check_row_counts(path: Path, written: dict[str, Any]) -> list[str]:
    """Flags for result files with a torn last line; a :class:`RunLoadError` for one holding fewer rows than
    the run wrote (``manifest.json`` ``rows``, recorded when the run finished): a file cut short is never
    plotted as if whole."""
    flags = []
    for name in COUNTED_FILES:
        file = path / name
        if not file.is_file():
            continue
        data = file.read_bytes()
        if data and not data.endswith(b"\n"):
            flags.append(f"{name} ends in a torn line (an interrupted write): that row is left out")
        n_rows = data_rows(data)
        expected = written.get(name)
        if isinstance(expected, int) and n_rows < expected:
            raise RunLoadError(
                f"{file}: {n_rows} rows, but the run wrote {expected}: the file was cut short (a full disk, an"
                " interrupted copy); copy it again, or rebuild it with ffenergy run --resume on the original run"
            )
    return flags


def _load_example(path: Path) -> list[str]:
    raw = _read_json(path)
    trimmed = raw.get("trimmed") if isinstance(raw, dict) else None
    if not isinstance(trimmed, list) or not all(isinstance(name, str) for name in trimmed):
        raise RunLoadError(f"{path}: expected an object with 'trimmed', a list of the file names left out")
    return trimmed


def _load_policies(path: Path) -> dict[str, str]:
    """A short description of each procedure's risk or budget exit policy (calibration.json ``policy``)."""
    try:
        calibration = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunLoadError(f"{path} is not valid JSON ({exc})") from None
    out = {}
    for procedure, entry in calibration.items():
        policy = entry.get("policy") if isinstance(entry, dict) else None
        if not policy:
            continue
        if policy.get("kind") == "risk":
            out[procedure] = f"risk {policy['loss']} ≤ {policy['epsilon']:g} w.p. ≥ {1 - policy['delta']:g}"
        else:
            out[procedure] = f"budget {policy['macs_per_inference']:.3g} MACs" + (
                "" if policy.get("met") else ", not met"
            )
    return out


# --- manifest and attribution -------------------------------------------------------------


def _load_manifest(path: Path) -> RunManifest:
    if not path.is_file():
        raise RunLoadError(
            f"{path.parent}: no manifest.json, so this is not a run directory (empty, or the run "
            "never started); pass results/<run-id> written by `ffenergy run`"
        )
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise RunLoadError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    for key in ("run_id", "config", "meters"):
        if key not in raw:
            raise RunLoadError(f"{path}: key {key!r} is missing; the manifest is incomplete or not from ffenergy")
    config = raw["config"]
    if not isinstance(config, dict):
        raise RunLoadError(f"{path}: 'config' must be an object (the resolved config)")
    data = _mapping(config, "data")
    meters = raw["meters"]
    if not isinstance(meters, list) or not all(isinstance(m, dict) and "name" in m for m in meters):
        raise RunLoadError(f"{path}: 'meters' must be a list of objects with at least 'name'")
    records = []
    for m in meters:
        provenance = str(m.get("provenance", ""))
        if provenance not in PROVENANCES:
            raise RunLoadError(
                f"{path}: meter {m['name']!r} has provenance {provenance!r}; expected one of {', '.join(PROVENANCES)}"
            )
        period = m.get("update_period_s")
        records.append(
            MeterRecord(
                name=str(m["name"]),
                provenance=provenance,
                update_period_s=float(period) if isinstance(period, (int, float)) else None,
                details=_mapping(m, "details"),
            )
        )
    stages = _mapping(raw, "stages")
    return RunManifest(
        run_id=str(raw["run_id"]),
        config_name=str(config.get("name", "?")),
        dataset=str(data.get("dataset", "?")),
        data_caveat=str(_mapping(raw, "dataset").get("caveat", "")),
        meters=tuple(records),
        host=_mapping(raw, "host"),
        versions=_mapping(raw, "versions"),
        stages={str(k): str(v) for k, v in stages.items()},
        raw=raw,
        hil_faults=_hil_faults(path, raw),
    )


def _hil_faults(path: Path, raw: dict[str, Any]) -> dict[str, dict[str, HilFaults]]:
    try:
        return hil_faults(raw)
    except ValueError as exc:
        raise RunLoadError(f"{path}: {exc}; the manifest was edited by hand or is damaged") from None


def _mapping(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` when it is a mapping, else an empty one."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunLoadError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); the file is "
            "truncated or edited by hand -- restore it or re-run that stage"
        ) from None
    except UnicodeDecodeError:
        raise RunLoadError(f"{path}: not UTF-8 text; the file is corrupted") from None


def _load_fits(path: Path) -> tuple[list[Fit], list[EarlyExitCosts]]:
    """attribution.json's fits, and the ``early_exit`` costs of those that have them (MCU targets)."""
    raw = _read_json(path)
    fits = raw.get("fits") if isinstance(raw, dict) else None
    if not isinstance(fits, list):
        raise RunLoadError(f"{path}: expected an object with a 'fits' list")
    out, early = [], []
    for i, fit in enumerate(fits):
        where = f"{path}: fits[{i}]"
        if not isinstance(fit, dict):
            raise RunLoadError(f"{where} is not an object")
        for key in ("target", "meter", "procedure", "joules_per_mac", "intercept_j_per_inference"):
            if fit.get(key) is None:
                raise RunLoadError(f"{where}: key {key!r} is missing")
        out.append(
            Fit(
                target=str(fit["target"]),
                meter=str(fit["meter"]),
                procedure=str(fit["procedure"]),
                joules_per_mac=_json_float(fit, "joules_per_mac", where),
                static_power_w=_json_opt(fit, "static_power_w", where),
                intercept_j_per_inference=_json_float(fit, "intercept_j_per_inference", where),
                r2=_json_opt(fit, "r2", where),
                n_points=None if fit.get("n_points") is None else int(_json_float(fit, "n_points", where)),
                predicted_light_j=_json_opt(fit, "predicted_light_j", where),
                measured_light_j=_json_opt(fit, "measured_light_j", where),
                prediction_error=_json_opt(fit, "prediction_error", where),
            )
        )
        if isinstance(fit.get("early_exit"), dict):
            early.append(_early_exit(fit, f"{where}.early_exit"))
    return out, early


def _mode_cost(mode: str, raw: dict[str, Any], where: str) -> ModeCost:
    """One ``early_exit.modes`` entry: every ModeCost field but ``mode`` is an optional number of that name."""
    numbers = [f.name for f in dataclasses.fields(ModeCost) if f.name != "mode"]
    return ModeCost(mode, *(_json_opt(raw, name, where) for name in numbers))


def _early_exit(fit: dict[str, Any], where: str) -> EarlyExitCosts:
    raw = fit["early_exit"]
    modes = raw.get("modes")
    if not isinstance(modes, dict) or not all(isinstance(m, dict) for m in modes.values()):
        raise RunLoadError(f"{where}: 'modes' must be an object of per-mode objects")
    check = raw.get("exit_check") or {}
    if not isinstance(check, dict):
        raise RunLoadError(f"{where}: 'exit_check' must be an object or null")
    return EarlyExitCosts(
        target=str(fit["target"]),
        meter=str(fit["meter"]),
        procedure=str(fit["procedure"]),
        baseline=str(raw.get("baseline", fit["procedure"])),
        modes=tuple(_mode_cost(mode, m, f"{where}.modes.{mode}") for mode, m in modes.items()),
        check_instructions=_json_opt(check, "instructions_per_check", f"{where}.exit_check"),
        check_measured_uj=_json_opt(check, "energy_uj_per_check", f"{where}.exit_check"),
        check_priced_uj=_json_opt(check, "priced_energy_uj_per_check", f"{where}.exit_check"),
    )


def _json_float(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunLoadError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


def _json_opt(obj: dict[str, Any], key: str, where: str) -> float | None:
    return None if obj.get(key) is None else _json_float(obj, key, where)


# --- CSV files ----------------------------------------------------------------------------


def _table(path: Path, required: list[str]) -> Table:
    try:
        return Table(path, required)
    except TableError as exc:
        raise RunLoadError(str(exc)) from None


def _rows(path: Path, row: type[Row], may_be_empty: tuple[str, ...] = ()) -> list[Row]:
    try:
        return read_table(path, row, may_be_empty)
    except TableError as exc:
        raise RunLoadError(str(exc)) from None


def _load_summary(path: Path) -> list[SummaryRow]:
    # an imported recording has no predictions, so no accuracy, layers or MACs
    unpredicted = ("accuracy", "mean_layers", "macs_per_inference")
    return _rows(path, SummaryRow, unpredicted if (path.parent / RECORDING_FILE).is_file() else ())


def _load_sweep(path: Path) -> list[SweepRow]:
    rows = _rows(path, SweepRow)
    for line, row in enumerate(rows, start=2):
        _check_fractions(row.exit_fractions, path, line)
    return rows


def _check_fractions(values: tuple[float, ...], path: Path, line: int) -> None:
    if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 0.02:
        text = ";".join(f"{v:g}" for v in values)
        raise RunLoadError(
            f"{path}: line {line}, column 'exit_fractions': {text!r} must be non-negative fractions summing to 1"
        )


def _load_samples(path: Path) -> Samples:
    t = _table(path, [f.name for f in dataclasses.fields(Samples) if f.name != "energy_j"])
    return Samples(
        target=np.array(t.text("target")),
        procedure=np.array(t.text("procedure")),
        mode=np.array(t.text("mode")),
        exit_layer=t.floats("exit_layer").astype(int),
        macs=t.floats("macs"),
        correct=t.floats("correct").astype(bool),
        energy_j=t.floats("energy_j", optional=True),
    )


def _load_trace(path: Path) -> Trace:
    t = _table(path, TRACE_COLUMNS)
    if t.n < 2:
        raise RunLoadError(f"{path}: fewer than 2 samples; the meter stream was not recorded")
    trace = Trace(
        t_s=t.floats("t_s"),
        current_a=t.floats("current_a"),
        voltage_v=t.floats("voltage_v"),
        trigger=t.floats("trigger").astype(bool),
    )
    if np.any(np.diff(trace.t_s) < 0):
        raise RunLoadError(f"{path}: t_s goes backwards; the trace must be in time order")
    return trace


# --- result files as pandas DataFrames (the public loader; pandas is the [frames] extra) -----------

# file -> (the contract's columns, those that hold text: every other column is read as float, NaN where empty)
FRAME_FILES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "summary": (SUMMARY_COLUMNS, ("dataset", "target", "meter", "provenance", "procedure", "mode")),
    "samples": (SAMPLES_COLUMNS, ("target", "procedure", "mode")),
    "windows": (WINDOWS_COLUMNS, ("target", "meter", "domain", "procedure", "mode")),
    "sweep": (SWEEP_COLUMNS, ("target", "procedure", "statistic", "exit_fractions")),
    "per_class": (PER_CLASS_COLUMNS, ("target", "procedure", "mode", "class")),
}
RUN_COLUMNS = ["run_id", "path", "config", "dataset", "meters", "started", "finished", "ffenergy", "git_commit"]
FIT_COLUMNS = [f.name for f in dataclasses.fields(Fit)]


@dataclass(frozen=True)
class Frames:
    """Result files of one or more runs as pandas DataFrames, one row per file row.

    Every frame starts with ``run_id``; then the contract's columns in its order (docs/DESIGN.md
    section 5), a column an older run lacks filled with NaN. Text columns are str, the others float.
    ``runs`` has one row per run (``RUN_COLUMNS``), ``fits`` one per attribution.json fit (``Fit``'s fields).
    A run without a file contributes no rows to its frame.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    samples: pd.DataFrame
    windows: pd.DataFrame
    sweep: pd.DataFrame
    per_class: pd.DataFrame
    fits: pd.DataFrame


def load_frames(*paths: str | Path) -> Frames:
    """Load run directories (or folders holding runs, sweep directories included) as DataFrames.

    Needs pandas (``pip install 'ffenergy[frames]'``). Raises :class:`RunLoadError` naming the file
    and line of anything unreadable, as :func:`load_run` does.
    """
    try:
        import pandas as pd
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "load_frames needs pandas, which ffenergy does not install by default: pip install 'ffenergy[frames]'"
        ) from exc
    runs = [run for path in paths for run in find_runs(Path(path))]
    if not runs:
        raise RunLoadError(f"no run directory (with a manifest.json) at or under {', '.join(map(str, paths))}")
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in (*FRAME_FILES, "fits")}
    run_rows = []
    for run in runs:
        manifest = _load_manifest(run / "manifest.json")
        run_rows.append(_run_row(run, manifest))
        for name, (columns, text) in FRAME_FILES.items():
            if (run / f"{name}.csv").is_file():
                tables[name].append(_frame(pd, run / f"{name}.csv", manifest.run_id, columns, text))
        if (run / "attribution.json").is_file():
            fits = [dataclasses.asdict(f) for f in _load_fits(run / "attribution.json")[0]]
            tables["fits"].append(pd.DataFrame(fits, columns=FIT_COLUMNS).assign(run_id=manifest.run_id))
    header = {name: cols for name, (cols, _) in FRAME_FILES.items()} | {"fits": FIT_COLUMNS}
    frames = {name: _concat(pd, found, ["run_id", *header[name]]) for name, found in tables.items()}
    return Frames(runs=pd.DataFrame(run_rows, columns=RUN_COLUMNS), **frames)


def _run_row(path: Path, manifest: RunManifest) -> dict[str, Any]:
    raw = manifest.raw
    return {
        "run_id": manifest.run_id,
        "path": str(path),
        "config": manifest.config_name,
        "dataset": manifest.dataset,
        "meters": ";".join(m.name for m in manifest.meters),
        "started": raw.get("started"),
        "finished": raw.get("finished"),
        "ffenergy": manifest.versions.get("ffenergy"),
        "git_commit": manifest.versions.get("git_commit"),
    }


def _frame(pd: Any, path: Path, run_id: str, columns: list[str], text: tuple[str, ...]) -> pd.DataFrame:
    table = _table(path, [c for c in text if c in ("target", "procedure", "mode")])
    try:
        data = {c: table.text(c) if c in text else table.floats(c, optional=True) for c in columns}
    except TableError as exc:
        raise RunLoadError(str(exc)) from None
    return pd.DataFrame({"run_id": [run_id] * table.n, **data}, columns=["run_id", *columns])


def _concat(pd: Any, frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
