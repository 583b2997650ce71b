"""cafo: CaFo's DFA-trained (or random) blocks with a cross-entropy predictor per block, behind the seam."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffenergy.config import ConfigError, InferenceConfig, ModelConfig, parse_config
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.learners.base import Learner, LearnerOptionsError, NotDeployable
from ffenergy.learners.cafo.learner import Cafo, _dfa_step, feedback_matrix
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.exits import depth_accuracies, depth_scores
from tests.learners.kit import (
    DIMS,
    blobs,
    check_exited_rows_skip_later_layers,
    check_labels_enter_only_through_calibration,
    check_light_inference_equals_masking,
    check_macs_are_exactly_what_inference_runs,
    trained,
)

OPTIONS = {"lr": 0.03, "head_epochs": 3, "head_lr": 1e-2}


@pytest.fixture(scope="module")
def cafo() -> tuple[Learner, np.ndarray, np.ndarray]:
    return trained(Cafo, OPTIONS)


def test_macs_per_layer_are_the_block_plus_its_predictor():
    learner = Cafo("cafo", Cafo.build([6, 4, 3], 2, 1.0), InferenceConfig())
    # block 1: 6*4 + predictor 4*2; block 2: 4*3 + predictor 3*2 (the running sum adds no MAC)
    assert learner.layer_macs().tolist() == [32, 18]
    assert learner.macs_at_exit().tolist() == [32, 50]
    # the learners config's 784-500-1000-1000: 784*500 + 500*10, then + 500*1000 + 1000*10, + 1000*1000 + 1000*10
    wide = Cafo("cafo", Cafo.build([784, 500, 1000, 1000], 10, 1.0), InferenceConfig())
    assert wide.macs_at_exit().tolist() == [397_000, 907_000, 1_917_000]


def test_macs_are_exactly_what_inference_runs(cafo):
    check_macs_are_exactly_what_inference_runs(*cafo)


@pytest.mark.parametrize("statistic", ["max", "gap"])
def test_every_light_path_gives_the_exits_and_predictions_of_masking(statistic):
    check_light_inference_equals_masking(*trained(Cafo, OPTIONS, statistic=statistic))


def test_rows_that_exited_never_reach_later_layers(cafo, monkeypatch):
    check_exited_rows_skip_later_layers(*cafo, monkeypatch)


def test_labels_enter_only_through_calibration(cafo):
    check_labels_enter_only_through_calibration(*cafo)


def test_it_learns_from_the_training_labels_and_nothing_else():
    """Trained on permuted labels it is near chance on fresh samples; on the true ones far above it."""
    x, y = blobs(400, seed=1)
    assert min(depth_accuracies(trained(Cafo, OPTIONS, epochs=5)[0], x, y)) > 0.65  # chance is 0.25; about 0.73
    xs, ys = blobs(600, seed=0)
    model = ModelConfig(hidden=DIMS[1:], epochs=5, batch_size=50, options={"cafo": OPTIONS})
    torch.manual_seed(0)
    net = Cafo.build(DIMS, 4, 1.0)
    Cafo.fit(net, xs, np.random.default_rng(2).permutation(ys), model, 0, "cpu", False, EpochCheckpoint())
    assert max(depth_accuracies(Cafo("cafo", net.eval(), InferenceConfig()), x, y)) < 0.45


def test_the_scores_at_depth_k_are_the_sum_of_the_first_k_predictors(cafo):
    learner, x, _ = cafo
    net, h, total = learner.net, torch.from_numpy(x), 0
    for k, scores in enumerate(depth_scores(learner, torch.from_numpy(x))):
        with torch.no_grad():
            h = net.layer(k, h)
            total = total + net.exit(k, h)
        assert torch.allclose(scores, total)
    assert not torch.allclose(scores, net.exit(k, h))  # the last depth is not the last predictor alone


def test_the_dfa_update_sends_the_output_error_to_every_block_through_its_own_matrix():
    """dW_l = ((e B_l) * relu'(a_l))^T h_{l-1}, dP = e^T h_L, dp = mean e, batch-averaged (numpy)."""
    torch.manual_seed(0)
    net = Cafo.build([5, 4, 3], 2, 1.0)
    gen = torch.Generator().manual_seed(0)
    fb = [feedback_matrix(2, 4, gen), feedback_matrix(2, 3, gen)]
    x, y = torch.rand(7, 5), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    _dfa_step(net, x, y, fb)
    w1, w2, p, b = (
        t.detach().double().numpy() for t in (net.layers[0].weight, net.layers[1].weight, *net.heads[1].parameters())
    )
    xn, b1, b2 = x.double().numpy(), *(f.double().numpy() for f in fb)
    a1 = xn @ w1.T
    h1 = np.maximum(a1, 0)
    a2 = h1 @ w2.T
    h2 = np.maximum(a2, 0)
    out = np.exp(h2 @ p.T + b)
    e = out / out.sum(axis=1, keepdims=True) - np.eye(2)[y.numpy()]
    assert np.allclose(net.layers[0].weight.grad, ((e @ b1) * (a1 > 0)).T @ xn / 7, atol=1e-6)
    assert np.allclose(net.layers[1].weight.grad, ((e @ b2) * (a2 > 0)).T @ h1 / 7, atol=1e-6)
    assert np.allclose(net.heads[1].weight.grad, e.T @ h2 / 7, atol=1e-6)
    assert np.allclose(net.heads[1].bias.grad, e.mean(axis=0), atol=1e-6)
    assert net.heads[0].weight.grad is None  # the first predictor trains later, on its own


def test_the_feedback_matrices_have_a_fan_in_scale():
    fb = feedback_matrix(10, 1000, torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / 1000)
    assert fb.shape == (10, 1000) and fb.abs().max() <= bound and fb.abs().max() > 0.9 * bound


@pytest.mark.parametrize("blocks", ["random", "dfa"])
def test_predictors_train_on_frozen_blocks_and_random_blocks_stay_as_initialised(blocks):
    torch.manual_seed(0)
    initial = Cafo.build(DIMS, 4, 1.0).state_dict()
    short, long = (trained(Cafo, {**OPTIONS, "blocks": blocks, "head_epochs": n}, epochs=1)[0] for n in (1, 2))
    a, b = short.net.state_dict(), long.net.state_dict()
    layers = [k for k in a if k.startswith("layers.")]
    assert len(layers) == len(DIMS) - 1 and all(torch.equal(a[k], b[k]) for k in layers)
    assert all(torch.equal(a[k], initial[k]) for k in layers) == (blocks == "random")
    assert all(not torch.equal(a[f"heads.{i}.weight"], b[f"heads.{i}.weight"]) for i in range(len(DIMS) - 1))


def test_training_is_deterministic_for_a_seed():
    a, b, c = (trained(Cafo, {"head_epochs": 1}, epochs=1, seed=s)[0] for s in (0, 0, 1))
    sa, sb, sc = (m.net.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_it_learns_the_embedded_mnist_subset():
    data = load_experiment_data(parse_config({}))
    model = ModelConfig(hidden=[128, 64], epochs=2, options={"cafo": {"lr": 0.05, "head_epochs": 1}})
    torch.manual_seed(0)
    net = Cafo.build([784, 128, 64], 10, 1.0)
    Cafo.fit(net, data.x_train, data.y_train, model, 0, "cpu", progress=False, checkpoint=EpochCheckpoint())
    accuracy = depth_accuracies(Cafo("cafo", net.eval(), InferenceConfig()), data.x_test, data.y_test)
    assert min(accuracy) > 0.75, accuracy  # chance is 0.1; about 0.79 and 0.81


def test_divergence_names_the_learning_rate():
    with pytest.raises(LearnerOptionsError, match=r"model\.options\.cafo\.lr: training diverged"):
        trained(Cafo, {"lr": 1e5, "momentum": 0.0}, epochs=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"blocks": "conv"}, r"model\.options\.cafo\.blocks: invalid value 'conv'; use dfa or random"),
        ({"lr": "fast"}, r"model\.options\.cafo\.lr: invalid value 'fast'; use a positive number"),
        ({"lr_decay_at": [1.5]}, r"model\.options\.cafo\.lr_decay_at: .*use a list of fractions in \(0, 1\]"),
        ({"head_epochs": 0}, r"model\.options\.cafo\.head_epochs: invalid value 0; use a positive integer"),
        ({"block": "dfa"}, r"model\.options\.cafo\.block: unknown key; allowed: blocks, lr"),
    ],
)
def test_bad_options_are_refused_when_the_config_loads_naming_the_key_and_the_fix(options, message):
    raw = {"model": {"options": {"cafo": options}}, "inference": {"procedures": ["op", "cafo"]}}
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)
    parse_config({**raw, "inference": {"procedures": ["op"]}})  # only the procedures a run uses are checked


def test_the_firmware_cannot_run_it(cafo):
    with pytest.raises(NotDeployable, match="cafo"):
        cafo[0].firmware(np.zeros(3, np.float32))
