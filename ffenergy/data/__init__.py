"""Dataset registry: each loader module has an ``Options`` dataclass and a ``load`` function."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from ffenergy.data.base import DataError, Dataset

LOADERS = {
    "mnist": "ffenergy.data.mnist",
    "mitbih": "ffenergy.data.mitbih",
    "chbmit": "ffenergy.data.chbmit",
    "cifar10": "ffenergy.data.cifar10",
}


def loader(name: str) -> ModuleType:
    """The loader module of a dataset (imported lazily: some pull in heavy packages)."""
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(LOADERS)}")
    return importlib.import_module(LOADERS[name])


def load_dataset(name: str, source: str, path: str | None, val_fraction: float, seed: int, options: Any) -> Dataset:
    """Load a dataset with already-validated loader options."""
    return loader(name).load(source, Path(path) if path else None, val_fraction, seed, options)


def load_experiment_data(cfg: Any) -> Dataset:
    """The dataset an ``ExperimentConfig`` names, with its validated loader options."""
    from ffenergy.config import data_options

    d = cfg.data
    return load_dataset(d.dataset, d.source, cfg.data_path(), d.val_fraction, cfg.seed, data_options(d))
