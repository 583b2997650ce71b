"""The Forward-Forward network: normalised ReLU layers, label overlays and per-depth OP heads.

Recipe (Hinton / loeweX style, the one the LightFF paper's main code builds on): each layer is
``z = ReLU(W n(x) + b)`` with ``n`` an RMS length normalisation; goodness is the sum of squares
of ``z``; one network serves both procedures: MP reads goodness under C label overlays, OP
reads bias-free softmax heads on the concatenated activations of a neutral-label pass.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from torch import nn

from ffenergy.firmware.arrays import NetworkArrays, Scheme

NORM_EPS = 1e-8


def rms_normalise(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """x / (sqrt(mean(x^2)) + eps) over the last dimension."""
    return x / (torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True)) + eps)


def full_grad_relu(a: torch.Tensor) -> torch.Tensor:
    """ReLU forward; identity backward (gradients also reach units that are off)."""
    return a + (torch.relu(a) - a).detach()


class FFNetwork(nn.Module):
    """A stack of FF layers plus one OP head per depth."""

    def __init__(self, dims: list[int], n_classes: int, label_value: float = 1.0):
        super().__init__()
        if dims[0] <= n_classes:
            raise ValueError(f"input width {dims[0]} must exceed the {n_classes} label slots")
        self.dims = list(dims)
        self.n_classes = n_classes
        self.label_value = float(label_value)
        layers = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        for layer in layers:
            nn.init.normal_(layer.weight, std=1.0 / layer.out_features**0.5)
            nn.init.zeros_(layer.bias)
        heads = [nn.Linear(w, n_classes, bias=False) for w in np.cumsum(dims[1:]).tolist()]
        for head in heads:
            nn.init.zeros_(head.weight)
        self.layers = nn.ModuleList(layers)
        self.heads = nn.ModuleList(heads)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def layer(self, k: int, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Activations ReLU(W n(x) + b) of layer k (0-based) for ``x``, the previous layer's output.

        ``train``: the training form (normalise, then the layer; identity-gradient ReLU).
        Otherwise the inference form of the same values: W n(x) = (W x) / (rms(x) + eps), which
        reads ``x`` once less and launches four kernels instead of six; light inference, whose
        later layers run on small residual batches, is bound by the number of kernels.
        """
        lin = cast(nn.Linear, self.layers[k])
        if train:
            return full_grad_relu(lin(rms_normalise(x)))
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) / math.sqrt(x.shape[-1])
        return torch.addcmul(lin.bias, x @ lin.weight.T, (rms + NORM_EPS).reciprocal_()).relu_()

    def label_layer(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Layer 1 of every row of ``x`` (N, d0) under each label overlay in ``labels`` (m,): (N, m, d1).

        The inference form of ``layer(0, overlay(x, c))`` for all c at once (DESIGN.md section 2):
        the overlays differ only in the C label slots and all have the norm of the image part
        x_img = x[:, C:] plus one label_value, so W n(x_c) = (W_img x_img + label_value W[:, c])
        / (rms + eps) with rms = sqrt((|x_img|^2 + label_value^2) / d0): one product of the image
        columns and m label columns instead of m full products. x's own label slots are ignored.
        """
        lin = cast(nn.Linear, self.layers[0])
        c, lv = self.n_classes, self.label_value
        img = x[:, c:]
        norm = torch.linalg.vector_norm(img, dim=-1, keepdim=True).square_().add_(lv * lv).sqrt_()
        scale = (norm / math.sqrt(x.shape[-1]) + NORM_EPS).reciprocal_()  # (N, 1)
        base = img @ lin.weight[:, c:].T  # (N, d1): the product every overlay shares
        pre = base[:, None, :] + lin.weight[:, labels].T * lv  # (N, m, d1)
        return torch.addcmul(lin.bias, pre, scale[:, :, None]).relu_()

    def overlay(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x with the one-hot label (times label_value) written over its first C values."""
        out = x.clone()
        out[:, : self.n_classes] = 0.0
        out[torch.arange(len(x), device=x.device), labels] = self.label_value
        return out

    def neutral(self, x: torch.Tensor) -> torch.Tensor:
        """x with label_value / C in every label slot (the OP input)."""
        out = x.clone()
        out[:, : self.n_classes] = self.label_value / self.n_classes
        return out

    def to_arrays(self, scheme: Scheme) -> NetworkArrays:
        """The float32 numpy hand-off used by export, firmware and references."""
        to_np = lambda t: t.detach().cpu().numpy().astype(np.float32).copy()
        return NetworkArrays(
            scheme=scheme,
            weights=[to_np(l.weight) for l in self.layers],
            biases=[to_np(l.bias) for l in self.layers],
            heads=[to_np(h.weight) for h in self.heads] if scheme == "op" else [],
            n_classes=self.n_classes,
            label_value=self.label_value,
            norm_eps=NORM_EPS,
        )
