"""``ffenergy sweep SWEEP.yaml [--address auto|HOST:PORT] [--resume DIR]``: every point on Ray.

A sweep directory holds ``sweep.json`` (the expanded points, so a resume needs no sweep file),
``sweep.csv`` (one row appended and fsync'd as each point finishes: point, grid values, node,
status, attempts, error, run_dir; the last row of a point counts) and ``runs/`` (each point's
ordinary run directory, unpacked on the driver whatever node ran it). A failed attempt
(an exception in the run, a lost node) is retried up to the sweep's ``retries``; ``--resume DIR``
runs only the points without a ``done`` row whose run directory is there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from tqdm import tqdm

from ffenergy.contract import SWEEP_INDEX_COLUMNS, CsvAppender, read_rows, write_json
from ffenergy.sweep.bench import machine_offers, machine_resources, point_resources, ray_start_flags
from ffenergy.sweep.grid import Point, Sweep, SweepError
from ffenergy.sweep.remote import remote_point, unpack

log = logging.getLogger(__name__)

SWEEP_JSON, INDEX, RUNS = "sweep.json", "sweep.csv", "runs"


@dataclass
class Attempt:
    point: Point
    number: int  # 1 for the first attempt
    started: float
    last_error: str = ""


def start_sweep(sweep: Sweep, out_root: Path) -> Path:
    """A new sweep directory under ``out_root`` with its ``sweep.json``."""
    from ffenergy.experiment.run_dir import new_run_dir

    sweep_dir = new_run_dir(out_root, f"sweep-{sweep.name}")
    write_json(
        sweep_dir / SWEEP_JSON,
        {
            "name": sweep.name,
            "keys": sweep.keys,
            "retries": sweep.retries,
            "points": [p.to_json() for p in sweep.points],
        },
    )
    return sweep_dir


def load_sweep_dir(sweep_dir: Path) -> tuple[Sweep, set[str]]:
    """The sweep of a sweep directory and the ids of its points that are done (row and run directory)."""
    try:
        d = json.loads((sweep_dir / SWEEP_JSON).read_text())
    except FileNotFoundError:
        raise SweepError(
            f"--resume {sweep_dir}: no {SWEEP_JSON} there; give a directory made by ffenergy sweep"
        ) from None
    except json.JSONDecodeError as exc:
        raise SweepError(f"{sweep_dir / SWEEP_JSON} is not valid JSON ({exc}); the sweep cannot be resumed") from None
    sweep = Sweep(d["name"], d["keys"], [Point.from_json(p) for p in d["points"]], d["retries"])
    last = {row["point"]: row for row in read_rows(sweep_dir / INDEX)}
    done = {
        pid
        for pid, row in last.items()
        if row["status"] == "done" and (sweep_dir / row["run_dir"] / "manifest.json").is_file()
    }
    return sweep, done


def connect(address: str | None) -> None:
    """Join the cluster at ``address``, or start a local Ray instance offering this machine's benches."""
    if address is not None:
        # a cluster on loopback: this driver is on the same machine, and must join it there too
        loopback = address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost")
        ray.init(address=address, _node_ip_address="127.0.0.1" if loopback else None)
        return
    resources = machine_resources(machine_offers())
    log.info("starting a local Ray instance with %s", ray_start_flags(resources))
    ray.init(num_cpus=os.cpu_count(), resources=resources, include_dashboard=False, _node_ip_address="127.0.0.1")


def check_resources(points: list[Point]) -> None:
    """Refuse points whose benches no node of the cluster offers (they would wait forever)."""
    offered = ray.cluster_resources()
    for point in points:
        missing = sorted(set(point_resources(point.experiment_config())) - set(offered))
        if missing:
            raise SweepError(
                f"point {point.id}: no node offers {', '.join(missing)}; on the machine with that bench, "
                "run `ffenergy bench` and start its Ray node with the flags it prints"
            )


def run_points(sweep: Sweep, sweep_dir: Path, todo: list[Point], progress: bool = True) -> int:
    """Run ``todo`` on the cluster, appending a row to ``sweep.csv`` as each finishes; returns the failures."""
    columns = ["point", *sweep.keys, *SWEEP_INDEX_COLUMNS]
    pending: dict[Any, Attempt] = {}

    def submit(point: Point, number: int, last_error: str = "") -> None:
        ref = remote_point.options(
            num_cpus=1, resources=point_resources(point.experiment_config()), max_retries=0, name=f"point-{point.id}"
        ).remote(point.to_json())
        pending[ref] = Attempt(point, number, time.monotonic(), last_error)

    for point in todo:
        submit(point, 1)
    failures = 0
    with (
        CsvAppender(sweep_dir / INDEX, columns) as index,
        tqdm(total=len(todo), desc=f"sweep {sweep.name}", unit="point", disable=not progress) as bar,
    ):
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            attempt = pending.pop(ref)
            point = attempt.point
            row: dict[str, Any] = {"point": point.id, **{k: json.dumps(v) for k, v in point.values.items()}}
            try:
                result = ray.get(ref)
            except RayError as exc:
                error = _describe(exc)
                if attempt.number <= sweep.retries:
                    log.warning("point %s: attempt %d failed (%s); retrying", point.id, attempt.number, error)
                    submit(point, attempt.number + 1, error)
                    continue
                failures += 1
                row.update(status="failed", attempts=attempt.number, error=error)
                log.error("point %s failed after %d attempts: %s", point.id, attempt.number, error)
            else:
                run_dir = unpack(result, sweep_dir / RUNS)
                for stale in (sweep_dir / RUNS).glob(f"{point.config['name']}-*"):
                    if stale != run_dir:  # an earlier attempt's, unpacked before the sweep stopped
                        shutil.rmtree(stale)
                row.update(
                    node=result.node,
                    status="done",
                    attempts=attempt.number,
                    error=attempt.last_error,
                    run_dir=str(run_dir.relative_to(sweep_dir)),
                )
                log.info(
                    "point %s done on %s in %.0f s (attempt %d): %s",
                    point.id,
                    result.node,
                    time.monotonic() - attempt.started,
                    attempt.number,
                    row["run_dir"],
                )
            index.write(row)
            bar.update()
    return failures


def _describe(exc: RayError) -> str:
    """One line: the run's own exception for a failed task, Ray's first line for a lost node or worker."""
    cause = exc.cause if isinstance(exc, RayTaskError) else None
    text = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def sweep_command(
    sweep_file: Path | None, address: str | None, resume: Path | None, out_root: Path, progress: bool
) -> int:
    """The ``sweep`` subcommand: 0 when every point is done, 1 when some failed, 2 for an invalid sweep."""
    from ffenergy.sweep.grid import load_sweep

    try:
        if resume is not None:
            sweep, done = load_sweep_dir(resume)
            if sweep_file is not None and load_sweep(sweep_file).points != sweep.points:
                raise SweepError(
                    f"--resume {resume}: {sweep_file} no longer expands to that sweep's points; resume with "
                    f"`ffenergy sweep --resume {resume}` alone (it reads {SWEEP_JSON}), or start a new sweep"
                )
        elif sweep_file is not None:
            sweep, done = load_sweep(sweep_file), set()
        else:
            raise SweepError("sweep: give a SWEEP file (see docs/sweeps.md), or --resume SWEEP_DIR to continue one")
    except SweepError as exc:
        log.error("%s", exc)
        return 2
    todo = [p for p in sweep.points if p.id not in done]
    try:
        connect(address)
    except ConnectionError as exc:
        log.error(
            "sweep: no Ray cluster at %s (%s); start one with `ray start --head` (docs/sweeps.md), "
            "or leave out --address to run on a local instance",
            address,
            exc,
        )
        return 2
    sweep_dir = resume
    try:
        check_resources(todo)
        sweep_dir = resume if resume is not None else start_sweep(sweep, out_root)
        log.info("sweep %s: %d points to run, %d done, in %s", sweep.name, len(todo), len(done), sweep_dir)
        failures = run_points(sweep, sweep_dir, todo, progress)
    except SweepError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        if sweep_dir is not None:
            log.error(
                "interrupted: every finished point is in %s; continue with\n  ffenergy sweep --resume %s",
                sweep_dir / INDEX,
                sweep_dir,
            )
        return 130
    finally:
        ray.shutdown()
    if failures:
        log.error(
            "%d of %d points failed (errors in %s); fix the cause and run only those again with\n"
            "  ffenergy sweep --resume %s",
            failures,
            len(sweep.points),
            sweep_dir / INDEX,
            sweep_dir,
        )
        return 1
    log.info("sweep done: %s (figures: ffenergy plot %s)", sweep_dir / INDEX, sweep_dir)
    return 0
