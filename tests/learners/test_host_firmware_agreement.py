"""The same trained FF network through torch and through export -> numpy reference (-> host firmware):
the same predictions and exit layers, for every procedure and prune setting, in every mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ffenergy.config import ConfigError, InferenceConfig, parse_config
from ffenergy.firmware.export import deploy
from ffenergy.firmware.launch import check_against_reference
from ffenergy.firmware.reference import reference_predict
from ffenergy.learners import LEARNERS
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.exits import depth_scores, predict
from ffenergy.learners.ff.model import FFNetwork
from ffenergy.vocabulary import all_modes, forced_depth

CASES = [
    ("mp", "gap", 2),
    ("mp", "max", 2),
    ("mp-pruned", "gap", 2),
    ("mp-pruned", "gap", 3),
    ("op", "max", 2),
    ("op", "gap", 2),
]


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    net = FFNetwork([24, 16, 12, 8], n_classes=4)
    for head in net.heads:
        torch.nn.init.normal_(head.weight, std=0.5)
    rng = np.random.default_rng(0)
    return net.eval(), rng.random((160, 24), dtype=np.float32), rng.integers(0, 4, 160)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-keep{c[2]}")
def test_torch_and_the_firmware_reference_agree_on_every_sample(net_and_data, case):
    net, x, y = net_and_data
    name, statistic, keep = case
    learner = LEARNERS.get(name)(
        name, net, InferenceConfig(mp_statistic=statistic, op_statistic=statistic, prune_after=1, prune_keep=keep)
    )
    thresholds = calibrate(learner, depth_scores(learner, torch.from_numpy(x)), y).thresholds(0.5)
    arrays, policy = learner.firmware(thresholds)
    model = deploy(arrays, policy, "f32")
    exits = set()
    for mode in all_modes(learner.n_layers):
        host = predict(learner, x, tuple(thresholds.tolist()), forced_depth(mode, learner.n_layers))
        ref = reference_predict(model, x, mode)
        assert np.array_equal(host.exit_layer, ref.exit_layer), mode
        assert np.array_equal(host.pred, ref.pred), mode
        assert np.array_equal(host.macs, ref.macs), mode
        exits |= set(host.exit_layer.tolist()) if mode == "light" else set()
    assert len(exits) > 1, "the case needs light exits at more than one depth"


def test_the_host_firmware_agrees_with_the_reference_for_pruned_mp(net_and_data):
    net, x, y = net_and_data
    learner = LEARNERS.get("mp-pruned")("mp-pruned", net, InferenceConfig(prune_after=1, prune_keep=2))
    thresholds = calibrate(learner, depth_scores(learner, torch.from_numpy(x)), y).thresholds(0.5)
    arrays, policy = learner.firmware(thresholds)
    assert check_against_reference(arrays, policy, x[:40], "host", "f32", ["full", "light", "depth-1"]) == []


def test_one_candidate_after_pruning_is_refused():
    with pytest.raises(ConfigError, match=r"inference.prune_keep.*>= 2"):
        parse_config({"inference": {"prune_keep": 1}})
