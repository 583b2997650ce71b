"""Per-epoch checkpoints: an interrupted training resumes from its last finished epoch and ends
with exactly the weights of a training that was never interrupted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ffenergy.config import ModelConfig, parse_config
from ffenergy.data.base import Dataset
from ffenergy.experiment import model_cache
from ffenergy.learners.backprop import BackpropMultiExit
from ffenergy.learners.base import Learner
from ffenergy.learners.cafo.learner import Cafo
from ffenergy.learners.checkpoint import EpochCheckpoint
from ffenergy.learners.conv.cwc import ChannelwiseCompetitive
from ffenergy.learners.conv.learner import BackpropConvExits, ConvExitLearner
from ffenergy.learners.ff.learner import FFMultiPass
from ffenergy.learners.pepita import Pepita
from tests.learners.kit import DIMS, blobs

EPOCHS = 4
OPTIONS = {
    "ff": {"head_epochs": 2},  # FF epochs, then the OP heads alone: two stages
    "bp-exits": {},
    "pepita": {"lr": 0.03, "head_epochs": 3, "head_lr": 1e-2},
    "cafo": {"lr": 0.03, "head_epochs": 3, "head_lr": 1e-2},
    "cwc": {},
    "bp-conv-exits": {},
}
CONV_DIMS = [64, 8, 8, 12, 16]  # 1 x 8 x 8 images for the convolutional learners


class InterruptAfter(EpochCheckpoint):
    """Saves like the real one, then raises Ctrl-C once ``stage`` has finished ``epochs`` epochs."""

    def __init__(self, path: Path, stage: str, epochs: int):
        super().__init__(path)
        self.stop_at = (stage, epochs)
        self.saved: list[tuple[str, int]] = []

    def save(self, stage: str, epochs: int, *args, **kwargs) -> None:
        super().save(stage, epochs, *args, **kwargs)
        self.saved.append((stage, epochs))
        if (stage, epochs) == self.stop_at:
            raise KeyboardInterrupt


class Recording(EpochCheckpoint):
    def __init__(self, path: Path | None):
        super().__init__(path)
        self.saved: list[tuple[str, int]] = []

    def save(self, stage: str, epochs: int, *args, **kwargs) -> None:
        super().save(stage, epochs, *args, **kwargs)
        self.saved.append((stage, epochs))


def _fit(cls: type[Learner], checkpoint: EpochCheckpoint) -> tuple[torch.nn.Module, dict]:
    dims = CONV_DIMS if issubclass(cls, ConvExitLearner) else DIMS
    x, y = blobs(300, seed=0, d=dims[0])
    model = ModelConfig(
        hidden=dims[1:], epochs=EPOCHS, batch_size=50, options={cls.network_id: OPTIONS[cls.network_id]}
    )
    torch.manual_seed(0)
    net = cls.build(dims, 4, 1.0)
    info = cls.fit(net, x, y, model, 0, "cpu", False, checkpoint)
    return net, info


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    ("cls", "stage", "after"),
    [
        (FFMultiPass, "ff", 2),
        (FFMultiPass, "heads", 1),
        (BackpropMultiExit, "bp-exits", 1),
        (Pepita, "pepita", 3),
        (Pepita, "heads", 1),
        (Cafo, "dfa", 2),
        (Cafo, "heads", 2),
        (ChannelwiseCompetitive, "cwc", 2),
        (BackpropConvExits, "bp-conv-exits", 1),
    ],
)
def test_an_interrupted_training_resumes_after_its_last_epoch_and_ends_with_the_same_weights(
    tmp_path, cls, stage, after
):
    whole, whole_info = _fit(cls, EpochCheckpoint())
    path = tmp_path / "net.partial.pt"
    first = InterruptAfter(path, stage, after)
    with pytest.raises(KeyboardInterrupt):
        _fit(cls, first)
    assert first.saved[-1] == (stage, after) and path.exists()

    second = Recording(path)
    resumed, info = _fit(cls, second)
    assert second.saved[0] == (stage, after + 1)  # no finished epoch runs again
    assert _same_weights(whole, resumed)
    assert info["resumed_after_epoch"] == (after if stage != "heads" else EPOCHS)
    losses = {k: v for k, v in info.items() if isinstance(v, list) and k != "exit_weights"}
    assert losses == {k: v for k, v in whole_info.items() if k in losses}  # the history is whole, not restarted


def test_a_finished_stage_is_skipped_and_its_history_kept(tmp_path):
    path = tmp_path / "net.partial.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(Pepita, InterruptAfter(path, "heads", 2))
    again = Recording(path)
    _, info = _fit(Pepita, again)
    assert [s for s, _ in again.saved] == ["heads"]  # PEPITA's own epochs do not run again
    assert len(info["pepita_loss"]) == EPOCHS


def test_an_unreadable_checkpoint_is_named_and_training_starts_over(tmp_path, caplog):
    path = tmp_path / "net.partial.pt"
    path.write_bytes(b"cut short")
    with caplog.at_level("WARNING", logger="ffenergy.learners.checkpoint"):
        again = Recording(path)
    whole, _ = _fit(FFMultiPass, EpochCheckpoint())
    net, info = _fit(FFMultiPass, again)
    assert str(path) in caplog.text and "from the start" in caplog.text
    assert again.saved[0] == ("ff", 1) and info["resumed_after_epoch"] == 0
    assert _same_weights(whole, net)


def _data() -> Dataset:
    x, y = blobs(300, seed=0)
    return Dataset("blobs", x, y, x[:50], y[:50], x[:50], y[:50], ["a", "b", "c", "d"])


def test_a_run_interrupted_while_training_continues_from_the_cache_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path))
    cfg = parse_config({"model": {"hidden": DIMS[1:], "epochs": EPOCHS, "batch_size": 50}})
    data = _data()
    saved: list[int] = []
    real_save = EpochCheckpoint.save

    def save_then_stop(self, stage, epochs, *args, **kwargs):
        real_save(self, stage, epochs, *args, **kwargs)
        saved.append(epochs)
        if epochs == 2 and len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        model_cache.load_or_train(FFMultiPass, cfg, data, progress=False)
    (partial,) = (tmp_path / "models").glob("*.partial.pt")
    assert not [p for p in (tmp_path / "models").glob("*.pt") if p != partial]  # nothing cached as trained

    net, info = model_cache.load_or_train(FFMultiPass, cfg, data, progress=False)
    assert info["cache"] == "miss" and info["resumed_after_epoch"] == 2 and saved == [1, 2, 3, 4]
    assert not partial.exists()  # trained and cached: the checkpoint is gone
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "fresh"))
    whole, _ = model_cache.load_or_train(FFMultiPass, cfg, data, progress=False)
    assert _same_weights(whole, net)
    assert np.isfinite(info["train_seconds"])
