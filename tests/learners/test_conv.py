"""cwc (CwComp, convolutional and layer-local) and bp-conv-exits (its backprop multi-exit twin) behind the seam."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from ffenergy.cli import main
from ffenergy.config import ConfigError, InferenceConfig, ModelConfig, parse_config
from ffenergy.contract import read_rows
from ffenergy.learners.base import Learner, LearnerOptionsError, NotDeployable
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.conv.cwc import ChannelwiseCompetitive, local_losses
from ffenergy.learners.conv.learner import BackpropConvExits
from ffenergy.learners.conv.model import GapHead, GroupGoodness, image_shape
from ffenergy.learners.exits import depth_accuracies, depth_scores, predict
from tests.learners.kit import (
    blobs,
    check_exited_rows_skip_later_layers,
    check_labels_enter_only_through_calibration,
    check_light_inference_equals_masking,
    trained,
)

# 8 x 8 one-channel "images" (blobs in [0, 1]^64), 4 classes: blocks 8 -> 8 (pooled, grouped) -> 12 -> 16 (pooled, grouped)
CONV_DIMS = [64, 8, 8, 12, 16]
CWC = {"lr": 0.01}


@pytest.fixture(scope="module")
def cwc() -> tuple[Learner, np.ndarray, np.ndarray]:
    return trained(ChannelwiseCompetitive, CWC, epochs=3, dims=CONV_DIMS)


@pytest.fixture(scope="module")
def bp_conv() -> tuple[Learner, np.ndarray, np.ndarray]:
    return trained(BackpropConvExits, {"lr": 0.003}, epochs=3, dims=CONV_DIMS)


def test_the_input_is_a_square_image_of_one_or_three_channels():
    assert image_shape(3072) == (3, 32, 32)
    assert image_shape(784) == (1, 28, 28)
    assert image_shape(64) == (1, 8, 8)
    with pytest.raises(ValueError, match="20 input values are neither"):
        image_shape(20)


def test_widths_the_class_groups_cannot_split_are_refused_naming_model_hidden():
    with pytest.raises(ValueError, match=r"model\.hidden: 6 channels cannot be split into 4 class groups"):
        ChannelwiseCompetitive.build([64, 6], 4, 1.0)
    with pytest.raises(ValueError, match=r"model\.hidden: layer 2 \(8 -> 10 channels\) is a grouped convolution"):
        BackpropConvExits.build([64, 8, 10], 4, 1.0)


def test_macs_per_layer_by_hand():
    # 1 x 6 x 6 input, 2 classes. Block 1: conv 1 -> 4 on 6x6 (36 positions x 4 x 1 x 9 = 1296), batch norm and the
    # goodness one MAC per value each (4 x 36 = 144 + 144). Block 2: conv 4 -> 8 grouped by 2 on 6x6
    # (36 x 8 x 2 x 9 = 5184), pooled to 3x3: batch norm 72, goodness 72.
    cwc = ChannelwiseCompetitive("cwc", ChannelwiseCompetitive.build([36, 4, 8], 2, 1.0), InferenceConfig())
    assert cwc.layer_macs().tolist() == [1296 + 144 + 144, 5184 + 72 + 72]
    # bp-conv-exits: the same blocks; its head is global average pooling (one per value) and a linear c x C
    bp = BackpropConvExits("bp-conv-exits", BackpropConvExits.build([36, 4, 8], 2, 1.0), InferenceConfig())
    assert bp.layer_macs().tolist() == [1296 + 144 + 144 + 4 * 2, 5184 + 72 + 72 + 8 * 2]
    # CwComp's CIFAR-10 widths (docs/DESIGN.md section 2): 3 x 32 x 32, 20-80-240-480
    paper_net = ChannelwiseCompetitive.build([3072, 20, 80, 240, 480], 10, 1.0)
    paper = ChannelwiseCompetitive("cwc", paper_net, InferenceConfig())
    assert paper.layer_macs().tolist() == [593_920, 1_515_520, 44_359_680, 26_603_520]
    assert paper.macs_at_exit()[-1] == 73_072_640


@contextmanager
def counted_conv_macs(net: nn.Module) -> Iterator[list[int]]:
    """MACs of every convolution, batch norm, exit and linear call in ``net``, from the shapes each call sees."""
    total = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += output.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, (nn.BatchNorm2d, GroupGoodness, GapHead)):
            total[0] += inputs[0].numel()
        elif isinstance(module, nn.Linear):
            total[0] += len(inputs[0]) * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        yield total
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("which", ["cwc", "bp_conv"])
def test_macs_are_exactly_what_inference_runs(which, request):
    learner, x, y = request.getfixturevalue(which)
    for depth in range(1, learner.n_layers + 1):
        with counted_conv_macs(learner.net) as total:
            p = predict(learner, x, None, depth)
        assert total[0] == p.macs.sum() == len(x) * learner.macs_at_exit()[depth - 1]
    th = calibrate(learner, depth_scores(learner, torch.from_numpy(x)), y).thresholds(1.0)
    with counted_conv_macs(learner.net) as total:
        p = predict(learner, x, tuple(th.tolist()), None)
    assert total[0] == p.macs.sum() and len(set(p.exit_layer)) > 1


@pytest.mark.parametrize(("cls", "options"), [(ChannelwiseCompetitive, CWC), (BackpropConvExits, {"lr": 0.003})])
@pytest.mark.parametrize("statistic", ["max", "gap"])
def test_every_light_path_gives_the_exits_and_predictions_of_masking(cls, options, statistic):
    check_light_inference_equals_masking(*trained(cls, options, epochs=2, statistic=statistic, dims=CONV_DIMS))


@pytest.mark.parametrize("which", ["cwc", "bp_conv"])
def test_rows_that_exited_never_reach_later_layers(which, request, monkeypatch):
    check_exited_rows_skip_later_layers(*request.getfixturevalue(which), monkeypatch)


@pytest.mark.parametrize("which", ["cwc", "bp_conv"])
def test_labels_enter_only_through_calibration(which, request):
    check_labels_enter_only_through_calibration(*request.getfixturevalue(which))


def test_the_scores_at_depth_k_are_the_class_goodness_of_block_k(cwc):
    learner, x, _ = cwc
    net, h, total = learner.net, torch.from_numpy(x[:50]), torch.zeros(50, 4)
    for k, scores in enumerate(depth_scores(learner, torch.from_numpy(x[:50]))):
        with torch.no_grad():
            h = net.layer(k, h)
        per_class = h.shape[1] // 4  # class c owns channels c*S .. (c+1)*S - 1
        goodness = torch.stack([(h[:, c * per_class : (c + 1) * per_class] ** 2).mean(dim=(1, 2, 3)) for c in range(4)])
        assert torch.allclose(scores, goodness.T, atol=1e-5)
        total = total + goodness.T
    assert not torch.allclose(scores, total)  # not the sum over the blocks so far


def test_no_gradient_crosses_a_block():
    torch.manual_seed(0)
    net = ChannelwiseCompetitive.build(CONV_DIMS, 4, 1.0).train()
    x, y = blobs(20, seed=0, d=64)
    outcomes = local_losses(net, torch.from_numpy(x), torch.from_numpy(y), [True, True, False, True])
    assert outcomes[2] is None and all(o is not None for o in (outcomes[0], outcomes[1], outcomes[3]))
    below = [p for block in net.layers[:3] for p in block.parameters()]
    assert all(g is None for g in torch.autograd.grad(outcomes[3][0], below, allow_unused=True))  # type: ignore[index]
    own = torch.autograd.grad(outcomes[1][0], list(net.layers[1].parameters()))  # type: ignore[index]
    assert all(g.abs().sum() > 0 for g in own)


def _fit(cls: type[Learner], model: ModelConfig, labels_seed: int | None = None) -> nn.Module:
    x, y = blobs(600, seed=0, d=CONV_DIMS[0])
    if labels_seed is not None:
        y = np.random.default_rng(labels_seed).permutation(y)
    torch.manual_seed(0)
    net = cls.build(CONV_DIMS, 4, 1.0)
    cls.fit(net, x, y, model, 0, "cpu", False, EpochCheckpoint())
    return net


def test_a_block_past_its_epochs_is_frozen_weights_and_running_statistics_alike():
    one = _fit(ChannelwiseCompetitive, ModelConfig(hidden=CONV_DIMS[1:], epochs=1, batch_size=50))
    two = _fit(
        ChannelwiseCompetitive,
        ModelConfig(hidden=CONV_DIMS[1:], epochs=2, batch_size=50, options={"cwc": {"layer_epochs": [1, 2, 2, 2]}}),
    )
    a, b = one.state_dict(), two.state_dict()
    block1 = [k for k in a if k.startswith("layers.0.")]
    assert "layers.0.norm.running_mean" in block1 and all(torch.equal(a[k], b[k]) for k in block1)
    assert not torch.equal(a["layers.1.conv.weight"], b["layers.1.conv.weight"])


def test_layer_epochs_must_fit_the_layers_and_the_epochs():
    for bad in ([1, 2, 2], [1, 2, 2, 3]):
        model = ModelConfig(hidden=CONV_DIMS[1:], epochs=2, batch_size=50, options={"cwc": {"layer_epochs": bad}})
        with pytest.raises(LearnerOptionsError, match=r"model\.options\.cwc\.layer_epochs: .*give 4 positive integers"):
            _fit(ChannelwiseCompetitive, model)


@pytest.mark.parametrize(("cls", "options"), [(ChannelwiseCompetitive, CWC), (BackpropConvExits, {"lr": 0.003})])
def test_training_is_deterministic_for_a_seed(cls, options):
    a, b, c = (trained(cls, options, epochs=1, seed=s, dims=CONV_DIMS)[0] for s in (0, 0, 1))
    sa, sb, sc = (m.net.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize(("cls", "options"), [(ChannelwiseCompetitive, CWC), (BackpropConvExits, {"lr": 0.003})])
def test_it_learns_from_the_training_labels_and_nothing_else(cls, options):
    """On fresh samples: far above chance (0.25) from the true labels, near it from permuted ones."""
    x, y = blobs(400, seed=1, d=CONV_DIMS[0])
    model = ModelConfig(hidden=CONV_DIMS[1:], epochs=4, batch_size=50, options={cls.network_id: options})
    learned = depth_accuracies(cls(cls.network_id, _fit(cls, model).eval(), InferenceConfig()), x, y)
    assert learned[-1] > 0.8, learned
    shuffled = _fit(cls, model, labels_seed=2).eval()
    assert max(depth_accuracies(cls(cls.network_id, shuffled, InferenceConfig()), x, y)) < 0.45


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": 0}, r"model\.options\.cwc\.lr: invalid value 0; use a positive number"),
        ({"layer_epochs": [2, 0]}, r"model\.options\.cwc\.layer_epochs: invalid value \[2, 0\]; use a list"),
        ({"lr_decay_at": [0]}, r"model\.options\.cwc\.lr_decay_at: .*fractions in \(0, 1\]"),
        ({"epoch": 3}, r"model\.options\.cwc\.epoch: unknown key; allowed: lr, weight_decay, epochs"),
    ],
)
def test_bad_options_are_refused_when_the_config_loads_naming_the_key_and_the_fix(options, message):
    raw = {"model": {"options": {"cwc": options}}, "inference": {"procedures": ["cwc"]}}
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


@pytest.mark.parametrize("which", ["cwc", "bp_conv"])
def test_the_firmware_cannot_run_it(which, request):
    learner = request.getfixturevalue(which)[0]
    with pytest.raises(NotDeployable, match=f"{learner.name}: convolutional layers"):
        learner.firmware(np.zeros(3, np.float32))


@pytest.mark.slow
def test_both_run_end_to_end_through_ffenergy_run(tmp_path, monkeypatch):
    """experiments/tiny.yaml (embedded MNIST, simulated meter) with cwc and bp-conv-exits on 1x28x28 -> 10-10."""
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    tiny = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml").read_text())
    tiny["model"] = {"hidden": [10, 10], "epochs": 1, "batch_size": 100}
    tiny["inference"] = {"procedures": ["cwc", "bp-conv-exits"], "alpha_select": "validation", "max_loss_pp": 2.0}
    config = tmp_path / "conv.yaml"
    config.write_text(yaml.safe_dump(tiny))
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "results").iterdir()
    summary = {(r["procedure"], r["mode"]): r for r in read_rows(run_dir / "summary.csv")}
    # block 1: 784 positions x 10 x 9 + batch norm and exit 10 x 784 each; block 2 (grouped by 10, pooled to 14 x 14):
    # 784 x 10 x 1 x 9 + 10 x 196 each; bp-conv-exits' heads add 10 x 10 per block
    cwc = [784 * 10 * 9 + 2 * 7840, 784 * 10 * 9 + 2 * 1960]
    assert float(summary["cwc", "depth-1"]["macs_per_inference"]) == cwc[0]
    assert float(summary["cwc", "full"]["macs_per_inference"]) == sum(cwc)
    assert float(summary["bp-conv-exits", "full"]["macs_per_inference"]) == sum(cwc) + 2 * 100
    for procedure in ("cwc", "bp-conv-exits"):
        # chance is 0.1; one epoch of these tiny nets gave cwc 0.31, bp 0.23
        assert float(summary[procedure, "full"]["accuracy"]) > 0.15, procedure
        assert float(summary[procedure, "light"]["energy_j_per_inference"]) > 0  # measured (simulated meter)
