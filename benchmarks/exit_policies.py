"""Exit policies over many calibration/test resplits: does the risk guarantee hold, and what does each policy buy?

The validation and test splits of a config are pooled; each of ``--resplits`` rounds draws a fresh
calibration set of the validation split's size from the pool (the rest is the test set), chooses
thresholds with every policy on the calibration set and scores them on the test set:

- ``grid``: today's rule (largest ``inference.alpha_sweep`` value within ``max_loss_pp`` on calibration);
- ``risk-alpha``, ``risk-layer``: Learn-then-Test on the disagreement with the full network over the
  alpha path / the greedy per-layer path; ``risk-layer-acc`` the same with the accuracy loss;
- ``budget``: the most accurate rule on calibration within ``--budget-fraction`` of the full MACs.

Per policy: how often the realised test loss exceeds epsilon (the guarantee: at most delta, up to the
binomial error of the number of resplits), mean test accuracy and its loss against the full network,
the mean MAC reduction (full / light, full of the reference procedure) in the MACs that run (with MP's
factorised layer 1 these exceed the paper-count reductions of summary.csv) and in the paper's count,
and ``alpha@acc``: the MAC reduction (as run) of the best single-alpha rule (mu, sigma from the same calibration set, any alpha in the
policy's alpha range, picked on the test set itself: an oracle) whose test accuracy is at least the
policy's, so ``gain`` > 1 means the policy saves more MACs than any single alpha at equal accuracy.
``--figure`` draws each policy's mean operating point on the mean single-alpha curve of its procedure.

    nice python benchmarks/exit_policies.py experiments/mnist.yaml [--resplits 100] [--epsilon 0.005]
        [--delta 0.1] [--procedures mp,op] [--epochs N] [--csv out.csv] [--figure out.png]

Uses the config's cached model (run the config once first) or trains it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ffenergy.config import PolicyConfig, load_config
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.experiment.model_cache import load_or_train
from ffenergy.learners import LEARNERS
from ffenergy.learners.base import Learner
from ffenergy.learners.calibrate import calibrate, select_alpha
from ffenergy.learners.exits import batched_depth_scores
from ffenergy.learners.policy import DepthView, alpha_values, budget_policy, risk_policy

log = logging.getLogger("exit_policies")

POLICIES = ["grid", "risk-alpha", "risk-layer", "risk-layer-acc", "budget"]


@dataclass(frozen=True)
class Counts:
    """The reference procedure's full MACs in both counts, and the paper-count MACs of an exit at each depth."""

    full: float
    full_paper: float
    paper_at_exit: np.ndarray

    @classmethod
    def of(cls, learner: Learner, ref: Learner) -> Counts:
        return cls(
            float(ref.macs_at_exit()[-1]),
            float(ref.naive_macs_at_exit()[-1]),
            learner.naive_macs_at_exit().astype(np.float64),
        )

    def paper_reduction(self, exit_layer: np.ndarray) -> float:
        return self.full_paper / float(self.paper_at_exit[exit_layer - 1].mean())


@dataclass
class Outcome:
    """One policy on one resplit's test set."""

    accuracy: float
    full_accuracy: float
    loss: float  # the policy's own loss on test (disagreement or accuracy; grid and budget: disagreement)
    mac_reduction: float  # full / light in the MACs that run
    paper_mac_reduction: float  # the same in the paper's count (MP: every candidate label runs layer 1 in full)
    alpha_at_accuracy: float  # best single-alpha MAC reduction (as run) at >= this test accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="experiments/mnist.yaml")
    ap.add_argument("--resplits", type=int, default=100)
    ap.add_argument("--epsilon", type=float, default=0.005)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--budget-fraction", type=float, default=0.5, help="budget policy: MACs allowed / full MACs")
    ap.add_argument("--procedures", default="mp,op", help="comma-separated procedures (learner names)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, help="train for this many epochs instead of the config's (a smaller model)")
    ap.add_argument("--csv", help="write one row per (procedure, policy, resplit) here")
    ap.add_argument("--figure", help="draw test accuracy against MACs: each policy's mean operating point")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.config)
    if args.epochs:
        cfg.model.epochs = args.epochs
    data = load_experiment_data(cfg)
    x_pool = np.concatenate([data.x_val, data.x_test])
    y_pool = np.concatenate([data.y_val, data.y_test])
    n_cal = len(data.y_val)
    risk = PolicyConfig(kind="risk", epsilon=args.epsilon, delta=args.delta)
    print(
        f"{args.config} ({cfg.model.epochs} epochs): pool {len(y_pool)} (calibration {n_cal}, test {len(y_pool) - n_cal}), {args.resplits} "
        f"resplits, epsilon {args.epsilon:g}, delta {args.delta:g}; binomial error of the violation rate at "
        f"delta: +-{2 * math.sqrt(args.delta * (1 - args.delta) / args.resplits):.3f} (2 sd)"
    )
    learners: dict[str, Learner] = {}
    rows: list[dict] = []
    curves: dict[str, np.ndarray] = {}  # procedure -> mean over resplits of the single-alpha (accuracy, reduction)
    for name in args.procedures.split(","):
        cls = LEARNERS.get(name)
        learner = cls(name, load_or_train(cls, cfg, data, progress=False)[0], cfg.inference)
        learners[name] = learner
        ref = learners.get(learner.reference) or _reference(learner, cfg, data)
        counts = Counts.of(learner, ref)
        scores = batched_depth_scores(learner, x_pool, cfg.inference.batch_size)
        view = DepthView.of(learner, scores)
        rng = np.random.default_rng(args.seed)
        results: dict[str, list[Outcome]] = {p: [] for p in POLICIES}
        resplit_curves = []
        for r in range(args.resplits):
            order = rng.permutation(len(y_pool))
            cal_idx, test_idx = np.sort(order[:n_cal]), np.sort(order[n_cal:])
            outcomes, curve = _one_resplit(
                learner, scores, view, y_pool, cal_idx, test_idx, cfg, risk, counts, args, seed=r
            )
            resplit_curves.append(curve)
            for policy, o in outcomes.items():
                results[policy].append(o)
                rows.append({"procedure": name, "policy": policy, "resplit": r, **o.__dict__})
        curves[name] = np.mean(resplit_curves, axis=0)
        _print(name, results, args.epsilon, args.delta)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if args.figure:
        _figure(rows, curves, args.figure, args.config)


def _reference(learner: Learner, cfg, data) -> Learner:
    cls = LEARNERS.get(learner.reference)
    return cls(learner.reference, load_or_train(cls, cfg, data, progress=False)[0], cfg.inference)


def _one_resplit(
    learner: Learner,
    scores: list[torch.Tensor],
    view: DepthView,
    y: np.ndarray,
    cal_idx: np.ndarray,
    test_idx: np.ndarray,
    cfg,
    risk: PolicyConfig,
    counts: Counts,
    args: argparse.Namespace,
    seed: int,
) -> tuple[dict[str, Outcome], list[tuple[float, float]]]:
    """Every policy's outcome on this resplit's test set, and the single-alpha curve (accuracy, MAC reduction) there."""
    cal_scores = [s[torch.from_numpy(cal_idx)] for s in scores]
    cal_view, test_view = view.subset(cal_idx), view.subset(test_idx)
    y_cal, y_test = y[cal_idx], y[test_idx]
    cal = calibrate(learner, cal_scores, y_cal)

    def mu_sigma(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = calibrate(learner, [s[torch.from_numpy(idx)] for s in cal_scores], y_cal[idx])
        return c.mu, c.sigma

    inf = cfg.inference
    alpha = select_alpha(learner, cal_scores, y_cal, cal, inf.alpha_sweep, inf.max_loss_pp)
    thresholds = {
        "grid": cal.thresholds(alpha).astype(np.float64),
        "risk-alpha": risk_policy(cal_view, y_cal, mu_sigma, replace(risk, family="alpha"), seed).thresholds,
        "risk-layer": risk_policy(cal_view, y_cal, mu_sigma, risk, seed).thresholds,
        "risk-layer-acc": risk_policy(cal_view, y_cal, mu_sigma, replace(risk, loss="accuracy"), seed).thresholds,
        "budget": budget_policy(
            cal_view,
            y_cal,
            cal.mu,
            cal.sigma,
            PolicyConfig(kind="budget", macs_per_inference=args.budget_fraction * counts.full),
        ).thresholds,
    }
    full = test_view.full
    full_acc = float(np.mean(full == y_test))
    curve = []  # the single-alpha rules on test: (accuracy, mac reduction)
    for a in alpha_values(risk):
        light, exits = test_view.light(cal.mu - a * cal.sigma)
        curve.append((float(np.mean(light == y_test)), counts.full / test_view.mean_macs(exits)))
    out = {}
    for policy, th in thresholds.items():
        light, exits = test_view.light(th)
        acc = float(np.mean(light == y_test))
        if policy == "risk-layer-acc":
            loss = float(np.mean((full == y_test) & (light != y_test)))
        else:
            loss = float(np.mean(light != full))
        reduction = counts.full / test_view.mean_macs(exits)
        at_acc = max([red for a, red in curve if a >= acc], default=counts.full / float(test_view.macs[-1]))
        out[policy] = Outcome(acc, full_acc, loss, reduction, counts.paper_reduction(exits), at_acc)
    return out, curve


def _print(name: str, results: dict[str, list[Outcome]], epsilon: float, delta: float) -> None:
    print(f"\n{name}: test loss > epsilon in how many resplits (risk policies must stay <= {delta:g})")
    print(
        f"{'policy':<15} {'violations':>10} {'loss':>7} {'acc %':>7} {'full %':>7} {'Δacc pp':>8} "
        f"{'MAC red.':>8} {'paper':>7} {'alpha@acc':>9} {'gain':>6}  (MACs as run; paper: the paper's count)"
    )
    for policy, outs in results.items():
        loss = np.array([o.loss for o in outs])
        acc = np.array([o.accuracy for o in outs])
        full = np.array([o.full_accuracy for o in outs])
        red = np.array([o.mac_reduction for o in outs])
        paper = np.array([o.paper_mac_reduction for o in outs])
        at = np.array([o.alpha_at_accuracy for o in outs])
        print(
            f"{policy:<15} {np.mean(loss > epsilon):>10.2f} {loss.mean():>7.4f} {100 * acc.mean():>7.2f} "
            f"{100 * full.mean():>7.2f} {100 * (full - acc).mean():>8.2f} {red.mean():>7.2f}x {paper.mean():>6.2f}x {at.mean():>8.2f}x "
            f"{np.mean(red / at):>6.3f}"
        )


def _figure(rows: list[dict], curves: dict[str, np.ndarray], path: str, config: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for j, (proc, curve) in enumerate(curves.items()):
        ax.plot(
            curve[:, 1], 100 * curve[:, 0], ("-", "--", ":", "-.")[j % 4], color="grey", lw=1, label=f"{proc}: single α"
        )
        for i, policy in enumerate(POLICIES):
            sel = [r for r in rows if (r["procedure"], r["policy"]) == (proc, policy)]
            red = np.mean([r["mac_reduction"] for r in sel])
            acc = 100 * np.mean([r["accuracy"] for r in sel])
            ax.plot(red, acc, "osD^v"[i % 5], color=f"C{i}", mec="black", label=policy if j == 0 else None)
            ax.annotate(proc, (red, acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
        full = 100 * np.mean([r["full_accuracy"] for r in rows if r["procedure"] == proc])
        ax.axhline(full, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("MAC reduction as run (full / light), mean over resplits")
    ax.set_ylabel("test accuracy (%), mean over resplits")
    ax.set_title(f"Exit policies' operating points ({config}); dotted: full network", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
