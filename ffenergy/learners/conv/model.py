"""The convolutional exit network of ``cwc`` and ``bp-conv-exits``: blocks of conv, ReLU, pooling and
batch norm, with one exit per block, and the MACs each block and exit add (docs/DESIGN.md section 2).

The architecture follows from ``model.hidden`` (the channels) and the input width alone, since the
learner seam's ``build`` sees nothing else: the input is a square image of 1 or 3 channels
(flattened channel-major, as the data loaders hand it over); block k is a K x K convolution
(K = 3, stride 1, zero padding K // 2, so the side is kept), ReLU, a 2 x 2 max pooling on every
second block (blocks 2, 4, ...) and a batch norm. The pooled blocks' convolutions are grouped
into C groups (C = number of classes: CwComp's CFSE architecture, each class group of channels
sees only its own input group), so their input and output channels must be multiples of C.

Exits: ``GroupGoodness`` (cwc) gives class c the mean square of its channel group
c·S .. (c+1)·S − 1 (S = channels / C) over all positions; ``GapHead`` (bp-conv-exits) is global
average pooling and a linear layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffenergy.learners.backprop import ExitNet

KERNEL = 3
POOL = 2


def image_shape(n_values: int) -> tuple[int, int, int]:
    """(channels, side, side) of a flattened square image of 3 or 1 channels with ``n_values`` values."""
    for channels in (3, 1):
        side = math.isqrt(n_values // channels)
        if channels * side * side == n_values:
            return channels, side, side
    raise ValueError(
        f"a convolutional learner needs square images of 1 or 3 channels; {n_values} input values are neither "
        "(3 x s x s nor s x s): use an image dataset (mnist, cifar10)"
    )


class ConvBlock(nn.Module):
    """Conv (K x K, stride 1, padding K // 2), ReLU, 2 x 2 max pooling if ``pool``, batch norm."""

    def __init__(self, c_in: int, c_out: int, side_in: int, pool: bool, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, KERNEL, padding=KERNEL // 2, groups=groups)
        self.norm = nn.BatchNorm2d(c_out, eps=1e-4)
        self.pool = pool
        self.side_in = side_in
        self.side_out = side_in // POOL if pool else side_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        if self.pool:
            h = F.max_pool2d(h, POOL)
        return self.norm(h)

    def macs(self) -> int:
        """Convolution: side_in² positions x c_out x (c_in / groups) x K²; batch norm (an affine map
        at inference): one per output value. Pooling compares and ReLU clamps: no MACs."""
        conv = self.conv
        per_output = (conv.in_channels // conv.groups) * KERNEL * KERNEL
        return self.side_in**2 * conv.out_channels * per_output + conv.out_channels * self.side_out**2


class GroupGoodness(nn.Module):
    """Class c's score: the mean square of channel group c over every position (the C groups split
    the channels in order). One MAC per value (square and accumulate); the division by the group
    size is one operation per class, not counted."""

    def __init__(self, channels: int, side: int, n_classes: int):
        super().__init__()
        if channels % n_classes:
            raise ValueError(
                f"model.hidden: {channels} channels cannot be split into {n_classes} class groups; "
                f"use multiples of {n_classes}"
            )
        self.n_classes = n_classes
        self.values = channels * side * side

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(len(y), self.n_classes, -1).square().mean(dim=2)

    def macs(self) -> int:
        return self.values


class GapHead(nn.Module):
    """Global average pooling (one accumulate per value, counted as a MAC) and a linear layer (c x C MACs)."""

    def __init__(self, channels: int, side: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(channels, n_classes)
        self.values = channels * side * side

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.linear(y.mean(dim=(2, 3)))

    def macs(self) -> int:
        return self.values + self.linear.in_features * self.linear.out_features


Head = Callable[[int, int, int], "GroupGoodness | GapHead"]  # (channels, side, n_classes) -> a block's exit


class ConvExitNet(ExitNet):
    """Conv blocks with an exit each; ``dims`` = [input values, *channels]."""

    def __init__(self, n_values: int, channels: list[int], n_classes: int, head: Head):
        super().__init__()
        self.image = image_shape(n_values)
        self.dims = [n_values, *channels]
        self.n_classes = n_classes
        blocks, side = [], self.image[1]
        for k, (c_in, c_out) in enumerate(pairwise([self.image[0], *channels])):
            pool = k % 2 == 1
            groups = n_classes if pool else 1
            if pool and (c_in % groups or c_out % groups):
                raise ValueError(
                    f"model.hidden: layer {k + 1} ({c_in} -> {c_out} channels) is a grouped convolution with "
                    f"{groups} groups; use channel counts that are multiples of {groups}"
                )
            blocks.append(ConvBlock(c_in, c_out, side, pool, groups))
            side = blocks[-1].side_out
        heads = [head(b.conv.out_channels, b.side_out, n_classes) for b in blocks]
        self.layers = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)
        self._macs = [b.macs() + h.macs() for b, h in zip(blocks, heads, strict=True)]

    def layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        if k == 0:
            h = h.reshape(len(h), *self.image)
        return super().layer(k, h)

    def layer_macs(self) -> np.ndarray:
        """MACs block k and its exit add (index k-1 = block k)."""
        return np.array(self._macs, dtype=np.int64)
