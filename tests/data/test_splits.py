"""Shared loader helpers: stratified splits, undersampling, the array cache, the offline check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ffenergy.data.base import DataError
from ffenergy.data.splits import (
    cache_key,
    cache_root,
    cached_arrays,
    class_counts,
    grouped_split,
    require_online,
    stratified_split,
    undersample,
    zscore,
)


def test_stratified_split_proportions_disjoint_and_complete() -> None:
    y = np.array([0] * 50 + [1] * 20 + [2] * 3 + [3])
    rest, part = stratified_split(y, 0.2, seed=0)
    assert np.bincount(y[part], minlength=4).tolist() == [10, 4, 1, 0]  # >= 1 of a 3-member class, none of 1
    assert sorted(np.concatenate([rest, part]).tolist()) == list(range(len(y)))
    assert np.all(np.diff(part) > 0) and np.all(np.diff(rest) > 0)
    same = stratified_split(y, 0.2, seed=0)[1]
    other = stratified_split(y, 0.2, seed=1)[1]
    assert np.array_equal(part, same) and not np.array_equal(part, other)
    assert len(stratified_split(y, 0.0, seed=0)[1]) == 0
    with pytest.raises(ValueError, match=r"fraction: 1.0 is outside \[0, 1\)"):
        stratified_split(y, 1.0, seed=0)


def test_undersample_and_counts() -> None:
    y = np.array([0] * 10 + [1] * 2)
    keep = undersample(y, 3, seed=0)
    assert class_counts(y[keep], ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 0}


def test_cached_arrays_builds_once_and_rebuilds_corrupt_files(tmp_path: Path) -> None:
    calls = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(3)}

    path = tmp_path / "c" / f"t-{cache_key('a', {'b': 1})}.npz"
    assert not cached_arrays(path, build)[1] and path.exists()
    arrays, hit = cached_arrays(path, build)
    assert hit and arrays["x"].tolist() == [0, 1, 2] and len(calls) == 1
    path.write_bytes(b"torn")
    arrays, hit = cached_arrays(path, build)
    assert not hit and arrays["x"].tolist() == [0, 1, 2] and len(calls) == 2
    assert not list(path.parent.glob("*.tmp"))
    cached_arrays(tmp_path / "off.npz", build, enabled=False)
    assert not (tmp_path / "off.npz").exists()


def test_cache_key_and_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_key("a", [1, 2]) == cache_key("a", [1, 2]) != cache_key("a", [2, 1])
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path))
    assert cache_root("") == tmp_path and cache_root("/x/y") == Path("/x/y")
    monkeypatch.delenv("FFENERGY_CACHE")
    assert cache_root("") == Path.home() / ".cache" / "ffenergy"


def test_require_online_offline(offline: None) -> None:
    with pytest.raises(DataError, match=r"cannot download thing: example\.org is unreachable.*data\.source: local"):
        require_online("example.org", "thing")


def test_grouped_split_keeps_groups_whole_and_stratifies_them() -> None:
    groups = np.repeat(np.arange(10), 3)  # 10 groups of 3 items
    strata = np.repeat([0] * 5 + [1] * 5, 3)
    rest, part = grouped_split(groups, strata, 0.4, seed=0)
    assert set(groups[rest]).isdisjoint(groups[part])
    assert sorted(np.concatenate([rest, part]).tolist()) == list(range(30))
    assert len(part) == 4 * 3 and np.bincount(strata[part]).tolist() == [6, 6]  # 2 groups per stratum
    with pytest.raises(ValueError, match="spans several strata"):
        grouped_split(np.array([0, 0]), np.array([0, 1]), 0.5, seed=0)


def test_zscore_per_row_and_flat_rows() -> None:
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    z = zscore(x)
    assert np.allclose(z[0], [-1.2247449, 0.0, 1.2247449]) and np.array_equal(z[1], [0.0, 0.0, 0.0])
