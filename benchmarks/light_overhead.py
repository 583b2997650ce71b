"""Light (early-exit) inference time vs the ideal implied by its own exit distribution.

ideal = sum_k p_k * time(depth-k), with p_k the fraction of samples light mode exits at layer k.
overhead = time(light) / ideal - 1: the cost of confidence checks and batch compaction.
Modes are timed interleaved, several rounds, median per mode (this machine is shared and noisy).

    python benchmarks/light_overhead.py [experiments/mnist.yaml] [--rounds 7]

Uses the config's cached model (run the config once first) or trains it.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from ffenergy.config import load_config
from ffenergy.data import load_experiment_data
from ffenergy.experiment.model_cache import load_or_train
from ffenergy.ff.calibrate import calibrate
from ffenergy.ff.inference import ExitSpec, batched_depth_scores, exits_from_scores, infer


def time_mode(net, batches, spec, depth) -> float:
    start = time.perf_counter()
    for xb in batches:
        infer(net, xb, spec, depth)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="experiments/mnist.yaml")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--samples", type=int, default=2000, help="test samples timed per mode and round")
    args = ap.parse_args()
    cfg = load_config(args.config)
    data = load_experiment_data(cfg)
    net, _ = load_or_train(cfg, data, log=lambda s: None)
    x = data.x_test[: args.samples]
    print(f"torch threads: {torch.get_num_threads()}, samples: {len(x)}, network {'-'.join(map(str, net.dims))}")
    print(f"{'procedure':<10} {'batch':>5} {'light us/inf':>12} {'ideal us/inf':>12} {'overhead':>9}  exits p_k")
    for name, base in [("mp", ExitSpec("mp", cfg.inference.mp_statistic)), ("op", ExitSpec("op", cfg.inference.op_statistic))]:
        cal = calibrate(batched_depth_scores(net, data.x_val, base, 1024, "cpu"), data.y_val, base)
        th = cal.thresholds(cfg.inference.alpha)
        spec = ExitSpec(base.procedure, base.statistic, tuple(th.tolist()))
        for batch in (1, 1024):
            n = len(x) if batch > 1 else min(len(x), 300)
            batches = [torch.from_numpy(x[i : i + batch]) for i in range(0, n, batch)]
            _, exits = exits_from_scores(batched_depth_scores(net, x[:n], base, 1024, "cpu"), base, th)
            p = np.bincount(exits, minlength=net.n_layers + 1)[1:] / n
            times: dict = {m: [] for m in ["light"] + list(range(1, net.n_layers + 1))}
            for _ in range(args.rounds):
                for mode in times:
                    times[mode].append(time_mode(net, batches, spec, None if mode == "light" else mode) / n)
            med = {m: statistics.median(v) for m, v in times.items()}
            ideal = sum(p[k - 1] * med[k] for k in range(1, net.n_layers + 1))
            print(f"{name:<10} {batch:>5} {med['light'] * 1e6:>12.1f} {ideal * 1e6:>12.1f} "
                  f"{med['light'] / ideal - 1:>+9.1%}  {' '.join(f'{v:.3f}' for v in p)}")


if __name__ == "__main__":
    main()
