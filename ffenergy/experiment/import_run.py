"""``ffenergy import``: a real meter's recording in, a run directory of the result contract out.

Each recording becomes one run: ``windows.csv`` (gross and net energy per window, with the edge
band), ``summary.csv`` (gross and net energy per inference with CI95), ``manifest.json``
(provenance ``measured``, meter, board, voltage, sample rate, every source file's sha256),
``recording.json`` (the same facts, and each window beside the figure the source published),
``trace.csv`` (the power trace as current and voltage, for ``ffenergy plot``) and header-only
``samples.csv`` and ``sweep.csv`` (a recording has no predictions). The run is written in a
temporary folder and renamed into place, so a bad recording leaves no half-written run.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffenergy.analysis.stats import mean_ci95
from ffenergy.contract import (
    RECORDING_FILE,
    ROW_COUNTS_KEY,
    SAMPLES_COLUMNS,
    SUMMARY_COLUMNS,
    SWEEP_COLUMNS,
    TRACE_COLUMNS,
    WINDOWS_COLUMNS,
    CsvAppender,
    row_counts,
    write_json,
)
from ffenergy.experiment.manifest import host_info, now_iso, versions
from ffenergy.experiment.run_dir import new_run_dir
from ffenergy.meters.trigger_windows import EDGE_SHARE_LIMIT, WindowEnergies, integrate_windows, short_window_warning
from ffenergy.recordings.formats import ReadOptions, read_recording
from ffenergy.recordings.recording import Published, Recording

log = logging.getLogger(__name__)
DOMAIN = "dut"
MATCH_TOLERANCE = 1e-3  # a published figure is reproduced when within 0.1 % (or inside the edge band)


@dataclass(frozen=True)
class WindowCheck:
    """One window's gross energy beside the figure its source published."""

    window: int
    gross_j: float
    lo_j: float
    hi_j: float
    published_j: float | None
    verdict: str  # "within 0.1 %", "inside the edge band", "differs", "not published"

    @property
    def relative_difference(self) -> float | None:
        return None if self.published_j is None else self.gross_j / self.published_j - 1


@dataclass(frozen=True)
class Imported:
    """What importing one recording produced."""

    run_dir: Path
    recording: Recording
    windows: WindowEnergies
    checks: list[WindowCheck]
    median_j_per_inference: float | None
    median_published_j: float | None
    median_verdict: str
    warnings: list[str]


def import_recording(
    path: Path,
    out_root: Path,
    *,
    fmt: str | None = None,
    options: ReadOptions | None = None,
    idle_span_s: float = 0.05,
    trace: bool = True,
) -> Imported:
    """Read ``path``, integrate its windows and write a run directory under ``out_root``."""
    rec = read_recording(path, fmt, options)
    windows = integrate_windows(
        rec.samples, rec.edges, rec.sample_rate_hz, quantity=rec.quantity, idle_span_s=idle_span_s, t_s=rec.t_s
    )
    checks = compare_windows(windows, rec.published)
    per_inf = per_inference(windows.gross_j, rec.inferences)
    median = float(np.median(per_inf)) if per_inf is not None else None
    median_published = rec.published.median_j_per_inference if rec.published else None
    verdict = median_verdict(windows, rec.inferences, median_published)
    warnings = _warnings(rec, windows, checks, verdict)
    name = f"import-{rec.board}-{rec.workload}".replace("/", "-")
    final = new_run_dir(out_root, name)
    staging = final.with_name(f".{final.name}.partial")
    try:
        staging.mkdir()
        imported = Imported(final, rec, windows, checks, median, median_published, verdict, warnings)
        _write_run(staging, imported, idle_span_s, trace)
        final.rmdir()
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        raise
    return imported


def per_inference(joules: np.ndarray, inferences: np.ndarray) -> np.ndarray | None:
    """Joules per inference of each window; None when the recording does not say how many ran."""
    if np.any(inferences <= 0):
        return None
    return np.asarray(joules, np.float64) / inferences


def compare_windows(w: WindowEnergies, published: Published | None) -> list[WindowCheck]:
    """Each window's gross energy against the published figure: within 0.1 %, inside its edge band, or not."""
    figures = list(published.window_energy_j) if published else []
    if published and len(figures) != len(w):
        log.warning(
            "%s lists %d windows, the trace has %d: compared in order", published.source_file, len(figures), len(w)
        )
    checks = []
    for k in range(len(w)):
        ref = figures[k] if k < len(figures) else None
        gross, lo, hi = float(w.gross_j[k]), float(w.gross_lo_j[k]), float(w.gross_hi_j[k])
        if ref is None:
            verdict = "not published"
        elif abs(gross / ref - 1) <= MATCH_TOLERANCE:
            verdict = "within 0.1 %"
        elif lo <= ref <= hi:
            verdict = "inside the edge band"
        else:
            verdict = "differs"
        checks.append(WindowCheck(k + 1, gross, lo, hi, ref, verdict))
    return checks


def median_verdict(w: WindowEnergies, inferences: np.ndarray, published: float | None) -> str:
    """The median J/inference against the published one: within 0.1 %, or why not."""
    ours = per_inference(w.gross_j, inferences)
    if ours is None or published is None:
        return "not published" if ours is not None else "inferences per window unknown"
    if abs(float(np.median(ours)) / published - 1) <= MATCH_TOLERANCE:
        return "within 0.1 %"
    lo, hi = per_inference(w.gross_lo_j, inferences), per_inference(w.gross_hi_j, inferences)
    assert lo is not None and hi is not None
    if float(np.median(lo)) <= published <= float(np.median(hi)):
        return "inside the edge band: windows too short to fix the median to 0.1 %"
    return "differs"


def _warnings(rec: Recording, w: WindowEnergies, checks: list[WindowCheck], median: str) -> list[str]:
    out = []
    short = np.flatnonzero(w.edge_share > EDGE_SHARE_LIMIT)
    if short.size:  # one line for all of them, about the worst
        k = int(short[np.argmax(w.edge_share[short])])
        n, duration, share = int(w.end_index[k] - w.start_index[k]), float(w.duration_s[k]), float(w.edge_share[k])
        out.append(
            f"{short.size} of {len(w)} windows are short; the worst, window {k + 1}: {short_window_warning(n, duration, share)}"
        )
    differs = [c for c in checks if c.verdict == "differs"]
    if differs:
        where = rec.published.source_file if rec.published else "the source"
        out.append(
            f"{where} disagrees with the samples in {len(differs)} of {len(checks)} windows (e.g. window"
            f" {differs[0].window}: {differs[0].gross_j:.6g} J from the samples, {differs[0].published_j:.6g} J"
            " published); the run keeps the samples' figures"
        )
    if median == "differs":
        out.append("the published median J/inference differs from the samples' by more than 0.1 % and the edge band")
    if np.any(rec.inferences <= 0):
        out.append(
            "the recording does not say how many inferences each window ran: pass --inferences N for per-inference figures"
        )
    if np.any(np.isnan(w.idle_power_w)):
        out.append("no trigger-low samples next to some windows: their idle level and net energy are unknown")
    return out


def _write_run(run_dir: Path, imp: Imported, idle_span_s: float, trace: bool) -> None:
    rec, w = imp.recording, imp.windows
    window_rows = [
        {
            "target": rec.board,
            "meter": rec.meter,
            "domain": DOMAIN,
            "procedure": rec.workload,
            "mode": "full",
            "repeat": k,
            "n_inferences": int(rec.inferences[k]),
            "duration_s": float(w.duration_s[k]),
            "energy_j": float(w.gross_j[k]),
            "idle_power_w": float(w.idle_power_w[k]),
            "net_energy_j": float(w.net_j[k]),
            "energy_lo_j": float(w.gross_lo_j[k]),
            "energy_hi_j": float(w.gross_hi_j[k]),
        }
        for k in range(len(w))
    ]
    with CsvAppender(run_dir / "windows.csv", WINDOWS_COLUMNS) as out:
        out.write_many(window_rows)
    with CsvAppender(run_dir / "summary.csv", SUMMARY_COLUMNS) as out:
        out.write(_summary_row(rec, w))
    for name, columns in (("samples.csv", SAMPLES_COLUMNS), ("sweep.csv", SWEEP_COLUMNS)):
        CsvAppender(run_dir / name, columns).close()
    write_json(run_dir / "attribution.json", {"fits": []})
    if trace:
        write_trace(run_dir / "trace.csv", rec)
    source = _source(rec, idle_span_s)
    write_json(run_dir / RECORDING_FILE, source | {"checks": _checks(imp)})
    write_json(run_dir / "manifest.json", _manifest(run_dir, imp, source) | {ROW_COUNTS_KEY: row_counts(run_dir)})


def _summary_row(rec: Recording, w: WindowEnergies) -> dict[str, Any]:
    gross, net = per_inference(w.gross_j, rec.inferences), per_inference(w.net_j, rec.inferences)
    g_mean, g_ci = mean_ci95(gross.tolist()) if gross is not None else (None, None)
    n_mean, n_ci = mean_ci95(net.tolist()) if net is not None and np.all(np.isfinite(net)) else (None, None)
    return {
        "dataset": rec.workload,
        "target": rec.board,
        "meter": rec.meter,
        "provenance": "measured",
        "procedure": rec.workload,
        "mode": "full",
        "energy_j_per_inference": n_mean,
        "energy_ci95_j": n_ci,
        "gross_energy_j_per_inference": g_mean,
        "gross_energy_ci95_j": g_ci,
        "n_repeats": len(w),
    }


def write_trace(path: Path, rec: Recording) -> None:
    """The power trace as ``trace.csv`` (current = power / voltage; 1 V when the voltage is unknown)."""
    volts = rec.voltage_v or 1.0
    t = rec.t_s[:-1] if rec.t_s is not None else np.arange(rec.n_samples) / rec.sample_rate_hz
    rows = map(
        f"{{:.9g}},{{:.9g}},{volts:.6g},{{:d}}".format,
        t.tolist(),
        (rec.power_w() / volts).tolist(),
        rec.trigger().tolist(),
    )  # str.format over Python floats: about 3x faster than np.savetxt
    with open(path, "w") as fh:
        fh.write(",".join(TRACE_COLUMNS) + "\n")
        fh.write("\n".join(rows) + "\n")


def _source(rec: Recording, idle_span_s: float) -> dict[str, Any]:
    return {
        "format": rec.format,
        "files": [{"path": Path(p).name, "sha256": digest} for p, digest in rec.files.items()],
        "meter": rec.meter,
        "board": rec.board,
        "workload": rec.workload,
        "sample_rate_hz": rec.sample_rate_hz,
        "voltage_v": rec.voltage_v,
        "n_samples": rec.n_samples,
        "edge_uncertainty_samples": rec.edge_uncertainty,
        "idle_span_s": idle_span_s,
        "edge_share_limit": EDGE_SHARE_LIMIT,
        "details": rec.details,
    }


def _checks(imp: Imported) -> dict[str, Any]:
    return {
        "windows": [
            {
                "window": c.window,
                "gross_j": c.gross_j,
                "edge_band_j": [c.lo_j, c.hi_j],
                "published_j": c.published_j,
                "relative_difference": c.relative_difference,
                "verdict": c.verdict,
            }
            for c in imp.checks
        ],
        "median_j_per_inference": imp.median_j_per_inference,
        "published_median_j_per_inference": imp.median_published_j,
        "median_verdict": imp.median_verdict,
        "warnings": imp.warnings,
    }


def _manifest(run_dir: Path, imp: Imported, source: dict[str, Any]) -> dict[str, Any]:
    rec = imp.recording
    return {
        "run_id": imp.run_dir.name,
        "config": {"name": f"import of {rec.format} {rec.board} {rec.workload}", "data": {"dataset": rec.workload}},
        "config_hash": None,
        "seed": None,
        "versions": versions(with_torch=False),
        "host": host_info(with_torch=False),
        "meters": [
            {
                "name": rec.meter,
                "target": rec.board,
                "provenance": "measured",
                "update_period_s": 1.0 / rec.sample_rate_hz,
                "domains": [DOMAIN],
                "details": {"recording": source, "imported": True},
            }
        ],
        "targets": {rec.board: {"board": rec.board, "imported": True}},
        "energy_headline": "gross",
        "started": now_iso(),
        "finished": now_iso(),
        "stages": {"import": "done"},
    }


def summary_line(imp: Imported) -> str:
    """One line per imported recording for the CLI's table."""
    rec, median = imp.recording, imp.median_j_per_inference
    energy = "n/a" if median is None else f"{median * 1e6:.3f} µJ/inf (median, gross)"
    ok = sum(c.verdict in ("within 0.1 %", "inside the edge band") for c in imp.checks)
    published = sum(c.published_j is not None for c in imp.checks)
    checked = f"{ok}/{published} windows match the published figures" if published else "nothing published to check"
    return f"{rec.board} {rec.workload} ({rec.meter}, {rec.n_windows} windows): {energy}; {checked}; median {imp.median_verdict}"
