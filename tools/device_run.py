"""Run an experiment on a lent GPU machine with the data and wheels carried in gpu-carry/
(prepare it with: pip download pyyaml tqdm pyserial scipy for the device's Python into gpu-carry/wheels,
and copy the four MNIST IDX files into gpu-carry/mnist).

    python tools/device_run.py experiments/mnist-full.yaml OUT_DIR

The data path is pointed at gpu-carry/mnist; everything else comes from the config.
Interrupt (SIGINT) keeps every finished window, like ``ffenergy run``.
"""

import sys
from pathlib import Path

from ffenergy.cli import setup_logging
from ffenergy.config import load_config
from ffenergy.experiment.runner import RunOptions, run_experiment
from ffenergy.experiment.table import format_summary

setup_logging()  # the runner's progress lines, as ffenergy run shows them
cfg = load_config(sys.argv[1])
cfg.data.path, cfg.config_dir = "gpu-carry/mnist", Path(".")
run_dir, rows = run_experiment(cfg, RunOptions(out_root=Path(sys.argv[2]), progress=False))
print(format_summary(rows))
