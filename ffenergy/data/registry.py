"""The dataset registry: each loader module has an ``Options`` dataclass and a ``load`` function
``load(source, path, val_fraction, seed, options) -> Dataset`` (imported lazily: some loaders
pull in heavy packages)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ffenergy.data.base import Dataset
from ffenergy.registry import Registry

DATASETS: Registry[ModuleType] = Registry("dataset")
DATASETS.register("mnist", "ffenergy.data.mnist", "handwritten digits (embedded subset, local IDX files or download)")
DATASETS.register("mitbih", "ffenergy.data.mitbih", "MIT-BIH arrhythmia beats (AAMI classes), extra [ecg]")
DATASETS.register("chbmit", "ffenergy.data.chbmit", "CHB-MIT scalp EEG seizure windows, extra [eeg]")
DATASETS.register("cifar10", "ffenergy.data.cifar10", "CIFAR-10 images, flattened")
DATASETS.register("bonn", "ffenergy.data.bonn", "Bonn epilepsy EEG segments (sets A-E), seizure or five-class windows")


def load_dataset(name: str, source: str, path: str | None, val_fraction: float, seed: int, options: Any) -> Dataset:
    """Load a dataset with already-validated loader options."""
    loaded: Dataset = DATASETS.get(name).load(source, Path(path) if path else None, val_fraction, seed, options)
    return loaded
