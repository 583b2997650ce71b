"""Properties of the exit rule that plausible one-character bugs break: ties exit (>=, not >), a
larger alpha never raises a threshold nor the mean MACs, and T_k = mu_k - alpha * sigma_k on a
hand-built score distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ffenergy.config import InferenceConfig
from ffenergy.firmware.export import deploy
from ffenergy.firmware.launch import check_against_reference
from ffenergy.firmware.reference import reference_predict
from ffenergy.learners import LEARNERS
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.exits import depth_scores, exits_from_scores, infer
from ffenergy.learners.ff.model import FFNetwork
from tests.learners.kit import small_net


def _op(net: FFNetwork, statistic: str = "max"):
    return LEARNERS.get("op")("op", net, InferenceConfig(op_statistic=statistic))


def test_a_confidence_equal_to_its_threshold_exits_on_every_path():
    """Saturated heads: every top softmax probability is exactly 1.0, so sigma = 0 and T_1 = mu_1 = 1.0."""
    net = small_net(0, head_std=1e4)
    x = np.random.default_rng(0).random((50, 24), dtype=np.float32)
    learner = _op(net)
    scores = depth_scores(learner, torch.from_numpy(x))
    assert bool((learner.confidence(scores[0]) == 1.0).all()), "the test needs saturated probabilities"
    thresholds = calibrate(learner, scores, scores[-1].argmax(dim=1).numpy()).thresholds(1.0)
    assert thresholds[0] == np.float32(1.0)
    _, exits = infer(learner, torch.from_numpy(x), tuple(thresholds.tolist()), None)
    assert set(exits.tolist()) == {1}
    assert set(exits_from_scores(learner, scores, thresholds)[1].tolist()) == {1}
    arrays, policy = learner.firmware(thresholds)
    assert set(reference_predict(deploy(arrays, policy), x, "light").exit_layer.tolist()) == {1}
    assert check_against_reference(arrays, policy, x[:10], "host", "f32", ["light"]) == []  # the C core too


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", ["mp", "mp-pruned", "op"])
def test_a_larger_alpha_never_raises_a_threshold_nor_the_mean_macs(seed, name):
    net = small_net(seed)
    rng = np.random.default_rng(seed)
    x, y = rng.random((200, 24), dtype=np.float32), rng.integers(0, 4, 200)
    learner = LEARNERS.get(name)(name, net, InferenceConfig(prune_after=1, prune_keep=2))
    scores = depth_scores(learner, torch.from_numpy(x))
    cal = calibrate(learner, scores, y)
    cost = learner.macs_at_exit()
    last_thresholds, last_macs = None, None
    for alpha in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0):
        thresholds = cal.thresholds(alpha)
        macs = cost[exits_from_scores(learner, scores, thresholds)[1] - 1].mean()
        if last_thresholds is not None:
            assert (thresholds <= last_thresholds).all() and macs <= last_macs
        last_thresholds, last_macs = thresholds, macs
    assert cost[exits_from_scores(learner, scores, cal.thresholds(0.0))[1] - 1].mean() > last_macs


def test_thresholds_are_mean_minus_alpha_sigma_of_the_correct_samples():
    """Depth 1: correct samples have gaps 1, 2, 3 (mu 2, sigma sqrt(2/3)); a wrong one (gap 10) is left out."""
    learner = LEARNERS.get("mp")("mp", small_net(0), InferenceConfig(mp_statistic="gap", prune_keep=2))
    s1 = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [0.0, 10.0]])
    s2 = torch.tensor([[4.0, 0.0], [4.0, 0.0], [6.0, 0.0], [6.0, 0.0]])
    cal = calibrate(learner, [s1, s2], np.array([0, 0, 0, 0]))
    assert cal.mu.tolist() == pytest.approx([2.0, 5.0]) and cal.n_correct.tolist() == [3, 4]
    assert cal.sigma.tolist() == pytest.approx([np.sqrt(2 / 3), 1.0])
    assert cal.thresholds(1.5).tolist() == pytest.approx([2.0 - 1.5 * np.sqrt(2 / 3), 5.0 - 1.5], rel=1e-6)
