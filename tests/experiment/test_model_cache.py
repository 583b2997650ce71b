import numpy as np
import torch

from ffenergy.config import parse_config
from ffenergy.data.base import Dataset
from ffenergy.experiment import model_cache
from ffenergy.learners.ff.learner import FFMultiPass, FFOnePass


def _data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((300, 30), dtype=np.float32)
    y = rng.integers(0, 3, 300)
    return Dataset("toy", x, y, x[:50], y[:50], x[:50], y[:50], ["a", "b", "c"])


def test_training_is_reproducible_whatever_ran_before(tmp_path, monkeypatch):
    cfg = parse_config({"model": {"hidden": [16, 16], "epochs": 2}, "inference": {"prune_after": 1}})
    weights = []
    for i in range(2):
        monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / f"cache{i}"))
        torch.rand(17 * (i + 1))  # other code consuming the global RNG must not matter
        net, info = model_cache.load_or_train(FFMultiPass, cfg, _data(), progress=False)
        assert info["cache"] == "miss"
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_cache_key_follows_data_content_model_and_seed():
    data = _data()
    base = parse_config({"model": {"hidden": [16, 16]}, "inference": {"prune_after": 1}})
    key = model_cache.model_key(FFMultiPass, base, data)
    assert (
        model_cache.model_key(
            FFMultiPass,
            parse_config({"model": {"hidden": [16, 16], "device": "cpu"}, "inference": {"prune_after": 1}}),
            data,
        )
        == key
    )
    assert (
        model_cache.model_key(
            FFMultiPass, parse_config({"model": {"hidden": [16, 17]}, "inference": {"prune_after": 1}}), data
        )
        != key
    )
    assert (
        model_cache.model_key(
            FFMultiPass, parse_config({"seed": 3, "model": {"hidden": [16, 16]}, "inference": {"prune_after": 1}}), data
        )
        != key
    )
    other = _data()
    other.x_train = other.x_train.copy()
    other.x_train[0, 0] += 1
    assert model_cache.model_key(FFMultiPass, base, other) != key
    assert model_cache.model_key(FFOnePass, base, data) == key  # MP and OP read one FF network


def test_cache_key_follows_the_training_code_version(monkeypatch):
    data = _data()
    cfg = parse_config({"model": {"hidden": [16, 16]}, "inference": {"prune_after": 1}})
    key = model_cache.model_key(FFMultiPass, cfg, data)
    monkeypatch.setattr(FFMultiPass, "training_version", FFMultiPass.training_version + 1)
    assert model_cache.model_key(FFMultiPass, cfg, data) != key


def test_a_damaged_cache_file_is_named_removed_and_trained_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path))
    cfg = parse_config({"model": {"hidden": [16, 16], "epochs": 1}, "inference": {"prune_after": 1}})
    first, _ = model_cache.load_or_train(FFMultiPass, cfg, _data(), progress=False)
    (cached,) = (tmp_path / "models").glob("*.pt")
    cached.write_bytes(cached.read_bytes()[:100])  # a torn write
    with caplog.at_level("WARNING", logger="ffenergy.experiment.model_cache"):
        net, info = model_cache.load_or_train(FFMultiPass, cfg, _data(), progress=False)
    assert info["cache"] == "miss" and str(cached) in caplog.text and "damaged" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), net.state_dict().values()))
    assert model_cache.load_or_train(FFMultiPass, cfg, _data(), progress=False)[1]["cache"] == "hit"
