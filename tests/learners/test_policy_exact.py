"""Exit policies and calibration on hand-built views whose answers are known exactly.

The budget policy's choice (most accurate within the budget, fewest MACs among equals, a budget equal
to a rule's cost is met, the cheapest and then the most accurate rule when none is within), the
Hoeffding-Bentkus p-value's divergence, ``select_alpha`` between its two extremes, and the
calibration record. Each test names the one-line bug it catches.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffenergy.config import InferenceConfig, PolicyConfig
from ffenergy.learners import LEARNERS
from ffenergy.learners.calibrate import Calibration, calibrate, select_alpha
from ffenergy.learners.exits import batched_depth_scores, depth_accuracies, depth_scores, exits_from_scores
from ffenergy.learners.policy import (
    DepthView,
    _bernoulli_kl,
    alpha_path,
    alpha_values,
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
from tests.learners.kit import small_learner

# 4 samples, 3 layers, every label 0; the full network is always right
CONF = np.array([[0.9, 0.9, 1.0], [0.8, 0.9, 1.0], [0.2, 0.9, 1.0], [0.1, 0.1, 1.0]])
PRED = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]])
Y = np.zeros(4, np.int64)
NO_MU, NO_SIGMA = np.full(3, np.inf), np.zeros(3)  # the alpha path adds only "no exit"


def _budget(view: DepthView, budget: float | None, mu=NO_MU, sigma=NO_SIGMA):
    policy = PolicyConfig(kind="budget", macs_per_inference=budget, steps=2, alpha_range=[0.0, 1.0])
    return budget_policy(view, Y, mu, sigma, policy)


def test_budget_takes_the_most_accurate_rule_within_it_and_the_cheaper_of_equals():
    """Candidates (accuracy, mean MACs): no exit (1.0, 30), [inf, .9] (1.0, 22.5), [.5, .9] (.75, 17.5),
    [.1, .9] and [.1, .1] (.25, 10)."""
    view = DepthView(CONF, PRED, np.array([10.0, 20.0, 30.0]))
    roomy = _budget(view, 30.0)
    assert roomy.thresholds.tolist() == [math.inf, 0.9, math.inf]  # as accurate as no exit, 7.5 MACs cheaper
    assert roomy.record == {
        "kind": "budget",
        "macs_per_inference": 30.0,
        "met": True,
        "n_candidates": 8,
        "validation_accuracy": 1.0,
        "validation_macs_per_inference": 22.5,
    }
    assert roomy.message is None and roomy.thresholds.dtype == np.float64
    exact = _budget(view, 17.5)  # a budget equal to a rule's cost admits it
    assert exact.thresholds.tolist() == [0.5, 0.9, math.inf] and exact.record["validation_accuracy"] == 0.75
    tight = _budget(view, 17.0)
    assert tight.record["validation_macs_per_inference"] == 10.0 and tight.record["validation_accuracy"] == 0.25


def test_an_unmet_budget_takes_the_cheapest_rule_and_of_those_the_most_accurate():
    """Layers 1 and 2 cost the same: exiting every sample at layer 2 (accuracy .75) is as cheap as at layer 1
    (.25), and comes later among the candidates than the alpha path's all-at-layer-1 rule."""
    view = DepthView(CONF * [1, 0, 1] + [0, 0.9, 0], PRED, np.array([10.0, 10.0, 30.0]))
    mu = np.array([0.0, np.inf, np.inf])  # the alpha path's rule: everything exits at layer 1
    policy = PolicyConfig(kind="budget", macs_per_inference=5.0, steps=1, alpha_range=[0.0, 0.0])
    choice = budget_policy(view, Y, mu, NO_SIGMA, policy)
    assert choice.thresholds.tolist() == [math.inf, 0.9, math.inf]
    assert choice.record["met"] is False and choice.record["validation_accuracy"] == 0.75
    assert choice.message == (
        "budget 5 MACs per inference is below the cheapest candidate exit rule (10 MACs "
        "on validation); using that rule, the budget is not met"
    )


def test_a_budget_policy_without_a_budget_allows_nothing():
    view = DepthView(CONF, PRED, np.array([0.5, 20.0, 30.0]))
    choice = _budget(view, None)
    assert choice.record["macs_per_inference"] == 0.0 and choice.record["met"] is False


def test_bernoulli_kl_by_hand():
    assert _bernoulli_kl(0.02, 0.05) == pytest.approx(0.02 * math.log(0.4) + 0.98 * math.log(0.98 / 0.95))
    assert _bernoulli_kl(0.0, 0.05) == pytest.approx(-math.log(0.95))
    assert _bernoulli_kl(1.0, 0.5) == pytest.approx(math.log(2.0))  # no (1 - a) log 0 term
    assert _bernoulli_kl(0.3, 0.3) == pytest.approx(0.0, abs=1e-15)


def test_hoeffding_bentkus_uses_the_divergence_when_it_is_the_smaller_bound():
    k, n, eps = 4, 10, 0.5  # r = 0.4: exp(-n KL(r || eps)) = 0.82 is below e * P(Binom(n, eps) <= k) = 1.02
    r = k / n
    hoeffding = math.exp(-n * (r * math.log(r / eps) + (1 - r) * math.log((1 - r) / (1 - eps))))
    assert hoeffding < math.e * p_value(k, n, eps)
    assert p_value(k, n, eps, "hoeffding-bentkus") == pytest.approx(hoeffding, rel=1e-9)
    assert p_value(k, 0, eps, "hoeffding-bentkus") == 1.0


def test_select_alpha_keeps_the_largest_alpha_whose_loss_is_within_max_loss_pp_in_points():
    learner = small_learner("op")
    x = np.random.default_rng(1).random((300, 24), dtype=np.float32)
    scores = depth_scores(learner, torch.from_numpy(x))
    labels = scores[-1].argmax(dim=1).numpy()
    cal = calibrate(learner, scores, labels)
    candidates = [0.0, 0.5, 1.0, 2.0, 4.0]
    loss_pp = {
        a: 100 * (1 - np.mean(exits_from_scores(learner, scores, cal.thresholds(a))[0] == labels)) for a in candidates
    }
    assert sorted(loss_pp.values()) == list(loss_pp.values()) and len(set(loss_pp.values())) > 2
    for a in candidates:  # a budget exactly at alpha a's loss admits a, and nothing larger that loses more
        larger = [b for b in candidates if loss_pp[b] <= loss_pp[a]]
        assert select_alpha(learner, scores, labels, cal, candidates, max_loss_pp=loss_pp[a] + 1e-9) == max(larger)
    between = (loss_pp[0.5] + loss_pp[4.0]) / 2
    assert select_alpha(learner, scores, labels, cal, candidates, between) < 4.0


def test_calibration_record_and_thresholds():
    cal = Calibration(np.array([2.0, 5.0]), np.array([0.5, 1.0]), np.array([3, 4]))
    assert cal.to_json() == {"mu": [2.0, 5.0], "sigma": [0.5, 1.0], "n_correct": [3, 4]}
    th = cal.thresholds(2.0)
    assert th.dtype == np.float32 and th.tolist() == [1.0, 3.0]


def test_depth_accuracies_score_each_depth_alone_across_batches():
    learner = small_learner("op")
    x = np.random.default_rng(2).random((70, 24), dtype=np.float32)
    whole = depth_scores(learner, torch.from_numpy(x))
    batched = batched_depth_scores(learner, x, batch_size=16)  # 5 batches, the last one short
    assert len(batched) == learner.n_layers
    for a, b in zip(whole, batched):
        assert b.shape == a.shape and torch.allclose(a, b, atol=1e-6)
    y = whole[1].argmax(dim=1).numpy()  # depth 2 is right on every sample
    acc = depth_accuracies(learner, x, y, batch_size=16)
    assert acc[1] == 1.0 and len(acc) == learner.n_layers
    assert acc == pytest.approx([float((s.argmax(dim=1).numpy() == y).mean()) for s in whole])


def test_the_alpha_path_is_no_exit_then_mu_minus_alpha_sigma():
    path = alpha_path(np.array([1.0, 2.0]), np.array([0.5, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert [p.tolist() for p in path] == [[math.inf, math.inf], [1.0, 2.0], [0.5, 0.0], [0.0, -2.0]]


def _risk_view(n: int = 600, seed: int = 0):
    """A synthetic masking view (3 layers, 4 classes): deeper layers right more often, confidence tracks it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    conf, pred = np.empty((n, 3)), np.empty((n, 3), np.int64)
    for k in range(3):
        right = rng.random(n) < 0.6 + 0.15 * k
        pred[:, k] = np.where(right, y, (y + 1) % 4)
        conf[:, k] = rng.random(n) + 0.8 * right
    return DepthView(conf, pred, np.array([100.0, 400.0, 700.0])), y


def _no_mu_sigma(idx):
    raise AssertionError("the per-layer family needs no alpha statistics")


def test_the_risk_split_is_seeded_and_cut_at_the_fit_fraction():
    view, y = _risk_view()
    policy = PolicyConfig(kind="risk", epsilon=0.1, delta=0.2, fit_fraction=0.25, steps=10)
    a = risk_policy(view, y, _no_mu_sigma, policy, seed=5)
    b = risk_policy(view, y, _no_mu_sigma, policy, seed=5)
    assert a.record == b.record and np.array_equal(a.thresholds, b.thresholds)
    assert a.record["n_fit"] == 150 and a.record["n_certify"] == 450
    others = [risk_policy(view, y, _no_mu_sigma, policy, seed=s).record["p_values"] for s in range(6, 10)]
    assert any(p != a.record["p_values"] for p in others)  # another seed, another split


def test_the_risk_path_is_shaped_by_the_configured_loss():
    """The full network is always wrong here, so the accuracy loss (full right, light wrong) is zero on every
    rule and the path walks every level down; the disagreement loss stops it early."""
    view, _ = _risk_view()
    wrong = (view.full + 1) % 4
    kw = {"kind": "risk", "epsilon": 0.05, "delta": 0.2, "steps": 10}
    accuracy = risk_policy(view, wrong, _no_mu_sigma, PolicyConfig(loss="accuracy", **kw), seed=0)
    disagreement = risk_policy(view, wrong, _no_mu_sigma, PolicyConfig(loss="disagreement", **kw), seed=0)
    assert accuracy.record["path_length"] == 1 + 10 * 2
    assert disagreement.record["path_length"] < accuracy.record["path_length"]


def _trained_view():
    learner = small_learner("op")
    x = np.random.default_rng(5).random((400, 24), dtype=np.float32)
    scores = depth_scores(learner, torch.from_numpy(x))
    labels = np.where(np.random.default_rng(6).random(400) < 0.8, scores[-1].argmax(dim=1).numpy(), 0)
    return learner, scores, labels


def test_choose_runs_the_configured_policy_on_the_learners_statistics():
    learner, scores, labels = _trained_view()
    view = DepthView.of(learner, scores)
    cal = calibrate(learner, scores, labels)
    budget = PolicyConfig(kind="budget", macs_per_inference=float(np.mean(view.macs[:2])), steps=10)
    chosen = choose(learner, scores, labels, budget, seed=0)
    direct = budget_policy(view, labels, cal.mu, cal.sigma, budget)
    assert np.array_equal(chosen.thresholds, direct.thresholds) and chosen.record == direct.record
    risk = PolicyConfig(kind="risk", family="alpha", epsilon=0.4, delta=0.2, steps=10, alpha_range=[-3.0, 3.0])

    def mu_sigma(idx):
        fit = calibrate(learner, [s[torch.from_numpy(idx)] for s in scores], labels[idx])
        return fit.mu, fit.sigma

    for seed in (1, 2):
        chosen = choose(learner, scores, labels, risk, seed=seed)
        direct = risk_policy(view, labels, mu_sigma, risk, seed=seed)
        assert np.array_equal(chosen.thresholds, direct.thresholds) and chosen.record == direct.record
    assert chosen.record["family"] == "alpha" and "alpha" in chosen.record  # something was certified
    with pytest.raises(ValueError, match=r"^policy kind 'grid' is chosen by calibrate.select_alpha, not here$"):
        choose(learner, scores, labels, PolicyConfig(kind="grid"), seed=0)


def test_calibration_with_two_correct_samples_uses_them_and_without_finite_confidence_never_exits():
    learner = LEARNERS.get("mp")("mp", small_learner("op").net, InferenceConfig(mp_statistic="gap", prune_keep=2))
    s1 = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 5.0], [0.0, 9.0]])  # right on 2 samples: gaps 3 and 1
    s2 = torch.tensor([[math.inf, 0.0], [math.inf, 0.0], [0.0, math.inf], [math.inf, 0.0]])  # no finite gap
    s3 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    cal = calibrate(learner, [s1, s2, s3], np.zeros(4, np.int64))
    assert cal.mu[0] == pytest.approx(2.0) and cal.sigma[0] == pytest.approx(1.0) and cal.n_correct[0] == 2
    assert cal.mu[1] == math.inf and cal.sigma[1] == 0.0  # T_2 = inf: depth 2 never exits
    assert cal.thresholds(1.0)[1] == np.float32(math.inf)


def test_the_risk_record_is_what_calibration_json_documents():
    view, y = _risk_view(2000, 3)
    policy = PolicyConfig(kind="risk", epsilon=0.1, delta=0.2, fit_fraction=0.5, steps=10)
    choice = risk_policy(view, y, _no_mu_sigma, policy, seed=0)
    r = choice.record
    assert set(r) == {
        "kind", "loss", "epsilon", "delta", "bound", "family", "n_fit", "n_certify", "path_length", "chosen_index",
        "p_values", "losses_at_chosen", "empirical_risk", "macs_at_chosen", "min_certifying_samples", "guarantee",
    }  # fmt: skip
    assert (r["kind"], r["loss"], r["epsilon"], r["delta"], r["bound"], r["family"]) == (
        "risk", "disagreement", 0.1, 0.2, "binomial", "per-layer",
    )  # fmt: skip
    assert r["n_fit"] == 1000 and r["n_certify"] == 1000 and r["chosen_index"] > 0
    assert r["guarantee"] == "P(risk <= 0.1) >= 0.8 over the certifying sample"
    assert r["empirical_risk"] == r["losses_at_chosen"] / 1000
    assert r["min_certifying_samples"] == min_certifying_samples(0.1, 0.2)
    # the certifying half is not known here, but the chosen rule's cost on it is a mean of the layer costs
    assert 100.0 <= r["macs_at_chosen"] < 700.0
    hb = risk_policy(view, y, _no_mu_sigma, PolicyConfig(**{**policy.__dict__, "bound": "hoeffding-bentkus"}), seed=0)
    assert hb.record["bound"] == "hoeffding-bentkus"
    assert hb.record["p_values"] != r["p_values"]  # each bound gives its own p-values
    assert r["p_values"][0] == p_value(_first_losses(view, y, policy), 1000, 0.1)  # the binomial tail


def _first_losses(view: DepthView, y: np.ndarray, policy: PolicyConfig) -> int:
    """Disagreement losses of the path's first exit rule on the certifying half (the split of seed 0)."""
    order = np.random.default_rng(0).permutation(len(view))
    n_fit = round(policy.fit_fraction * len(view))
    fit, cert = view.subset(np.sort(order[:n_fit])), view.subset(np.sort(order[n_fit:]))
    path = greedy_path(fit, loss_function("disagreement", None), policy.steps, stop_loss=policy.epsilon)
    light, _ = cert.light(path[1])
    return int(np.sum(light != cert.full))


def test_hoeffding_bentkus_takes_the_bentkus_term_when_it_is_the_smaller():
    k, n, eps = 30, 2000, 0.03  # e * P(Binom(n, eps) <= k) = 3.0e-5 is below exp(-n KL(r || eps)) = 8.0e-5
    assert p_value(k, n, eps, "hoeffding-bentkus") == pytest.approx(math.e * p_value(k, n, eps), rel=1e-12)
    assert p_value(0, 1, 0.5) == 0.5 and p_value(0, 0, 0.5) == 1.0 and p_value(0, -1, 0.5) == 1.0


def _greedy(conf, pred, stop_loss=None):
    view = DepthView(np.array(conf, float), np.array(pred), np.array([10.0, 20.0, 30.0]))
    return [p[:2].tolist() for p in greedy_path(view, loss_function("disagreement", None), 2, stop_loss)]


def test_the_greedy_path_lowers_the_threshold_that_costs_least_loss_per_mac_saved():
    """Levels per layer: no exit, the median, the minimum. Step 1: layer 1 to its median lets samples 0 and 1
    out (one wrong, 10 MACs saved per sample on average: 0.1 per MAC) and beats layer 2 to its median (one
    wrong, 5 MACs saved: 0.2). Then layer 1's minimum is free; layer 2's levels change nothing and follow."""
    conf = [[4, 1, 9], [3, 2, 9], [2, 4, 9], [1, 3, 9]]
    pred = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]]
    inf = math.inf
    assert _greedy(conf, pred) == [[inf, inf], [2.5, inf], [1.0, inf], [1.0, 2.5], [1.0, 1.0]]


def test_the_greedy_path_prefers_more_macs_saved_among_free_steps_and_stops_above_the_loss():
    """Layer 1 to its median (free, 10 MACs saved) before layer 2 (free, 5); a step that changes nothing is
    free too; layer 1's minimum costs 2 losses in 4 (0.5): a stop loss of 0.5 keeps it, 0.49 does not."""
    conf = [[4, 4, 9], [3, 3, 9], [2, 2, 9], [1, 1, 9]]
    pred = [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]]
    inf = math.inf
    full = [[inf, inf], [2.5, inf], [2.5, 2.5], [2.5, 1.0], [1.0, 1.0]]
    assert _greedy(conf, pred) == full
    assert _greedy(conf, pred, stop_loss=0.5) == full
    assert _greedy(conf, pred, stop_loss=0.49) == full[:-1]


def test_the_greedy_paths_stop_loss_is_a_mean_over_a_one_sample_view_too():
    """One sample: layer 2's levels are free, layer 1's make it wrong, a mean loss of 1 over 1 sample (not of
    1 over 2) passes a stop loss of 0.6 and ends the path."""
    inf = math.inf
    assert _greedy([[4, 1, 9]], [[1, 0, 0]], stop_loss=0.6) == [[inf, inf], [inf, 1.0], [inf, 1.0]]


def test_a_layer_without_finite_confidence_is_never_lowered():
    conf = [[math.inf, 4, 9], [math.inf, 3, 9], [math.inf, 2, 9], [math.inf, 1, 9]]
    pred = [[0, 0, 0]] * 4
    assert _greedy(conf, pred) == [[math.inf, math.inf], [math.inf, 2.5], [math.inf, 1.0]]


def test_the_losses_per_sample():
    view = DepthView(np.zeros((4, 2)), np.array([[0, 0], [1, 1], [2, 0], [0, 2]]), np.array([1.0, 2.0]))
    light = np.array([0, 2, 2, 0])
    assert loss_function("disagreement", None)(view, light).tolist() == [0, 1, 1, 1]
    y = np.array([0, 1, 1, 2])  # full right on samples 0, 1, 3; light wrong on 1 and 3 of those (and on 2)
    assert loss_function("accuracy", y)(view, light).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="^the accuracy loss needs labels$"):
        loss_function("accuracy", None)


def test_alpha_values_and_the_fixed_sequence_under_each_bound():
    assert alpha_values(PolicyConfig(steps=3, alpha_range=[-1.0, 1.0])).tolist() == [-1.0, 0.0, 1.0]
    for bound in ("binomial", "hoeffding-bentkus"):
        _, p = fixed_sequence([0, 2, 9], 100, 0.05, 0.5, bound)
        assert p == [p_value(k, 100, 0.05, bound) for k in (0, 2, 9)][: len(p)]
    assert fixed_sequence([4], 10, 0.5, 1.0, "hoeffding-bentkus")[1] != fixed_sequence([4], 10, 0.5, 1.0, "binomial")[1]


def _flat_view(n: int, wrong_at_1: int) -> DepthView:
    """n samples, confidence 1 everywhere, layer 1 wrong on the first ``wrong_at_1`` of them."""
    pred = np.zeros((n, 3), np.int64)
    pred[:wrong_at_1, 0] = 1
    return DepthView(np.ones((n, 3)), pred, np.array([10.0, 20.0, 30.0]))


def test_certify_records_the_chosen_rule():
    inf = math.inf
    path = [np.full(3, inf), np.array([1.0, inf, inf])]
    choice = certify(path, _flat_view(20, 5), loss_function("disagreement", None), 0.5, 0.5, "binomial")
    r = choice.record
    assert choice.message is None and choice.thresholds.tolist() == [1.0, inf, inf]
    assert (r["chosen_index"], r["losses_at_chosen"], r["empirical_risk"], r["macs_at_chosen"]) == (1, 5, 0.25, 10.0)
    assert r["path_length"] == 2 and r["p_values"] == [p_value(5, 20, 0.5)]


def test_certify_falls_back_to_no_exit_and_says_why():
    inf = math.inf
    loss = loss_function("disagreement", None)
    one_rule = [np.full(3, inf), np.array([1.0, inf, inf])]
    n = min_certifying_samples(0.5, 0.5)  # 1: one sample could certify, with no loss
    failed = certify(one_rule, _flat_view(n, 1), loss, 0.5, 0.5, "binomial")
    r = failed.record
    assert (r["chosen_index"], r["losses_at_chosen"], r["empirical_risk"], r["macs_at_chosen"]) == (0, 0, 0.0, 30.0)
    assert failed.message == (
        "no early exit: the most conservative exit rule already has 1 losses in 1 certifying samples "
        "(p = 1 > delta 0.5); light = full"
    )
    empty = certify([np.full(3, inf)], _flat_view(5, 0), loss, 0.5, 0.5, "binomial")
    assert empty.message == "no early exit: the threshold path is empty; light = full"
    few = certify(one_rule, _flat_view(3, 0), loss, 0.01, 0.1, "binomial")
    assert few.message == (
        "no early exit: 3 certifying samples cannot certify any exit at epsilon 0.01, delta 0.1 (even zero losses "
        "need 230); light = full. Give more validation data (data.val_fraction) or a larger epsilon or delta"
    )


def test_certify_reports_the_cost_of_the_rule_it_chose_not_its_neighbour():
    inf = math.inf
    view = _flat_view(40, 0)
    path = [np.full(3, inf), np.array([inf, 1.0, inf]), np.array([1.0, inf, inf])]  # 20 MACs, then 10
    choice = certify(path, view, loss_function("disagreement", None), 0.5, 0.5, "binomial")
    assert choice.record["chosen_index"] == 2 and choice.record["macs_at_chosen"] == 10.0


def test_the_alpha_family_records_the_alpha_it_certified():
    learner, scores, labels = _trained_view()
    risk = PolicyConfig(kind="risk", family="alpha", epsilon=0.4, delta=0.2, steps=10, alpha_range=[-3.0, 3.0])
    choice = choose(learner, scores, labels, risk, seed=1)
    j = choice.record["chosen_index"]
    assert j > 0 and choice.record["alpha"] == float(alpha_values(risk)[j - 1])


def test_the_greedy_step_weighs_the_loss_it_adds_not_the_loss_so_far():
    """After the first step has cost losses, layer 2 to its median (one more loss for 5 MACs saved per
    sample) beats layer 1 to its minimum (more losses); a key on the total loss would rank them the
    other way round."""
    conf = [[6, 4, 9], [2, 2, 9], [1, 1, 9], [5, 4, 9], [4, 4, 9], [5, 4, 9]]
    pred = [[1, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]]
    inf = math.inf
    assert _greedy(conf, pred) == [[inf, inf], [4.5, inf], [4.5, 4.0], [1.0, 4.0], [1.0, 1.0]]
