"""The MCU measurement stage: per sample, LOAD once, then INFER each mode with N repeats inside one
trigger window; per-inference energy = window net energy / N. Rows are appended as soon as they
are measured, so an interrupted run resumes where it stopped.

windows.csv gets one row per window; its ``repeat`` column holds the sample index (one window per
sample and mode). samples.csv's ``energy_j`` is the net (idle-subtracted) energy per inference;
where the target counts executed instructions (an ``InsnLog``), ``instructions`` and the
``insn_*`` class columns hold them per inference (window count / repeats).
"""

from __future__ import annotations

import csv
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ffenergy.contract import (
    INSN_CLASS_COLUMNS,
    SAMPLES_COLUMNS,
    TRACE_COLUMNS,
    WINDOWS_COLUMNS,
    CsvAppender,
    read_rows,
    rewrite_csv,
)
from ffenergy.firmware.dut import Dut, DutError, DutReset, DutResult
from ffenergy.firmware.insn import InsnCounts, InsnLog
from ffenergy.meters.base import MeterError
from ffenergy.meters.trigger_windows import WindowEnergyDetail
from ffenergy.meters.triggered import DOMAIN, StreamRestarted, TriggeredMeter

log = logging.getLogger(__name__)
TRACE_MAX_ROWS = 20_000


@dataclass
class McuStageResult:
    """What one call did: rows measured now, rows found on disk, and the faults it rode through."""

    measured: int = 0
    skipped: int = 0
    dut_resets: int = 0
    meter_restarts: int = 0
    warnings: list[str] = field(default_factory=list)  # the first window warning of each kind


def drop_torn_rows(run_dir: Path, target: str) -> int:
    """Drop ``target``'s rows whose pair is missing: a sample row without its window row, or the reverse (a run
    killed between writing the two). Those samples are measured again. Returns the rows dropped."""
    samples, windows = read_rows(run_dir / "samples.csv"), read_rows(run_dir / "windows.csv")
    in_samples = {(r["procedure"], r["mode"], r["sample"]) for r in samples if r["target"] == target}
    in_windows = {(r["procedure"], r["mode"], r["repeat"]) for r in windows if r["target"] == target}
    whole = in_samples & in_windows
    kept_samples = [r for r in samples if r["target"] != target or (r["procedure"], r["mode"], r["sample"]) in whole]
    kept_windows = [r for r in windows if r["target"] != target or (r["procedure"], r["mode"], r["repeat"]) in whole]
    dropped = len(samples) - len(kept_samples) + len(windows) - len(kept_windows)
    if dropped:
        rewrite_csv(run_dir / "samples.csv", SAMPLES_COLUMNS, kept_samples)
        rewrite_csv(run_dir / "windows.csv", WINDOWS_COLUMNS, kept_windows)
    return dropped


def done_keys(samples_csv: Path, target: str) -> set[tuple[str, str, int]]:
    """(procedure, mode, sample) rows of ``target`` already in samples.csv."""
    return {(r["procedure"], r["mode"], int(r["sample"])) for r in read_rows(samples_csv) if r["target"] == target}


def run_mcu_stage(
    dut: Dut,
    meter: TriggeredMeter,
    x: np.ndarray,
    y: np.ndarray,
    modes: list[str],
    repeats: int,
    samples_out: CsvAppender,
    windows_out: CsvAppender,
    target: str,
    *,
    thresholds: np.ndarray | None = None,
    trace_path: Path | None = None,
    max_retries: int = 3,
    seed: int = 0,
    procedure: str | None = None,
    progress: bool = False,
    insn_log: InsnLog | None = None,
) -> McuStageResult:
    """Measure every (mode, sample) not yet in ``samples_out``'s file; see the module doc.

    ``thresholds`` are sent once and again after every DUT reset. Mode order is shuffled per sample
    (seeded). A DUT reset or a meter stream restart is reported, the input reloaded and the window
    measured again (``max_retries`` times); a meter that is gone raises ``MeterError`` with the
    finished rows kept on disk.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: need >= 1 inference per window")
    procedure = procedure or dut.info_.scheme  # the result name; callers pass the learner's (e.g. mp-pruned)
    done = done_keys(samples_out.path, target)
    stage = _Stage(dut, meter, insn_log, samples_out, windows_out, target, procedure, repeats, thresholds, max_retries)
    rng = random.Random(seed)
    if thresholds is not None:
        dut.set_thresholds(thresholds)
    for idx in tqdm(range(len(x)), desc=f"{target}/{procedure}", unit="sample", disable=not progress):
        todo = [m for m in modes if (procedure, m, idx) not in done]
        stage.result.skipped += len(modes) - len(todo)
        rng.shuffle(todo)
        stage.measure_sample(idx, x[idx], int(y[idx]), todo)
        if stage.trace_from is not None and trace_path is not None and not trace_path.exists():
            _write_trace(meter, trace_path, stage.trace_from)
    return stage.result


@dataclass
class _Stage:
    """One ``run_mcu_stage`` call: where it measures, where it writes, and what it has seen so far."""

    dut: Dut
    meter: TriggeredMeter
    insn_log: InsnLog | None
    samples_out: CsvAppender
    windows_out: CsvAppender
    target: str
    procedure: str
    repeats: int
    thresholds: np.ndarray | None
    max_retries: int
    result: McuStageResult = field(default_factory=McuStageResult)
    trace_from: int | None = None  # the first window's start sample: where trace.csv begins
    seen_warnings: set[str] = field(default_factory=set)

    def measure_sample(self, idx: int, xi: np.ndarray, label: int, modes: list[str]) -> None:
        """One window per mode for sample ``idx``, its rows written as each is measured; LOAD once."""
        loaded = False
        for mode in modes:
            try:
                res, win, counts = self._measure(xi, mode, loaded)
            except MeterError as exc:
                raise type(exc)(
                    f"{exc} [{self.result.measured} rows measured by this call are kept in"
                    f" {self.samples_out.path}; resume the run to measure the rest]"
                ) from exc
            loaded = True
            _write_rows(
                self.samples_out,
                self.windows_out,
                self.target,
                self.meter.info.name,
                self.procedure,
                mode,
                idx,
                label,
                self.repeats,
                res,
                win,
                counts,
            )
            self.result.measured += 1
            self._report_warnings(mode, idx, win.warnings)
            self.trace_from = win.start_index if self.trace_from is None else self.trace_from

    def _report_warnings(self, mode: str, idx: int, warnings: Sequence[str]) -> None:
        """Log each kind of window warning once (the numbers differ per window) and keep its first message."""
        for msg in warnings:
            kind = re.sub(r"[-+\d.e]+", "#", msg)
            if kind not in self.seen_warnings:
                self.seen_warnings.add(kind)
                log.warning("%s %s sample %d: %s", self.target, mode, idx, msg)
                self.result.warnings.append(msg)

    def _measure(
        self, xi: np.ndarray, mode: str, loaded: bool
    ) -> tuple[DutResult, WindowEnergyDetail, InsnCounts | None]:
        """One window of ``repeats`` inferences of ``mode``: retried after a DUT reset or a meter restart."""
        problems = []
        for _ in range(self.max_retries + 1):
            try:
                if not loaded:
                    self.dut.load(xi)
                    loaded = True
                token = self.meter.start()
                res = self.dut.infer(mode, self.repeats)
                counts = self.insn_log.latest() if self.insn_log is not None else None  # logged before the reply
                return res, self.meter.next_window(token), counts
            except DutReset as exc:
                self.result.dut_resets += 1
                problems.append(str(exc))
                log.warning("DUT reset during %s (%s): reloading and measuring again", mode, exc)
                loaded = False
                if self.thresholds is not None:
                    self.dut.set_thresholds(self.thresholds)
            except StreamRestarted as exc:
                self.result.meter_restarts += 1
                problems.append(str(exc))
                log.warning("%s", exc)
                self.meter.wait_flowing()  # a window opened while the meter reconnects would miss its pulse
            except DutError as exc:
                stopped = self.meter.stream_problem()
                if stopped is None:
                    raise
                raise self._meter_stopped(stopped, exc) from exc
        raise DutError(f"{mode}: gave up after {self.max_retries + 1} attempts: {'; '.join(problems)}")

    def _meter_stopped(self, stopped: str, exc: DutError) -> MeterError:
        """The DUT failed after the meter's stream had ended: name the meter, not the DUT."""
        return MeterError(
            f"{self.meter.info.name}: the meter stream ended ({stopped}) before the DUT's reply, so the meter stopped,"
            f" not the DUT (the DUT then failed with: {exc}). Restart or reconnect the meter, then resume the run"
        )


def _write_rows(
    samples_out: CsvAppender,
    windows_out: CsvAppender,
    target: str,
    meter: str,
    procedure: str,
    mode: str,
    idx: int,
    label: int,
    repeats: int,
    res: DutResult,
    win: WindowEnergyDetail,
    counts: InsnCounts | None,
) -> None:
    per_class = dict.fromkeys(INSN_CLASS_COLUMNS) if counts is None else _per_inference(counts, repeats)
    samples_out.write(
        {
            "target": target,
            "procedure": procedure,
            "mode": mode,
            "sample": idx,
            "label": label,
            "pred": res.pred,
            "exit_layer": res.exit_layer,
            "macs": res.macs,
            "correct": res.pred == label,
            "energy_j": win.net_j / repeats,
            "instructions": None if counts is None else counts.total / repeats,
            **per_class,
        }
    )
    windows_out.write(
        {
            "target": target,
            "meter": meter,
            "domain": DOMAIN,
            "procedure": procedure,
            "mode": mode,
            "repeat": idx,
            "n_inferences": repeats,
            "duration_s": win.duration_s,
            "energy_j": win.gross_j,
            "idle_power_w": win.idle_power_w,
            "net_energy_j": win.net_j,
            "energy_lo_j": win.gross_lo_j,
            "energy_hi_j": win.gross_hi_j,
        }
    )


def _per_inference(counts: InsnCounts, repeats: int) -> dict[str, float]:
    return {col: n / repeats for col, n in zip(INSN_CLASS_COLUMNS, counts.as_tuple(), strict=True)}


def _write_trace(meter: TriggeredMeter, path: Path, start: int) -> None:
    """A stretch of the raw trace from just before ``start`` (for the plot of windows over current)."""
    period = meter.info.update_period_s
    lead = int(meter.idle_span_s / period) if period > 0 else 100
    t, v, i, trig = meter.samples(start - lead, start - lead + TRACE_MAX_ROWS)
    if len(t) == 0:
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(TRACE_COLUMNS)
        writer.writerows(
            zip((f"{s:.7f}" for s in t - t[0]), (f"{a:.9g}" for a in i), (f"{u:.6g}" for u in v), trig.astype(int))
        )
    tmp.replace(path)
