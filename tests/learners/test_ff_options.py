"""model.options.ff: the FF loss's steepness and the OP heads trained further on the frozen layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ffenergy.config import ConfigError, ModelConfig, parse_config
from ffenergy.learners.exits import depth_accuracies, depth_scores
from ffenergy.learners.ff.learner import FFOnePass
from ffenergy.learners.ff.model import FFNetwork
from ffenergy.learners.ff.options import FFOptions
from ffenergy.learners.ff.train import _batch_loss, neutral_features
from tests.learners.kit import DIMS, trained


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss_scale": 0}, r"model\.options\.ff\.loss_scale: invalid value 0; use a positive number"),
        ({"loss_scale": "width"}, r"model\.options\.ff\.loss_scale: invalid value 'width'"),
        ({"head_epochs": -1}, r"model\.options\.ff\.head_epochs: invalid value -1; use an integer >= 0"),
        ({"head_epochs": 1.5}, r"model\.options\.ff\.head_epochs: invalid value 1\.5"),
        ({"loss_sale": 1.0}, r"model\.options\.ff\.loss_sale: unknown key; allowed: loss_scale, head_epochs"),
    ],
)
def test_ff_options_are_checked_when_the_config_loads(options, message):
    for procedure in ("mp", "mp-pruned", "op"):
        raw = {"model": {"options": {"ff": options}}, "inference": {"procedures": [procedure]}}
        with pytest.raises(ConfigError, match=message):
            parse_config(raw)
    parse_config({"model": {"options": {"ff": {"loss_scale": 1, "head_epochs": 2}}}})


def _ff_loss(net: FFNetwork, x: torch.Tensor, y: torch.Tensor, options: FFOptions) -> torch.Tensor:
    cfg = ModelConfig(hidden=net.dims[1:], peer_weight=0.0)
    return _batch_loss(
        net, x, y, cfg, options, [torch.zeros(d) for d in net.dims[1:]], torch.Generator().manual_seed(3)
    )[0]


def test_loss_scale_sets_the_logit_to_scale_times_mean_square_minus_one():
    torch.manual_seed(0)
    net = FFNetwork([20, 16], 4)
    x, y = torch.rand(8, 20), torch.randint(0, 4, (8,))
    neg = net.overlay(x, (y + torch.randint(1, 4, (8,), generator=torch.Generator().manual_seed(3))) % 4)
    z = net.layer(0, torch.cat([net.overlay(x, y), neg]), train=True)
    target = torch.cat([torch.ones(8), torch.zeros(8)])
    for scale in (0.5, 3.0):
        want = F.binary_cross_entropy_with_logits(scale * ((z * z).mean(dim=1) - 1.0), target)
        assert torch.allclose(_ff_loss(net, x, y, FFOptions(loss_scale=scale)), want)
    default = F.binary_cross_entropy_with_logits((z * z).sum(dim=1) - 16, target)  # the loeweX logit G - d
    assert torch.equal(_ff_loss(net, x, y, FFOptions()), default)
    assert torch.allclose(_ff_loss(net, x, y, FFOptions(loss_scale=16.0)), default)


def test_frozen_head_epochs_train_only_the_heads_on_the_op_inputs():
    plain, x, y = trained(FFOnePass, {}, epochs=2)
    more, _, _ = trained(FFOnePass, {"head_epochs": 5}, epochs=2)
    for a, b in zip(plain.net.layers, more.net.layers):  # the FF layers are frozen while the heads train
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not all(torch.equal(a.weight, b.weight) for a, b in zip(plain.net.heads, more.net.heads))
    assert sum(depth_accuracies(more, x, y)) > sum(depth_accuracies(plain, x, y))
    with torch.no_grad():  # the inputs the heads trained on are the ones OP scores at each depth
        scores = depth_scores(more, torch.from_numpy(x))
        for k, f in enumerate(neutral_features(more.net, torch.from_numpy(x))):
            assert f.shape[1] == sum(DIMS[1 : k + 2])
            assert torch.allclose(more.net.heads[k](f), scores[k], atol=1e-5)
