"""Run directories: one per run, named after the config and its start time, never shared; a new run's
manifest, or a resumed run's with the config changes a resume may make."""

from __future__ import annotations

import itertools
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from ffenergy.config import ExperimentConfig
from ffenergy.experiment.manifest import Manifest
from ffenergy.experiment.procedure import RunError

log = logging.getLogger(__name__)


def new_run_dir(out_root: Path, name: str) -> Path:
    """``out_root/<name>-<YYYYmmdd-HHMMSS>``, created; runs started in the same second get -2, -3, ..."""
    out_root.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        run_dir = out_root / (stem if n == 1 else f"{stem}-{n}")
        try:
            run_dir.mkdir()  # atomic: two processes never get the same directory
            return run_dir
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def new_manifest(cfg: ExperimentConfig, run_dir: Path) -> Manifest:
    """A new run's manifest: its config, the config's hash and where it came from."""
    manifest = Manifest.create(run_dir / "manifest.json", run_dir.name, cfg.to_dict(), cfg.hash(), cfg.seed)
    manifest.update(config_dir=str(cfg.config_dir))
    return manifest


def resumed_manifest(cfg: ExperimentConfig, run_dir: Path) -> Manifest:
    """The manifest of the run to resume; refuses a config that would change what was measured and marks
    the stages a killed process left running as interrupted."""
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


def config_changes(
    old: dict[str, Any], new: dict[str, Any], prefix: str = "", defaults: dict[str, Any] | None = None
) -> list[str]:
    """Dotted names of the fields that differ between two config mappings (e.g. ``model.epochs``). A
    field the old config lacks (a later ffenergy added it) had its default then."""
    defaults = ExperimentConfig().to_dict() if defaults is None else defaults
    changes = []
    for key in sorted(set(old) | set(new)):
        where = f"{prefix}{key}"
        a, b = old.get(key, defaults.get(key)), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = defaults.get(key)
            changes += config_changes(a, b, f"{where}.", sub if isinstance(sub, dict) else {})
        elif a != b:
            changes.append(where)
    return changes
