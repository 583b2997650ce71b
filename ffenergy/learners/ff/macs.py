"""Exact multiply-accumulate counts of FF MP and OP inference (DESIGN.md section 2).

Two counts of MP. The paper's (``naive``): every candidate label runs every layer it reaches,
MP(k) = sum_{l<=k} m_l d_{l-1} d_l, with m_l candidate labels at layer l (C, or fewer after
label pruning). What the implementation runs: the same, except layer 1, whose C label overlays
differ only in the C label slots and share one norm, so it costs one product of the image
columns, (d_0 - C) d_1, plus one label column per candidate, C d_1: d_0 d_1 in all.
OP(k) = sum_{l<=k} d_{l-1} d_l + sum_{j<=k} C (d_1 + .. + d_j); both counts agree for OP.
Normalisation, goodness and argmax costs are O(d) and not counted.
"""

from __future__ import annotations

import numpy as np


def candidates_per_layer(n_layers: int, n_classes: int, prune_after: int = 0, prune_keep: int = 0) -> list[int]:
    """Candidate labels run through each layer of MP (pruning acts after layer ``prune_after``)."""
    pruned = prune_after > 0 and 0 < prune_keep < n_classes
    return [prune_keep if pruned and layer > prune_after else n_classes for layer in range(1, n_layers + 1)]


def dense_macs(dims: list[int]) -> np.ndarray:
    """d_{l-1} d_l of each layer (index k-1 = layer k)."""
    return np.array([a * b for a, b in zip(dims[:-1], dims[1:])], dtype=np.int64)


def mp_layer_macs_naive(dims: list[int], n_classes: int, prune_after: int = 0, prune_keep: int = 0) -> np.ndarray:
    """MACs each layer adds to one MP inference that reaches it, one full pass per candidate (the paper's count)."""
    candidates = candidates_per_layer(len(dims) - 1, n_classes, prune_after, prune_keep)
    return dense_macs(dims) * np.array(candidates, dtype=np.int64)


def mp_layer_macs(dims: list[int], n_classes: int, prune_after: int = 0, prune_keep: int = 0) -> np.ndarray:
    """MACs each layer adds to one MP inference that reaches it, as run: layer 1 factorised."""
    macs = mp_layer_macs_naive(dims, n_classes, prune_after, prune_keep)
    macs[0] = (dims[0] - n_classes) * dims[1] + n_classes * dims[1]  # shared image product + label columns
    return macs


def op_layer_macs(dims: list[int], n_classes: int) -> np.ndarray:
    """MACs each layer (and its head on the activations so far) adds to one OP inference."""
    return dense_macs(dims) + n_classes * np.cumsum(dims[1:], dtype=np.int64)
