"""Helpers of the learner tests: a small task, brief training, and checks every learner must pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch import nn

from ffenergy.config import InferenceConfig, ModelConfig
from ffenergy.firmware.export import deploy
from ffenergy.firmware.reference import layer_scores, reference_predict
from ffenergy.learners import LEARNERS
from ffenergy.learners.base import Learner
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.exits import depth_scores, exits_from_scores, infer, infer_pooled, predict
from ffenergy.learners.ff.model import FFNetwork
from ffenergy.vocabulary import all_modes, forced_depth

DIMS = [20, 16, 12, 8]


def blobs(n: int, seed: int, d: int = DIMS[0], c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Samples of one c-class task in [0, 1]^d (fixed random centres, Gaussian spread), drawn by ``seed``."""
    centres = np.random.default_rng(1234).random((c, d))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = np.clip(centres[y] + 0.25 * rng.standard_normal((n, d)), 0, 1)
    return x.astype(np.float32), y.astype(np.int64)


def trained(
    cls: type[Learner],
    options: dict,
    epochs: int = 3,
    statistic: str = "max",
    seed: int = 0,
    dims: list[int] = DIMS,
) -> tuple[Learner, np.ndarray, np.ndarray]:
    """A learner of ``cls`` with widths ``dims`` trained briefly on blobs (as load_or_train does: seed, build, fit)."""
    x, y = blobs(600, seed=0, d=dims[0])
    model = ModelConfig(hidden=dims[1:], epochs=epochs, batch_size=50, options={cls.network_id: options})
    torch.manual_seed(seed)
    net = cls.build(dims, 4, 1.0)
    cls.fit(net, x, y, model, seed, "cpu", progress=False, checkpoint=EpochCheckpoint())
    return cls(cls.network_id, net.eval(), InferenceConfig(op_statistic=statistic)), x, y


def untrained_ff(seed: int = 0) -> tuple[FFNetwork, np.ndarray, np.ndarray]:
    """An FF network 20-16-12-8 (4 classes) with random layers and heads, and 300 random samples."""
    torch.manual_seed(seed)
    net = FFNetwork(DIMS, n_classes=4)
    for head in net.heads:  # heads start at zero: give them something to say
        nn.init.normal_(head.weight, std=0.5)
    rng = np.random.default_rng(seed)
    x = rng.random((300, DIMS[0]), dtype=np.float32)
    y = rng.integers(0, 4, 300)
    return net.eval(), x, y


def layer_rows_seen(net: nn.Module, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(layer, rows) of every later ``net.layer`` call, in order (the call still runs)."""
    seen: list[tuple[int, int]] = []
    original = net.layer

    def layer(k: int, h: torch.Tensor, **kwargs: object) -> torch.Tensor:
        seen.append((k, len(h)))
        return original(k, h, **kwargs)

    monkeypatch.setattr(net, "layer", layer)
    return seen


@contextmanager
def counted_linear_macs(net: nn.Module) -> Iterator[list[int]]:
    """The multiply-accumulates of every nn.Linear call in ``net`` (rows x in x out), summed."""
    total = [0]

    def hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        total[0] += len(inputs[0]) * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Linear)]
    try:
        yield total
    finally:
        for h in handles:
            h.remove()


def check_light_inference_equals_masking(learner: Learner, x: np.ndarray, y: np.ndarray) -> None:
    """Every light path gives the exits and predictions of masking the per-depth scores: one
    compacted batch, batches of 7 pooled by depth (``infer_pooled``), and single rows (whose
    confidence is computed on Python floats)."""
    xt = torch.from_numpy(x)
    th = calibrate(learner, depth_scores(learner, xt), y).thresholds(0.5)
    masked_pred, masked_exits = exits_from_scores(learner, depth_scores(learner, xt), th)
    single = predict(learner, x, tuple(th.tolist()), None, batch_size=1)
    for pred, exits in (
        infer(learner, xt, tuple(th.tolist()), None),
        infer_pooled(learner, xt, tuple(th.tolist()), 7),
        (torch.from_numpy(single.pred), torch.from_numpy(single.exit_layer)),
    ):
        assert np.array_equal(exits.numpy(), masked_exits)
        assert np.array_equal(pred.numpy(), masked_pred)
    assert len(np.unique(masked_exits)) > 1, "the test needs samples exiting at different depths"


def check_labels_enter_only_through_calibration(learner: Learner, x: np.ndarray, y: np.ndarray) -> None:
    """Calibration reads the validation labels: permuting them moves the thresholds."""
    scores = depth_scores(learner, torch.from_numpy(x))
    th = calibrate(learner, scores, y).thresholds(0.5)
    permuted = calibrate(learner, scores, np.random.default_rng(1).permutation(y)).thresholds(0.5)
    assert not np.array_equal(th, permuted)


def check_exited_rows_skip_later_layers(
    learner: Learner, x: np.ndarray, y: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    xt = torch.from_numpy(x)
    th = calibrate(learner, depth_scores(learner, xt), y).thresholds(1.0)
    _, exits = exits_from_scores(learner, depth_scores(learner, xt), th)
    seen = layer_rows_seen(learner.net, monkeypatch)
    infer(learner, xt, tuple(th.tolist()), None)
    assert [k for k, _ in seen] == list(range(int(exits.max())))
    for k, rows in seen:
        assert rows == int(np.sum(exits >= k + 1)), f"layer {k + 1} ran on {rows} rows"
    assert seen[-1][1] < len(x), "the test needs rows that exited before the last layer"


def check_macs_are_exactly_what_inference_runs(learner: Learner, x: np.ndarray, y: np.ndarray) -> None:
    """Every nn.Linear call of a depth-k or light pass is counted by layer_macs, nothing more."""
    xt = torch.from_numpy(x)
    for depth in range(1, learner.n_layers + 1):
        with counted_linear_macs(learner.net) as total:
            p = predict(learner, x, None, depth)
        assert total[0] == p.macs.sum() == len(x) * learner.macs_at_exit()[depth - 1]
    th = calibrate(learner, depth_scores(learner, xt), y).thresholds(1.0)
    with counted_linear_macs(learner.net) as total:
        p = predict(learner, x, tuple(th.tolist()), None)
    assert total[0] == p.macs.sum() and len(set(p.exit_layer)) > 1


def check_firmware_reference_equals_torch(learner: Learner, x: np.ndarray, y: np.ndarray) -> None:
    """The fp32 export's numpy reference (the firmware's bit-exact twin) gives the torch model's
    predictions, exit layers and MACs on every sample in every mode."""
    th = calibrate(learner, depth_scores(learner, torch.from_numpy(x)), y).thresholds(0.5)
    arrays, policy = learner.firmware(th)
    model = deploy(arrays, policy, "f32")
    scores = layer_scores(model, x)
    for mode in all_modes(learner.n_layers):
        host = predict(learner, x, tuple(th.tolist()), forced_depth(mode, learner.n_layers))
        ref = reference_predict(model, x, mode, scores=scores)
        assert np.array_equal(host.exit_layer, ref.exit_layer), mode
        assert np.array_equal(host.pred, ref.pred), mode
        assert np.array_equal(host.macs, ref.macs), mode
        if mode == "light":
            assert len(set(ref.exit_layer.tolist())) > 1, "the test needs light exits at more than one depth"


def small_net(seed: int = 0, head_std: float = 0.5) -> FFNetwork:
    """An untrained 24-16-12-8 network with 4 classes, heads drawn with ``head_std``: 1e4 saturates them, so
    every top probability is exactly 1.0."""
    torch.manual_seed(seed)
    net = FFNetwork([24, 16, 12, 8], n_classes=4)
    for head in net.heads:
        torch.nn.init.normal_(head.weight, std=head_std)
    return net.eval()


def small_learner(name: str = "op", head_std: float = 0.5, inference: InferenceConfig | None = None) -> Learner:
    """Learner ``name`` over ``small_net()`` (seed 0); by default the max statistic for OP."""
    return LEARNERS.get(name)(name, small_net(0, head_std), inference or InferenceConfig(op_statistic="max"))
