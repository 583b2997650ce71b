"""The measure stage: energy windows of every (procedure, mode) on every host target into windows.csv,
with the configured meter (``auto`` explains its choice)."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffenergy.config import MeasurementConfig
from ffenergy.contract import WINDOWS_COLUMNS, CsvAppender, read_rows
from ffenergy.data.base import Dataset
from ffenergy.experiment.manifest import Manifest
from ffenergy.experiment.procedure import Procedure, RunError, to_cpu
from ffenergy.measure import WindowResult, Workload, measure, next_idle_index, window_rows
from ffenergy.meters.auto import auto_meter, make_meter
from ffenergy.meters.base import Meter, MeterUnavailable
from ffenergy.targets.host import HostTarget
from ffenergy.vocabulary import all_modes, forced_depth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureJob:
    """What the measure stage needs besides the data and the procedures."""

    path: Path  # windows.csv
    meter: str  # a registered meter or auto
    meter_options: dict[str, dict[str, Any]]
    method: MeasurementConfig
    progress: bool


def measure_hosts(
    job: MeasureJob, data: Dataset, procedures: list[Procedure], targets: list[HostTarget], manifest: Manifest
) -> None:
    """Measure on every host target the windows not yet on disk (a resumed run measures only the rest)."""
    existing = read_rows(job.path)
    for target in targets:
        meter = open_meter(job, target, manifest)
        if meter is None:
            continue
        with meter:
            record_meter(manifest, target.name, meter)
            _measure_target(job, data, procedures, target, meter, existing)
        to_cpu(procedures)


def _measure_target(
    job: MeasureJob,
    data: Dataset,
    procedures: list[Procedure],
    target: HostTarget,
    meter: Meter,
    existing: list[dict[str, str]],
) -> None:
    m, info = job.method, meter.info
    wanted = m.procedures or [p.name for p in procedures]
    workloads: dict[Hashable, Workload] = {
        (proc.name, mode): Workload(
            target.batch_runner(
                target.deploy(proc.learner),
                data.x_test,
                proc.thresholds,
                forced_depth(mode, proc.learner.n_layers),
                m.batch_size,
                pooled=m.pool_survivors,
            ),
            target.sync,
        )
        for proc in procedures
        if proc.name in wanted
        for mode in all_modes(proc.learner.n_layers)
    }
    mine = [r for r in existing if (r["target"], r["meter"], r["domain"]) == (target.name, info.name, "total")]
    done = {((r["procedure"], r["mode"]), int(r["repeat"])) for r in mine}
    log.info(
        "measuring %d modes x %d repeats on %s with meter %s (%s)%s",
        len(workloads),
        m.repeats,
        target.name,
        info.name,
        info.provenance,
        "; light pooled across batches (measurement.pool_survivors)" if m.pool_survivors else "",
    )
    with CsvAppender(job.path, WINDOWS_COLUMNS) as out:

        def on_window(w: WindowResult) -> None:
            out.write_many(window_rows(w, target.name, info.name))

        measure(
            meter,
            workloads,
            m.method(),  # the method alone, as ffenergy.profiler passes it
            done=done,
            on_window=on_window,
            first_idle_index=next_idle_index(existing, target.name, info.name),
            progress=job.progress,
        )


def open_meter(job: MeasureJob, target: HostTarget, manifest: Manifest) -> Meter | None:
    """The configured meter for a host target; auto explains its choice (None: auto found none)."""
    options = dict(job.meter_options)
    try:
        if job.meter == "auto":
            meter, table = auto_meter(gpu=0 if target.device == "cuda" else None, options=options)
            for status in table:
                log.info("  meter %-11s %-7s %s", status.name, "usable" if status.usable else "no", status.reason)
            return meter
        return make_meter(job.meter, **options.get(job.meter, {}))
    except MeterUnavailable as exc:
        if job.meter == "auto":
            log.warning("no energy measured on %s: %s", target.name, exc)
            manifest.set_stage("measure", f"skipped on {target.name}: no usable meter")
            return None
        raise RunError(f"meter {job.meter}: {exc}") from exc


def record_meter(manifest: Manifest, target: str, meter: Meter) -> None:
    """The meter of a target in manifest.json (replacing an earlier entry of the same pair)."""
    info = meter.info
    entry = {
        "target": target,
        "name": info.name,
        "provenance": info.provenance,
        "domains": list(info.domains),
        "update_period_s": info.update_period_s,
        "details": info.details,
    }
    meters = [e for e in manifest.data["meters"] if (e["target"], e["name"]) != (target, info.name)]
    manifest.update(meters=meters + [entry])
