"""The exact numbers a firmware build holds (float32 / int8), shared by the C header and the
numpy reference, and the size of the firmware around them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ffenergy.firmware.arrays import Scheme

DType = Literal["f32", "int8"]

FW_VERSION = (0, 4, 0)  # 0.4: the exit-head scheme (MP / OP results unchanged from 0.3)
# The longest model name the firmware reports (INFO/BOOT): model.h's FF_MODEL_NAME_MAX, which sizes its reply buffer.
MODEL_NAME_MAX = 64
# Code + vector table + constant tables of the firmware without the model (arm-none-eabi-gcc -O2,
# measured on the qemu-mps2-an386 build: about 6 KB; rounded up for other boards' HALs).
CODE_FLASH_BYTES = 10 * 1024
# Protocol buffers (4 KB receive frame + reply), HAL state and a stack reserve.
BASE_RAM_BYTES = 4096 + 7 + 256 + 4096


def check_model_name(name: str) -> None:
    """Refuse a name the firmware cannot report: 1 to MODEL_NAME_MAX characters from A-Z a-z 0-9 _ . -"""
    if not re.fullmatch(rf"[A-Za-z0-9_.\-]{{1,{MODEL_NAME_MAX}}}", name):
        raise ValueError(
            f"model name {name!r} ({len(name)} characters): the firmware takes 1 to MODEL_NAME_MAX = {MODEL_NAME_MAX}"
            " characters from A-Z a-z 0-9 _ . - (export with a shorter name)"
        )


@dataclass
class DeployedModel:
    """The exact numbers the firmware holds (float32 / int8), shared by the header and the reference."""

    name: str
    scheme: Scheme  # "mp" (one pass per candidate label) | "op" (neutral label, heads) | "exit"
    statistic: str  # "gap" | "max"
    dtype: DType
    dims: list[int]  # d_0 (input) .. d_L
    n_classes: int
    thresholds: np.ndarray  # float32 (L,)
    prune_after: int
    prune_keep: int
    label_on: np.float32  # MP overlay value of the candidate's slot
    neutral: np.float32  # OP overlay value of every label slot
    norm_eps: np.float32
    weights: list[np.ndarray]  # float32 or int8, (d_l, d_{l-1})
    biases: list[np.ndarray]  # float32 (d_l,)
    heads: list[np.ndarray] = field(default_factory=list)  # OP: (C, d_1+..+d_k), exit: (C, d_k); float32 or int8
    head_bias: list[np.ndarray] = field(default_factory=list)  # exit: float32 (C,)
    w_scale: list[np.ndarray] = field(default_factory=list)  # int8: float32 (d_l,) = s_w[j]*s_in
    in_inv_scale: np.ndarray | None = None  # int8: float32 1/s_in, (L,) for MP / OP, (L+1,) for exit (z_0..z_L)
    head_scale: list[np.ndarray] = field(default_factory=list)  # int8 OP: s_h (C,); int8 exit: s_h * s_in of z_k

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def flash_bytes(self) -> int:
        arrays = [*self.weights, *self.biases, *self.heads, *self.head_bias, *self.w_scale, *self.head_scale]
        arrays.append(self.thresholds)
        model = sum(a.nbytes for a in arrays) + (self.in_inv_scale.nbytes if self.in_inv_scale is not None else 0)
        return CODE_FLASH_BYTES + model + 64 + 2 * len(self.dims)

    def ram_bytes(self) -> int:
        """Static buffers of mlp.c for this model (see FF_* sizes in the header) + protocol + stack."""
        if self.scheme == "exit":
            return BASE_RAM_BYTES + self._exit_ram()
        d_in_max, d_hid_max, c = max(self.dims[:-1]), max(self.dims[1:]), self.n_classes
        ram = 4 * self.dims[0] + 4 * d_in_max + (d_in_max if self.dtype == "int8" else 0)  # x, h, q
        ram += 4 * (c + self.n_layers) + 2 * c  # scores, thresholds, active flags/order
        if self.scheme == "mp":
            ram += 2 * 4 * c * d_hid_max  # ping-pong activations per candidate
        else:
            ram += 4 * sum(self.dims[1:])  # concatenated activations for the heads
        return BASE_RAM_BYTES + ram

    def _exit_ram(self) -> int:
        """x; h_buf and in_buf over max(dims) (they also hold the last layer's output for its head);
        int8: the int32 sums and the DSP kernel's int16 pairs; scores, thresholds, flags."""
        d_max, c = max(self.dims), self.n_classes
        ram = 4 * self.dims[0] + 4 * d_max
        if self.dtype == "int8":
            ram += d_max + 4 * max(max(self.dims[1:]), c) + 4 * (d_max // 2 + 2)
        else:
            ram += 4 * d_max
        return ram + 4 * (c + self.n_layers) + 2 * c
