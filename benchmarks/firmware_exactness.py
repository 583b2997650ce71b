"""Does the firmware compute what the Python side computes? On a finished run's model:

1. the DUT (host build on a pty, or the Cortex-M4F build in QEMU) against the numpy reference of
   the C core: predictions, exit layers, MACs and float32 score bits, every sample, every mode;
2. the numpy reference (fp32 and int8) against the torch model the run evaluated: accuracy and
   agreement of predictions and exit layers.

    python benchmarks/firmware_exactness.py RUN_DIR [--target host|qemu] [--samples N] [--modes full,light]
"""

import argparse
from pathlib import Path

import numpy as np

from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.experiment.export_run import load_learner
from ffenergy.firmware.export import deploy
from ffenergy.firmware.launch import check_against_reference
from ffenergy.firmware.reference import reference_predict
from ffenergy.learners.exits import predict
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

    procedures = [load_learner(args.run_dir, name) for name in args.procedures.split(",")]
    data = load_experiment_data(procedures[0].config)
    x, y = data.x_test, data.y_test
    if args.samples:
        x, y = x[: args.samples], y[: args.samples]
    first = procedures[0].learner
    modes = args.modes.split(",") if args.modes else all_modes(first.n_layers)
    print(f"{'-'.join(map(str, first.dims))}, {len(x)} test samples, modes {','.join(modes)}, DUT: {args.target}")
    for run in procedures:
        learner = run.learner
        arrays, policy = learner.firmware(run.thresholds)
        for dtype in args.dtypes.split(","):
            calib = data.x_val[:512] if dtype == "int8" else None
            bad = check_against_reference(arrays, policy, x, args.target, dtype, modes, calib_x=calib)
            model = deploy(arrays, policy, dtype, calib, name=learner.name)
            for mode in modes:
                ref = reference_predict(model, x, mode)
                torch_p = predict(learner, x, tuple(run.thresholds.tolist()), forced_depth(mode, learner.n_layers))
                print(
                    f"  {learner.name:<9} {dtype:<4} {mode:<8} DUT vs reference: "
                    f"{sum(1 for m in bad if m.mode == mode)} mismatches | accuracy {100 * np.mean(ref.pred == y):6.2f}% "
                    f"(torch {100 * np.mean(torch_p.pred == y):6.2f}%) | same pred as torch "
                    f"{100 * np.mean(ref.pred == torch_p.pred):6.2f}%, same exit {100 * np.mean(ref.exit_layer == torch_p.exit_layer):6.2f}%"
                )


if __name__ == "__main__":
    main()
