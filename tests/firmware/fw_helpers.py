"""Helpers for the firmware / HIL tests: small random FF networks, inputs, policies, QEMU gate, variant builds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.firmware.boards import BOARDS
from ffenergy.firmware.export import deploy
from ffenergy.firmware.launch import firmware_source_dir
from ffenergy.firmware.reference import confidence, layer_scores

DIMS = [24, 16, 12, 10]
N_CLASSES = 4
KERNEL_FUNCTIONS = ("widen_input", "matvec_i8", "dot_rows_c")  # the int8 DSP layer kernel (core/mlp.c)


def make_net(procedure: str, dims: list[int] = DIMS, n_classes: int = N_CLASSES, seed: int = 0) -> NetworkArrays:
    rng = np.random.default_rng(seed)
    weights = [
        (rng.normal(size=(dims[i + 1], dims[i])) / np.sqrt(dims[i])).astype(np.float32) for i in range(len(dims) - 1)
    ]
    biases = [(0.1 * rng.normal(size=d)).astype(np.float32) for d in dims[1:]]
    if procedure == "exit":  # heads on each layer's output only, with biases
        heads = [(rng.normal(size=(n_classes, d)) / np.sqrt(d)).astype(np.float32) for d in dims[1:]]
        head_biases = [(0.1 * rng.normal(size=n_classes)).astype(np.float32) for _ in dims[1:]]
        return NetworkArrays("exit", weights, biases, heads, n_classes, 0.0, 0.0, head_biases)
    heads = (
        [rng.normal(size=(n_classes, sum(dims[1 : k + 2]))).astype(np.float32) for k in range(len(dims) - 1)]
        if procedure == "op"
        else []
    )
    return NetworkArrays(procedure, weights, biases, heads, n_classes, label_value=1.0, norm_eps=1e-4)


def make_inputs(n: int, d: int = DIMS[0], seed: int = 1) -> np.ndarray:
    """Inputs on the u8 grid (q/255), like images: the DUT client sends them in the compact format."""
    q = np.random.default_rng(seed).integers(0, 256, size=(n, d))
    return q.astype(np.float32) / np.float32(255.0)


def kernel_macs(procedure: str, dims: list[int], n_classes: int) -> int:
    """MACs of the layers' weight matrices in one full inference, as the int8 layer kernel must compute
    them: MP's layer 1 over the image inputs once (the label columns are added apart, DESIGN.md
    section 2) and each later layer once per label; OP's layers once each (its heads are fp32);
    exit's layers and heads once each (both int8)."""
    layers = [a * b for a, b in zip(dims[:-1], dims[1:])]
    if procedure == "op":
        return sum(layers)
    if procedure == "exit":
        return sum(layers) + n_classes * sum(dims[1:])
    return (dims[0] - n_classes) * dims[1] + n_classes * sum(layers[1:])


def make_policy(net: NetworkArrays, x: np.ndarray, statistic: str, prune: bool = False) -> ExitPolicy:
    """Thresholds at the median confidence of the samples left per layer: light mode exits at every depth."""
    pol = ExitPolicy(
        statistic, np.zeros(net.n_layers, np.float32), prune_after=1 if prune else 0, prune_keep=2 if prune else 0
    )
    model = deploy(net, pol, "f32")
    scores = layer_scores(model, x)
    remaining = np.ones(len(x), bool)
    for k, s in enumerate(scores[:-1]):  # median among the samples still running at depth k+1
        conf = confidence(model, s)
        pol.thresholds[k] = np.median(conf[remaining])
        remaining &= conf < pol.thresholds[k]
    return pol


def require_qemu() -> None:
    """Skip without QEMU/arm-gcc, unless HIL_REQUIRE_QEMU is set: then fail loudly."""
    missing = BOARDS.get("qemu-mps2-an386").missing_tools()
    if not missing:
        return
    msg = (
        f"QEMU tests need {', '.join(missing)}: apt-get install -y --no-install-recommends "
        "qemu-system-arm gcc-arm-none-eabi"
    )
    if os.environ.get("HIL_REQUIRE_QEMU"):
        pytest.fail(f"HIL_REQUIRE_QEMU is set but {msg}")
    pytest.skip(msg)


def build_host_variant(model_dir: Path, out: Path, cflags: str) -> Path:
    """The host firmware of ``model_dir`` built into ``out`` with ``cflags`` added (the Makefile's EXTRA_CFLAGS)."""
    make = ["make", "-s", "-C", str(firmware_source_dir()), "BOARD=host", f"MODEL={model_dir}", f"OUT={out}"]
    subprocess.run([*make, f"EXTRA_CFLAGS={cflags}"], check=True, capture_output=True)
    return out / "ffdut"
