"""Windowing and integration on synthetic streams with known energy."""

import math

import numpy as np
import pytest

from ffenergy.meters.base import MeterInfo
from ffenergy.meters.trigger_windows import EDGE_SHARE_LIMIT, find_windows, integrate, integrate_windows, measure_window
from ffenergy.meters.triggered import TriggeredMeter


def _stream(levels, dt=1e-4, v=3.0, idle_a=0.01, active_a=0.05):
    trig = np.asarray(levels, float)
    t = np.arange(len(trig)) * dt
    i = np.where(trig > 0, active_a, idle_a)
    return t, np.full(len(t), v), i, trig


def test_find_windows_drops_partial_first_and_open_last():
    trig = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1])
    assert find_windows(trig) == [(4, 7), (8, 9)]
    assert find_windows(trig, offset=100) == [(104, 107), (108, 109)]
    assert find_windows(np.zeros(5)) == []


def test_net_energy_of_a_rectangular_window_is_exact():
    levels = [0] * 300 + [1] * 500 + [0] * 300
    t, v, i, trig = _stream(levels)
    w = measure_window(t, v, i, trig, 300, 800, idle_span_s=0.02)
    assert w.duration_s == pytest.approx(0.05)
    assert w.gross_j == pytest.approx(3.0 * 0.05 * 0.05)
    assert w.idle_power_w == pytest.approx(0.03)
    assert w.net_j == pytest.approx(3.0 * 0.04 * 0.05)
    assert w.warnings == ()


def test_idle_level_ignores_other_windows_and_edge_guard():
    levels = [0] * 100 + [1] * 50 + [0] * 100 + [1] * 200 + [0] * 100
    t, v, i, trig = _stream(levels)
    i[248:250] = 1.0  # a spike just before the rising edge, inside the guard
    w = measure_window(t, v, i, trig, 250, 450, idle_span_s=1.0)
    assert w.idle_power_w == pytest.approx(0.03)
    assert w.n_idle_samples == 300 - 4  # 2 guard samples each side of the window


def test_short_window_warns_and_missing_idle_gives_nan():
    t, v, i, trig = _stream([0] * 10 + [1] * 5 + [0] * 10)
    w = measure_window(t, v, i, trig, 10, 15, idle_span_s=0.01)
    assert any("repeat inferences" in msg for msg in w.warnings)
    t, v, i, trig = _stream([1] * 5 + [0])
    w = measure_window(t, v, i, trig, 0, 5, idle_span_s=0.01)
    assert math.isnan(w.net_j) and any("idle level unknown" in msg for msg in w.warnings)


def test_integrate_uses_real_timestamps_across_a_gap():
    t = np.array([0.0, 1.0, 3.0, 4.0])
    p = np.array([2.0, 5.0, 7.0, 0.0])
    assert integrate(t, p, 0, 3) == pytest.approx(2 * 1 + 5 * 2 + 7 * 1)
    with pytest.raises(ValueError, match="needs samples up to index 4"):
        integrate(t, p, 0, 4)


def test_integrate_windows_equals_the_live_drivers_window_code():
    rng = np.random.default_rng(11)
    levels = [0] * 300 + [1] * 700 + [0] * 150 + [1] * 90 + [0] * 400
    t, v, i, trig = _stream(levels)
    i = i + 0.003 * rng.standard_normal(len(i))
    p = v * i
    edges = np.array(find_windows(trig))
    span = 0.02005  # 200.5 sample periods: no sample sits on the span's float boundary
    many = integrate_windows(p, edges, 1e4, idle_span_s=span)
    for k, (start, end) in enumerate(edges):
        one = measure_window(t, v, i, trig, int(start), int(end), idle_span_s=span)
        for field in ("gross_j", "gross_lo_j", "gross_hi_j", "idle_power_w", "net_j", "duration_s"):
            assert getattr(many, field)[k] == pytest.approx(getattr(one, field), rel=1e-9), field
        assert many.n_idle_samples[k] == one.n_idle_samples
    assert many.edge_share[1] > EDGE_SHARE_LIMIT > many.edge_share[0]  # 90 samples warn, 700 do not
    energy = integrate_windows(p / 1e4, edges, 1e4, quantity="energy", idle_span_s=0.02)
    assert energy.gross_j == pytest.approx(many.gross_j, rel=1e-12)


def test_integrate_windows_refuses_edges_outside_the_stream():
    with pytest.raises(ValueError, match="0 <= start < end <= 10"):
        integrate_windows(np.ones(10), np.array([[5, 11]]), 1000.0)
    with pytest.raises(ValueError, match="sample rate"):
        integrate_windows(np.ones(10), np.array([[1, 5]]), 0.0)


class _Fed(TriggeredMeter):
    """A triggered meter fed by the test (no device): the reader side of a driver."""

    info = MeterInfo("fed", "measured", ("dut",), 1e-3)

    def feed(self, t, p, trig, chunk):
        for a in range(0, len(t), chunk):
            sl = slice(a, a + chunk)
            self._append(t[sl], np.ones(len(t[sl])), p[sl], trig[sl])


@pytest.mark.parametrize("window_s", [15.0, 60.0])
def test_a_window_longer_than_the_history_is_kept_whole(window_s):
    rate = 5000.0  # the window outgrows the buffer's first allocation, so trimming happens while it is open
    n = int((window_s + 2) * rate)
    trig = np.zeros(n)
    trig[1000 : 1000 + int(window_s * rate)] = 1
    t = np.arange(n) / rate
    p = 0.01 + 0.02 * trig
    meter = _Fed(history_s=10.0, post_idle_s=0.001)
    token = meter.start()
    meter.feed(t, p, trig, chunk=997)
    w = meter.next_window(token, timeout_s=1.0)
    assert w.gross_j == pytest.approx(0.03 * window_s, rel=1e-9)
    assert w.idle_power_w == pytest.approx(0.01)
    tail = np.arange(4 * n) / rate + t[-1] + 1 / rate
    meter.feed(tail, np.full(len(tail), 0.01), np.zeros(len(tail)), chunk=997)  # no window open: trimmed again
    assert meter.samples(0, 10)[0].size == 0
