"""The dataset registry: each loader module has an ``Options`` dataclass and a ``load`` function
``load(source, path, val_fraction, seed, options) -> Dataset`` (imported lazily: some loaders
pull in heavy packages). Fact: ``sources``, the ``data.source`` values the loader takes
(``local`` reads ``data.path``)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ffenergy.data.base import Dataset
from ffenergy.registry import Registry


def _check_loader(obj: object) -> None:
    if not (callable(getattr(obj, "load", None)) and isinstance(getattr(obj, "Options", None), type)):
        raise TypeError(f"{obj!r} is not a dataset loader module (an Options dataclass and a load function)")


DATASETS: Registry[ModuleType] = Registry("dataset", "ffenergy.datasets", _check_loader)
REMOTE = ("local", "download")  # the ``sources`` of a dataset read from data.path or downloaded
DATASETS.register(
    "mnist",
    "ffenergy.data.mnist",
    "handwritten digits (embedded subset, local IDX files or download)",
    sources=("embedded", *REMOTE),
)
DATASETS.register(
    "mitbih", "ffenergy.data.mitbih", "MIT-BIH arrhythmia beats (AAMI classes), extra [ecg]", sources=REMOTE
)
DATASETS.register("chbmit", "ffenergy.data.chbmit", "CHB-MIT scalp EEG seizure windows, extra [eeg]", sources=REMOTE)
DATASETS.register("cifar10", "ffenergy.data.cifar10", "CIFAR-10 images, flattened", sources=REMOTE)
DATASETS.register(
    "bonn",
    "ffenergy.data.bonn",
    "Bonn epilepsy EEG segments (sets A-E), seizure or five-class windows",
    sources=("local",),
)


def load_dataset(name: str, source: str, path: str | None, val_fraction: float, seed: int, options: Any) -> Dataset:
    """Load a dataset with already-validated loader options."""
    loaded: Dataset = DATASETS.get(name).load(source, Path(path) if path else None, val_fraction, seed, options)
    return loaded
