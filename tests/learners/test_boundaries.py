"""Boundaries a one-character bug moves: ties exit (>=, not >) on the single-row path and in the
policies' view, a p-value equal to delta certifies, and alpha selection falls back when no alpha
keeps validation accuracy within budget."""

from __future__ import annotations

import numpy as np
import torch

from ffenergy.learners.calibrate import calibrate, select_alpha
from ffenergy.learners.exits import depth_scores, exits_from_scores, infer
from ffenergy.learners.policy import DepthView, fixed_sequence, p_value
from tests.learners.kit import small_learner


def test_a_single_row_whose_confidence_equals_its_threshold_exits():
    learner = small_learner("op", head_std=1e4)  # saturated heads: every top probability is exactly 1.0
    x = torch.from_numpy(np.random.default_rng(0).random((1, 24), dtype=np.float32))
    assert float(learner.confidence(depth_scores(learner, x)[0])[0]) == 1.0
    _, exits = infer(learner, x, (1.0, 1.0), None)
    assert exits.tolist() == [1]


def test_the_policies_view_exits_at_a_tie():
    view = DepthView(np.array([[0.5, 0.9, 1.0], [0.4, 0.9, 1.0]]), np.zeros((2, 3), np.int64), np.array([1, 2, 3]))
    assert view.exits(np.array([0.5, 0.9])).tolist() == [1, 2]


def test_a_p_value_equal_to_delta_is_rejected_and_the_first_failure_stops_the_sequence():
    n, epsilon = 200, 0.05
    delta = p_value(1, n, epsilon)
    chosen, p_values = fixed_sequence([0, 1, 5, 0], n, epsilon, delta, "binomial")
    assert chosen == 2 and len(p_values) == 3  # 0 and 1 losses pass (1 exactly at delta), 5 fails, 0 untested


def test_alpha_selection_falls_back_to_the_smallest_alpha_when_none_is_within_budget():
    learner = small_learner("op")
    x = np.random.default_rng(1).random((300, 24), dtype=np.float32)
    scores = depth_scores(learner, torch.from_numpy(x))
    labels = scores[-1].argmax(dim=1).numpy()  # the full network is always right
    cal = calibrate(learner, scores, labels)
    candidates = [8.0, 3.0, 5.0]
    for a in candidates:  # every candidate loses accuracy against the full network
        assert np.mean(exits_from_scores(learner, scores, cal.thresholds(a))[0] == labels) < 1.0
    assert select_alpha(learner, scores, labels, cal, candidates, max_loss_pp=0.0) == 3.0
    assert select_alpha(learner, scores, labels, cal, candidates, max_loss_pp=100.0) == 8.0  # all within: largest
