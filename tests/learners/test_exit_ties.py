"""Ties on every path of the exit rule: a confidence equal to its layer's threshold exits (>=, not >) in the
masking view, per-batch light inference, pooled light inference and the policies' view, with the tie on some
rows only, so a rule that lets every row or no row leave is caught too."""

from __future__ import annotations

import numpy as np
import torch

from ffenergy.config import InferenceConfig
from ffenergy.learners.exits import depth_scores, exits_from_scores, infer, infer_pooled, predict
from ffenergy.learners.policy import DepthView
from tests.learners.kit import small_learner


def _learner(name: str, head_std: float = 0.5, statistic: str = "gap"):
    return small_learner(name, head_std, InferenceConfig(mp_statistic=statistic, op_statistic="max", prune_keep=2))


def test_the_masking_view_exits_the_rows_at_a_tie_and_keeps_the_rows_below_it():
    learner = _learner("mp")  # gap statistic: top score minus the runner-up
    s1 = torch.tensor([[3.0, 1.0], [2.0, 1.0], [1.5, 1.0], [1.0, 1.0]])  # gaps 2, 1 (the tie), 0.5, 0
    s2 = torch.tensor([[0.0, 4.0], [0.0, 4.0], [5.0, 4.0], [0.0, 2.0]])  # gaps 4, 4, 1 (a tie again), 2
    s3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    pred, exits = exits_from_scores(learner, [s1, s2, s3], np.array([1.0, 1.0]))
    assert exits.tolist() == [1, 1, 2, 2]
    assert pred.tolist() == [0, 0, 0, 1]  # each row's answer at its own exit depth
    view = DepthView.of(learner, [s1, s2, s3])
    vpred, vexits = view.light(np.array([1.0, 1.0]))
    assert vexits.tolist() == [1, 1, 2, 2] and vpred.tolist() == [0, 0, 0, 1]
    assert exits_from_scores(learner, [s1, s2, s3], np.array([2.5, 4.5]))[1].tolist() == [3, 3, 3, 3]


def test_saturated_rows_leave_at_a_tie_on_the_batch_the_single_row_and_the_pooled_paths():
    """Saturated heads: every top probability is exactly 1.0, the threshold is 1.0."""
    learner = _learner("op", head_std=1e4, statistic="max")
    x = torch.from_numpy(np.random.default_rng(3).random((40, 24), dtype=np.float32))
    assert bool((learner.confidence(depth_scores(learner, x)[0]) == 1.0).all())
    thresholds = (1.0, 1.0)
    _, batch = infer(learner, x, thresholds, None)
    _, single = infer(learner, x[:1], thresholds, None)
    _, pooled = infer_pooled(learner, x, thresholds, batch_size=16)
    assert batch.tolist() == [1] * 40 and single.tolist() == [1] and pooled.tolist() == [1] * 40


def test_pooled_inference_exits_the_same_rows_as_batch_by_batch_at_thresholds_set_to_sample_confidences():
    """Per-layer thresholds chosen equal to some samples' confidences: those samples sit exactly on the rule."""
    learner = _learner("mp", statistic="gap")
    x = torch.from_numpy(np.random.default_rng(4).random((64, 24), dtype=np.float32))
    scores = depth_scores(learner, x)
    conf = [learner.confidence(s).double().numpy() for s in scores]
    thresholds = [float(np.sort(c)[32]) for c in conf[:-1]]  # the 33rd smallest confidence of each layer
    for c, t in zip(conf, thresholds):
        assert (c == t).sum() >= 1  # a sample exactly on the rule
    _, exits = exits_from_scores(learner, scores, np.array(thresholds))
    batch = torch.cat([infer(learner, x[i : i + 16], thresholds, None)[1] for i in range(0, 64, 16)])
    _, pooled = infer_pooled(learner, x, thresholds, batch_size=16)
    assert batch.tolist() == exits.tolist() == pooled.tolist()
    assert 0 < int((exits == 1).sum()) < 64 and int((exits == learner.n_layers).sum()) > 0


def test_predict_over_batches_is_infer_on_the_whole_array_with_the_macs_of_each_exit():
    learner = _learner("mp", statistic="gap")
    x = np.random.default_rng(5).random((37, 24), dtype=np.float32)
    scores = depth_scores(learner, torch.from_numpy(x))
    thresholds = [float(np.sort(learner.confidence(s).double().numpy())[18]) for s in scores[:-1]]
    p = predict(learner, x, thresholds, None, batch_size=8)  # 5 batches, the last one of 5 rows
    pred, exits = infer(learner, torch.from_numpy(x), thresholds, None)
    assert p.pred.tolist() == pred.tolist() and p.exit_layer.tolist() == exits.tolist()
    assert p.macs.tolist() == learner.macs_at_exit()[exits.numpy() - 1].tolist()
    full = predict(learner, x, None, learner.n_layers, batch_size=8)
    assert full.exit_layer.tolist() == [learner.n_layers] * 37
    assert full.pred.tolist() == scores[-1].argmax(dim=1).tolist()


def test_a_row_that_exited_stays_out_however_many_layers_follow():
    learner = _learner("mp")
    s1 = torch.tensor([[3.0, 0.0], [0.0, 0.5], [0.0, 0.5]])  # gaps 3, 0.5, 0.5: row 0 exits at layer 1
    s2 = torch.tensor([[0.0, 0.5], [2.0, 0.0], [0.0, 0.5]])  # row 1 exits at layer 2
    s3 = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 0.5]])  # rows 0 and 1 would pass here too
    s4 = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    _, exits = exits_from_scores(learner, [s1, s2, s3, s4], np.array([1.0, 1.0, 1.0]))
    assert exits.tolist() == [1, 2, 4]
