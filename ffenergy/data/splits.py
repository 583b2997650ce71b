"""Helpers shared by the dataset loaders: seeded splits (by item or by whole group), balancing,
per-window z-scores, class counts, the processed-array cache and the download reachability check.

Every random choice takes an explicit seed and uses its own ``numpy.random.Generator``, so a
loader gives the same splits for the same seed on any machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ffenergy.data.base import DataError

CACHE_ENV = "FFENERGY_CACHE"


def check_fraction(name: str, value: float, *, allow_zero: bool = True) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (``0 < value`` when ``allow_zero`` is False)."""
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name}: {value!r} is outside {bound}; use e.g. 0.1")


def stratified_split(strata: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, part) with ``part`` holding ``round(fraction * n)`` of each stratum.

    ``strata`` is an integer array (class labels, or class x patient keys). Every stratum with at
    least two members keeps at least one member on each side when ``fraction > 0``. Both index
    arrays are sorted, so the original order is preserved within each split.
    """
    check_fraction("fraction", fraction)
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    part: list[np.ndarray] = []
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        k = round(fraction * len(members))
        if fraction > 0 and len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        part.append(members[:k])
    part_idx = np.sort(np.concatenate(part)) if part else np.zeros(0, dtype=np.int64)
    rest_mask = np.ones(len(strata), dtype=bool)
    rest_mask[part_idx] = False
    return np.flatnonzero(rest_mask), part_idx


def grouped_split(groups: np.ndarray, strata: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices into (rest, part) by whole groups: every item of a group lands on the same side.

    ``groups`` names the group of each item (a segment, a recording); ``strata`` the stratum of
    each item, constant within a group (e.g. its class). The groups, not the items, are split
    with :func:`stratified_split`, so ``part`` holds ``round(fraction * n)`` groups of each
    stratum. Both index arrays are sorted.
    """
    groups, strata = np.asarray(groups), np.asarray(strata)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if np.any(strata != strata[first][inverse]):
        raise ValueError("grouped_split: a group spans several strata; give each group one stratum")
    _, part_groups = stratified_split(strata[first], fraction, seed)
    in_part = np.isin(inverse, part_groups)
    return np.flatnonzero(~in_part), np.flatnonzero(in_part)


def zscore(windows: np.ndarray, axis: int = -1) -> np.ndarray:
    """Each window minus its mean, divided by its standard deviation along ``axis`` (flat windows: zeros)."""
    mean = windows.mean(axis=axis, keepdims=True)
    std = windows.std(axis=axis, keepdims=True)
    return np.divide(windows - mean, std, out=np.zeros_like(windows), where=std > 0)


def undersample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices keeping at most ``per_class`` seeded-random members of every class."""
    if per_class < 1:
        raise ValueError(f"per_class: {per_class} must be >= 1")
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def class_counts(labels: np.ndarray, class_names: list[str]) -> dict[str, int]:
    """``{class name: count}`` for every class, zeros included."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    return {name: int(counts[i]) for i, name in enumerate(class_names)}


def cache_root(cache_dir: str) -> Path:
    """The cache directory: ``cache_dir`` if set, else ``$FFENERGY_CACHE``, else ``~/.cache/ffenergy``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "ffenergy"


def cache_key(*parts: object) -> str:
    """A short stable hash of JSON-serialisable parts (dataclasses are converted to dicts)."""
    plain = [dataclasses.asdict(p) if dataclasses.is_dataclass(p) and not isinstance(p, type) else p for p in parts]
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_arrays(
    path: Path, build: Callable[[], dict[str, np.ndarray]], *, enabled: bool = True
) -> tuple[dict[str, np.ndarray], bool]:
    """Load the arrays stored at ``path`` (.npz), or build and store them; returns (arrays, hit).

    The file is written to a temporary name and renamed, so an interrupted run never leaves a
    torn cache. An unreadable cache file is rebuilt.
    """
    if enabled and path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}, True
        except (OSError, ValueError):
            pass  # unreadable: rebuild below and overwrite it
    arrays = build()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, allow_pickle=True, **arrays)  # the default, named so mypy won't match **arrays to it
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return arrays, False


def require_online(host: str, what: str, timeout_s: float = 5.0) -> None:
    """Raise ``DataError`` quickly when ``host:443`` cannot be reached (offline machine).

    Download code calls this first so that an offline machine gets a clear message instead of
    a long hang inside a download library.
    """
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as exc:
        raise DataError(
            f"cannot download {what}: {host} is unreachable ({exc}); run on a machine with "
            f"internet access, or copy the files here and use data.source: local with data.path"
        ) from exc
