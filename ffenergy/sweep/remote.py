"""One point on whichever Ray node has its benches: an ordinary run, shipped back as a tar blob.

The run is written to a temporary folder on the node and returned through Ray's object store,
so the driver needs no file system shared with its workers. Each attempt is a fresh run: a
retry may land on another node, which has none of the first attempt's files.
"""

from __future__ import annotations

import functools
import io
import shutil
import socket
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ffenergy.sweep.exclusive import measuring
from ffenergy.sweep.grid import Point


@dataclass(frozen=True)
class PointResult:
    point_id: str
    node: str  # "<host name>/<Ray node id prefix>"
    run_name: str  # the run directory's name
    tarball: bytes  # the run directory, as a tar of its files


def run_point(point_json: dict[str, Any]) -> PointResult:
    """Run one point into a temporary folder on this node and pack its run directory."""
    from ffenergy.experiment.runner import RunOptions, run_experiment

    point = Point.from_json(point_json)
    node_id = ray.get_runtime_context().get_node_id()
    node = f"{socket.gethostname()}/{node_id[:8]}"
    with tempfile.TemporaryDirectory(prefix="ffenergy-point-") as tmp:
        opts = RunOptions(out_root=Path(tmp), progress=False, measuring=functools.partial(measuring, node_id))
        run_dir, _ = run_experiment(point.experiment_config(), opts)
        return PointResult(point.id, node, run_dir.name, pack(run_dir))


remote_point = ray.remote(run_point)


def pack(run_dir: Path) -> bytes:
    """The run directory's folders and plain files (not the pipes or sockets a hil session leaves)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(run_dir, arcname=run_dir.name, filter=lambda m: m if m.isfile() or m.isdir() else None)
    return buf.getvalue()


def unpack(result: PointResult, runs_root: Path) -> Path:
    """Unpack a point's run directory under ``runs_root`` whole (a crash never leaves half of one)."""
    runs_root.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".incoming-{result.point_id}-", dir=runs_root))
    try:
        with tarfile.open(fileobj=io.BytesIO(result.tarball), mode="r") as tar:
            tar.extractall(incoming, filter="data")
        final = runs_root / result.run_name
        (incoming / result.run_name).replace(final)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return final
