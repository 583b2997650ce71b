"""Does the firmware compute what the Python side computes? On a finished run's model:

1. the DUT (host build on a pty, or the Cortex-M4F build in QEMU) against the numpy reference of
   the C core: predictions, exit layers, MACs and float32 score bits, every sample, every mode;
2. the numpy reference (fp32 and int8) against the torch model the run evaluated: accuracy and
   agreement of predictions and exit layers.

    python benchmarks/firmware_exactness.py RUN_DIR [--target host|qemu] [--samples N] [--modes full,light]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ffenergy.config import config_of_run
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.firmware.arrays import ExitPolicy
from ffenergy.firmware.export import deploy
from ffenergy.firmware.launch import check_against_reference
from ffenergy.firmware.reference import reference_predict
from ffenergy.learners.exits import ExitSpec, predict
from ffenergy.learners.ff.model import FFNetwork
from ffenergy.procedures import network_kind
from ffenergy.vocabulary import all_modes, forced_depth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--target", choices=["host", "qemu"], default="host")
    ap.add_argument("--samples", type=int, default=0, help="test samples (0 = all)")
    ap.add_argument("--modes", default="", help="comma-separated modes (default: all)")
    ap.add_argument("--procedures", default="mp,op")
    ap.add_argument("--dtypes", default="f32,int8")
    args = ap.parse_args()

    manifest = json.loads((args.run_dir / "manifest.json").read_text())
    calibration = json.loads((args.run_dir / "calibration.json").read_text())
    cfg = config_of_run(manifest)
    data = load_experiment_data(cfg)
    net = FFNetwork(manifest["model"]["dims"], data.n_classes, data.label_value)
    net.load_state_dict(torch.load(args.run_dir / "model.pt", weights_only=True))
    x, y = data.x_test, data.y_test
    if args.samples:
        x, y = x[: args.samples], y[: args.samples]
    modes = args.modes.split(",") if args.modes else all_modes(net.n_layers)
    print(f"{'-'.join(map(str, net.dims))}, {len(x)} test samples, modes {','.join(modes)}, DUT: {args.target}")
    for procedure in args.procedures.split(","):
        cal = calibration[procedure]
        kind = network_kind(procedure)
        policy = ExitPolicy(
            cal["statistic"], np.array(cal["thresholds"], np.float32), cal["prune_after"], cal["prune_keep"]
        )
        arrays = net.to_arrays(kind)
        spec = ExitSpec(kind, cal["statistic"], tuple(cal["thresholds"]), cal["prune_after"], cal["prune_keep"])
        for dtype in args.dtypes.split(","):
            calib = data.x_val[:512] if dtype == "int8" else None
            bad = check_against_reference(arrays, policy, x, args.target, dtype, modes, calib_x=calib)
            model = deploy(arrays, policy, dtype, calib, name=procedure)
            for mode in modes:
                ref = reference_predict(model, x, mode)
                torch_p = predict(net, x, spec, forced_depth(mode, net.n_layers))
                print(
                    f"  {procedure:<9} {dtype:<4} {mode:<8} DUT vs reference: "
                    f"{sum(1 for m in bad if m.mode == mode)} mismatches | accuracy {100 * np.mean(ref.pred == y):6.2f}% "
                    f"(torch {100 * np.mean(torch_p.pred == y):6.2f}%) | same pred as torch "
                    f"{100 * np.mean(ref.pred == torch_p.pred):6.2f}%, same exit {100 * np.mean(ref.exit_layer == torch_p.exit_layer):6.2f}%"
                )


if __name__ == "__main__":
    main()
