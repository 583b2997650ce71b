"""Numpy twin of the firmware core (ffenergy/firmware/c/core/mlp.c): the bit-exact oracle (MP, OP, exit).

Every float operation is float32 in the C order: sums run sequentially over the input index
(``acc = acc + a*b``, never BLAS), no fused multiply-add, the same expf polynomial and the same
int8 rounding. Batches are vectorised across samples and candidates only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ffenergy.firmware.deployed import DeployedModel
from ffenergy.vocabulary import Predictions, forced_depth

F32 = np.float32


@dataclass
class ScoredPredictions(Predictions):
    """Predictions plus the float32 scores (N, C) at each sample's exit layer."""

    scores: np.ndarray


def overlay_inputs(x: np.ndarray, scheme: str, n_classes: int, label_on: np.float32, neutral: np.float32) -> np.ndarray:
    """Label overlay: MP -> (N, C, d) with one-hot(c)*label_on, OP -> (N, 1, d) with neutral slots."""
    x = np.asarray(x, F32)
    if scheme == "mp":
        out = np.repeat(x[:, None, :], n_classes, axis=1)
        out[:, :, :n_classes] = np.eye(n_classes, dtype=F32) * F32(label_on)
    else:
        out = x[:, None, :].copy()
        out[:, :, :n_classes] = F32(neutral)
    return out


def seq_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, K) x (P, K) -> (M, P), float32, summed sequentially over K from 0.0f (the C loop order)."""
    acc = np.zeros((a.shape[0], b.shape[0]), F32)
    for i in range(a.shape[1]):
        acc = acc + a[:, i, None] * b[None, :, i]
    return acc


def seq_sumsq(v: np.ndarray, start: np.float32 | None = None) -> np.ndarray:
    """Sum of squares of each row, sequential from ``start`` (default 0.0f)."""
    acc = np.full(v.shape[0], F32(0.0) if start is None else start, F32)
    for i in range(v.shape[1]):
        acc = acc + v[:, i] * v[:, i]
    return acc


def ff_expf(x: np.ndarray) -> np.ndarray:
    """The firmware's expf for x <= 0 (Cephes-style range reduction + degree-5 polynomial, float32)."""
    x = np.asarray(x, F32)
    fx = np.floor(x * F32(1.44269504088896341) + F32(0.5))
    r = x - fx * F32(0.693359375)
    r = r - fx * F32(-2.12194440e-4)
    z = r * r
    y = F32(1.9875691500e-4)
    for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        y = y * r + F32(c)
    y = y * z + r
    y = y + F32(1.0)
    n = np.clip(fx, -126, 127).astype(np.int32)
    scale = ((n + 127).astype(np.uint32) << 23).view(F32)
    return np.where(x < F32(-87.0), F32(0.0), y * scale).astype(F32)


def _operand(model: DeployedModel, l: int, h: np.ndarray) -> np.ndarray:
    """The normalised layer input as the dot products read it: float32 h, or int8 codes as int64."""
    if model.dtype == "f32":
        return h
    assert model.in_inv_scale is not None, "an int8 model carries its input scales"
    t = h * model.in_inv_scale[l]
    t = np.minimum(np.maximum(t, F32(-127.0)), F32(127.0))
    return np.trunc(t + np.where(t >= 0, F32(0.5), F32(-0.5))).astype(np.int64)


def _products(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(M, K) operands x (P, K) weights: float32 sequential sums, or exact int64 sums for int8."""
    if a.dtype == F32:
        return seq_dot(a, w)
    return (a.astype(np.float64) @ w.astype(np.float64).T).astype(np.int64)  # exact integers


def _activate(model: DeployedModel, l: int, acc: np.ndarray) -> np.ndarray:
    """ReLU(acc (* the int8 scales) + b), float32."""
    z = (acc.astype(F32) * model.w_scale[l] if model.dtype == "int8" else acc) + model.biases[l]
    return np.where(z > 0, z, F32(0.0)).astype(F32)


def _layer(model: DeployedModel, l: int, v: np.ndarray) -> np.ndarray:
    """One FF layer on (M, d_in) float32 inputs -> (M, d_out) float32 activations."""
    denom = np.sqrt(seq_sumsq(v) / F32(v.shape[1])) + model.norm_eps
    return _activate(model, l, _products(_operand(model, l, v / denom[:, None]), model.weights[l]))


def _mp_first_layer(model: DeployedModel, x: np.ndarray) -> np.ndarray:
    """Layer 1 of every MP candidate pass at once: (N, d0) inputs -> (N * C, d1) activations.

    Factorised as in the firmware: the overlays differ only in the label slots and share one norm
    (the image part's sum of squares after label_on^2: the order the direct loop adds them in), so
    one product over the image columns serves all C candidates, each adding its label column.
    """
    c = model.n_classes
    img = x[:, c:]
    denom = np.sqrt(seq_sumsq(img, model.label_on * model.label_on) / F32(x.shape[1])) + model.norm_eps
    base = _products(_operand(model, 0, img / denom[:, None]), model.weights[0][:, c:])  # (N, d1)
    label = _operand(model, 0, (model.label_on / denom)[:, None])  # (N, 1)
    acc = base[:, None, :] + model.weights[0][:, :c].T[None].astype(base.dtype) * label[:, :, None]
    return _activate(model, 0, acc.reshape(len(x) * c, -1))


def _top2(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    srt = np.sort(s, axis=1)
    return srt[:, -1], srt[:, -2]


def confidence(model: DeployedModel, s: np.ndarray) -> np.ndarray:
    """Exit statistic of scores (N, C) as the firmware computes it (gap, or max: top1 / top softmax)."""
    top1, top2 = _top2(s)
    if model.statistic == "gap":
        return top1 - top2
    if model.scheme == "mp":
        return top1
    total = np.zeros(s.shape[0], F32)
    for c in range(s.shape[1]):
        total = total + ff_expf(s[:, c] - top1)
    return F32(1.0) / total


def _exit_scores(model: DeployedModel, x: np.ndarray) -> np.ndarray:
    """Scheme ``exit``: logits (L, N, C); z_k's operand (int8 codes at scale k) feeds layer k+1 and head k."""
    out = np.empty((model.n_layers, len(x), model.n_classes), F32)
    a = _operand(model, 0, x)
    for l in range(model.n_layers):
        a = _operand(model, l + 1, _activate(model, l, _products(a, model.weights[l])))
        logits = _products(a, model.heads[l])
        out[l] = (logits.astype(F32) * model.head_scale[l] if model.dtype == "int8" else logits) + model.head_bias[l]
    return out


def layer_scores(model: DeployedModel, x: np.ndarray) -> np.ndarray:
    """Scores (L, N, C) at every depth, with MP pruning applied after ``prune_after``."""
    x = np.asarray(x, F32)
    n, c, L = len(x), model.n_classes, model.n_layers
    if model.scheme == "exit":
        return _exit_scores(model, x)
    out = np.empty((L, n, c), F32)
    if model.scheme == "mp":
        acc = np.zeros((n, c), F32)
        pruned = np.zeros((n, c), bool)
        v = _mp_first_layer(model, x)
        for l in range(L):
            v = _layer(model, l, v) if l else v
            acc = acc + seq_sumsq(v).reshape(n, c)
            out[l] = np.where(pruned, F32(-np.inf), acc)
            if model.prune_keep and l + 1 == model.prune_after:
                order = np.argsort(-acc, axis=1, kind="stable")
                pruned = np.ones((n, c), bool)
                np.put_along_axis(pruned, order[:, : model.prune_keep], False, axis=1)
        return out
    v = overlay_inputs(x, model.scheme, c, model.label_on, model.neutral)[:, 0]
    zs = []
    for l in range(L):
        v = _layer(model, l, v)
        zs.append(v)
        logits = seq_dot(np.concatenate(zs, axis=1), model.heads[l].astype(F32))
        out[l] = logits * model.head_scale[l] if model.dtype == "int8" else logits
    return out


def layer_macs(model: DeployedModel) -> np.ndarray:
    """MACs of one inference that exits at depth k (index k-1), as the firmware counts them."""
    d, c = model.dims, model.n_classes
    per = []
    for l in range(1, len(d)):
        if model.scheme == "mp" and l == 1:
            per.append((d[0] - c) * d[1] + c * d[1])  # one image product + one label column per candidate
        elif model.scheme == "mp":
            active = model.prune_keep if model.prune_keep and l > model.prune_after else c
            per.append(active * d[l - 1] * d[l])
        elif model.scheme == "exit":
            per.append(d[l - 1] * d[l] + c * d[l])  # the layer and its own head
        else:
            per.append(d[l - 1] * d[l] + c * sum(d[1 : l + 1]))
    return np.cumsum(per)


def reference_predict(
    model: DeployedModel,
    x: np.ndarray,
    mode: str,
    thresholds: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> ScoredPredictions:
    """What the firmware returns for each row of ``x`` (N, d_0) in ``mode`` (full / light / depth-k).

    ``scores``: ``layer_scores(model, x)`` computed once and reused across modes (the costly part).
    """
    x = np.asarray(x, F32)
    if x.ndim != 2 or x.shape[1] != model.dims[0]:
        raise ValueError(f"x must have shape (N, {model.dims[0]}), got {x.shape}")
    thr = np.asarray(model.thresholds if thresholds is None else thresholds, F32)
    scores = layer_scores(model, x) if scores is None else scores
    L, n = model.n_layers, len(x)
    depth = forced_depth(mode, L)
    if depth is None:
        exit_layer = np.full(n, L)
        for k in range(L - 1, 0, -1):  # first k whose confidence passes wins
            exit_layer[confidence(model, scores[k - 1]) >= thr[k - 1]] = k
    else:
        exit_layer = np.full(n, depth)
    final = scores[exit_layer - 1, np.arange(n)]
    return ScoredPredictions(
        pred=np.argmax(final, axis=1), exit_layer=exit_layer, macs=layer_macs(model)[exit_layer - 1], scores=final
    )
