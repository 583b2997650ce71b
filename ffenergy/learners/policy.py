"""Exit policies beyond the alpha grid: risk-controlled thresholds (Learn-then-Test) and energy budgets.

Everything here works on the masking view of a learner (``DepthView``: each validation sample's
label-free confidence and prediction at every depth, from ``exits.depth_scores``), so it serves
every learner alike and never runs a network.

**Risk** (Angelopoulos et al. 2021, "Learn then Test"). A *path* of threshold vectors
lambda_0, lambda_1, ... is fixed before the certifying samples are looked at; lambda_0 is "no early
exit" (light == full, risk 0), and each later vector lets at least as many samples exit. For each
j >= 1 the null hypothesis H_j: R(lambda_j) > epsilon is tested with a binomial-tail p-value of
the losses of lambda_j on the n certifying samples; fixed-sequence testing rejects H_1, H_2, ...
while p_j <= delta and stops at the first failure. The last rejected lambda_j is returned. The
family-wise error of fixed-sequence testing is at most delta without any multiplicity correction
(no Bonferroni factor), because a hypothesis is only tested after every one before it was
rejected: with probability >= 1 - delta the chosen thresholds have R <= epsilon. The path must
not depend on the certifying samples, so the validation split is cut in two: ``fit_fraction`` of
it shapes the path, the rest certifies it.

Losses (0/1 per sample, so the exact binomial tail is valid):

- ``disagreement``: light predicts another class than the full network (needs no labels);
- ``accuracy``: the full network is right and light is wrong. Its mean bounds the accuracy loss
  acc(full) - acc(light) from above (samples light gets right and full wrong only count for light).

Paths:

- ``alpha``: T_k = mu_k - alpha * sigma_k for alpha ascending over ``alpha_range`` (``steps`` values;
  mu, sigma from the fitting part), today's single-alpha family made certifiable;
- ``per-layer``: a greedy coordinate-wise path. Each layer's candidate thresholds are ``steps``
  descending quantiles of its confidence on the fitting part; every step lowers the one layer's
  threshold by one level that adds the least fitting-part loss per MAC saved, until the
  fitting-part loss exceeds epsilon. The path is a single ordered sequence, so fixed-sequence
  testing certifies it with the same delta: the per-layer freedom costs the split, not a
  Bonferroni factor over the (steps^(L-1)) threshold grid.

**Budget**: among the thresholds of both paths (built on the whole validation split, loss
``accuracy``, no stop), the most accurate on validation whose mean MACs per inference are within
``macs_per_inference``; no guarantee, only a choice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import binom

from ffenergy.learners.base import Learner
from ffenergy.learners.calibrate import calibrate

if TYPE_CHECKING:
    from ffenergy.config import PolicyConfig

log = logging.getLogger(__name__)

NO_EXIT = math.inf  # a threshold no finite confidence reaches: that layer never exits (+inf confidence still would)


@dataclass(frozen=True)
class DepthView:
    """Per-depth confidences (N, L), predictions (N, L) and the MACs of an exit at each depth (L,)."""

    conf: np.ndarray
    pred: np.ndarray
    macs: np.ndarray

    @classmethod
    def of(cls, learner: Learner, scores: list[torch.Tensor]) -> DepthView:
        conf = np.stack([learner.confidence(s).double().cpu().numpy() for s in scores], axis=1)
        pred = np.stack([s.argmax(dim=1).cpu().numpy() for s in scores], axis=1)
        return cls(conf, pred, learner.macs_at_exit().astype(np.float64))

    def __len__(self) -> int:
        return len(self.conf)

    @property
    def n_layers(self) -> int:
        return self.conf.shape[1]

    @property
    def full(self) -> np.ndarray:
        return self.pred[:, -1]

    def subset(self, idx: np.ndarray) -> DepthView:
        return DepthView(self.conf[idx], self.pred[idx], self.macs)

    def exits(self, thresholds: np.ndarray) -> np.ndarray:
        """Exit layer (1..L) of every sample under the light rule (as ``exits.exits_from_scores``)."""
        hit = self.conf[:, :-1] >= np.asarray(thresholds, dtype=np.float64)[: self.n_layers - 1]
        first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, self.n_layers)
        return first.astype(np.int64)

    def light(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pred, exit_layer) of the light rule."""
        exit_layer = self.exits(thresholds)
        return self.pred[np.arange(len(self)), exit_layer - 1], exit_layer

    def mean_macs(self, exit_layer: np.ndarray) -> float:
        return float(self.macs[exit_layer - 1].mean())


Loss = Callable[[DepthView, np.ndarray], np.ndarray]  # (view, light predictions) -> 0/1 per sample


def loss_function(kind: str, labels: np.ndarray | None) -> Loss:
    """The 0/1 loss of each sample: ``disagreement`` with the full network, or ``accuracy`` (full right, light wrong)."""
    if kind == "disagreement":
        return lambda view, light: (light != view.full).astype(np.int64)
    if labels is None:
        raise ValueError("the accuracy loss needs labels")
    y = labels
    return lambda view, light: ((view.full == y) & (light != y)).astype(np.int64)


def p_value(losses: int, n: int, epsilon: float, bound: str = "binomial") -> float:
    """p-value of H: risk > epsilon after ``losses`` 0/1 losses in n samples.

    ``binomial``: P(Binom(n, epsilon) <= losses), exact for 0/1 losses. ``hoeffding-bentkus``:
    min(exp(-n h(min(r, epsilon), epsilon)), e P(Binom(n, epsilon) <= ceil(n r))), r = losses / n,
    h the Bernoulli KL divergence (valid for any loss in [0, 1]).
    """
    if n <= 0:
        return 1.0
    tail = float(binom.cdf(losses, n, epsilon))
    if bound == "binomial":
        return tail
    hoeffding = math.exp(-n * _bernoulli_kl(min(losses / n, epsilon), epsilon))
    return min(1.0, hoeffding, math.e * tail)


def _bernoulli_kl(a: float, b: float) -> float:
    first = a * math.log(a / b) if a > 0 else 0.0
    second = (1 - a) * math.log((1 - a) / (1 - b)) if a < 1 else 0.0
    return first + second


def min_certifying_samples(epsilon: float, delta: float) -> int:
    """The least n whose zero-loss p-value (1 - epsilon)^n is <= delta: below it nothing can be certified."""
    return math.ceil(math.log(delta) / math.log1p(-epsilon))


def no_exit(n_layers: int) -> np.ndarray:
    return np.full(n_layers, NO_EXIT)


def alpha_values(policy: PolicyConfig) -> np.ndarray:
    """The alpha path's values: ``steps`` evenly spaced over ``alpha_range``, ascending."""
    first, last = policy.alpha_range
    return np.linspace(first, last, policy.steps)


def alpha_path(mu: np.ndarray, sigma: np.ndarray, alphas: np.ndarray) -> list[np.ndarray]:
    """No exit, then mu - alpha * sigma for each of ``alphas`` (ascending: thresholds non-increasing along the path)."""
    n_layers = len(mu)
    path = [no_exit(n_layers)]
    for a in alphas:
        path.append((mu - a * sigma).astype(np.float64))
    return path


def greedy_path(view: DepthView, loss: Loss, steps: int, stop_loss: float | None) -> list[np.ndarray]:
    """No exit, then one layer's threshold lowered by one quantile level per step (see the module doc).

    Every vector is coordinate-wise <= the one before it. ``stop_loss``: end the path once the mean
    loss on ``view`` exceeds it (None: walk every level down)."""
    n_layers = view.n_layers
    levels = []
    for k in range(n_layers - 1):
        finite = view.conf[:, k][np.isfinite(view.conf[:, k])]
        q = np.quantile(finite, 1 - np.arange(1, steps + 1) / steps) if len(finite) else np.array([])
        levels.append(np.concatenate([[NO_EXIT], q]))
    at = [0] * (n_layers - 1)
    current = no_exit(n_layers)
    path = [current.copy()]
    light, exit_layer = view.light(current)
    cur_loss, cur_macs = float(loss(view, light).sum()), view.mean_macs(exit_layer)
    while True:
        best: tuple[float, float, int] | None = None
        best_state: tuple[float, float] = (0.0, 0.0)
        for k in range(n_layers - 1):
            if at[k] + 1 >= len(levels[k]):
                continue
            trial = current.copy()
            trial[k] = levels[k][at[k] + 1]
            light, exit_layer = view.light(trial)
            t_loss, t_macs = float(loss(view, light).sum()), view.mean_macs(exit_layer)
            saved = cur_macs - t_macs
            key = ((t_loss - cur_loss) / max(saved, 1e-12), -saved, k)
            if best is None or key < best:
                best, best_state = key, (t_loss, t_macs)
        if best is None:
            return path
        k = best[2]
        at[k] += 1
        current[k] = levels[k][at[k]]
        cur_loss, cur_macs = best_state
        if stop_loss is not None and cur_loss / max(len(view), 1) > stop_loss:
            return path
        path.append(current.copy())


@dataclass
class Choice:
    """Thresholds a policy chose, and what calibration.json records about how."""

    thresholds: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)
    message: str | None = None  # a plain sentence when the policy fell back (no exit certified, budget unmet)


def fixed_sequence(losses: list[int], n: int, epsilon: float, delta: float, bound: str) -> tuple[int, list[float]]:
    """Index of the last hypothesis rejected in order (0: none; path index 0 is no exit and needs no test),
    and the p-values computed until the first failure."""
    p_values = []
    chosen = 0
    for j, k in enumerate(losses, start=1):
        p = p_value(k, n, epsilon, bound)
        p_values.append(p)
        if p > delta:
            break
        chosen = j
    return chosen, p_values


def certify(path: list[np.ndarray], view: DepthView, loss: Loss, epsilon: float, delta: float, bound: str) -> Choice:
    """Fixed-sequence Learn-then-Test of ``path`` on the certifying samples ``view``."""
    n = len(view)
    losses, costs = [], []
    for th in path[1:]:
        light, exit_layer = view.light(th)
        losses.append(int(loss(view, light).sum()))
        costs.append(view.mean_macs(exit_layer))
    chosen, p_values = fixed_sequence(losses, n, epsilon, delta, bound)
    thresholds = path[chosen]
    record: dict[str, Any] = {
        "n_certify": n,
        "path_length": len(path),
        "chosen_index": chosen,
        "p_values": p_values,
        "losses_at_chosen": losses[chosen - 1] if chosen else 0,
        "empirical_risk": losses[chosen - 1] / n if chosen and n else 0.0,
        "macs_at_chosen": costs[chosen - 1] if chosen else float(view.macs[-1]),
        "min_certifying_samples": min_certifying_samples(epsilon, delta),
    }
    message = None
    if chosen == 0:
        if n < record["min_certifying_samples"]:
            message = (
                f"no early exit: {n} certifying samples cannot certify any exit at epsilon {epsilon:g}, "
                f"delta {delta:g} (even zero losses need {record['min_certifying_samples']}); light = full. "
                "Give more validation data (data.val_fraction) or a larger epsilon or delta"
            )
        elif path[1:]:
            message = (
                f"no early exit: the most conservative exit rule already has {losses[0]} losses in {n} certifying "
                f"samples (p = {p_values[0]:.3g} > delta {delta:g}); light = full"
            )
        else:
            message = "no early exit: the threshold path is empty; light = full"
    return Choice(thresholds, record, message)


def risk_policy(
    view: DepthView,
    labels: np.ndarray,
    mu_sigma: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    policy: PolicyConfig,
    seed: int,
) -> Choice:
    """Risk-controlled thresholds: split the validation view, build the path on one part, certify on the other.

    ``mu_sigma(idx)`` gives the alpha family's statistics on the validation rows ``idx``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(view))
    n_fit = round(policy.fit_fraction * len(view))
    fit_idx, cert_idx = np.sort(order[:n_fit]), np.sort(order[n_fit:])
    fit, cert = view.subset(fit_idx), view.subset(cert_idx)
    fit_loss = loss_function(policy.loss, labels[fit_idx])
    alphas = alpha_values(policy)
    if policy.family == "alpha":
        path = alpha_path(*mu_sigma(fit_idx), alphas)
    else:
        path = greedy_path(fit, fit_loss, policy.steps, stop_loss=policy.epsilon)
    choice = certify(
        path, cert, loss_function(policy.loss, labels[cert_idx]), policy.epsilon, policy.delta, policy.bound
    )
    choice.record = {
        "kind": "risk",
        "loss": policy.loss,
        "epsilon": policy.epsilon,
        "delta": policy.delta,
        "bound": policy.bound,
        "family": policy.family,
        "n_fit": len(fit_idx),
        **choice.record,
        "guarantee": f"P(risk <= {policy.epsilon:g}) >= {1 - policy.delta:g} over the certifying sample",
    }
    if policy.family == "alpha" and choice.record["chosen_index"]:
        choice.record["alpha"] = float(alphas[choice.record["chosen_index"] - 1])
    return choice


def budget_policy(
    view: DepthView, labels: np.ndarray, mu: np.ndarray, sigma: np.ndarray, policy: PolicyConfig
) -> Choice:
    """The most accurate thresholds on validation whose mean MACs per inference are within the budget."""
    budget = float(policy.macs_per_inference or 0.0)
    candidates = alpha_path(mu, sigma, alpha_values(policy)) + greedy_path(
        view, loss_function("accuracy", labels), policy.steps, stop_loss=None
    )
    scored = []
    for th in candidates:
        light, exit_layer = view.light(th)
        scored.append((float(np.mean(light == labels)), view.mean_macs(exit_layer), th))
    within = [s for s in scored if s[1] <= budget]
    message = None
    if within:
        acc, macs, th = max(within, key=lambda s: (s[0], -s[1]))
    else:
        acc, macs, th = min(scored, key=lambda s: (s[1], -s[0]))
        message = (
            f"budget {budget:g} MACs per inference is below the cheapest candidate exit rule ({macs:.4g} MACs "
            "on validation); using that rule, the budget is not met"
        )
    record = {
        "kind": "budget",
        "macs_per_inference": budget,
        "met": bool(within),
        "n_candidates": len(candidates),
        "validation_accuracy": acc,
        "validation_macs_per_inference": macs,
    }
    return Choice(np.asarray(th, dtype=np.float64), record, message)


def choose(learner: Learner, scores: list[torch.Tensor], labels: np.ndarray, policy: PolicyConfig, seed: int) -> Choice:
    """The ``risk`` or ``budget`` policy's thresholds from per-depth validation scores (``seed`` cuts the split)."""
    view = DepthView.of(learner, scores)
    if policy.kind == "risk":

        def mu_sigma(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rows = torch.from_numpy(idx)
            cal = calibrate(learner, [s[rows] for s in scores], labels[idx])
            return cal.mu, cal.sigma

        return risk_policy(view, labels, mu_sigma, policy, seed)
    if policy.kind == "budget":
        cal = calibrate(learner, scores, labels)
        return budget_policy(view, labels, cal.mu, cal.sigma, policy)
    raise ValueError(f"policy kind {policy.kind!r} is chosen by calibrate.select_alpha, not here")
