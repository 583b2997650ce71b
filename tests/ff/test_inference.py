"""Early-exit inference: label-free, compaction == masking, pruning, MACs per sample."""

import numpy as np
import pytest
import torch

from ffenergy.ff.calibrate import calibrate
from ffenergy.ff.inference import ExitSpec, confidence, depth_scores, exits_from_scores, infer, predict
from ffenergy.ff.macs import macs_at_exit
from ffenergy.ff.model import FFNetwork

SPECS = [
    ExitSpec("mp", "gap"),
    ExitSpec("mp", "max"),
    ExitSpec("mp", "gap", prune_after=1, prune_keep=3),
    ExitSpec("op", "max"),
    ExitSpec("op", "gap"),
]


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    net = FFNetwork([20, 16, 12, 8], n_classes=4)
    for head in net.heads:  # heads start at zero: give them something to say
        torch.nn.init.normal_(head.weight, std=0.5)
    rng = np.random.default_rng(0)
    x = rng.random((300, 20), dtype=np.float32)
    y = rng.integers(0, 4, 300)
    return net.eval(), x, y


def _with_thresholds(spec, net, x, y, alpha=0.5):
    scores = depth_scores(net, torch.from_numpy(x), spec)
    cal = calibrate(scores, y, spec)
    th = cal.thresholds(alpha)
    return ExitSpec(spec.procedure, spec.statistic, tuple(th.tolist()), spec.prune_after, spec.prune_keep), th


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.procedure}-{s.statistic}-p{s.prune_keep}")
def test_compaction_gives_the_same_exits_and_predictions_as_masking(net_and_data, spec):
    net, x, y = net_and_data
    spec, th = _with_thresholds(spec, net, x, y)
    pred, exits = infer(net, torch.from_numpy(x), spec, None)
    masked_pred, masked_exits = exits_from_scores(depth_scores(net, torch.from_numpy(x), spec), spec, th)
    assert np.array_equal(exits.numpy(), masked_exits)
    assert np.array_equal(pred.numpy(), masked_pred)
    assert 1 < len(np.unique(masked_exits)), "the test needs samples exiting at different depths"


def test_labels_enter_only_through_calibration(net_and_data):
    """Calibration reads validation labels (so permuting them moves the thresholds); inference
    takes no labels at all. The end-to-end test permutes test labels and checks the exits."""
    net, x, y = net_and_data
    spec, _ = _with_thresholds(ExitSpec("mp", "gap"), net, x, y)
    permuted, _ = _with_thresholds(ExitSpec("mp", "gap"), net, x, np.random.default_rng(1).permutation(y))
    assert permuted.thresholds != spec.thresholds


def test_batch_size_does_not_change_results(net_and_data):
    net, x, y = net_and_data
    spec, _ = _with_thresholds(ExitSpec("mp", "gap"), net, x, y)
    a = predict(net, x, spec, None, batch_size=7)
    b = predict(net, x, spec, None, batch_size=1024)
    assert np.array_equal(a.exit_layer, b.exit_layer) and np.array_equal(a.pred, b.pred)


def test_forced_depth_exits_every_sample_there_with_its_macs(net_and_data):
    net, x, _ = net_and_data
    spec = ExitSpec("mp", "gap", prune_after=1, prune_keep=2)
    cost = macs_at_exit(net.dims, 4, "mp", 1, 2)
    for depth in (1, 2, 3):
        p = predict(net, x, spec, depth)
        assert set(p.exit_layer) == {depth}
        assert set(p.macs) == {cost[depth - 1]}


def test_light_inference_really_skips_work(net_and_data, monkeypatch):
    """Rows that exited must not reach later layers (compaction, not masking)."""
    net, x, y = net_and_data
    spec, th = _with_thresholds(ExitSpec("op", "max"), net, x, y, alpha=1.0)
    _, exits = exits_from_scores(depth_scores(net, torch.from_numpy(x), spec), spec, th)
    seen = []
    original = net.layer
    monkeypatch.setattr(net, "layer", lambda k, h, train=False: (seen.append((k, len(h))), original(k, h))[1])
    infer(net, torch.from_numpy(x), spec, None)
    for k, rows in seen:
        assert rows == int(np.sum(exits >= k + 1)), f"layer {k + 1} ran on {rows} rows"


def test_pruning_keeps_the_best_candidates_and_reports_the_rest_as_minus_infinity(net_and_data):
    net, x, _ = net_and_data
    spec = ExitSpec("mp", "gap", prune_after=1, prune_keep=2)
    full = depth_scores(net, torch.from_numpy(x), ExitSpec("mp", "gap"))
    pruned = depth_scores(net, torch.from_numpy(x), spec)
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


def test_confidence_statistics():
    s = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, float("-inf")]])
    assert confidence(s, "gap", "mp").tolist() == [2.0, 0.0]
    assert confidence(s, "max", "mp").tolist() == [3.0, 2.0]
    probs = confidence(s, "max", "op")
    assert probs[1].item() == pytest.approx(0.5)
    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(0)) * 20  # large: overflow-prone
    top_prob = torch.softmax(logits.double(), dim=1).max(dim=1).values.float()
    assert torch.allclose(confidence(logits, "max", "op"), top_prob, rtol=1e-6, atol=0)


def test_validation_alpha_selection_takes_the_most_aggressive_alpha_within_the_loss_budget(net_and_data):
    from ffenergy.ff.calibrate import select_alpha

    net, x, y = net_and_data
    spec = ExitSpec("op", "max")
    scores = depth_scores(net, torch.from_numpy(x), spec)
    cal = calibrate(scores, y, spec)
    candidates = [0.0, 0.5, 1.0, 2.0, 4.0]
    full = np.mean(scores[-1].argmax(dim=1).numpy() == y)
    acc = {a: np.mean(exits_from_scores(scores, spec, cal.thresholds(a))[0] == y) for a in candidates}
    for budget in (0.0, 1.0, 5.0, 100.0):
        chosen = select_alpha(scores, y, spec, cal, candidates, budget)
        assert acc[chosen] >= full - budget / 100 or chosen == min(candidates)
        assert all(acc[a] < full - budget / 100 for a in candidates if a > chosen)
    assert select_alpha(scores, y, spec, cal, candidates, 100.0) == 4.0
