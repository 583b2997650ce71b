"""Exit policies: the binomial arithmetic, fixed-sequence Learn-then-Test, monotonicity, fallbacks, budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffenergy.config import InferenceConfig, PolicyConfig
from ffenergy.learners.exits import depth_scores, exits_from_scores
from ffenergy.learners.ff.learner import FFOnePass
from ffenergy.learners.policy import (
    DepthView,
    budget_policy,
    certify,
    choose,
    fixed_sequence,
    greedy_path,
    loss_function,
    min_certifying_samples,
    p_value,
    risk_policy,
)
from tests.learners.kit import trained


def test_binomial_p_values_by_hand():
    # P(Binom(10, 0.1) <= 0) = 0.9^10
    assert p_value(0, 10, 0.1) == pytest.approx(0.9**10, rel=1e-12)
    # P(Binom(20, 0.05) <= 1) = 0.95^20 + 20 * 0.05 * 0.95^19
    assert p_value(1, 20, 0.05) == pytest.approx(0.95**20 + 20 * 0.05 * 0.95**19, rel=1e-12)
    # P(Binom(5, 0.5) <= 2) = (1 + 5 + 10) / 32
    assert p_value(2, 5, 0.5) == pytest.approx(0.5)
    # Hoeffding-Bentkus with no losses: min(exp(-n KL(0 || eps)), e * (1 - eps)^n) = (1 - eps)^n here
    assert p_value(0, 100, 0.05, "hoeffding-bentkus") == pytest.approx(0.95**100, rel=1e-12)
    # with losses above eps the Hoeffding term is 1 and the Bentkus term e * P(Binom <= k)
    k, n, eps = 8, 100, 0.05
    tail = sum(math.comb(n, i) * eps**i * (1 - eps) ** (n - i) for i in range(k + 1))
    assert p_value(k, n, eps, "hoeffding-bentkus") == pytest.approx(min(1.0, math.e * tail), rel=1e-9)


def test_min_certifying_samples_is_where_zero_losses_first_pass():
    n = min_certifying_samples(0.005, 0.1)
    assert p_value(0, n, 0.005) <= 0.1 < p_value(0, n - 1, 0.005)


def test_fixed_sequence_stops_at_the_first_failure():
    n, eps, delta = 1000, 0.01, 0.1
    # 0 and 3 losses pass (P(Binom(1000, .01) <= 3) ~ 0.01), 20 fails, 0 after it is never reached
    chosen, p = fixed_sequence([0, 3, 20, 0], n, eps, delta, "binomial")
    assert chosen == 2
    assert len(p) == 3 and p[2] > delta


def _view(n: int, seed: int, n_layers: int = 3, n_classes: int = 4) -> tuple[DepthView, np.ndarray]:
    """A synthetic masking view: deeper layers are right more often, confidence tracks correctness."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    conf = np.empty((n, n_layers))
    pred = np.empty((n, n_layers), dtype=np.int64)
    for k in range(n_layers):
        right = rng.random(n) < 0.6 + 0.15 * k
        pred[:, k] = np.where(right, y, (y + 1 + rng.integers(0, n_classes - 1, n)) % n_classes)
        conf[:, k] = rng.random(n) + 0.8 * right
    return DepthView(conf, pred, np.cumsum([100.0, 300.0, 300.0][:n_layers])), y


def _policy(**kw) -> PolicyConfig:
    return PolicyConfig(kind="risk", **kw)


def test_greedy_path_lowers_one_threshold_per_step():
    view, _ = _view(2000, 0)
    path = greedy_path(view, loss_function("disagreement", None), steps=20, stop_loss=0.05)
    assert np.all(np.isinf(path[0]))
    for a, b in zip(path, path[1:]):
        assert np.all(b <= a) and np.sum(b < a) == 1


@pytest.mark.parametrize("family", ["per-layer", "alpha"])
@pytest.mark.parametrize("loss", ["disagreement", "accuracy"])
def test_larger_epsilon_never_gives_higher_thresholds(family, loss):
    view, y = _view(3000, 1)
    mu_sigma = _mu_sigma(view, y)
    previous = None
    for eps in (0.002, 0.01, 0.03, 0.06, 0.12):
        th = risk_policy(view, y, mu_sigma, _policy(epsilon=eps, family=family, loss=loss), seed=0).thresholds
        if previous is not None:
            assert np.all(th[:-1] <= previous[:-1]), (eps, th, previous)
        previous = th
    assert np.isfinite(previous[0])  # the largest epsilon lets something exit


def _mu_sigma(view: DepthView, y: np.ndarray):
    def f(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = view.pred[idx] == y[idx, None]
        c = view.conf[idx]
        return (
            np.array([c[ok[:, k], k].mean() for k in range(view.n_layers)]),
            np.array([c[ok[:, k], k].std() for k in range(view.n_layers)]),
        )

    return f


def test_certified_risk_holds_on_fresh_samples_most_of_the_time():
    eps, delta = 0.05, 0.1
    fresh, _ = _view(200_000, 99)
    over = 0
    for seed in range(40):
        view, y = _view(1500, seed)
        choice = risk_policy(view, y, _mu_sigma(view, y), _policy(epsilon=eps, delta=delta), seed=seed)
        light, _ = fresh.light(choice.thresholds)
        over += float(np.mean(light != fresh.full)) > eps
    assert over / 40 <= delta + 0.1


def test_too_small_a_calibration_set_means_no_early_exit_with_a_message():
    view, y = _view(100, 3)  # 50 certifying samples; zero losses need 460 at eps 0.005, delta 0.1
    choice = risk_policy(view, y, _mu_sigma(view, y), _policy(epsilon=0.005, delta=0.1), seed=0)
    assert np.all(np.isinf(choice.thresholds))
    assert choice.record["chosen_index"] == 0
    assert "no early exit" in choice.message and "460" in choice.message
    light, exits = view.light(choice.thresholds)
    assert np.array_equal(light, view.full) and np.all(exits == view.n_layers)


def test_certify_reports_what_it_tested():
    view, _ = _view(4000, 4)
    path = greedy_path(view, loss_function("disagreement", None), steps=10, stop_loss=0.1)
    choice = certify(path, view, loss_function("disagreement", None), 0.05, 0.1, "binomial")
    r = choice.record
    assert r["n_certify"] == 4000 and 0 < r["chosen_index"] < len(path)
    assert all(p <= 0.1 for p in r["p_values"][: r["chosen_index"]])
    light, _ = view.light(choice.thresholds)
    assert r["losses_at_chosen"] == int(np.sum(light != view.full))
    assert p_value(r["losses_at_chosen"], 4000, 0.05) <= 0.1


def test_budget_picks_the_most_accurate_rule_within_the_budget():
    view, y = _view(3000, 5)
    policies = {b: PolicyConfig(kind="budget", macs_per_inference=b, steps=20) for b in (250.0, 400.0, 600.0)}
    chosen = {b: budget_policy(view, y, *_mu_sigma(view, y)(np.arange(3000)), p) for b, p in policies.items()}
    accs = []
    for b, c in chosen.items():
        light, exits = view.light(c.thresholds)
        assert view.mean_macs(exits) <= b and c.record["met"] and c.message is None
        accs.append(np.mean(light == y))
    assert accs == sorted(accs)  # a larger budget is never less accurate
    unmet = budget_policy(
        view, y, *_mu_sigma(view, y)(np.arange(3000)), PolicyConfig(kind="budget", macs_per_inference=10.0)
    )
    assert not unmet.record["met"] and "not met" in unmet.message


def test_masking_view_equals_exits_from_scores_on_a_real_learner():
    learner, x, y = trained(FFOnePass, {}, epochs=1)
    scores = depth_scores(learner, torch.from_numpy(x))
    view = DepthView.of(learner, scores)
    th = np.quantile(view.conf, 0.6, axis=0)
    pred, exits = exits_from_scores(learner, scores, th)
    vpred, vexits = view.light(th)
    assert np.array_equal(exits, vexits) and np.array_equal(pred, vpred)
    choice = choose(learner, scores, y, PolicyConfig(kind="risk", epsilon=0.2, delta=0.2), seed=0)
    assert choice.record["kind"] == "risk" and len(choice.thresholds) == learner.n_layers
    assert InferenceConfig().policy.kind == "grid"
