"""Light (early-exit) inference time vs the ideal implied by its own exit distribution.

ideal = sum_k p_k * time(depth-k), with p_k the fraction of samples light mode exits at layer k.
overhead = time(light) / ideal - 1: the cost of confidence checks and batch compaction, plus that
of mixing depths: the ideal times each depth on its own, so its weights stay in cache across
samples, which no mix of exits allows. The oracle separates the two: it is told every sample's
exit depth and runs each batch's samples grouped by depth, forced to it (no check, no
compaction), in the samples' own order; light / oracle - 1 is the exit machinery's own cost.
At batch sizes above one the pooled light mode (``infer_pooled``, a throughput mode) is timed too:
the same stream of batches, with the rows that stay after a layer pooled across batches until a
full batch of them waits for the next layer, so deeper layers run on full batches as the ideal
assumes, instead of on one batch's survivors. Pools fill only in a stream long against
batch / p_k, so at batch 1024 every mode runs over --stream samples: the test samples repeated
(the ends of the stream still run smaller pools: what waits when the input ends).
Modes are timed interleaved, several rounds; the overhead is computed within each round (light
and its ideal measured side by side) and its median and interquartile range over the rounds
printed (this machine is shared and noisy).
Each round visits the modes in a fresh random order and times every mode's second pass over the
samples: a mode is timed in its steady state (its weights in cache, as when it serves requests),
not in whatever state the previous mode left the caches (light used to follow depth-3 in every
round, and so found the caches as depth-3 had left them, which no depth-k mode ever did).

    python benchmarks/light_overhead.py [experiments/mnist.yaml] [--rounds 11] [--return-freed-memory]

Uses the config's cached model (run the config once first) or trains it.
"""

import argparse
import math
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from ffenergy.config import load_config
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.experiment.model_cache import load_or_train
from ffenergy.learners import LEARNERS
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.exits import batched_depth_scores, exits_from_scores, infer, infer_pooled
from ffenergy.targets.allocator import keep_freed_memory


def time_calls(calls: list[Callable[[], object]]) -> float:
    """Seconds for the second of two passes over ``calls`` (the first pass warms the caches)."""
    for call in calls:
        call()
    start = time.perf_counter()
    for call in calls:
        call()
    return time.perf_counter() - start


def oracle_calls(learner, batches, exits, batch) -> list[Callable[[], object]]:
    """The oracle's calls: each batch's samples split by exit depth, forced there (shallow first)."""
    calls = []
    for i, xb in enumerate(batches):
        e = exits[i * batch : i * batch + len(xb)]
        calls += [partial(infer, learner, xb[torch.from_numpy(e == d)], None, int(d)) for d in np.unique(e)]
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="experiments/mnist.yaml")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--samples", type=int, default=2000, help="test samples used (at most)")
    ap.add_argument(
        "--stream", type=int, default=10240, help="inputs per mode and round at batch 1024 (the samples repeated)"
    )
    ap.add_argument("--procedures", default="mp,op", help="comma-separated procedures (learner names)")
    ap.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="leave glibc's default (freed blocks go back to the OS) instead of the cpu target's setting",
    )
    args = ap.parse_args()
    kept = not args.return_freed_memory and keep_freed_memory()
    cfg = load_config(args.config)
    data = load_experiment_data(cfg)
    x = data.x_test[: args.samples]
    rng = np.random.default_rng(0)
    print(
        f"torch threads: {torch.get_num_threads()}, samples: {len(x)} (300 at batch 1, {args.stream} at batch 1024), "
        f"hidden {cfg.model.hidden}, "
        f"freed memory {'kept' if kept else 'returned to the OS'}"
    )
    ratios = [("light", "ideal"), ("light", "oracle"), ("pooled", "ideal")]
    print(
        f"{'procedure':<10} {'batch':>5} "
        + " ".join(f"{f'{m} us/inf':>13}" for m in ("light", "pooled", "ideal", "oracle"))
        + " "
        + " ".join(f"{f'{m} vs {r}':>16} {'[IQR]':>16}" for m, r in ratios)
        + "  exits p_k"
    )
    for name in args.procedures.split(","):
        cls = LEARNERS.get(name)
        learner = cls(name, load_or_train(cls, cfg, data, progress=False)[0], cfg.inference)
        cal = calibrate(learner, batched_depth_scores(learner, data.x_val, 1024), data.y_val)
        th = cal.thresholds(cfg.inference.alpha)
        thresholds = tuple(th.tolist())
        for batch in (1, 1024):
            xs = np.resize(x, (args.stream, x.shape[1])) if batch > 1 else x[:300]
            n = len(xs)
            batches = [torch.from_numpy(xs[i : i + batch]) for i in range(0, n, batch)]
            _, exits = exits_from_scores(learner, batched_depth_scores(learner, xs, 1024), th)
            p = np.bincount(exits, minlength=learner.n_layers + 1)[1:] / n
            calls = {"light": [partial(infer, learner, xb, thresholds, None) for xb in batches]}
            calls |= {
                k: [partial(infer, learner, xb, thresholds, k) for xb in batches]
                for k in range(1, learner.n_layers + 1)
            }
            calls["oracle"] = oracle_calls(learner, batches, exits, batch)
            if batch > 1:  # pooling needs batches to pool across
                calls["pooled"] = [partial(infer_pooled, learner, torch.from_numpy(xs), thresholds, batch)]
            modes = list(calls)
            times: dict[str, list[float]] = {key: [] for key in ("light", "pooled", "ideal", "oracle")}
            for _ in range(args.rounds):
                t = {}
                for i in rng.permutation(len(modes)):
                    t[modes[i]] = time_calls(calls[modes[i]]) / n
                t["ideal"] = sum(p[k - 1] * t[k] for k in range(1, learner.n_layers + 1))
                for key in times:
                    times[key].append(t.get(key, math.nan))
            row = f"{name:<10} {batch:>5} " + " ".join(f"{statistics.median(v) * 1e6:>13.1f}" for v in times.values())
            for mode, ref in ratios:
                q1, med, q3 = np.percentile(np.array(times[mode]) / np.array(times[ref]) - 1, [25, 50, 75])
                row += f" {med:>+16.1%} [{q1:+.1%}, {q3:+.1%}]" if mode in calls else f" {'-':>16} {'':>16}"
            print(row + f"  {' '.join(f'{v:.3f}' for v in p)}")


if __name__ == "__main__":
    main()
