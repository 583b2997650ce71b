"""Per-layer exit thresholds T_k = mu_k - alpha * sigma_k from a held-out validation split.

mu_k and sigma_k are the mean and standard deviation of the confidence statistic at depth k
over the validation samples that depth k classifies correctly. Labels are read here, at
calibration time, and never by the exit rule itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ffenergy.learners.base import Learner
from ffenergy.learners.exits import exits_from_scores


@dataclass
class Calibration:
    """Confidence statistics per depth; thresholds for any alpha follow from them."""

    mu: np.ndarray
    sigma: np.ndarray
    n_correct: np.ndarray

    def thresholds(self, alpha: float) -> np.ndarray:
        return (self.mu - alpha * self.sigma).astype(np.float32)

    def to_json(self) -> dict[str, list[float]]:
        return {"mu": self.mu.tolist(), "sigma": self.sigma.tolist(), "n_correct": self.n_correct.tolist()}


def calibrate(learner: Learner, scores: list[torch.Tensor], labels: np.ndarray) -> Calibration:
    """Statistics from per-depth validation scores (see ``exits.depth_scores``)."""
    mus, sigmas, counts = [], [], []
    y = torch.from_numpy(labels).to(scores[0].device)
    for s in scores:
        conf = learner.confidence(s)
        ok = (s.argmax(dim=1) == y) & torch.isfinite(conf)
        vals = conf[ok].double().cpu().numpy()
        if len(vals) < 2:
            vals = conf[torch.isfinite(conf)].double().cpu().numpy()
        mus.append(vals.mean() if len(vals) else np.inf)
        sigmas.append(vals.std() if len(vals) else 0.0)
        counts.append(int(ok.sum()))
    return Calibration(np.array(mus), np.array(sigmas), np.array(counts))


def select_alpha(
    learner: Learner,
    scores: list[torch.Tensor],
    labels: np.ndarray,
    cal: Calibration,
    candidates: list[float],
    max_loss_pp: float,
) -> float:
    """The largest candidate alpha whose validation accuracy is within ``max_loss_pp`` percentage
    points of the full network's (larger alpha: lower thresholds, earlier exits)."""
    full = float(np.mean(scores[-1].argmax(dim=1).numpy() == labels))
    ok = [
        a
        for a in candidates
        if np.mean(exits_from_scores(learner, scores, cal.thresholds(a))[0] == labels) >= full - max_loss_pp / 100
    ]
    return max(ok) if ok else min(candidates)
