"""``ffenergy export RUN_DIR``: the trained network and calibrated exit rule of a run, for the firmware."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from ffenergy.config import config_of_run
from ffenergy.data import load_experiment_data
from ffenergy.export import ModelTooLarge, export_model
from ffenergy.ff.arrays import ExitPolicy
from ffenergy.ff.model import FFNetwork
from ffenergy.procedures import network_kind


def export_run(run_dir: Path, procedure: str, dtype: str, board: str, out: Path | None) -> int:
    """Export one procedure of a finished run; 0 on success, 1 with a message otherwise."""
    run_dir = Path(run_dir)
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        calibration = json.loads((run_dir / "calibration.json").read_text())
        state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        print(f"error: {run_dir} is not a finished run ({exc.filename} missing); run ffenergy run first",
              file=sys.stderr)
        return 1
    if procedure not in calibration:
        print(f"error: the run calibrated {', '.join(calibration)}, not {procedure}", file=sys.stderr)
        return 1
    cfg = config_of_run(manifest)
    ds = manifest["dataset"]
    net = FFNetwork(manifest["model"]["dims"], len(ds["classes"]), ds.get("label_value", 1.0))
    net.load_state_dict(state)
    cal = calibration[procedure]
    policy = ExitPolicy(cal["statistic"], np.array(cal["thresholds"], np.float32), cal["prune_after"], cal["prune_keep"])
    calib_x = None
    if dtype == "int8":
        calib_x = load_experiment_data(cfg).x_val[:512]
    out = out or run_dir / f"export-{procedure}-{dtype}"
    try:
        export_model(net.to_arrays(network_kind(procedure)), policy, out,
                     "int8" if dtype == "int8" else "f32", board, calib_x=calib_x, name=procedure)
    except ModelTooLarge as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"build it with: make -C hardware/firmware BOARD={board} MODEL={out.resolve()}")
    return 0
