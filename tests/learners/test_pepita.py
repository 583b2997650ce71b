"""pepita: PEPITA-trained MLP with exit heads trained afterwards, behind the learner seam."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffenergy.config import InferenceConfig, ModelConfig, parse_config
from ffenergy.experiment.dataset import load_experiment_data
from ffenergy.learners.base import Learner, LearnerOptionsError
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.exits import depth_scores
from ffenergy.learners.pepita import Pepita, _pepita_step, dropout_masks, feedback_matrix
from tests.learners.kit import (
    DIMS,
    check_exited_rows_skip_later_layers,
    check_firmware_reference_equals_torch,
    check_light_inference_equals_masking,
    check_macs_are_exactly_what_inference_runs,
    trained,
)

OPTIONS = {"lr": 0.03, "head_epochs": 3, "head_lr": 1e-2}


@pytest.fixture(scope="module")
def pepita() -> tuple[Learner, np.ndarray, np.ndarray]:
    return trained(Pepita, OPTIONS)


def test_the_network_is_bias_free_with_heads_on_hidden_layers_and_the_output_layer_last():
    net = Pepita.build([6, 4, 3], 2, 1.0)
    assert all(layer.bias is None for layer in net.layers)
    assert [h.in_features for h in net.heads] == [4, 3]
    assert net.heads[0].bias is not None and net.heads[-1].bias is None  # the last exit is PEPITA's output
    for layer in [*net.layers, net.heads[-1]]:  # He-uniform
        assert layer.weight.abs().max() <= math.sqrt(6 / layer.in_features)


def test_macs_per_layer_are_the_layer_plus_its_exit():
    learner = Pepita("pepita", Pepita.build([6, 4, 3], 2, 1.0), InferenceConfig())
    # layer 1: 6*4 + exit head 4*2; layer 2: 4*3 + output layer 3*2
    assert learner.macs_at_exit().tolist() == [32, 50]


def test_macs_are_exactly_what_inference_runs(pepita):
    check_macs_are_exactly_what_inference_runs(*pepita)


@pytest.mark.parametrize("statistic", ["max", "gap"])
def test_every_light_path_gives_the_exits_and_predictions_of_masking(statistic):
    check_light_inference_equals_masking(*trained(Pepita, OPTIONS, statistic=statistic))


def test_rows_that_exited_never_reach_later_layers(pepita, monkeypatch):
    check_exited_rows_skip_later_layers(*pepita, monkeypatch)


@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_the_update_is_the_two_pass_rule_of_the_paper(keep):
    """dW_1 = (h_1 - h_1')^T x', dW_2 = (h_2 - h_2')^T h_1', dW_out = e'^T h_2' with x' = x + e F^T,
    batch-averaged (numpy); with dropout, h_l is masked by the same mask in both passes."""
    torch.manual_seed(0)
    net = Pepita.build([5, 4, 6], 3, 1.0)
    fb = feedback_matrix(5, 3, 0.05, torch.Generator().manual_seed(0))
    x, y = torch.rand(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    weights = [net.layers[0].weight, net.layers[1].weight, net.heads[-1].weight]
    drawn = dropout_masks(net, x, keep, torch.Generator().manual_seed(3))
    masks = [np.ones((7, d)) for d in (4, 6)] if drawn is None else [m.double().numpy() for m in drawn]
    _pepita_step(net, x, y, fb, weights, keep, torch.Generator().manual_seed(3))
    w1, w2, wo, f = (t.detach().double().numpy() for t in (*weights, fb))
    xn, onehot = x.double().numpy(), np.eye(3)[y.numpy()]

    def forward(inp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h1 = np.maximum(inp @ w1.T, 0) * masks[0]
        h2 = np.maximum(h1 @ w2.T, 0) * masks[1]
        out = np.exp(h2 @ wo.T)
        return h1, h2, out / out.sum(axis=1, keepdims=True) - onehot

    h1, h2, e = forward(xn)
    x_mod = xn + e @ f.T
    h1_mod, h2_mod, e_mod = forward(x_mod)
    assert np.allclose(weights[0].grad.numpy(), (h1 - h1_mod).T @ x_mod / 7, atol=1e-7)
    assert np.allclose(weights[1].grad.numpy(), (h2 - h2_mod).T @ h1_mod / 7, atol=1e-7)
    assert np.allclose(weights[2].grad.numpy(), e_mod.T @ h2_mod / 7, atol=1e-7)


def test_dropout_masks_keep_units_at_the_keep_rate_scaled_by_its_inverse():
    net = Pepita.build([5, 400, 300], 3, 1.0)
    masks = dropout_masks(net, torch.zeros(50, 5), 0.9, torch.Generator().manual_seed(0))
    assert masks is not None and [m.shape for m in masks] == [(50, 400), (50, 300)]
    for m in masks:
        assert torch.allclose(m.unique(), torch.tensor([0.0, 1 / 0.9]))
        assert abs(float((m > 0).float().mean()) - 0.9) < 0.01


def test_without_dropout_no_mask_is_drawn_so_the_generator_is_untouched():
    """keep = 1 leaves the shuffling stream (and so every earlier run) as it was."""
    gen = torch.Generator().manual_seed(0)
    before = gen.get_state()
    assert dropout_masks(Pepita.build([5, 4], 3, 1.0), torch.zeros(2, 5), 1.0, gen) is None
    assert torch.equal(gen.get_state(), before)


def test_the_feedback_matrix_has_the_papers_scale():
    fb = feedback_matrix(784, 10, 0.05, torch.Generator().manual_seed(0))
    bound = 0.05 * math.sqrt(6 / 784)
    assert fb.shape == (784, 10) and fb.abs().max() <= bound and fb.abs().max() > 0.9 * bound


def test_training_is_deterministic_for_a_seed():
    a, b, c = (trained(Pepita, {"head_epochs": 1}, epochs=1, seed=s)[0] for s in (0, 0, 1))
    sa, sb, sc = (m.net.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_dropout_reaches_training_and_stays_deterministic_for_a_seed():
    a, b = (trained(Pepita, {"head_epochs": 1, "keep": 0.8}, epochs=1)[0] for _ in range(2))
    plain = trained(Pepita, {"head_epochs": 1}, epochs=1)[0]
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layers.0.weight"], plain.net.state_dict()["layers.0.weight"])


def test_it_learns_the_embedded_mnist_subset():
    data = load_experiment_data(parse_config({}))
    model = ModelConfig(
        hidden=[128, 64],
        epochs=3,
        options={"pepita": {"lr": 0.1, "lr_decay_at": [], "head_epochs": 1, "head_lr": 0.01}},
    )
    torch.manual_seed(0)
    net = Pepita.build([784, 128, 64], 10, 1.0)
    Pepita.fit(net, data.x_train, data.y_train, model, 0, "cpu", progress=False, checkpoint=EpochCheckpoint())
    scores = depth_scores(Pepita("pepita", net.eval(), InferenceConfig()), torch.from_numpy(data.x_test))
    accuracy = [float((s.argmax(dim=1).numpy() == data.y_test).mean()) for s in scores]
    assert min(accuracy) > 0.75, accuracy  # chance is 0.1; about 0.85 and 0.83


def test_heads_train_after_pepita_on_frozen_layers():
    """Head training leaves the PEPITA-trained layers and output layer as they were."""
    short, _, _ = trained(Pepita, {**OPTIONS, "head_epochs": 1}, epochs=1)
    long, _, _ = trained(Pepita, {**OPTIONS, "head_epochs": 2}, epochs=1)
    a, b = short.net.state_dict(), long.net.state_dict()
    frozen = [k for k in a if k.startswith(("layers.", f"heads.{len(DIMS) - 2}."))]
    assert len(frozen) == len(DIMS) and all(torch.equal(a[k], b[k]) for k in frozen)
    assert not torch.equal(a["heads.0.weight"], b["heads.0.weight"])


def test_divergence_names_the_learning_rate():
    with pytest.raises(LearnerOptionsError, match=r"model\.options\.pepita\.lr: training diverged"):
        trained(Pepita, {"lr": 1e4, "momentum": 0.0}, epochs=2)


@pytest.mark.parametrize(("key", "value"), [("f_scale", -1.0), ("keep", 0.0), ("keep", 1.5)])
def test_bad_options_name_their_key(key, value):
    with pytest.raises(LearnerOptionsError, match=rf"model\.options\.pepita\.{key}"):
        trained(Pepita, {key: value}, epochs=1)


def test_the_firmware_reference_gives_the_torch_predictions_and_exits(pepita):
    """PEPITA's bias-free layers and output export with zero biases (the same ``exit`` scheme as bp-exits)."""
    arrays, _ = pepita[0].firmware(np.zeros(3, np.float32))
    assert not any(b.any() for b in arrays.biases) and not arrays.head_biases[-1].any()
    check_firmware_reference_equals_torch(*pepita)
