"""Factorised MP layer 1 on a paper-sized network: MACs, prediction flips and wall time vs the direct form.

The direct form is what MP ran before the factorisation: C label overlays through layer 1, one
full product each (``net.layer(0, .)`` on N*C rows). The network (784-2000x4 by default) is
trained briefly on a slice of the config's training split (these numbers are about the
arithmetic, not accuracy); light MP is calibrated on validation, then on the test split:

- MACs per inference at depth 1, light and full, as run and in the paper's count;
- predictions and exits of light / depth-k / full, factorised vs direct; a flip is reported with
  the direct scores' top-2 gap at that depth (a float tie flips; a large gap would be a bug);
- wall time per inference of light and full MP at --batch (median of --repeats), both forms.

    python benchmarks/mp_first_layer.py [experiments/mnist.yaml] [--state ff-2000x4.pt]
"""

import argparse
import logging
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ffenergy.config import ModelConfig, load_config
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.learners import LEARNERS
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.exits import batched_depth_scores, infer, predict
from ffenergy.learners.ff.model import FFNetwork

log = logging.getLogger("mp_first_layer")


@contextmanager
def direct_first_layer(net: FFNetwork):
    """Run MP layer 1 the direct way: one overlay copy of each row per label, one product each."""

    def direct(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = x[:, None, :].repeat(1, len(labels), 1)
        h[:, :, : net.n_classes] = 0.0
        h[:, torch.arange(len(labels)), labels] = net.label_value
        return net.layer(0, h.reshape(-1, h.shape[2])).reshape(len(x), len(labels), -1)

    with mock.patch.object(net, "label_layer", direct):
        yield


def wall_per_inference(learner, x: np.ndarray, thresholds, depth, batch: int, repeats: int) -> float:
    batches = [torch.from_numpy(x[i : i + batch]) for i in range(0, len(x), batch)]
    times = []
    for _ in range(repeats + 1):  # the first pass warms the caches
        start = time.perf_counter()
        for xb in batches:
            infer(learner, xb, thresholds, depth)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="experiments/mnist.yaml")
    ap.add_argument("--hidden", default="2000,2000,2000,2000")
    ap.add_argument("--train-samples", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--val-samples", type=int, default=500)
    ap.add_argument("--samples", type=int, default=1000, help="test samples")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--state", type=Path, help="weights file: loaded if present, else written after training")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.config)
    data = load_experiment_data(cfg)
    dims = [data.x_train.shape[1], *map(int, args.hidden.split(","))]
    torch.manual_seed(cfg.seed)
    cls = LEARNERS.get("mp")
    net = cls.build(dims, data.n_classes, data.label_value)
    if args.state and args.state.exists():
        net.load_state_dict(torch.load(args.state))
    else:
        n = args.train_samples
        model = ModelConfig(hidden=dims[1:], epochs=args.epochs, device="cpu")
        cls.fit(
            net,
            data.x_train[:n],
            data.y_train[:n],
            model,
            cfg.seed,
            "cpu",
            progress=False,
            checkpoint=EpochCheckpoint(),
        )
        if args.state:
            torch.save(net.state_dict(), args.state)
    learner = cls("mp", net.eval(), cfg.inference)
    cal = calibrate(
        learner, batched_depth_scores(learner, data.x_val[: args.val_samples]), data.y_val[: args.val_samples]
    )
    th = cal.thresholds(cfg.inference.alpha)
    thresholds = tuple(th.tolist())
    x, y = data.x_test[: args.samples], data.y_test[: args.samples]
    log.info("torch threads %d, dims %s, %d test samples", torch.get_num_threads(), dims, len(x))

    cost, naive = learner.macs_at_exit(), learner.naive_macs_at_exit()
    light = predict(learner, x, thresholds, None)
    log.info(
        "MACs/inference (as run | paper's count): depth-1 %.3f M | %.3f M, light %.3f M | %.3f M, full %.3f M | %.3f M",
        cost[0] / 1e6,
        naive[0] / 1e6,
        light.macs.mean() / 1e6,
        naive[light.exit_layer - 1].mean() / 1e6,
        cost[-1] / 1e6,
        naive[-1] / 1e6,
    )
    log.info(
        "light exits p_k: %s; accuracy %.4f",
        " ".join(f"{v:.3f}" for v in np.bincount(light.exit_layer, minlength=len(dims))[1:] / len(x)),
        np.mean(light.pred == y),
    )
    fact_scores = batched_depth_scores(learner, x)
    with direct_first_layer(net):
        direct_scores = batched_depth_scores(learner, x)
        direct_light = predict(learner, x, thresholds, None)
    for k, (f, d) in enumerate(zip(fact_scores, direct_scores), 1):
        flips = np.flatnonzero(f.argmax(1).numpy() != d.argmax(1).numpy())
        gap = torch.topk(d, 2, dim=1).values
        gaps = (gap[:, 0] - gap[:, 1]).numpy()
        rel = float((f - d).abs().max() / d.abs().max())
        log.info(
            "depth-%d: %d prediction flips (direct top-2 gaps %s; median gap %.3g), max |score diff| / max score %.2e",
            k,
            len(flips),
            np.round(gaps[flips], 6).tolist(),
            np.median(gaps),
            rel,
        )
    moved = np.flatnonzero((light.pred != direct_light.pred) | (light.exit_layer != direct_light.exit_layer))
    log.info("light: %d samples change prediction or exit layer", len(moved))

    for name, depth in (("light", None), ("full", len(dims) - 1)):
        t_fact = wall_per_inference(learner, x, thresholds, depth, args.batch, args.repeats)
        with direct_first_layer(net):
            t_direct = wall_per_inference(learner, x, thresholds, depth, args.batch, args.repeats)
        log.info(
            "%s MP at batch %d: %.1f us/inference factorised, %.1f us direct (%.2fx)",
            name,
            args.batch,
            t_fact * 1e6,
            t_direct * 1e6,
            t_direct / t_fact,
        )


if __name__ == "__main__":
    main()
