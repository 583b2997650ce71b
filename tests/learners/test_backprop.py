"""bp-exits: a back-propagation multi-exit MLP behind the learner seam, and an end-to-end run of
bp-exits, pepita, cafo and FF op through ``ffenergy run``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ffenergy.cli import main
from ffenergy.config import InferenceConfig
from ffenergy.contract import read_rows
from ffenergy.firmware.launch import check_against_reference
from ffenergy.learners.backprop import BackpropMultiExit
from ffenergy.learners.base import Learner, LearnerOptionsError
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.exits import depth_accuracies, depth_scores
from ffenergy.vocabulary import all_modes
from tests.learners.kit import (
    DIMS,
    blobs,
    check_exited_rows_skip_later_layers,
    check_firmware_reference_equals_torch,
    check_light_inference_equals_masking,
    check_macs_are_exactly_what_inference_runs,
    trained,
)


@pytest.fixture(scope="module")
def bp() -> tuple[Learner, np.ndarray, np.ndarray]:
    return trained(BackpropMultiExit, {"lr": 3e-3}, epochs=10)


def test_macs_per_layer_are_the_layer_plus_its_head_on_that_layer():
    net = BackpropMultiExit.build([6, 4, 3], 2, 1.0)
    learner = BackpropMultiExit("bp-exits", net, InferenceConfig())
    # layer 1: 6*4 + head 4*2; layer 2: 4*3 + head 3*2 (heads read their own depth only)
    assert learner.layer_macs().tolist() == [24 + 8, 12 + 6]
    assert learner.macs_at_exit().tolist() == [32, 50]


def test_macs_are_exactly_what_inference_runs(bp):
    check_macs_are_exactly_what_inference_runs(*bp)


@pytest.mark.parametrize("statistic", ["max", "gap"])
def test_every_light_path_gives_the_exits_and_predictions_of_masking(statistic):
    check_light_inference_equals_masking(*trained(BackpropMultiExit, {"lr": 3e-3}, statistic=statistic))


def test_rows_that_exited_never_reach_later_layers(bp, monkeypatch):
    check_exited_rows_skip_later_layers(*bp, monkeypatch)


def test_training_is_deterministic_for_a_seed():
    a, b, c = (trained(BackpropMultiExit, {}, epochs=1, seed=s)[0] for s in (0, 0, 1))
    sa, sb, sc = (m.net.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_it_learns_far_above_chance_at_every_depth(bp):
    learner, _, _ = bp
    x, y = blobs(400, seed=1)  # fresh samples of the same task
    accuracy = depth_accuracies(learner, x, y)
    assert min(accuracy) > 0.8, accuracy  # chance is 0.25


def test_a_zero_exit_weight_leaves_that_head_untrained():
    torch.manual_seed(0)
    initial = BackpropMultiExit.build(DIMS, 4, 1.0).state_dict()
    learner, _, _ = trained(BackpropMultiExit, {"exit_weights": [0, 1, 2]}, epochs=1)
    state = learner.net.state_dict()
    assert torch.equal(state["heads.0.weight"], initial["heads.0.weight"])
    assert not torch.equal(state["heads.1.weight"], initial["heads.1.weight"])


@pytest.mark.parametrize(
    ("options", "key"),
    [({"exit_weights": [1, 1]}, "exit_weights"), ({"optimizer": "lbfgs"}, "optimizer"), ({"lr_": 1}, "lr_")],
)
def test_bad_options_name_their_key(options, key):
    with pytest.raises(LearnerOptionsError, match=rf"model\.options\.bp-exits\.{key}"):
        trained(BackpropMultiExit, options, epochs=1)


def test_the_firmware_reference_gives_the_torch_predictions_and_exits(bp):
    check_firmware_reference_equals_torch(*bp)


def test_the_exported_arrays_are_the_layers_and_heads_as_trained(bp):
    learner = bp[0]
    arrays, policy = learner.firmware(np.arange(3, dtype=np.float32))
    assert arrays.scheme == "exit" and arrays.dims == DIMS and policy.statistic == "max"
    assert np.array_equal(arrays.heads[1], learner.net.heads[1].weight.detach().numpy())
    assert np.array_equal(arrays.head_biases[2], learner.net.heads[2].bias.detach().numpy())
    assert np.array_equal(arrays.biases[0], learner.net.layers[0].bias.detach().numpy())


def test_the_host_firmware_is_bit_exact_on_the_trained_network(bp):
    learner, x, y = bp
    th = calibrate(learner, depth_scores(learner, torch.from_numpy(x)), y).thresholds(0.5)
    arrays, policy = learner.firmware(th)
    for dtype in ("f32", "int8"):
        assert check_against_reference(arrays, policy, x[:40], "host", dtype, ["full", "light"], x[40:200]) == []


@pytest.mark.slow
def test_bp_exits_pepita_cafo_and_op_run_end_to_end_through_the_cli(tmp_path, monkeypatch):
    """On the CPU, and bp-exits and pepita also on the firmware's host build (mcu-sim): the same
    predictions and exit layers per sample as the torch model on the CPU."""
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    tiny = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml").read_text())
    procedures = ["op", "bp-exits", "pepita", "cafo"]
    tiny["model"]["options"] = {
        "pepita": {"lr": 0.1, "lr_decay_at": [], "head_lr": 0.01, "head_epochs": 1},
        "cafo": {"lr": 0.03, "head_lr": 0.01, "head_epochs": 1},
    }
    tiny["inference"]["procedures"] = procedures
    tiny["targets"] = ["cpu", "mcu-sim"]
    tiny["mcu"] = {"max_samples": 6, "repeats": 2, "modes": ["full", "light"], "procedures": ["bp-exits", "pepita"]}
    config = tmp_path / "learners.yaml"
    config.write_text(yaml.safe_dump(tiny))
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "results").iterdir()
    rows = read_rows(run_dir / "summary.csv")
    summary = {(r["procedure"], r["mode"]): r for r in rows if r["target"] == "cpu"}
    modes = all_modes(len(tiny["model"]["hidden"]))
    assert set(summary) == {(p, m) for p in procedures for m in modes}
    assert all(float(r["energy_j_per_inference"]) > 0 for r in summary.values())
    for proc in ("bp-exits", "pepita", "cafo"):
        assert float(summary[proc, "full"]["accuracy"]) > 0.5, proc  # one epoch on 12,600 digits
        assert float(summary[proc, "full"]["macs_per_inference"]) == 784 * 64 + 64 * 64 * 2 + 3 * 64 * 10
    samples = read_rows(run_dir / "samples.csv")
    mcu = {(r["procedure"], r["mode"], r["sample"]): r for r in samples if r["target"] == "mcu-sim"}
    assert {(p, m) for p, m, _ in mcu} == {(p, m) for p in ("bp-exits", "pepita") for m in ("full", "light")}
    for r in samples:
        key = (r["procedure"], r["mode"], r["sample"])
        if r["target"] == "cpu" and key in mcu:
            assert (mcu[key]["pred"], mcu[key]["exit_layer"], mcu[key]["macs"]) == (
                r["pred"],
                r["exit_layer"],
                r["macs"],
            ), key
            assert float(mcu[key]["energy_j"]) > 0


def test_its_confidence_floor_flags_a_threshold_that_lets_everything_out(bp):
    learner, x, _ = bp
    assert learner.confidence_floor == 1 / 4  # a top softmax probability over 4 classes is never below 1/4
    for scores in depth_scores(learner, torch.from_numpy(x)):
        assert (learner.confidence(scores) >= learner.confidence_floor - 1e-7).all()
