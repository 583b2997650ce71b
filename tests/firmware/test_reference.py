"""The numpy reference against a plain float64 reading of ffenergy/firmware/arrays.py (close, not bit-exact)."""

import numpy as np
import pytest

from ffenergy.firmware.arrays import ExitPolicy
from ffenergy.firmware.export import deploy
from ffenergy.firmware.reference import (
    _layer,
    _mp_first_layer,
    confidence,
    ff_expf,
    layer_macs,
    layer_scores,
    overlay_inputs,
    reference_predict,
)
from tests.firmware.fw_helpers import DIMS, N_CLASSES, make_inputs, make_net


def naive_scores(net, x, prune_after=0, keep=0):
    """Per-sample float64 evaluation of the documented semantics: scores (L, C)."""
    c = net.n_classes
    if net.scheme == "exit":
        v, out = x.astype(np.float64), []
        for w, b, h, hb in zip(net.weights, net.biases, net.heads, net.head_biases):
            v = np.maximum(w @ v + b, 0)
            out.append(h @ v + hb)
        return np.array(out)
    if net.scheme == "op":
        v = x.astype(np.float64).copy()
        v[:c] = net.label_value / c
        zs, out = [], []
        for w, b, h in zip(net.weights, net.biases, net.heads):
            v = np.maximum(w @ (v / (np.sqrt(np.mean(v**2)) + net.norm_eps)) + b, 0)
            zs.append(v)
            out.append(h @ np.concatenate(zs))
        return np.array(out)
    acc, alive, out = np.zeros(c), np.ones(c, bool), []
    vs = []
    for cand in range(c):
        v = x.astype(np.float64).copy()
        v[:c] = 0
        v[cand] = net.label_value
        vs.append(v)
    for layer, (w, b) in enumerate(zip(net.weights, net.biases), 1):
        for cand in range(c):
            vs[cand] = np.maximum(w @ (vs[cand] / (np.sqrt(np.mean(vs[cand] ** 2)) + net.norm_eps)) + b, 0)
            acc[cand] += np.sum(vs[cand] ** 2)
        out.append(np.where(alive, acc, -np.inf))
        if keep and layer == prune_after:
            alive[:] = False
            alive[np.argsort(-acc, kind="stable")[:keep]] = True
    return np.array(out)


@pytest.mark.parametrize("proc,prune", [("mp", False), ("mp", True), ("op", False), ("exit", False)])
def test_scores_follow_the_documented_semantics(proc, prune):
    net = make_net(proc)
    x = make_inputs(12)
    pol = ExitPolicy("gap", np.zeros(3, np.float32), prune_after=1 if prune else 0, prune_keep=2 if prune else 0)
    got = layer_scores(deploy(net, pol, "f32"), x)
    want = np.stack([naive_scores(net, xi, pol.prune_after, pol.prune_keep) for xi in x], axis=1)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=2e-5, atol=1e-5 * np.abs(want[fin]).max())


def test_light_mode_exit_rule_and_macs():
    net = make_net("mp")
    x = make_inputs(40)
    m = deploy(net, ExitPolicy("max", np.zeros(3, np.float32)), "f32")
    conf = np.stack([confidence(m, s) for s in layer_scores(m, x)])
    m.thresholds = np.array([np.median(conf[0]), np.median(conf[1]), 0], np.float32)
    r = reference_predict(m, x, "light")
    for i in range(len(x)):
        passing = [k + 1 for k in range(2) if conf[k, i] >= m.thresholds[k]]
        assert r.exit_layer[i] == (passing[0] if passing else 3)
    assert set(r.exit_layer) == {1, 2, 3}
    d = DIMS
    first = (d[0] - N_CLASSES) * d[1] + N_CLASSES * d[1]  # factorised: one image product + C label columns
    assert list(layer_macs(m)) == [
        first,
        first + N_CLASSES * d[1] * d[2],
        first + N_CLASSES * (d[1] * d[2] + d[2] * d[3]),
    ]
    assert np.array_equal(r.macs, layer_macs(m)[r.exit_layer - 1])
    full = reference_predict(m, x, "full")
    assert np.all(full.exit_layer == 3) and np.array_equal(full.pred, np.argmax(full.scores, axis=1))


@pytest.mark.parametrize("dtype", ["f32", "int8"])
def test_factorised_first_layer_equals_the_direct_layer_on_every_label_overlay(dtype):
    """Layer 1 of MP run once for all candidates == layer 1 of each overlay: close in f32 (the
    sum runs in another order), exact in int8 (the same codes, integer sums)."""
    net = make_net("mp")
    x = make_inputs(30)
    x[0] = 0.0  # only the label left in the norm
    x[1, :N_CLASSES] = 3.0  # the input's own label slots are overwritten, never read
    m = deploy(net, ExitPolicy("gap", np.zeros(3, np.float32)), dtype, calib_x=make_inputs(20))
    direct = _layer(m, 0, overlay_inputs(x, "mp", N_CLASSES, m.label_on, m.neutral).reshape(-1, DIMS[0]))
    fact = _mp_first_layer(m, x)
    assert fact.shape == direct.shape == (len(x) * N_CLASSES, DIMS[1])
    if dtype == "int8":
        assert np.array_equal(fact, direct)
    else:
        np.testing.assert_allclose(fact, direct, rtol=1e-5, atol=1e-6 * np.abs(direct).max())


def test_op_macs_count_heads():
    m = deploy(make_net("op"), ExitPolicy("gap", np.zeros(3, np.float32)), "f32")
    d, c = DIMS, N_CLASSES
    assert layer_macs(m)[1] == d[0] * d[1] + c * d[1] + d[1] * d[2] + c * (d[1] + d[2])


def test_exit_macs_count_each_layer_and_its_own_head():
    m = deploy(make_net("exit"), ExitPolicy("gap", np.zeros(3, np.float32)), "f32")
    # 24-16-12-10, 4 classes: 24*16 + 4*16 = 448; + 16*12 + 4*12 = 688; + 12*10 + 4*10 = 848
    assert layer_macs(m).tolist() == [448, 688, 848]


def test_exit_int8_shares_z_k_codes_between_layer_k_plus_1_and_head_k():
    """One activation scale per z_0 .. z_L; head k's scale is its weight scale times z_k's."""
    net = make_net("exit")
    x = make_inputs(50)
    m = deploy(net, ExitPolicy("gap", np.zeros(3, np.float32)), "int8", calib_x=x)
    z, amax = x.astype(np.float64), [x.max()]
    for w, b in zip(net.weights, net.biases):
        z = np.maximum(z @ w.T.astype(np.float64) + b, 0)
        amax.append(np.abs(z).max())
    np.testing.assert_allclose(1 / m.in_inv_scale, np.array(amax) / 127, rtol=1e-6)
    for k, (h, q, s) in enumerate(zip(net.heads, m.heads, m.head_scale)):
        assert q.dtype == np.int8 and np.all(np.abs(q).max(axis=1) == 127)
        np.testing.assert_allclose(s, np.abs(h).max(axis=1) / 127 * amax[k + 1] / 127, rtol=1e-6)
    got = layer_scores(m, x)
    want = np.stack([naive_scores(net, xi) for xi in x], axis=1)
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max())  # int8: close, not exact


def test_expf_is_accurate():
    x = np.linspace(-80, 0, 2001, dtype=np.float32)
    np.testing.assert_allclose(ff_expf(x), np.exp(x.astype(np.float64)), rtol=3e-7)
    assert ff_expf(np.float32(0.0)) == 1.0 and ff_expf(np.float32(-100.0)) == 0.0
