"""The dataset an experiment config names, loaded with its validated loader options, and its manifest entry."""

from __future__ import annotations

from typing import Any

from ffenergy.config import ExperimentConfig, data_options
from ffenergy.data.base import Dataset
from ffenergy.data.registry import load_dataset


def load_experiment_data(cfg: ExperimentConfig) -> Dataset:
    d = cfg.data
    return load_dataset(d.dataset, d.source, cfg.data_path(), d.val_fraction, cfg.seed, data_options(d))


def describe(data: Dataset) -> dict[str, Any]:
    """The manifest's ``dataset`` entry: name, source, split sizes, classes and the loader's caveats."""
    return {
        "name": data.name,
        "source": data.source,
        "n_train": len(data.y_train),
        "n_val": len(data.y_val),
        "n_test": len(data.y_test),
        "n_features": data.n_features,
        "classes": data.class_names,
        "label_value": data.label_value,
        "caveat": data.caveat,
        **data.extra,
    }
