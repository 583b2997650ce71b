"""PEPITA's accuracy against depth: the config's PEPITA recipe trained on other hidden widths.

The experiment pipeline needs two hidden layers or more (an exit before the last); the PEPITA
paper's MNIST network has one. This trains ``Pepita`` (the learner itself, the config's
``model.options.pepita``, seed, batch and epochs) on ``--hidden`` widths and logs, per depth,
the test and validation accuracy of its exits (the last one is PEPITA's own output layer).
No calibration, no early exit: accuracies of each depth alone.

    python benchmarks/pepita_depth.py experiments/mnist-full-pepita-paper.yaml --hidden 1024
"""

import argparse
import dataclasses
import logging

import torch

from ffenergy.config import InferenceConfig, load_config
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.exits import depth_accuracies
from ffenergy.learners.pepita import Pepita

log = logging.getLogger("pepita_depth")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="an experiment YAML with model.options.pepita")
    ap.add_argument("--hidden", type=int, nargs="+", required=True, help="hidden widths, e.g. 1024")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.config)
    model = dataclasses.replace(cfg.model, hidden=args.hidden)
    data = load_experiment_data(cfg)
    dims = [data.n_features, *model.hidden]
    torch.manual_seed(cfg.seed)
    net = Pepita.build(dims, data.n_classes, data.label_value)
    info = Pepita.fit(net, data.x_train, data.y_train, model, cfg.seed, "cpu", False, EpochCheckpoint())
    learner = Pepita("pepita", net.eval(), InferenceConfig())
    log.info("dims %s, torch threads %d, %.0f s of training", dims, torch.get_num_threads(), info["train_seconds"])
    log.info("train error of the last epoch %.4f", info["train_error"][-1])
    for split, x, y in (("validation", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
        accs = depth_accuracies(learner, x, y)
        log.info("%s accuracy by depth: %s", split, ", ".join(f"{k + 1}: {a:.2%}" for k, a in enumerate(accs)))


if __name__ == "__main__":
    main()
