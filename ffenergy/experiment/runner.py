"""The experiment runner: config -> data -> model -> calibrate -> evaluate -> measure -> hil -> summary.

One run writes one ``results/<run-id>/`` directory (DESIGN.md section 5). Every stage leaves
its output on disk as it goes, so an interrupted run (Ctrl-C, kill -9) keeps what it finished
and ``--resume`` completes only what is missing. Each stage is a module of its own
(``*_stage.py``) with a typed input and output; this module runs them in order and records them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffenergy.analysis.metrics import per_class_rows
from ffenergy.config import ExperimentConfig
from ffenergy.contract import (
    PER_CLASS_COLUMNS,
    ROW_COUNTS_KEY,
    SUMMARY_COLUMNS,
    SWEEP_COLUMNS,
    RunLock,
    read_rows,
    rewrite_csv,
    row_counts,
    write_json,
)
from ffenergy.data.base import Dataset
from ffenergy.experiment import model_stage
from ffenergy.experiment.attribution_stage import AttributionInput, attribution
from ffenergy.experiment.calibrate_stage import calibrate_learner
from ffenergy.experiment.dataset import describe, load_experiment_data
from ffenergy.experiment.evaluate_stage import evaluate
from ffenergy.experiment.manifest import Manifest, now_iso
from ffenergy.experiment.mcu_run import McuJob, run_mcu_job
from ffenergy.experiment.measure_stage import MeasureJob, measure_hosts, record_meter
from ffenergy.experiment.procedure import Procedure, RunError
from ffenergy.experiment.run_dir import new_manifest, new_run_dir, resumed_manifest
from ffenergy.experiment.summary_stage import SummaryInput, summarise
from ffenergy.learners.base import Learner
from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.codecarbon_meter import CarbonIntensity, resolve_intensity
from ffenergy.targets.host import HostTarget, TargetUnavailable
from ffenergy.targets.mcu_config import McuConfig
from ffenergy.targets.registry import TARGETS, host_targets, mcu_targets, target_status

log = logging.getLogger(__name__)


class RunFileError(OSError):
    """A file-system failure in a run: names the file and the resume command (finished rows are kept)."""

    def __init__(self, run_dir: Path, cause: OSError):
        where = cause.filename or run_dir
        super().__init__(
            cause.errno,
            f"{where}: {cause.strerror or cause}. Everything finished so far is on disk; once that is fixed"
            f" (free space, permissions), continue with: ffenergy run --resume {run_dir}",
        )

    def __str__(self) -> str:
        return str(self.strerror)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: everything finished is on disk in ``run_dir``."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


@dataclass
class RunOptions:
    out_root: Path = Path("results")
    resume: Path | None = None
    progress: bool = True
    # held around the measure and hil stages: a sweep makes it its node's measurement lock
    measuring: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext


class Runner:
    """Runs the stages of one experiment into one run directory."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, manifest: Manifest, opts: RunOptions):
        self.cfg, self.run_dir, self.manifest, self.opts = cfg, run_dir, manifest, opts

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.time()
        self.manifest.set_stage(name, "running")
        try:
            yield
        except KeyboardInterrupt:
            self.manifest.set_stage(name, "interrupted")
            raise
        except Exception as exc:
            self.manifest.set_stage(name, f"failed: {exc}")
            raise
        self.manifest.data.setdefault("stage_times", {})[name] = [start, time.time()]  # epoch seconds
        if self.manifest.data["stages"][name] == "running":
            self.manifest.set_stage(name, "done")
        else:
            self.manifest.save()

    def run(self) -> list[dict]:
        with self.stage("data"):
            data = self.data()
        with self.stage("model"):
            learners, model = model_stage.learners(self.cfg, data, self.run_dir / "model.pt", self.opts.progress)
            self.manifest.update(model=model)
        with self.stage("calibrate"):
            procedures = self.calibrate(learners, data)
        with self.stage("evaluate"):
            targets = self.host_targets()
            evaluate(
                self.run_dir / "samples.csv", data, procedures, targets, self.cfg.inference.batch_size, self.manifest
            )
        with self.opts.measuring():
            with self.stage("measure"):
                self.measure(data, procedures)
            with self.stage("hil"):
                self.hil(data, procedures)
        with self.stage("summary"):
            rows = self.summarise(procedures)
        self.manifest.update(finished=now_iso(), **{ROW_COUNTS_KEY: row_counts(self.run_dir)})
        return rows

    def data(self) -> Dataset:
        """The config's dataset, described in the manifest."""
        data = load_experiment_data(self.cfg)
        self.manifest.update(dataset=describe(data))
        return data

    def calibrate(self, learners: list[Learner], data: Dataset) -> list[Procedure]:
        """Thresholds on the validation split (calibration.json); the alpha sweep on the test split (sweep.csv)."""
        by_name = {learner.name: learner for learner in learners}
        done = [
            calibrate_learner(
                learner,
                data,
                self.cfg.inference,
                self.cfg.seed,
                by_name.get(learner.reference, learner).naive_macs_at_exit()[-1],
            )
            for learner in learners
        ]
        write_json(self.run_dir / "calibration.json", {c.procedure.name: c.record for c in done})
        rewrite_csv(self.run_dir / "sweep.csv", SWEEP_COLUMNS, [row for c in done for row in c.sweep])
        return [c.procedure for c in done]

    def host_targets(self) -> list[HostTarget]:
        return [HostTarget.open(t) for t in host_targets(self.cfg.targets)]

    def measure(self, data: Dataset, procedures: list[Procedure]) -> None:
        """Energy windows of every (procedure, mode) on every host target into windows.csv."""
        if self.cfg.meter == "none":
            self.manifest.set_stage("measure", "skipped: meter none")
            return
        job = MeasureJob(
            self.run_dir / "windows.csv",
            self.cfg.meter,
            self.cfg.meter_options,
            self.cfg.measurement,
            self.opts.progress,
        )
        measure_hosts(job, data, procedures, self.host_targets(), self.manifest)

    def hil(self, data: Dataset, procedures: list[Procedure]) -> None:
        """Deploy to every MCU target and measure per-inference energy with its external meter."""
        targets = mcu_targets(self.cfg.targets)
        if not targets:
            self.manifest.set_stage("hil", "skipped: no MCU target")
            return
        wanted = self.cfg.mcu.procedures or [p.name for p in procedures]
        for target in targets:
            for proc in (p for p in procedures if p.name in wanted):
                arrays, policy = proc.learner.firmware(np.array(proc.thresholds, np.float32))
                job = McuJob(target, proc.name, arrays, policy, self.run_dir / "hil" / f"{target}-{proc.name}")

                def on_session(session: Any, _target: str = target) -> None:
                    record_meter(self.manifest, _target, session.meter)
                    self.manifest.record_target(_target, session.manifest())

                try:
                    ridden = run_mcu_job(job, data, self.cfg.mcu, self.run_dir, on_session, self.opts.progress)
                    self.manifest.add_hil_faults(target, proc.name, ridden)
                except (OSError, ValueError, RuntimeError) as exc:
                    raise RunError(
                        f"{target}/{proc.name}: {exc}\nEverything measured so far is in "
                        f"{self.run_dir}; fix the cause and continue with --resume {self.run_dir}"
                    ) from exc

    def summarise(self, procedures: list[Procedure]) -> list[dict]:
        """summary.csv, per_class.csv and attribution.json from samples.csv and windows.csv."""
        samples = read_rows(self.run_dir / "samples.csv")
        windows = read_rows(self.run_dir / "windows.csv")
        reference = {p.name: p.learner.reference for p in procedures}
        summary = summarise(
            SummaryInput(
                dataset=self.cfg.data.dataset,
                samples=samples,
                windows=windows,
                provenance={(e["target"], e["name"]): e["provenance"] for e in self.manifest.data["meters"]},
                naive_cost={p.name: p.learner.naive_macs_at_exit() for p in procedures},
                reference=reference,
                intensity=self.carbon_intensity(),
                max_idle_drift=self.cfg.measurement.max_idle_drift,
            )
        )
        rewrite_csv(self.run_dir / "summary.csv", SUMMARY_COLUMNS, summary.rows)
        rewrite_csv(self.run_dir / "per_class.csv", PER_CLASS_COLUMNS, per_class_rows(samples, self.class_names()))
        fits = attribution(
            AttributionInput(
                samples=samples,
                windows=windows,
                summary=summary,
                learners={p.name: p.learner for p in procedures},
                reference=reference,
                mcu_meters={
                    t: self.manifest.data["targets"].get(t, {}).get("meter", {}) for t in mcu_targets(self.cfg.targets)
                },
            )
        )
        write_json(self.run_dir / "attribution.json", {"fits": fits})
        return [asdict(row) for row in summary.rows]

    def carbon_intensity(self) -> CarbonIntensity | None:
        """The configured grid intensity (recorded in the manifest), or None."""
        c = self.cfg.carbon
        if c.country_iso_code is None and c.grid_intensity_g_per_kwh is None:
            return None
        try:
            intensity = resolve_intensity(c.country_iso_code, c.grid_intensity_g_per_kwh)
        except (ValueError, MeterUnavailable) as exc:
            raise RunError(f"carbon: {exc}") from exc
        self.manifest.update(carbon={"g_per_kwh": intensity.g_per_kwh, "source": intensity.source})
        return intensity

    def class_names(self) -> list[str]:
        return self.manifest.data.get("dataset", {}).get("classes", [])


def run_experiment(cfg: ExperimentConfig, opts: RunOptions) -> tuple[Path, list[dict]]:
    """Start (or resume) a run; returns its directory and summary rows. One writer per run directory."""
    for target in host_targets(cfg.targets):
        HostTarget.open(target)  # fail before any work (and any folder) when a target cannot run here
    for target in mcu_targets(cfg.targets):
        _check_mcu_target(cfg, target)
    if opts.resume:
        run_dir = Path(opts.resume)
        if not (run_dir / "manifest.json").is_file():
            raise RunError(f"--resume {run_dir}: no manifest.json there; give a run directory made by ffenergy run")
    else:
        run_dir = new_run_dir(Path(opts.out_root), cfg.name)
    with RunLock(run_dir) as lock:
        if lock.previous:
            log.info("%s: took over the run from %s, which is no longer running", run_dir, lock.previous)
        manifest = resumed_manifest(cfg, run_dir) if opts.resume else new_manifest(cfg, run_dir)
        runner = Runner(cfg, run_dir, manifest, opts)
        try:
            return run_dir, runner.run()
        except KeyboardInterrupt:
            raise RunInterrupted(run_dir) from None
        except OSError as exc:  # disk full, a folder made read-only: say where, and how to go on
            raise RunFileError(run_dir, exc) from exc


def _check_mcu_target(cfg: ExperimentConfig, target: str) -> None:
    """Fail before training when an MCU target cannot run: a real board's ports, a simulated one's toolchain."""
    if TARGETS.entry(target).fact("simulated"):
        usable, reason = target_status(target)
        if not usable:
            raise TargetUnavailable(f"target {target}: {reason}")
        return
    try:
        McuConfig.from_dict(target, cfg.mcu.options)
    except ValueError as exc:
        raise TargetUnavailable(f"{exc} (set it under mcu.options in the config)") from None
