"""The dataset hand-off: flat float32 features, integer labels, three disjoint splits."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def require_option(name: str, value: str, allowed: Collection[str]) -> None:
    """Raise ValueError naming ``data.options.<name>`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"data.options.{name}: {value!r} is unknown; use one of {', '.join(allowed)}")


class DataError(RuntimeError):
    """Data missing or malformed; the message names the file/record and the fix."""


@dataclass
class Dataset:
    """Train / validation (threshold calibration) / test splits of one task.

    ``x_*`` are float32 arrays of shape (N, d); ``y_*`` int64 arrays of shape (N,).
    ``label_value`` is what the FF label overlay writes into the first C inputs.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    label_value: float = 1.0
    source: str = ""  # where the data came from, for the manifest
    caveat: str = ""  # how this copy differs from the original dataset; every report repeats it
    extra: dict = field(default_factory=dict)  # loader facts for the manifest (record lists, split kind)

    @classmethod
    def from_indices(
        cls,
        name: str,
        x: np.ndarray,
        y: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        test_idx: np.ndarray,
        **facts: Any,
    ) -> Dataset:
        """The three splits as index arrays into one pool ``x``, ``y``; ``facts``: the other fields."""
        return cls(
            name=name,
            x_train=x[train_idx],
            y_train=y[train_idx],
            x_val=x[val_idx],
            y_val=y[val_idx],
            x_test=x[test_idx],
            y_test=y[test_idx],
            **facts,
        )

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)
