"""Early-exit inference: label-free, compaction == masking, pruning, MACs per sample."""

import numpy as np
import pytest
import torch

from ffenergy.config import InferenceConfig
from ffenergy.learners import LEARNERS
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.exits import depth_scores, exits_from_scores, infer, infer_pooled, predict
from ffenergy.learners.ff.macs import mp_layer_macs
from tests.learners.kit import layer_rows_seen, untrained_ff

SPECS = [("mp", "gap", 0), ("mp", "max", 0), ("mp-pruned", "gap", 3), ("op", "max", 0), ("op", "gap", 0)]


def make(net, name, statistic="gap", prune_keep=2, prune_after=1):
    """A registered FF learner on ``net`` with the given exit statistic (and pruning for mp-pruned)."""
    inference = InferenceConfig(
        mp_statistic=statistic, op_statistic=statistic, prune_after=prune_after, prune_keep=prune_keep
    )
    return LEARNERS.get(name)(name, net, inference)


@pytest.fixture(scope="module")
def net_and_data():
    return untrained_ff()


def _thresholds(learner, x, y, alpha=0.5):
    scores = depth_scores(learner, torch.from_numpy(x))
    th = calibrate(learner, scores, y).thresholds(alpha)
    return tuple(th.tolist()), th


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s[0]}-{s[1]}-p{s[2]}")
def test_compaction_gives_the_same_exits_and_predictions_as_masking(net_and_data, spec):
    net, x, y = net_and_data
    learner = make(net, *spec)
    thresholds, th = _thresholds(learner, x, y)
    masked_pred, masked_exits = exits_from_scores(learner, depth_scores(learner, torch.from_numpy(x)), th)
    # one compacted batch; batches of 7 and of 64 pooled by depth (pools that fill mid-stream and
    # pools flushed at the end)
    for pred, exits in (
        infer(learner, torch.from_numpy(x), thresholds, None),
        *(infer_pooled(learner, torch.from_numpy(x), thresholds, size) for size in (7, 64)),
    ):
        assert np.array_equal(exits.numpy(), masked_exits)
        assert np.array_equal(pred.numpy(), masked_pred)
    assert 1 < len(np.unique(masked_exits)), "the test needs samples exiting at different depths"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s[0]}-{s[1]}-p{s[2]}")
def test_the_confidence_of_a_single_row_is_the_batched_confidence(net_and_data, spec):
    net, x, _ = net_and_data
    learner = make(net, *spec)
    for scores in depth_scores(learner, torch.from_numpy(x)):  # mp-pruned: -inf for pruned labels
        rows = [learner.confidence_of_row(row) for row in scores.tolist()]
        np.testing.assert_allclose(rows, learner.confidence(scores).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mp", "op"])
def test_pooled_inference_runs_deeper_layers_on_full_batches(net_and_data, name, monkeypatch):
    """Rows that stay wait until a full batch of them has gathered for the next layer; only the
    flush at the end of the input runs fewer. Every row still runs every layer up to its exit."""
    net, x, y = net_and_data
    learner = make(net, name, "max")
    thresholds, th = _thresholds(learner, x, y, alpha=1.0)
    _, exits = exits_from_scores(learner, depth_scores(learner, torch.from_numpy(x)), th)
    seen = layer_rows_seen(net, monkeypatch)
    infer_pooled(learner, torch.from_numpy(x), thresholds, 4)
    for k in range(1, net.n_layers):
        rows = [r // (net.n_classes if name == "mp" else 1) for layer, r in seen if layer == k]
        assert sum(rows) == int(np.sum(exits >= k + 1)), f"layer {k + 1}"
        assert all(r >= 4 for r in rows[:-1]) and len(rows) > 1, f"layer {k + 1} ran on {rows} rows"


def test_labels_enter_only_through_calibration(net_and_data):
    """Calibration reads validation labels (so permuting them moves the thresholds); inference
    takes no labels at all. The end-to-end test permutes test labels and checks the exits."""
    net, x, y = net_and_data
    learner = make(net, "mp")
    thresholds, _ = _thresholds(learner, x, y)
    permuted, _ = _thresholds(learner, x, np.random.default_rng(1).permutation(y))
    assert permuted != thresholds


@pytest.mark.parametrize("name", ["mp", "op"])
def test_batch_size_does_not_change_results(net_and_data, name):
    net, x, y = net_and_data
    learner = make(net, name, "max")
    thresholds, _ = _thresholds(learner, x, y)
    b = predict(learner, x, thresholds, None, batch_size=1024)
    # batch 1: a single row reads its confidence as a float and exits whole; batch 7: compaction
    # down to single rows, and batches where no row or every row leaves early
    for size in (1, 7):
        a = predict(learner, x, thresholds, None, batch_size=size)
        assert np.array_equal(a.exit_layer, b.exit_layer) and np.array_equal(a.pred, b.pred)


def test_forced_depth_exits_every_sample_there_with_its_macs(net_and_data):
    net, x, _ = net_and_data
    learner = make(net, "mp-pruned", prune_after=1, prune_keep=2)
    cost = np.cumsum(mp_layer_macs(net.dims, 4, 1, 2))
    for depth in (1, 2, 3):
        p = predict(learner, x, None, depth)
        assert set(p.exit_layer) == {depth}
        assert set(p.macs) == {cost[depth - 1]}


def test_light_inference_really_skips_work(net_and_data, monkeypatch):
    """Rows that exited must not reach later layers (compaction, not masking)."""
    net, x, y = net_and_data
    learner = make(net, "op", "max")
    thresholds, th = _thresholds(learner, x, y, alpha=1.0)
    _, exits = exits_from_scores(learner, depth_scores(learner, torch.from_numpy(x)), th)
    seen = layer_rows_seen(net, monkeypatch)
    infer(learner, torch.from_numpy(x), thresholds, None)
    assert seen, "the monkeypatched layer must be the one inference runs"
    for k, rows in seen:
        assert rows == int(np.sum(exits >= k + 1)), f"layer {k + 1} ran on {rows} rows"


def test_pruning_keeps_the_best_candidates_and_reports_the_rest_as_minus_infinity(net_and_data):
    net, x, _ = net_and_data
    full = depth_scores(make(net, "mp"), torch.from_numpy(x))
    pruned = depth_scores(make(net, "mp-pruned", prune_after=1, prune_keep=2), torch.from_numpy(x))
    finite = torch.isfinite(pruned[1])
    assert finite.sum(dim=1).eq(2).all()
    best_two = torch.topk(full[0], 2, dim=1).indices
    assert torch.equal(finite.nonzero()[:, 1].reshape(-1, 2), torch.sort(best_two, dim=1).values)


def test_inference_form_of_a_layer_equals_the_training_form(net_and_data):
    """The inference form folds the RMS normalisation into the output scale; same values."""
    net, x, _ = net_and_data
    h = torch.from_numpy(x) * torch.logspace(-3, 3, len(x))[:, None]  # inputs of every scale
    h[0] = 0.0  # an all-zero input: the eps keeps both forms at ReLU(b)
    with torch.no_grad():
        for k in range(net.n_layers):
            fast, slow = net.layer(k, h), net.layer(k, h, train=True)
            assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6)
            h = slow
    assert torch.equal(net.layer(0, torch.zeros(1, 20)), torch.relu(net.layers[0].bias)[None])


def test_factorised_first_layer_equals_the_direct_layer_on_every_label_overlay(net_and_data):
    """label_layer: one image product plus a label column per candidate == layer 1 of each overlay."""
    net, x, _ = net_and_data
    xt = torch.from_numpy(x) * torch.logspace(-3, 3, len(x))[:, None]  # inputs of every scale
    xt[0] = 0.0  # only the label value left: the norm is label_value alone
    xt[1, :4] = 5.0  # the input's own label slots are overwritten, never read
    labels = torch.tensor([3, 0, 2])  # any subset, in any order
    with torch.no_grad():
        fact = net.label_layer(xt, labels)
        assert fact.shape == (len(x), 3, 16)
        for i, c in enumerate(labels.tolist()):
            direct = net.layer(0, net.overlay(xt, torch.full((len(x),), c)))
            torch.testing.assert_close(fact[:, i], direct, rtol=1e-5, atol=1e-5)


def test_confidence_statistics(net_and_data):
    net = net_and_data[0]
    s = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, float("-inf")]])
    assert make(net, "mp", "gap").confidence(s).tolist() == [2.0, 0.0]
    assert make(net, "mp", "max").confidence(s).tolist() == [3.0, 2.0]
    assert make(net, "op", "gap").confidence(s).tolist() == [2.0, 0.0]
    probs = make(net, "op", "max").confidence(s)
    assert probs[1].item() == pytest.approx(0.5)
    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(0)) * 20  # large: overflow-prone
    top_prob = torch.softmax(logits.double(), dim=1).max(dim=1).values.float()
    assert torch.allclose(make(net, "op", "max").confidence(logits), top_prob, rtol=1e-6, atol=0)


def test_validation_alpha_selection_takes_the_most_aggressive_alpha_within_the_loss_budget(net_and_data):
    from ffenergy.learners.calibrate import select_alpha

    net, x, y = net_and_data
    learner = make(net, "op", "max")
    scores = depth_scores(learner, torch.from_numpy(x))
    cal = calibrate(learner, scores, y)
    candidates = [0.0, 0.5, 1.0, 2.0, 4.0]
    full = np.mean(scores[-1].argmax(dim=1).numpy() == y)
    acc = {a: np.mean(exits_from_scores(learner, scores, cal.thresholds(a))[0] == y) for a in candidates}
    for budget in (0.0, 1.0, 5.0, 100.0):
        chosen = select_alpha(learner, scores, y, cal, candidates, budget)
        assert acc[chosen] >= full - budget / 100 or chosen == min(candidates)
        assert all(acc[a] < full - budget / 100 for a in candidates if a > chosen)
    assert select_alpha(learner, scores, y, cal, candidates, 100.0) == 4.0


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s[0]}-{s[1]}")
def test_confidence_never_falls_below_the_floor_that_flags_light_as_depth_1(net_and_data, spec):
    net, x, _ = net_and_data
    learner = make(net, *spec)
    floor = learner.confidence_floor
    assert floor == (0.25 if spec[:2] == ("op", "max") else 0.0)  # 1/C for a softmax probability, else 0
    for scores in depth_scores(learner, torch.from_numpy(x)):
        assert (learner.confidence(scores) >= floor - 1e-7).all()
