"""The run manifest: what ran, where, with which versions, meters and stage states."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import ffenergy
from ffenergy.contract import HIL_FAULTS_KEY, HilFaults, hil_faults, write_json

STAGES = ("data", "model", "calibrate", "evaluate", "measure", "hil", "summary")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def host_info(with_torch: bool = True) -> dict[str, Any]:
    """CPU model, cores, and (``with_torch``) torch's threads, GPU and driver where torch can see one."""
    info: dict[str, Any] = {"os": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count()}
    if not with_torch:
        return info
    import torch

    info.update(torch_threads=torch.get_num_threads(), gpu=None)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def versions(with_torch: bool = True) -> dict[str, str]:
    found = {"ffenergy": ffenergy.__version__, "python": sys.version.split()[0]}
    if with_torch:
        import torch

        found["torch"] = torch.__version__
    return found | {"numpy": np.__version__, "git_commit": _git_commit()}


class Manifest:
    """``manifest.json`` kept on disk after every change (atomic writes)."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def create(cls, path: Path, run_id: str, config: dict, config_hash: str, seed: int) -> Manifest:
        data = {
            "run_id": run_id,
            "config": config,
            "config_hash": config_hash,
            "seed": seed,
            "versions": versions(),
            "host": host_info(),
            "meters": [],
            "targets": {},
            "started": now_iso(),
            "finished": None,
            "stages": dict.fromkeys(STAGES, "pending"),
        }
        manifest = cls(path, data)
        manifest.save()
        return manifest

    @classmethod
    def load(cls, path: Path) -> Manifest:
        import json

        return cls(path, json.loads(path.read_text()))

    def set_stage(self, stage: str, status: str) -> None:
        self.data["stages"][stage] = status
        self.save()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def record_target(self, target: str, entry: dict[str, Any]) -> None:
        """A target's session (``McuSession.manifest()``) under ``targets``; the faults recorded there stay."""
        self.data["targets"].setdefault(target, {}).update(entry)
        self.save()

    def add_hil_faults(self, target: str, procedure: str, ridden: HilFaults) -> None:
        """Add the faults one MCU stage call rode through to those recorded for (target, procedure), so the
        calls of a resumed run add up."""
        recorded = hil_faults(self.data).get(target, {}).get(procedure, HilFaults())
        entry = self.data["targets"].setdefault(target, {}).setdefault(HIL_FAULTS_KEY, {})
        entry[procedure] = dataclasses.asdict(recorded + ridden)
        self.save()

    def save(self) -> None:
        """Write the manifest; absolute paths inside the run directory are written relative to it."""
        write_json(self.path, _relative_to(self.data, self.path.parent.resolve()))


def _relative_to(value: Any, run_dir: Path) -> Any:
    """``value`` with every absolute path inside ``run_dir`` made relative to it (so a manifest holds
    no machine paths, e.g. a simulated meter's pty in the run's session folder)."""
    if isinstance(value, dict):
        return {k: _relative_to(v, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_to(v, run_dir) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        try:
            return Path(value).resolve().relative_to(run_dir).as_posix()
        except ValueError:
            return value
    return value


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
