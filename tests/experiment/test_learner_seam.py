"""A learner defined here, registered through the registry alone, runs end to end through
``ffenergy run``: training, calibration, light / depth-k inference with compaction, MACs, the
simulated meter, summary and attribution. Nothing in the package knows its name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import ffenergy.targets.host as host_target
from ffenergy.cli import main
from ffenergy.config import InferenceConfig
from ffenergy.contract import read_rows
from ffenergy.learners import LEARNERS
from ffenergy.learners.base import Learner, RowState

pytestmark = pytest.mark.slow  # whole runs of ffenergy: seconds each


class ToyNet(nn.Module):
    """Two ReLU layers with one linear exit head each."""

    def __init__(self, dims: list[int], n_classes: int):
        super().__init__()
        self.dims = dims
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.heads = nn.ModuleList(nn.Linear(b, n_classes) for b in dims[1:])


class ToyPass(RowState):
    """Its per-row state is ``h``: RowState compacts and pools it."""

    row_state = ("h",)

    def __init__(self, net: ToyNet, x: torch.Tensor, seen: list[tuple[int, int]]):
        self.net, self.h, self.seen = net, x, seen
        self.rows = torch.arange(len(x))

    def step(self, k: int) -> torch.Tensor:
        self.seen.append((k, len(self.h)))
        self.h = torch.relu(self.net.layers[k](self.h))
        return self.net.heads[k](self.h)


class ToyLearner(Learner):
    network_id: ClassVar[str] = "toy-linear-test"
    training_version: ClassVar[int] = 1
    seen: ClassVar[list[tuple[int, int]]] = []  # (layer, rows) of every step, to check compaction

    @classmethod
    def build(cls, dims: list[int], n_classes: int, label_value: float) -> ToyNet:
        return ToyNet(dims, n_classes)

    @classmethod
    def fit(
        cls, net: Any, x: np.ndarray, y: np.ndarray, model: Any, seed: int, device: str, progress: bool, checkpoint: Any
    ) -> dict[str, Any]:
        torch.manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        xs, ys = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(model.epochs):
            for i in range(0, len(xs), 200):
                h, loss = xs[i : i + 200], torch.zeros(())
                for layer, head in zip(net.layers, net.heads, strict=True):  # backprop on the sum of exit losses
                    h = torch.relu(layer(h))
                    loss = loss + nn.functional.cross_entropy(head(h), ys[i : i + 200])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return {"epochs": model.epochs}

    @property
    def statistic(self) -> str:
        return "max"

    @property
    def dims(self) -> list[int]:
        return self.net.dims

    @property
    def n_classes(self) -> int:
        return self.net.heads[0].out_features

    def start(self, x: torch.Tensor) -> ToyPass:
        return ToyPass(self.net, x, self.seen)

    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=1).amax(dim=1)

    def layer_macs(self) -> np.ndarray:
        d = self.dims
        return np.array([a * b + b * self.n_classes for a, b in zip(d[:-1], d[1:], strict=True)], dtype=np.int64)


@pytest.fixture
def toy_registered():
    LEARNERS.register("toy-linear", ToyLearner, "a two-layer multi-exit MLP defined in a test")
    yield
    LEARNERS.unregister("toy-linear")


def test_a_learner_registered_from_outside_runs_end_to_end(toy_registered, tmp_path, monkeypatch):
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    tiny = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml").read_text())
    tiny["model"] = {"hidden": [32, 16], "epochs": 2}
    tiny["inference"] = {
        "procedures": ["toy-linear"],
        "alpha_select": "validation",
        "max_loss_pp": 2.0,
        "prune_after": 1,
    }
    tiny["measurement"]["pool_survivors"] = True  # light windows pool the rows that stay (RowState.merge)
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(tiny))
    ToyLearner.seen.clear()
    pooled_calls = []
    original = host_target.infer_pooled
    monkeypatch.setattr(
        host_target, "infer_pooled", lambda *a: (pooled_calls.append((a[0].name, len(a[1]), a[3])), original(*a))[1]
    )
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    assert pooled_calls and set(pooled_calls) == {("toy-linear", 2000, 256)}  # every test digit, measurement batch
    (run_dir,) = (tmp_path / "results").iterdir()

    summary = {r["mode"]: r for r in read_rows(run_dir / "summary.csv")}
    assert set(summary) == {"full", "light", "depth-1", "depth-2"}
    assert {r["procedure"] for r in summary.values()} == {"toy-linear"}
    assert all(r["provenance"] == "simulated" and float(r["energy_j_per_inference"]) > 0 for r in summary.values())
    per_layer = 784 * 32 + 32 * 10, 32 * 16 + 16 * 10
    assert float(summary["depth-1"]["macs_per_inference"]) == per_layer[0]
    assert float(summary["full"]["macs_per_inference"]) == sum(per_layer)
    assert float(summary["full"]["accuracy"]) > 0.5  # it learned something in two epochs

    samples = [r for r in read_rows(run_dir / "samples.csv") if r["mode"] == "light"]
    exits = np.array([int(r["exit_layer"]) for r in samples])
    assert 0 < (exits == 1).sum() < len(exits), "the test needs exits at both depths"
    light_macs = np.array([per_layer[0] if e == 1 else sum(per_layer) for e in exits])
    assert float(summary["light"]["macs_per_inference"]) == pytest.approx(light_macs.mean())
    # compaction: the light pass over the first batch (inference.batch_size 1024) ran layer 2 on exactly
    # the rows that had not exited at layer 1
    first_batch = exits[np.argsort([int(r["sample"]) for r in samples])][:1024]
    assert (1, int((first_batch == 2).sum())) in ToyLearner.seen and (first_batch == 1).any()

    calibration = json.loads((run_dir / "calibration.json").read_text())["toy-linear"]
    assert calibration["statistic"] == "max" and len(calibration["thresholds"]) == 2
    fits = json.loads((run_dir / "attribution.json").read_text())["fits"]
    assert [f["procedure"] for f in fits] == ["toy-linear"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["networks"]["toy-linear-test"]["cache"] == "miss"


def test_a_learner_without_a_row_confidence_checks_single_rows_with_its_batched_one():
    learner = ToyLearner("toy-linear", ToyLearner.build([6, 5, 4], 3, 1.0), InferenceConfig())
    scores = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    rows = [learner.confidence_of_row(row) for row in scores.tolist()]
    assert rows == pytest.approx(learner.confidence(scores).tolist(), rel=1e-6)
