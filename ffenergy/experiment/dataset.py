"""The dataset an experiment config names, loaded with its validated loader options."""

from __future__ import annotations

from ffenergy.config import ExperimentConfig, data_options
from ffenergy.data.base import Dataset
from ffenergy.data.registry import load_dataset


def load_experiment_data(cfg: ExperimentConfig) -> Dataset:
    d = cfg.data
    return load_dataset(d.dataset, d.source, cfg.data_path(), d.val_fraction, cfg.seed, data_options(d))
