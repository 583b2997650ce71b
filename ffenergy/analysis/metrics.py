"""Classification metrics and the per-mode summary rows of ``summary.csv``."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def macro_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    scores = []
    for c in np.union1d(labels, preds):
        tp = np.sum((preds == c) & (labels == c))
        fp = np.sum((preds == c) & (labels != c))
        fn = np.sum((preds != c) & (labels == c))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def per_class_rows(rows: list[dict[str, str]], class_names: list[str]) -> list[dict]:
    """Sensitivity (recall) of every class per (target, procedure, mode) of samples.csv rows."""
    groups: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        groups[(row["target"], row["procedure"], row["mode"])].append((int(row["label"]), int(row["pred"])))
    out = []
    for (target, procedure, mode), pairs in groups.items():
        labels, preds = np.array(pairs).T
        for c, name in enumerate(class_names):
            hit = labels == c
            out.append(
                {
                    "target": target,
                    "procedure": procedure,
                    "mode": mode,
                    "class": name,
                    "n_samples": int(hit.sum()),
                    "sensitivity": float(np.mean(preds[hit] == c)) if hit.any() else None,
                }
            )
    return out


@dataclass(frozen=True)
class ClassRecall:
    """Sensitivity (recall) of every class for one (target, procedure, mode), from per_class.csv.

    With two classes, the specificity of one class is the sensitivity of the other (a seizure
    detector's specificity is the recall of non-seizure windows).
    """

    target: str
    procedure: str
    mode: str
    sensitivity: dict[str, float | None]

    def specificity(self, positive: str) -> float | None:
        """Specificity of ``positive`` in a two-class task (None with more classes)."""
        others = [v for name, v in self.sensitivity.items() if name != positive]
        return others[0] if len(self.sensitivity) == 2 and positive in self.sensitivity else None


def class_recalls(rows: list[dict[str, str]], modes: tuple[str, ...] = ("full", "light")) -> list[ClassRecall]:
    """per_class.csv rows grouped per (target, procedure, mode) for the given modes, in file order."""
    groups: dict[tuple[str, str, str], dict[str, float | None]] = {}
    for row in rows:
        if row["mode"] not in modes:
            continue
        key = (row["target"], row["procedure"], row["mode"])
        groups.setdefault(key, {})[row["class"]] = float(row["sensitivity"]) if row["sensitivity"] else None
    return [ClassRecall(t, p, m, sens) for (t, p, m), sens in groups.items()]


@dataclass
class ModeStats:
    """Outcome of one (target, procedure, mode) over the test samples."""

    target: str
    procedure: str
    mode: str
    accuracy: float
    macro_f1: float
    mean_layers: float
    macs_per_inference: float
    n_samples: int
    macs_per_inference_naive: float = math.nan  # NaN when no published count is given for the procedure


def mode_stats(rows: list[dict[str, str]], naive_cost: Mapping[str, np.ndarray] | None = None) -> list[ModeStats]:
    """Group samples.csv rows by (target, procedure, mode) and compute their statistics.

    ``naive_cost``: per procedure, the published MAC count of an inference exiting at layer k
    (index k-1), which prices each sample's exit layer for ``macs_per_inference_naive``.
    """
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[(row["target"], row["procedure"], row["mode"])].append(row)
    out = []
    for (target, procedure, mode), grp in groups.items():
        labels = np.array([int(r["label"]) for r in grp])
        preds = np.array([int(r["pred"]) for r in grp])
        exits = np.array([int(r["exit_layer"]) for r in grp])
        naive = (naive_cost or {}).get(procedure)
        out.append(
            ModeStats(
                target=target,
                procedure=procedure,
                mode=mode,
                accuracy=float(np.mean(labels == preds)),
                macro_f1=macro_f1(labels, preds),
                mean_layers=float(exits.mean()),
                macs_per_inference=float(np.mean([int(r["macs"]) for r in grp])),
                n_samples=len(grp),
                macs_per_inference_naive=math.nan if naive is None else float(naive[exits - 1].mean()),
            )
        )
    return out
