"""``ffenergy export RUN_DIR``: the trained network and calibrated exit rule of a run, for the firmware."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ffenergy.config import ConfigError, ExperimentConfig, config_of_run
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.firmware.boards import BOARDS, buildable_boards
from ffenergy.firmware.deployed import DType
from ffenergy.firmware.export import ModelTooLarge, export_model
from ffenergy.firmware.launch import make_command
from ffenergy.learners import LEARNERS
from ffenergy.learners.base import Learner, NotDeployable

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The run cannot be exported; the message says why and what to do."""


@dataclass
class RunLearner:
    """One procedure of a finished run, rebuilt from its files: the trained learner and its exit rule."""

    learner: Learner
    config: ExperimentConfig
    thresholds: np.ndarray  # float32, shape (L,), as calibrated


def load_learner(run_dir: Path, procedure: str) -> RunLearner:
    """Rebuild ``procedure`` of the run in ``run_dir`` from manifest.json, calibration.json and model.pt."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir} is not a folder; give a run directory made by ffenergy run (results/<run-id>)")
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        calibration = json.loads((run_dir / "calibration.json").read_text())
        blob = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ExportError(f"{run_dir} is not a finished run ({exc.filename} missing); run ffenergy run first") from None
    if procedure not in calibration:
        raise ExportError(f"the run calibrated {', '.join(calibration)}, not {procedure}")
    try:
        cfg = config_of_run(manifest)
    except ConfigError as exc:
        raise ExportError(f"the run's config no longer validates: {exc}") from None
    cls = LEARNERS.get(procedure)
    ds = manifest["dataset"]
    net = cls.build(manifest["model"]["dims"], len(ds["classes"]), ds.get("label_value", 1.0))
    # model.pt: {"networks": {network_id: state}}; runs before ffenergy 0.2 saved the FF state alone
    net.load_state_dict(blob["networks"][cls.network_id] if "networks" in blob else blob)
    net.eval()
    # null: a layer that never exits (a threshold of +inf, which JSON cannot hold)
    thresholds = np.array([np.inf if t is None else t for t in calibration[procedure]["thresholds"]], np.float32)
    return RunLearner(cls(procedure, net, cfg.inference), cfg, thresholds)


def export_run(run_dir: Path, procedure: str, dtype: DType, board: str, out: Path | None) -> Path:
    """Export one procedure of a finished run; the export folder. ``dtype``: f32 or int8."""
    run = load_learner(run_dir, procedure)
    try:
        arrays, policy = run.learner.firmware(run.thresholds)
    except NotDeployable as exc:
        raise ExportError(str(exc)) from None
    calib_x = load_experiment_data(run.config).x_val[:512] if dtype == "int8" else None
    out = out or Path(run_dir) / f"export-{procedure}-{dtype}"
    try:
        export_model(arrays, policy, out, dtype, board, calib_x=calib_x, name=procedure)
    except ModelTooLarge as exc:
        raise ExportError(str(exc)) from None
    if BOARDS.get(board).buildable:
        log.info("build it with: %s", make_command(out.resolve(), board))
    else:
        buildable = ", ".join(b for b in buildable_boards() if b != "host")
        log.info(
            "%s is a memory budget with no HAL to build for: the model fits it; build the export for a board "
            "with a HAL (%s): %s",
            board,
            buildable,
            make_command(out.resolve(), "BOARD"),
        )
    return out
