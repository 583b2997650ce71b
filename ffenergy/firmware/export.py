"""Export a trained network to the microcontroller firmware: quantisation, C header, fit check.

The deployed arithmetic (what ``ffenergy/firmware/c/core/mlp.c`` and ``ffenergy.firmware.reference``
both compute, bit for bit):

- fp32: the ``NetworkArrays`` semantics in float32 with sequential sums (``acc = acc + w*h``).
- int8: layer weights are symmetric int8 with one scale per output row (``per_channel``) or per
  layer; the normalised layer input h is quantised with a calibrated scale s_in:
  ``q = trunc(clamp(h * (1/s_in), -127, 127) +- 0.5)`` (round half away from zero), the dot
  product accumulates in int32, then ``z = ReLU(float(acc) * (s_w[j]*s_in) + b_j)`` in float32.
  OP heads are weight-only int8 (float activations): ``logit_c = (sum_m float(Hq[c,m]) * z_m) * s_h[c]``.
  s_in is max|h| over the calibration inputs (all MP candidate passes) / 127.
- int8, scheme ``exit``: the same per-layer input quantisation without normalisation: z_0 = x,
  z_1 .. z_L each get a scale s_k = max|z_k| / 127 over the calibration inputs (float64 forward
  pass of the float network), and their codes feed both layer k+1 and head k through the same
  int8 kernel: ``logit_c = float(acc_c) * (s_h[c] * s_k) + c_c``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ffenergy.firmware.arrays import SCHEMES, ExitPolicy, NetworkArrays
from ffenergy.firmware.boards import BOARDS, Board
from ffenergy.firmware.deployed import FW_VERSION, MODEL_NAME_MAX, DeployedModel, DType, check_model_name
from ffenergy.firmware.reference import overlay_inputs

log = logging.getLogger(__name__)


class ModelTooLarge(ValueError):
    """The model does not fit the board's flash or RAM."""


@dataclass
class ExportReport:
    out_dir: Path
    header: Path
    board: str
    dtype: DType
    flash_used: int
    flash_total: int
    ram_used: int
    ram_total: int

    def summary(self) -> str:
        def pct(a: int, b: int) -> str:
            return f"{a:,} / {b:,} B ({100 * a / b:.1f}%)" if b < (1 << 40) else f"{a:,} B"

        return (
            f"exported {self.dtype} model to {self.header} for {self.board}: "
            f"flash {pct(self.flash_used, self.flash_total)}, RAM {pct(self.ram_used, self.ram_total)} (estimated)"
        )


def _check_inputs(net: NetworkArrays, policy: ExitPolicy) -> None:
    if net.scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {net.scheme!r}: use one of {', '.join(SCHEMES)}")
    if policy.statistic not in ("gap", "max"):
        raise ValueError(f"unknown statistic {policy.statistic!r}: use 'gap' or 'max'")
    if len(policy.thresholds) != net.n_layers:
        raise ValueError(f"policy has {len(policy.thresholds)} thresholds for {net.n_layers} layers")
    if net.scheme != "mp" and len(net.heads) != net.n_layers:
        raise ValueError(f"{net.scheme} network needs one head per layer, got {len(net.heads)} for {net.n_layers}")
    if net.scheme == "exit" and len(net.head_biases) != net.n_layers:
        raise ValueError(f"exit network needs one head bias per layer, got {len(net.head_biases)}")
    if net.scheme == "exit" and policy.prune_after:
        raise ValueError("label pruning is MP only")
    if policy.prune_after and not (0 < policy.prune_keep < net.n_classes and policy.prune_after < net.n_layers):
        raise ValueError(
            f"pruning needs 0 < prune_keep < {net.n_classes} and prune_after < {net.n_layers}, "
            f"got prune_after={policy.prune_after} prune_keep={policy.prune_keep}"
        )
    overlay_fits = net.scheme == "exit" or net.dims[0] >= net.n_classes
    if net.n_layers > 255 or net.n_classes > 255 or max(net.dims) > 0xFFFF or not overlay_fits:
        raise ValueError(f"dims {net.dims} / {net.n_classes} classes out of the firmware's range")


def _sym_int8(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    amax = np.abs(w).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(w).max())
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _act_scales(net: NetworkArrays, calib_x: np.ndarray) -> np.ndarray:
    """max|h_l| / 127 of each layer's normalised input over the calibration set (float64 maths);
    scheme ``exit``: of z_0 = x, z_1 .. z_L."""
    if net.scheme == "exit":
        z = np.asarray(calib_x, np.float64)
        amax = [np.abs(z).max()]
        for w, b in zip(net.weights, net.biases):
            z = np.maximum(z @ np.asarray(w, np.float64).T + b, 0.0)
            amax.append(np.abs(z).max())
        return np.maximum(np.asarray(amax), 1e-12) / 127.0
    x = overlay_inputs(
        np.asarray(calib_x, np.float32),
        net.scheme,
        net.n_classes,
        np.float32(net.label_value),
        np.float32(net.label_value / net.n_classes),
    )
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)  # 2-D: numpy's batched 3-D matmul is far slower
    scales = []
    for w, b in zip(net.weights, net.biases):
        h = x / (np.sqrt(np.mean(x * x, axis=-1, keepdims=True)) + net.norm_eps)
        scales.append(max(np.abs(h).max(), 1e-12) / 127.0)
        x = np.maximum(h @ np.asarray(w, np.float64).T + b, 0.0)
    return np.asarray(scales, np.float64)


def deploy(
    net: NetworkArrays,
    policy: ExitPolicy,
    dtype: DType = "f32",
    calib_x: np.ndarray | None = None,
    per_channel: bool = True,
    name: str = "model",
) -> DeployedModel:
    """Quantise (int8) or cast (f32) a network into the numbers the firmware will hold."""
    _check_inputs(net, policy)
    check_model_name(name)
    if dtype not in ("f32", "int8"):
        raise ValueError(f"unknown dtype {dtype!r}: use 'f32' or 'int8'")
    f32 = np.float32
    model = DeployedModel(
        name=name,
        scheme=net.scheme,
        statistic=policy.statistic,
        dtype=dtype,
        dims=list(net.dims),
        n_classes=net.n_classes,
        thresholds=np.asarray(policy.thresholds, f32).copy(),
        prune_after=int(policy.prune_after) if net.scheme == "mp" else 0,
        prune_keep=int(policy.prune_keep) if net.scheme == "mp" and policy.prune_after else 0,
        label_on=f32(net.label_value),
        neutral=f32(net.label_value / net.n_classes),
        norm_eps=f32(net.norm_eps),
        weights=[],
        biases=[np.asarray(b, f32).copy() for b in net.biases],
    )
    if dtype == "f32":
        model.weights = [np.asarray(w, f32).copy() for w in net.weights]
        model.heads = [np.asarray(h, f32).copy() for h in net.heads]
        model.head_bias = [np.asarray(c, f32).copy() for c in net.head_biases]
        return model
    if calib_x is None or len(calib_x) == 0:
        raise ValueError("int8 export needs calib_x (validation inputs) to calibrate the activation scales")
    s_in = _act_scales(net, calib_x)
    model.in_inv_scale = (1.0 / s_in).astype(f32)
    for w, s in zip(net.weights, s_in):
        q, sw = _sym_int8(np.asarray(w, np.float64), per_channel)
        model.weights.append(q)
        model.w_scale.append((sw.astype(np.float64) * s).astype(f32))
    for k, h in enumerate(net.heads):
        q, sh = _sym_int8(np.asarray(h, np.float64), per_channel)
        model.heads.append(q)
        model.head_scale.append((sh.astype(np.float64) * s_in[k + 1]).astype(f32) if net.scheme == "exit" else sh)
    model.head_bias = [np.asarray(c, f32).copy() for c in net.head_biases]
    return model


def check_fit(model: DeployedModel, board: str) -> Board:
    """Raise ModelTooLarge (saying by how much) unless the model fits the board."""
    b = BOARDS.get(board)
    over = []
    if model.flash_bytes() > b.flash_bytes:
        over.append(
            f"flash needs {model.flash_bytes():,} B of {b.flash_bytes:,} B "
            f"(over by {model.flash_bytes() - b.flash_bytes:,} B)"
        )
    if model.ram_bytes() > b.ram_bytes:
        over.append(
            f"RAM needs {model.ram_bytes():,} B of {b.ram_bytes:,} B (over by {model.ram_bytes() - b.ram_bytes:,} B)"
        )
    if over:
        hint = " try dtype int8 or a smaller network" if model.dtype == "f32" else " try a smaller network"
        raise ModelTooLarge(
            f"{model.dtype} {model.scheme} model {model.dims} does not fit {board}: " + "; ".join(over) + ";" + hint
        )
    return b


def _c_floats(a: np.ndarray) -> str:
    return ",".join(float(v).hex() + "f" for v in np.asarray(a, np.float32).ravel())


def _c_ints(a: np.ndarray) -> str:
    return ",".join(str(int(v)) for v in np.asarray(a).ravel())


def _c_array(ctype: str, name: str, a: np.ndarray) -> str:
    body = _c_floats(a) if ctype == "float" else _c_ints(a)
    return f"static const {ctype} {name}[{max(a.size, 1)}] = {{{body or '0'}}};\n"


def header_text(model: DeployedModel) -> str:
    """The C header the firmware compiles against (hex-float literals: exact float32 values)."""
    check_model_name(model.name)
    i8 = model.dtype == "int8"
    wtype = "int8_t" if i8 else "float"
    L, dims = model.n_layers, model.dims
    exit_ = model.scheme == "exit"  # FF_MAX_IN_DIM: in_buf also holds z_L, the last head's input
    out = [
        "/* Generated by ffenergy.firmware.export: do not edit. */\n#ifndef FF_MODEL_H\n#define FF_MODEL_H\n#include <stdint.h>\n",
        f'#define FF_MODEL_NAME "{model.name}"\n#define FF_MODEL_NAME_MAX {MODEL_NAME_MAX}\n',
        f"#define FF_DTYPE_INT8 {int(i8)}\n#define FF_SCHEME {SCHEMES.index(model.scheme)}\n",
        f"#define FF_PROC_OP {int(model.scheme == 'op')}\n#define FF_PROC_EXIT {int(exit_)}\n",
        f"#define FF_STAT_MAX {int(model.statistic == 'max')}\n#define FF_N_LAYERS {L}\n",
        f"#define FF_N_CLASSES {model.n_classes}\n#define FF_N_IN {dims[0]}\n",
        f"#define FF_MAX_IN_DIM {max(dims) if exit_ else max(dims[:-1])}\n#define FF_MAX_HID_DIM {max(dims[1:])}\n",
        f"#define FF_SUM_HID {sum(dims[1:])}\n",
        f"#define FF_PRUNE_AFTER {model.prune_after}\n#define FF_PRUNE_KEEP {model.prune_keep}\n",
        f"#define FF_FW_MAJOR {FW_VERSION[0]}\n#define FF_FW_MINOR {FW_VERSION[1]}\n#define FF_FW_PATCH {FW_VERSION[2]}\n",
        f"typedef {wtype} ff_w_t;\n",
        _c_array("uint16_t", "ff_dims", np.asarray(dims)),
        _c_array("float", "ff_thresholds", model.thresholds),
        f"static const float ff_label_on = {_c_floats(np.array([model.label_on]))};\n",
        f"static const float ff_neutral = {_c_floats(np.array([model.neutral]))};\n",
        f"static const float ff_norm_eps = {_c_floats(np.array([model.norm_eps]))};\n",
    ]
    for l in range(L):
        out.append(_c_array(wtype, f"ff_w{l}", model.weights[l]))
        out.append(_c_array("float", f"ff_b{l}", model.biases[l]))
        if i8:
            out.append(_c_array("float", f"ff_ws{l}", model.w_scale[l]))
        if model.scheme != "mp":
            out.append(_c_array(wtype, f"ff_h{l}", model.heads[l]))
            if i8:
                out.append(_c_array("float", f"ff_hs{l}", model.head_scale[l]))
        if exit_:
            out.append(_c_array("float", f"ff_hb{l}", model.head_bias[l]))
    if i8:
        assert model.in_inv_scale is not None, "an int8 model carries its input scales"
        out.append(_c_array("float", "ff_in_inv_scale", model.in_inv_scale))
    lst = lambda p: ",".join(f"{p}{l}" for l in range(L))
    none = ",".join(["0"] * L)
    out.append(f"static const ff_w_t *const ff_W[FF_N_LAYERS] = {{{lst('ff_w')}}};\n")
    out.append(f"static const float *const ff_B[FF_N_LAYERS] = {{{lst('ff_b')}}};\n")
    out.append(f"static const float *const ff_WS[FF_N_LAYERS] = {{{lst('ff_ws') if i8 else none}}};\n")
    heads = model.scheme != "mp"
    out.append(f"static const ff_w_t *const ff_H[FF_N_LAYERS] = {{{lst('ff_h') if heads else none}}};\n")
    out.append(f"static const float *const ff_HS[FF_N_LAYERS] = {{{lst('ff_hs') if heads and i8 else none}}};\n")
    if exit_:
        out.append(f"static const float *const ff_HB[FF_N_LAYERS] = {{{lst('ff_hb')}}};\n")
    out.append("#endif\n")
    return "".join(out)


def export_model(
    net: NetworkArrays,
    policy: ExitPolicy,
    out_dir: str | Path,
    dtype: DType = "f32",
    board: str = "qemu-mps2-an386",
    calib_x: np.ndarray | None = None,
    per_channel: bool = True,
    name: str = "model",
) -> ExportReport:
    """Write ``out_dir/model.h`` (+ ``export.json``) after checking the model fits ``board``; logs the use."""
    model = deploy(net, policy, dtype, calib_x, per_channel, name)
    b = check_fit(model, board)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = out / "model.h"
    header.write_text(header_text(model))
    report = ExportReport(out, header, board, dtype, model.flash_bytes(), b.flash_bytes, model.ram_bytes(), b.ram_bytes)
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(report).items()}
    meta.update(scheme=model.scheme, statistic=model.statistic, dims=model.dims, name=model.name)
    (out / "export.json").write_text(json.dumps(meta, indent=2))
    log.info(report.summary())
    return report
