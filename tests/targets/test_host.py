"""The host target's measured workloads: per-batch light inference and the pooled throughput mode."""

import math

import numpy as np
import torch

from ffenergy.config import InferenceConfig
from ffenergy.learners.calibrate import calibrate
from ffenergy.learners.exits import depth_scores
from ffenergy.learners.ff.learner import FFOnePass
from ffenergy.targets.host import HostTarget
from tests.learners.kit import layer_rows_seen, untrained_ff


def _op_learner() -> tuple[FFOnePass, np.ndarray, tuple[float, ...]]:
    net, x, y = untrained_ff()
    learner = FFOnePass("op", net, InferenceConfig(op_statistic="max"))
    th = calibrate(learner, depth_scores(learner, torch.from_numpy(x)), y).thresholds(1.0)
    return learner, x, tuple(th.tolist())


def test_a_pooled_light_call_runs_all_inputs_with_the_macs_of_per_batch_light(monkeypatch):
    learner, x, th = _op_learner()
    target = HostTarget("cpu", "cpu")
    per_batch = target.batch_runner(learner, x, th, None, 16)
    calls = [per_batch() for _ in range(math.ceil(len(x) / 16))]  # one cycle over x
    seen = layer_rows_seen(learner.net, monkeypatch)
    pooled = target.batch_runner(learner, x, th, None, 16, pooled=True)
    seen.clear()
    assert pooled() == (len(x), sum(macs for _, macs in calls))
    deep = [rows for k, rows in seen if k == 1]
    assert len(deep) > 1 and all(rows >= 16 for rows in deep[:-1]), f"layer 2 ran on {deep} rows"


def test_pooling_leaves_forced_depth_per_batch():
    learner, x, th = _op_learner()
    target = HostTarget("cpu", "cpu")
    run = target.batch_runner(learner, x, th, 2, 16, pooled=True)
    assert run() == (16, 16 * int(learner.macs_at_exit()[1]))
