"""The experiment runner: config -> data -> model -> calibrate -> evaluate -> measure -> summary.

One run writes one ``results/<run-id>/`` directory (DESIGN.md section 5). Every stage leaves
its output on disk as it goes, so an interrupted run (Ctrl-C, kill -9) keeps what it finished
and ``--resume`` completes only what is missing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ffenergy.analysis.attribution import attribute, exit_distribution, windows_from_rows
from ffenergy.analysis.metrics import macro_f1, mode_stats, per_class_rows
from ffenergy.analysis.stats import idle_drift, summarise_rows
from ffenergy.config import ExperimentConfig
from ffenergy.contract import (
    PER_CLASS_COLUMNS,
    ROW_COUNTS_KEY,
    SAMPLES_COLUMNS,
    SUMMARY_COLUMNS,
    SWEEP_COLUMNS,
    WINDOWS_COLUMNS,
    CsvAppender,
    RunLock,
    read_rows,
    rewrite_csv,
    row_counts,
    write_json,
)
from ffenergy.data.base import Dataset
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.experiment.manifest import Manifest, now_iso
from ffenergy.experiment.mcu_run import (
    McuJob,
    early_exit_savings,
    light_reductions,
    per_sample_attribution,
    run_mcu_job,
)
from ffenergy.experiment.model_cache import load_or_train
from ffenergy.experiment.run_dir import new_run_dir
from ffenergy.learners import LEARNERS
from ffenergy.learners.base import Learner, LearnerOptionsError
from ffenergy.learners.calibrate import Calibration, calibrate, select_alpha
from ffenergy.learners.exits import batched_depth_scores, exits_from_scores
from ffenergy.learners.policy import Choice, choose
from ffenergy.measure import Workload, measure, next_idle_index, window_rows
from ffenergy.meters.auto import auto_meter, make_meter
from ffenergy.meters.base import Meter, MeterUnavailable
from ffenergy.meters.codecarbon_meter import CarbonIntensity, grams_co2_per_1000_inferences, resolve_intensity
from ffenergy.targets.host import HostTarget, TargetUnavailable
from ffenergy.targets.mcu_config import McuConfig
from ffenergy.targets.registry import TARGETS, host_targets, mcu_targets, target_status
from ffenergy.vocabulary import all_modes, forced_depth

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """The run cannot go on; the message says what happened and how to continue."""


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


@dataclass
class Procedure:
    """One inference procedure of the run: a trained learner with its calibrated exit rule."""

    learner: Learner
    calibration: Calibration
    thresholds: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.learner.name


class Runner:
    """Runs the stages of one experiment into one run directory."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, manifest: Manifest, opts: RunOptions):
        self.cfg, self.run_dir, self.manifest, self.opts = cfg, run_dir, manifest, opts

    # -- stages ---------------------------------------------------------------------------
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
            data = load_experiment_data(self.cfg)
            self.manifest.update(
                dataset={
                    "name": data.name,
                    "source": data.source,
                    "n_train": len(data.y_train),
                    "n_val": len(data.y_val),
                    "n_test": len(data.y_test),
                    "n_features": data.n_features,
                    "classes": data.class_names,
                    "label_value": data.label_value,
                    "caveat": data.caveat,
                    **data.extra,
                }
            )
        with self.stage("model"):
            learners = self.learners(data)
        with self.stage("calibrate"):
            procedures = self.calibrate(learners, data)
        with self.stage("evaluate"):
            self.evaluate(data, procedures)
        with self.opts.measuring():
            with self.stage("measure"):
                self.measure(data, procedures)
            with self.stage("hil"):
                self.hil(data, procedures)
        with self.stage("summary"):
            rows = self.summarise(procedures)
        self.manifest.update(finished=now_iso(), **{ROW_COUNTS_KEY: row_counts(self.run_dir)})
        return rows

    def learners(self, data: Dataset) -> list[Learner]:
        """One learner per procedure; procedures whose learners share a network train it once."""
        networks: dict[str, nn.Module] = {}
        infos: dict[str, dict[str, object]] = {}
        learners = []
        try:
            for name in self.cfg.inference.procedures:  # every check before any training
                LEARNERS.get(name).check(self.cfg.inference, data.n_classes)
        except LearnerOptionsError as exc:
            raise RunError(f"{exc} (in {name}'s config)") from None
        for name in self.cfg.inference.procedures:
            cls = LEARNERS.get(name)
            if cls.network_id not in networks:
                try:
                    networks[cls.network_id], infos[cls.network_id] = load_or_train(
                        cls, self.cfg, data, progress=self.opts.progress
                    )
                except LearnerOptionsError as exc:
                    raise RunError(f"{exc} (in {name}'s config)") from None
            learners.append(cls(name, networks[cls.network_id], self.cfg.inference))
        torch.save({"networks": {key: net.state_dict() for key, net in networks.items()}}, self.run_dir / "model.pt")
        self.manifest.update(model={"dims": learners[0].dims, "networks": infos})
        return learners

    def calibrate(self, learners: list[Learner], data: Dataset) -> list[Procedure]:
        """Thresholds on the validation split; the alpha sweep on the test split (sweep.csv)."""
        inf = self.cfg.inference
        procedures, sweep_rows, calib_json = [], [], {}
        by_name = {learner.name: learner for learner in learners}
        for learner in learners:
            name, stat = learner.name, learner.statistic
            val_scores = batched_depth_scores(learner, data.x_val, inf.batch_size)
            cal = calibrate(learner, val_scores, data.y_val)
            choice = None
            if inf.policy.kind == "grid":
                alpha = (
                    inf.alpha
                    if inf.alpha_select == "fixed"
                    else select_alpha(learner, val_scores, data.y_val, cal, inf.alpha_sweep, inf.max_loss_pp)
                )
                thresholds = tuple(cal.thresholds(alpha).tolist())
                how = f"alpha {alpha:g}"
            else:
                choice = choose(learner, val_scores, data.y_val, inf.policy, self.cfg.seed)
                thresholds = tuple(choice.thresholds.tolist())
                how = f"policy {inf.policy.kind}"
                if choice.message:
                    log.warning("%s: %s", name, choice.message)
            depth_1 = learner.n_layers > 1 and thresholds[0] <= learner.confidence_floor
            if depth_1:
                log.warning(
                    "%s: light = depth-1 by construction: T_1 = %.4g <= %.4g, the least %s; every sample "
                    "exits at layer 1 (%s), so light is not an adaptive exit here",
                    name,
                    thresholds[0],
                    learner.confidence_floor,
                    stat,
                    how,
                )
            procedures.append(Procedure(learner, cal, thresholds))
            if choice is None:
                calib_json[name] = {
                    "statistic": stat,
                    "alpha": alpha,
                    "alpha_select": inf.alpha_select,
                    "thresholds": list(thresholds),
                    "light_is_depth_1": depth_1,
                    **learner.calibration_facts(),
                    **cal.to_json(),
                }
            test_scores = batched_depth_scores(learner, data.x_test, inf.batch_size)
            cost, naive = learner.macs_at_exit(), learner.naive_macs_at_exit()
            full_naive = by_name.get(learner.reference, learner).naive_macs_at_exit()[-1]
            if choice is not None:
                calib_json[name] = {
                    "statistic": stat,
                    "policy": {**choice.record, "message": choice.message},
                    "thresholds": list(thresholds),
                    "light_is_depth_1": depth_1,
                    "test": self.policy_on_test(learner, test_scores, data.y_test, choice, full_naive),
                    **learner.calibration_facts(),
                    **cal.to_json(),
                }
            grid_alpha = {calib_json[name]["alpha"]} if choice is None else set()
            for alpha in sorted(set(inf.alpha_sweep) | {inf.alpha} | grid_alpha):
                pred, exits = exits_from_scores(learner, test_scores, cal.thresholds(alpha))
                fractions = np.bincount(exits, minlength=learner.n_layers + 1)[1:] / len(exits)
                naive_macs = float(naive[exits - 1].mean())
                sweep_rows.append(
                    {
                        "target": "host",
                        "procedure": name,
                        "statistic": stat,
                        "alpha": alpha,
                        "accuracy": float(np.mean(pred == data.y_test)),
                        "macro_f1": macro_f1(data.y_test, pred),
                        "mean_layers": float(exits.mean()),
                        "macs_per_inference": float(cost[exits - 1].mean()),
                        "macs_per_inference_naive": naive_macs,
                        "mac_reduction": full_naive / naive_macs,  # the paper's count on both sides
                        "exit_fractions": ";".join(f"{f:.6g}" for f in fractions),
                    }
                )
        write_json(self.run_dir / "calibration.json", calib_json)
        rewrite_csv(self.run_dir / "sweep.csv", SWEEP_COLUMNS, sweep_rows)
        return procedures

    def policy_on_test(
        self, learner: Learner, scores: list[torch.Tensor], labels: np.ndarray, choice: Choice, full_naive: float
    ) -> dict[str, float]:
        """What the chosen thresholds achieve on the test split (logged; calibration.json ``test``).

        ``mac_reduction`` is the paper's count on both sides, as in summary.csv and sweep.csv."""
        pred, exits = exits_from_scores(learner, scores, choice.thresholds)
        full = scores[-1].argmax(dim=1).numpy()
        macs = float(learner.macs_at_exit()[exits - 1].mean())
        naive = float(learner.naive_macs_at_exit()[exits - 1].mean())
        out = {
            "accuracy": float(np.mean(pred == labels)),
            "full_accuracy": float(np.mean(full == labels)),
            "disagreement": float(np.mean(pred != full)),
            "macs_per_inference": macs,
            "macs_per_inference_naive": naive,
            "mac_reduction": float(full_naive) / naive,
        }
        log.info(
            "%s: policy %s on test: accuracy %.4f (full %.4f), disagreement %.4f, %.4g MACs per inference as run"
            " (%.2fx fewer than full; by the paper's count %.4g, %.2fx)",
            learner.name,
            choice.record.get("kind"),
            out["accuracy"],
            out["full_accuracy"],
            out["disagreement"],
            macs,
            float(learner.macs_at_exit()[-1]) / macs,
            naive,
            out["mac_reduction"],
        )
        return out

    def host_targets(self) -> list[HostTarget]:
        return [HostTarget.open(t) for t in host_targets(self.cfg.targets)]

    def evaluate(self, data: Dataset, procedures: list[Procedure]) -> None:
        """Every (target, procedure, mode) over the whole test split into samples.csv."""
        path = self.run_dir / "samples.csv"
        targets = self.host_targets()
        done = _complete_groups(path, len(data.y_test), {t.name for t in targets})
        with CsvAppender(path, SAMPLES_COLUMNS) as out:
            for target in targets:
                self.manifest.data["targets"][target.name] = target.describe()
                for proc in procedures:
                    learner = target.deploy(proc.learner)
                    for mode in all_modes(learner.n_layers):
                        if (target.name, proc.name, mode) in done:
                            continue
                        p = target.predict(
                            learner,
                            data.x_test,
                            proc.thresholds,
                            forced_depth(mode, learner.n_layers),
                            self.cfg.inference.batch_size,
                        )
                        out.write_many(
                            {
                                "target": target.name,
                                "procedure": proc.name,
                                "mode": mode,
                                "sample": i,
                                "label": int(y),
                                "pred": int(p.pred[i]),
                                "exit_layer": int(p.exit_layer[i]),
                                "macs": int(p.macs[i]),
                                "correct": int(p.pred[i] == y),
                            }
                            for i, y in enumerate(data.y_test)
                        )
        _to_cpu(procedures)
        self.manifest.save()

    def measure(self, data: Dataset, procedures: list[Procedure]) -> None:
        """Energy windows of every (procedure, mode) on every host target into windows.csv."""
        meter_name = self.cfg.meter
        if meter_name == "none":
            self.manifest.set_stage("measure", "skipped: meter none")
            return
        path = self.run_dir / "windows.csv"
        existing = read_rows(path)
        m = self.cfg.measurement
        method = m.method()
        x = data.x_test
        for target in self.host_targets():
            meter = self.open_meter(meter_name, target)
            if meter is None:
                continue
            with meter:
                info = meter.info
                self.record_meter(target.name, meter)
                workloads: dict[Hashable, Workload] = {
                    (proc.name, mode): Workload(
                        target.batch_runner(
                            target.deploy(proc.learner),
                            x,
                            proc.thresholds,
                            forced_depth(mode, proc.learner.n_layers),
                            m.batch_size,
                            pooled=m.pool_survivors,
                        ),
                        target.sync,
                    )
                    for proc in procedures
                    if proc.name in (m.procedures or [p.name for p in procedures])
                    for mode in all_modes(proc.learner.n_layers)
                }
                done = {
                    ((r["procedure"], r["mode"]), int(r["repeat"]))
                    for r in existing
                    if r["target"] == target.name and r["meter"] == info.name and r["domain"] == "total"
                }
                log.info(
                    "measuring %d modes x %d repeats on %s with meter %s (%s)%s",
                    len(workloads),
                    m.repeats,
                    target.name,
                    info.name,
                    info.provenance,
                    "; light pooled across batches (measurement.pool_survivors)" if m.pool_survivors else "",
                )
                with CsvAppender(path, WINDOWS_COLUMNS) as out:

                    def on_window(w, _target=target.name, _meter=info.name) -> None:
                        out.write_many(window_rows(w, _target, _meter))

                    measure(
                        meter,
                        workloads,
                        method,
                        done=done,
                        on_window=on_window,
                        first_idle_index=next_idle_index(existing, target.name, info.name),
                        progress=self.opts.progress,
                    )
            _to_cpu(procedures)

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

                def on_session(session, _target=target) -> None:
                    self.record_meter(_target, session.meter)
                    self.manifest.data["targets"][_target] = session.manifest()
                    self.manifest.save()

                try:
                    run_mcu_job(job, data, self.cfg.mcu, self.run_dir, on_session, self.opts.progress)
                except (OSError, ValueError, RuntimeError) as exc:
                    raise RunError(
                        f"{target}/{proc.name}: {exc}\nEverything measured so far is in "
                        f"{self.run_dir}; fix the cause and continue with --resume {self.run_dir}"
                    ) from exc

    def open_meter(self, name: str, target: HostTarget) -> Meter | None:
        """The configured meter for a host target; auto explains its choice."""
        options = dict(self.cfg.meter_options)
        try:
            if name == "auto":
                meter, table = auto_meter(gpu=0 if target.device == "cuda" else None, options=options)
                for status in table:
                    log.info("  meter %-11s %-7s %s", status.name, "usable" if status.usable else "no", status.reason)
                return meter
            return make_meter(name, **options.get(name, {}))
        except MeterUnavailable as exc:
            if name == "auto":
                log.warning("no energy measured on %s: %s", target.name, exc)
                self.manifest.set_stage("measure", f"skipped on {target.name}: no usable meter")
                return None
            raise RunError(f"meter {name}: {exc}") from exc

    def record_meter(self, target: str, meter: Meter) -> None:
        info = meter.info
        entry = {
            "target": target,
            "name": info.name,
            "provenance": info.provenance,
            "domains": list(info.domains),
            "update_period_s": info.update_period_s,
            "details": info.details,
        }
        meters = [e for e in self.manifest.data["meters"] if (e["target"], e["name"]) != (target, info.name)]
        self.manifest.update(meters=meters + [entry])

    def summarise(self, procedures: list[Procedure]) -> list[dict]:
        """summary.csv and attribution.json from samples.csv and windows.csv."""
        samples = read_rows(self.run_dir / "samples.csv")
        windows = read_rows(self.run_dir / "windows.csv")
        energy = {}
        domains = _summary_domains(windows)
        for (target, meter), domain in domains.items():
            energy.update(summarise_rows([w for w in windows if (w["target"], w["meter"]) == (target, meter)], domain))
        provenance = {(e["target"], e["name"]): e["provenance"] for e in self.manifest.data["meters"]}
        naive_cost = {p.name: p.learner.naive_macs_at_exit() for p in procedures}
        stats = {(s.target, s.procedure, s.mode): s for s in mode_stats(samples, naive_cost)}
        meters_of = defaultdict(set)
        for target, meter, _, _ in energy:
            meters_of[target].add(meter)
        intensity = self.carbon_intensity()
        drift = {key: self.check_drift(key, domain, windows) for key, domain in domains.items()}
        reference = {p.name: p.learner.reference for p in procedures}
        rows = []
        for (target, procedure, mode), s in stats.items():
            baseline = reference.get(procedure, procedure)
            if (target, baseline, "full") not in stats:
                baseline = procedure  # the reference procedure was not run: compare with its own full mode
            full = stats[(target, baseline, "full")]
            for meter in sorted(meters_of[target]) or ["none"]:
                e = energy.get((target, meter, procedure, mode))
                e_full = energy.get((target, meter, baseline, "full"))
                rows.append(
                    {
                        "dataset": self.cfg.data.dataset,
                        "target": target,
                        "meter": meter,
                        "provenance": provenance.get((target, meter), ""),
                        "procedure": procedure,
                        "mode": mode,
                        "accuracy": s.accuracy,
                        "macro_f1": s.macro_f1,
                        "mean_layers": s.mean_layers,
                        "macs_per_inference": s.macs_per_inference,
                        "macs_per_inference_naive": s.macs_per_inference_naive,
                        # the paper's count on both sides, like-for-like with its reductions
                        "mac_reduction": full.macs_per_inference_naive / s.macs_per_inference_naive,
                        "mac_reduction_as_run": full.macs_per_inference / s.macs_per_inference,
                        "energy_j_per_inference": e.net_j_per_inference if e else None,
                        "energy_ci95_j": e.net_ci95_j if e else None,
                        "energy_reduction": e_full.net_j_per_inference / e.net_j_per_inference
                        if e and e_full and e.net_j_per_inference != 0  # a flat power log nets exactly zero
                        else None,
                        "n_samples": s.n_samples,
                        "n_repeats": e.n_repeats if e else 0,
                        "co2_g_per_1000_inferences": grams_co2_per_1000_inferences(e.net_j_per_inference, intensity)
                        if e and intensity
                        else None,
                        "idle_drift_max": drift.get((target, meter)) if e else None,
                        "gross_energy_j_per_inference": e.gross_j_per_inference if e else None,
                        "gross_energy_ci95_j": e.gross_ci95_j if e else None,
                    }
                )
        rewrite_csv(self.run_dir / "summary.csv", SUMMARY_COLUMNS, rows)
        rewrite_csv(self.run_dir / "per_class.csv", PER_CLASS_COLUMNS, per_class_rows(samples, self.class_names()))
        learners = {p.name: p.learner for p in procedures}
        fits = self.attribution(learners, samples, windows, domains, stats, rows, reference)
        write_json(self.run_dir / "attribution.json", {"fits": fits})
        return rows

    def check_drift(self, key: tuple[str, str], domain: str, windows: list[dict]) -> float | None:
        """The largest relative change of idle power between consecutive idle windows of (target, meter);
        a warning names the windows where it exceeds ``measurement.max_idle_drift``."""
        idle = [
            (int(w["repeat"]), float(w["energy_j"]) / float(w["duration_s"]))
            for w in windows
            if (w["target"], w["meter"], w["procedure"], w["domain"]) == (*key, "idle", domain)
        ]
        limit = self.cfg.measurement.max_idle_drift
        drift = idle_drift(idle, limit)
        if drift.moved:
            log.warning(
                "%s/%s: idle power drifted by more than %.0f%% (%s); the net energies measured between "
                "those idle windows carry up to that error",
                *key,
                100 * limit,
                ", ".join(drift.moved),
            )
        return drift.max_abs

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

    def attribution(
        self,
        learners: dict[str, Learner],
        samples: list[dict],
        windows: list[dict],
        domains: dict[tuple[str, str], str],
        stats: dict,
        summary: list[dict],
        reference: dict[str, str],
    ) -> list[dict]:
        fits = []
        light = {(r["target"], r["meter"], r["procedure"]): r for r in summary if r["mode"] == "light"}
        keys = sorted({(w["target"], w["meter"], w["procedure"]) for w in windows if w["procedure"] != "idle"})
        for target, meter, procedure in keys:
            mode_windows = windows_from_rows(
                windows, target=target, meter=meter, procedure=procedure, domain=domains[(target, meter)]
            )
            macs = {mode: s.macs_per_inference for (t, p, mode), s in stats.items() if (t, p) == (target, procedure)}
            exits = [
                int(r["exit_layer"])
                for r in samples
                if (r["target"], r["procedure"], r["mode"]) == (target, procedure, "light")
            ]
            try:
                fit = attribute(
                    mode_windows,
                    macs,
                    exit_distribution(exits) if exits else None,
                    target=target,
                    meter=meter,
                    procedure=procedure,
                )
            except ValueError as exc:
                log.info("attribution %s/%s/%s skipped: %s", target, meter, procedure, exc)
                continue
            entry = fit.to_json()
            entry.update(light_reductions(light.get((target, meter, procedure))))
            if TARGETS.entry(target).fact("mcu") and procedure in learners:
                meter_manifest = self.manifest.data["targets"].get(target, {}).get("meter", {})
                entry["energy_model"] = meter_manifest.get("energy_model")
                entry["per_sample"] = per_sample_attribution(
                    self.run_dir, target, procedure, learners[procedure].layer_macs(), meter_manifest
                )
                entry["early_exit"] = early_exit_savings(
                    samples, target, procedure, reference.get(procedure, procedure), meter_manifest
                )
            fits.append(entry)
        return fits


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
        manifest = _resumed_manifest(cfg, run_dir) if opts.resume else _new_manifest(cfg, run_dir)
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


def _new_manifest(cfg: ExperimentConfig, run_dir: Path) -> Manifest:
    manifest = Manifest.create(run_dir / "manifest.json", run_dir.name, cfg.to_dict(), cfg.hash(), cfg.seed)
    manifest.update(config_dir=str(cfg.config_dir))
    return manifest


def _resumed_manifest(cfg: ExperimentConfig, run_dir: Path) -> Manifest:
    manifest = Manifest.load(run_dir / "manifest.json")
    changed = config_changes(manifest.data["config"], cfg.to_dict())
    refused = [c for c in changed if not c.startswith(RESUMABLE_CHANGES)]
    if refused:
        raise RunError(
            f"--resume {run_dir}: the config differs from the one that run used in {', '.join(refused)}; "
            "those change what was measured, so the finished rows would not belong to it. Resume with "
            f"`ffenergy run --resume {run_dir}` alone (it reads the run's own config), or start a new run"
        )
    if changed:
        log.info("resuming with changed %s (they cannot change what was measured)", ", ".join(changed))
        manifest.update(config=cfg.to_dict(), config_hash=cfg.hash())
    cut = [name for name, status in manifest.data["stages"].items() if status == "running"]
    for name in cut:  # the process that ran them died without a word (kill -9, power loss)
        manifest.set_stage(name, "interrupted")
    return manifest


# Config fields a resume may change: how to reach devices, meter options, carbon accounting, the
# run's name; none of them changes a measurement already on disk.
RESUMABLE_CHANGES = ("mcu.options", "meter_options", "carbon", "name")


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two config mappings (e.g. ``model.epochs``)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        where = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{where}.")
        elif a != b:
            changes.append(where)
    return changes


def _to_cpu(procedures: list[Procedure]) -> None:
    for proc in procedures:
        proc.learner.net.to("cpu")


def _summary_domains(windows: list[dict]) -> dict[tuple[str, str], str]:
    """The domain that stands for each (target, meter): ``total`` when the meter sums several
    domains, else its only domain (e.g. ``dut`` for an external meter on a microcontroller)."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for w in windows:
        found[(w["target"], w["meter"])].add(w["domain"])
    return {key: "total" if "total" in doms or len(doms) != 1 else next(iter(doms)) for key, doms in found.items()}


def _complete_groups(path: Path, n: int, targets: set[str]) -> set[tuple[str, str, str]]:
    """(target, procedure, mode) groups of ``targets`` with all n samples on disk. Partial groups
    of those targets (a crash mid-write) are dropped; rows of other targets are kept as they are."""
    rows = read_rows(path)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        if r["target"] in targets:
            counts[(r["target"], r["procedure"], r["mode"])] += 1
    complete = {k for k, c in counts.items() if c == n}
    if len(complete) != len(counts):
        rewrite_csv(
            path,
            SAMPLES_COLUMNS,
            [r for r in rows if r["target"] not in targets or (r["target"], r["procedure"], r["mode"]) in complete],
        )
    return complete
