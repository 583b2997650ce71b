"""The calibrate stage: each learner's exit thresholds on the validation split (calibration.json), and
the alpha sweep of its thresholds on the test split (sweep.csv)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ffenergy.analysis.metrics import macro_f1
from ffenergy.config import InferenceConfig
from ffenergy.contract import SweepRow
from ffenergy.data.base import Dataset
from ffenergy.experiment.procedure import Procedure
from ffenergy.learners.base import Learner
from ffenergy.learners.calibrate import Calibration, calibrate, select_alpha
from ffenergy.learners.exits import batched_depth_scores, exits_from_scores
from ffenergy.learners.policy import Choice, choose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExitRule:
    """How a learner's thresholds were chosen: an alpha of the grid, or a risk / budget policy's choice."""

    thresholds: tuple[float, ...]
    alpha: float | None  # the grid's alpha; None under a policy
    choice: Choice | None  # the policy's choice; None on the grid

    @property
    def how(self) -> str:
        return f"alpha {self.alpha:g}" if self.choice is None else f"policy {self.choice.record.get('kind')}"


@dataclass(frozen=True)
class Calibrated:
    """The calibrate stage's output for one learner."""

    procedure: Procedure
    record: dict[str, Any]  # its calibration.json entry
    sweep: list[SweepRow]


def calibrate_learner(
    learner: Learner, data: Dataset, inf: InferenceConfig, seed: int, full_naive_macs: float
) -> Calibrated:
    """Thresholds on the validation split; what they (and the alpha sweep) achieve on the test split.
    ``full_naive_macs``: the paper's MAC count of the reference procedure's full network."""
    val_scores = batched_depth_scores(learner, data.x_val, inf.batch_size)
    cal = calibrate(learner, val_scores, data.y_val)
    rule = _exit_rule(learner, val_scores, data.y_val, cal, inf, seed)
    depth_1 = learner.n_layers > 1 and rule.thresholds[0] <= learner.confidence_floor
    if depth_1:
        log.warning(
            "%s: light = depth-1 by construction: T_1 = %.4g <= %.4g, the least %s; every sample "
            "exits at layer 1 (%s), so light is not an adaptive exit here",
            learner.name,
            rule.thresholds[0],
            learner.confidence_floor,
            learner.statistic,
            rule.how,
        )
    test_scores = batched_depth_scores(learner, data.x_test, inf.batch_size)
    if rule.choice is None:
        chosen: dict[str, Any] = {"alpha": rule.alpha, "alpha_select": inf.alpha_select}
        tested: dict[str, Any] = {}
    else:
        chosen = {"policy": {**rule.choice.record, "message": rule.choice.message}}
        tested = {"test": policy_on_test(learner, test_scores, data.y_test, rule.choice, full_naive_macs)}
    record = {
        "statistic": learner.statistic,
        **chosen,
        "thresholds": list(rule.thresholds),
        "light_is_depth_1": depth_1,
        **tested,
        **learner.calibration_facts(),
        **cal.to_json(),
    }
    alphas = sorted(set(inf.alpha_sweep) | {inf.alpha} | ({rule.alpha} if rule.alpha is not None else set()))
    sweep = [_sweep_row(learner, test_scores, data.y_test, cal, alpha, full_naive_macs) for alpha in alphas]
    return Calibrated(Procedure(learner, cal, rule.thresholds), record, sweep)


def _exit_rule(
    learner: Learner,
    scores: list[torch.Tensor],
    labels: np.ndarray,
    cal: Calibration,
    inf: InferenceConfig,
    seed: int,
) -> ExitRule:
    if inf.policy.kind == "grid":
        alpha = (
            inf.alpha
            if inf.alpha_select == "fixed"
            else select_alpha(learner, scores, labels, cal, inf.alpha_sweep, inf.max_loss_pp)
        )
        return ExitRule(tuple(cal.thresholds(alpha).tolist()), alpha, None)
    choice = choose(learner, scores, labels, inf.policy, seed)
    if choice.message:
        log.warning("%s: %s", learner.name, choice.message)
    return ExitRule(tuple(choice.thresholds.tolist()), None, choice)


def _sweep_row(
    learner: Learner,
    scores: list[torch.Tensor],
    labels: np.ndarray,
    cal: Calibration,
    alpha: float,
    full_naive_macs: float,
) -> SweepRow:
    pred, exits = exits_from_scores(learner, scores, cal.thresholds(alpha))
    fractions = np.bincount(exits, minlength=learner.n_layers + 1)[1:] / len(exits)
    naive_macs = float(learner.naive_macs_at_exit()[exits - 1].mean())
    return SweepRow(
        target="host",
        procedure=learner.name,
        statistic=learner.statistic,
        alpha=alpha,
        accuracy=float(np.mean(pred == labels)),
        macro_f1=macro_f1(labels, pred),
        mean_layers=float(exits.mean()),
        macs_per_inference=float(learner.macs_at_exit()[exits - 1].mean()),
        macs_per_inference_naive=naive_macs,
        mac_reduction=full_naive_macs / naive_macs,  # the paper's count on both sides
        exit_fractions=tuple(fractions.tolist()),
    )


def policy_on_test(
    learner: Learner, scores: list[torch.Tensor], labels: np.ndarray, choice: Choice, full_naive: float
) -> dict[str, float]:
    """What the chosen thresholds achieve on the test split (logged; calibration.json ``test``).

    ``mac_reduction`` is the paper's count on both sides, as in summary.csv and sweep.csv."""
    pred, exits = exits_from_scores(learner, scores, choice.thresholds)
    full = scores[-1].argmax(dim=1).numpy()
    macs = float(learner.macs_at_exit()[exits - 1].mean())
    naive = float(learner.naive_macs_at_exit()[exits - 1].mean())
    out = {
        "accuracy": float(np.mean(pred == labels)),
        "full_accuracy": float(np.mean(full == labels)),
        "disagreement": float(np.mean(pred != full)),
        "macs_per_inference": macs,
        "macs_per_inference_naive": naive,
        "mac_reduction": float(full_naive) / naive,
    }
    log.info(
        "%s: policy %s on test: accuracy %.4f (full %.4f), disagreement %.4f, %.4g MACs per inference as run"
        " (%.2fx fewer than full; by the paper's count %.4g, %.2fx)",
        learner.name,
        choice.record.get("kind"),
        out["accuracy"],
        out["full_accuracy"],
        out["disagreement"],
        macs,
        float(learner.macs_at_exit()[-1]) / macs,
        naive,
        out["mac_reduction"],
    )
    return out
