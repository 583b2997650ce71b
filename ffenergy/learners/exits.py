"""Early-exit inference for any learner, batched, with compaction.

After every layer the samples that exited leave the batch, so later layers really run on
fewer rows (on CPU and CUDA alike); ``infer_pooled`` also pools the rows that stay across
batches, so deeper layers run on full batches (a throughput mode). The exit rule reads only the
learner's own confidence, never a label. ``depth_scores`` runs every sample through every layer
and keeps the scores of each depth: calibration, the alpha sweep and the compaction-equals-masking
test use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ffenergy.learners.base import LayerPass, Learner
from ffenergy.vocabulary import Predictions


@torch.inference_mode()
def infer(
    learner: Learner, x: torch.Tensor, thresholds: Sequence[float] | None, forced_depth: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, exit_layer) for one batch; ``forced_depth`` None means light (early exit).

    Written for few kernels per layer, since small batches are bound by their count: the exit
    check is one comparison and one ``nonzero`` (a single row computes its confidence on Python floats),
    and the output tensors are only scattered into once some rows have left the batch.
    """
    if forced_depth is not None:  # every row runs to forced_depth
        state = learner.start(x)
        for k in range(forced_depth - 1):
            state.step(k)
        return _all_leave(state, state.step(forced_depth - 1), forced_depth - 1, None)
    if thresholds is None:
        raise ValueError("light inference needs calibrated thresholds")
    last = learner.n_layers
    state = learner.start(x)
    out: tuple[torch.Tensor, torch.Tensor] | None = None  # (pred, exit_layer), made at the first compaction
    for k in range(last - 1):
        scores = state.step(k)
        if len(scores) == 1:
            if learner.confidence_of_row(scores.tolist()[0]) >= thresholds[k]:
                return _all_leave(state, scores, k, out)
            continue
        done = learner.confidence(scores) >= thresholds[k]
        exited = done.nonzero().squeeze(1)
        if len(exited) == len(scores):
            return _all_leave(state, scores, k, out)
        if len(exited):
            if out is None:
                out = (
                    torch.empty(len(x), dtype=torch.long, device=x.device),
                    torch.empty(len(x), dtype=torch.long, device=x.device),
                )
            _some_leave(state, scores, done, exited, k, out)
    return _all_leave(state, state.step(last - 1), last - 1, out)


@torch.inference_mode()
def infer_pooled(
    learner: Learner, x: torch.Tensor, thresholds: Sequence[float], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Light (pred, exit_layer) of ``x`` arriving in batches of ``batch_size``, with the rows that
    stay pooled by depth: a throughput mode.

    Per-batch light inference runs each deeper layer on the few rows of one batch that stayed,
    and a GEMM of a few rows still streams its whole weight matrix. Here the rows waiting for
    layer k are held until ``batch_size`` of them have gathered (or the input has ended), so
    every layer runs on full batches; a row's answer can wait for later batches. Same exits and
    predictions as ``infer`` batch by batch, but for float rounding (GEMMs of other sizes).
    """
    last = learner.n_layers
    out = (
        torch.empty(len(x), dtype=torch.long, device=x.device),
        torch.empty(len(x), dtype=torch.long, device=x.device),
    )
    waiting: list[list[LayerPass]] = [[] for _ in range(last)]  # [k]: passes that have run layers 1..k

    def run_layer(state: LayerPass, k: int) -> None:
        """Layer k on ``state``: its confident rows (every row at the last layer) leave, the rest wait."""
        scores = state.step(k)
        if k < last - 1:
            done = learner.confidence(scores) >= thresholds[k]
            exited = done.nonzero().squeeze(1)
            if len(exited) < len(scores):
                if len(exited):
                    _some_leave(state, scores, done, exited, k, out)
                waiting[k + 1].append(state)
                return
        _all_leave(state, scores, k, out)

    def run_pool(k: int) -> None:
        state, *others = waiting[k]
        waiting[k] = []
        if others:
            state.merge(others)
        run_layer(state, k)

    for i in range(0, len(x), batch_size):
        state = learner.start(x[i : i + batch_size])
        state.rows = state.rows + i
        run_layer(state, 0)
        for k in range(1, last):
            if sum(len(p.rows) for p in waiting[k]) >= batch_size:
                run_pool(k)
    for k in range(1, last):  # the input has ended: what still waits runs, shallow layers first
        if waiting[k]:
            run_pool(k)
    return out


def _some_leave(
    state: LayerPass,
    scores: torch.Tensor,
    done: torch.Tensor,
    exited: torch.Tensor,
    k: int,
    out: tuple[torch.Tensor, torch.Tensor],
) -> None:
    """The rows ``exited`` (the positions where ``done``) leave at depth k + 1 into ``out``; the rest stay."""
    rows = state.rows.index_select(0, exited)
    out[0][rows] = scores.index_select(0, exited).argmax(dim=1)
    out[1][rows] = k + 1
    state.keep((~done).nonzero().squeeze(1))


def _all_leave(
    state: LayerPass, scores: torch.Tensor, k: int, out: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, exit_layer) once every row still in the batch leaves at depth k + 1."""
    if out is None:  # no row left earlier: the batch is still whole and in order
        return scores.argmax(dim=1), torch.full((len(scores),), k + 1, dtype=torch.long, device=scores.device)
    out[0][state.rows] = scores.argmax(dim=1)
    out[1][state.rows] = k + 1
    return out


@torch.no_grad()
def depth_scores(learner: Learner, x: torch.Tensor) -> list[torch.Tensor]:
    """Scores (N, C) at every depth 1..L for every sample, no exits (the masking view)."""
    state = learner.start(x)
    return [state.step(k) for k in range(learner.n_layers)]


def batched_depth_scores(learner: Learner, x: np.ndarray, batch_size: int = 1024) -> list[torch.Tensor]:
    """``depth_scores`` over a whole array in batches, gathered on the CPU."""
    device = learner.device()
    chunks = [
        depth_scores(learner, torch.from_numpy(x[i : i + batch_size]).to(device)) for i in range(0, len(x), batch_size)
    ]
    return [torch.cat([c[k] for c in chunks]).cpu() for k in range(learner.n_layers)]


def depth_accuracies(learner: Learner, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> list[float]:
    """Accuracy of each depth's scores alone (no exits), depths 1..L."""
    return [float((s.argmax(dim=1).numpy() == y).mean()) for s in batched_depth_scores(learner, x, batch_size)]


def exits_from_scores(
    learner: Learner, scores: list[torch.Tensor], thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pred, exit_layer) the light rule gives, computed from per-depth scores by masking."""
    n_layers = len(scores)
    n = len(scores[0])
    exit_layer = np.full(n, n_layers, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    for k in range(n_layers - 1):
        conf = learner.confidence(scores[k]).cpu().numpy()
        hit = undecided & (conf >= thresholds[k])
        exit_layer[hit] = k + 1
        undecided &= ~hit
    stacked = torch.stack([s.argmax(dim=1) for s in scores], dim=1).cpu().numpy()
    return stacked[np.arange(n), exit_layer - 1], exit_layer


def predict(
    learner: Learner,
    x: np.ndarray,
    thresholds: Sequence[float] | None,
    forced_depth: int | None,
    batch_size: int = 1024,
) -> Predictions:
    """Batched inference over a whole array on the learner's device; MACs per sample from the exits."""
    device = learner.device()
    preds, exits = [], []
    for i in range(0, len(x), batch_size):
        p, e = infer(learner, torch.from_numpy(x[i : i + batch_size]).to(device), thresholds, forced_depth)
        preds.append(p.cpu().numpy())
        exits.append(e.cpu().numpy())
    exit_layer = np.concatenate(exits)
    return Predictions(pred=np.concatenate(preds), exit_layer=exit_layer, macs=learner.macs_at_exit()[exit_layer - 1])
