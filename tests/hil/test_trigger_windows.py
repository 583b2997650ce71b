"""Windowing and integration on synthetic streams with known energy."""

import math

import numpy as np
import pytest

from ffenergy.meters.trigger_windows import find_windows, integrate, measure_window


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
