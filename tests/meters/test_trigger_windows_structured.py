"""Trigger windows on streams with structure: an idle level that differs before and after a window, samples
of distinct power at each edge, windows at the ends of the stream, and shares exactly at the limit.

A flat idle level and flat power inside a window let a window's idle samples come from the wrong side, an
edge term use the wrong sample, or the band's sign flip, and still give the right answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ffenergy.meters.trigger_windows import (
    EDGE_SHARE_LIMIT,
    edge_share,
    find_windows,
    idle_power,
    integrate,
    integrate_windows,
    measure_window,
    short_window_warning,
)

RATE = 1000.0  # samples per second: sample k stands for [k, k + 1) ms


def _stepped() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0.2 s at 1 W, a window of 100 samples whose power climbs 10..10.99 W, 0.2 s at 3 W."""
    trig = np.r_[np.zeros(200), np.ones(100), np.zeros(200)]
    p = np.r_[np.full(200, 1.0), 10 + np.arange(100) / 100, np.full(200, 3.0)]
    return np.arange(len(p)) / RATE, p, trig


def test_the_idle_level_averages_both_sides_guard_and_span_exactly():
    t, p, trig = _stepped()
    span = 0.0205  # 20.5 samples: no sample on the span's boundary
    w = measure_window(t, np.ones_like(p), p, trig, 200, 300, idle_span_s=span)
    # before: samples 180..197 (guard 198, 199), after: 302..320 (guard 300, 301)
    assert w.n_idle_samples == 18 + 19
    assert w.idle_power_w == pytest.approx((18 * 1.0 + 19 * 3.0) / 37)
    assert w.duration_s == pytest.approx(0.1)
    gross = float(np.sum(10 + np.arange(100) / 100)) / RATE
    assert w.gross_j == pytest.approx(gross)
    assert w.net_j == pytest.approx(gross - w.idle_power_w * 0.1)
    assert w.start_s == pytest.approx(0.2) and (w.start_index, w.end_index, w.n_samples) == (200, 300, 100)
    many = integrate_windows(p, np.array([[200, 300]]), RATE, idle_span_s=span)
    assert many.n_idle_samples[0] == w.n_idle_samples
    assert many.idle_power_w[0] == pytest.approx(w.idle_power_w)
    assert many.net_j[0] == pytest.approx(w.net_j)


def test_the_idle_level_of_one_side_alone_is_that_sides_level():
    t, p, trig = _stepped()
    assert idle_power(t, p, trig, 200, 300, span_s=0.0105, guard=0) == pytest.approx(
        ((10 * 1.0 + 11 * 3.0) / 21, 21)
    )  # 10 before, 11 after
    level, n = idle_power(t[:302], p[:302], trig[:302], 200, 300, span_s=0.0105, guard=2)  # nothing after
    assert (level, n) == (pytest.approx(1.0), 8)  # 190..197
    many = integrate_windows(p[:302], np.array([[200, 300]]), RATE, idle_span_s=0.0105)
    assert many.idle_power_w[0] == pytest.approx(1.0) and many.n_idle_samples[0] == 8


def test_the_edge_band_moves_each_edge_by_its_own_sample():
    t, p, trig = _stepped()
    w = measure_window(t, np.ones_like(p), p, trig, 200, 300)
    assert w.gross_lo_j == pytest.approx(w.gross_j - (10.0 + 10.99) / RATE)  # the window's first and last samples
    assert w.gross_hi_j == pytest.approx(w.gross_j + (1.0 + 3.0) / RATE)  # the idle samples just outside
    many = integrate_windows(p, np.array([[200, 300]]), RATE)
    assert many.gross_lo_j[0] == pytest.approx(w.gross_lo_j) and many.gross_hi_j[0] == pytest.approx(w.gross_hi_j)
    assert w.edge_share == pytest.approx((w.gross_hi_j - w.gross_lo_j) / (2 * w.gross_j))
    assert many.edge_share[0] == pytest.approx(w.edge_share)


def test_windows_at_the_ends_of_the_stream_and_of_one_sample():
    p = np.array([5.0, 6.0, 7.0, 8.0, 9.0])
    many = integrate_windows(p, np.array([[0, 1], [2, 3], [4, 5]]), RATE, idle_span_s=0.0)
    assert many.gross_j.tolist() == pytest.approx([5e-3, 7e-3, 9e-3])
    assert many.gross_lo_j.tolist() == pytest.approx([0.0, 0.0, 0.0])  # a one-sample window's band: that sample
    assert many.gross_hi_j.tolist() == pytest.approx(
        [11e-3, 21e-3, 17e-3]
    )  # no sample before the first, after the last
    assert many.duration_s.tolist() == pytest.approx([1e-3, 1e-3, 1e-3])
    t = np.arange(6) / RATE
    trig = np.array([1, 0, 1, 0, 0, 0])
    w = measure_window(t, np.ones(6), np.r_[p, 1.0], trig, 2, 3, idle_span_s=0.0)
    assert (w.gross_lo_j, w.gross_hi_j) == (pytest.approx(0.0), pytest.approx(21e-3))
    first = measure_window(t, np.ones(6), np.r_[p, 1.0], trig, 0, 1, idle_span_s=0.0)
    assert first.gross_hi_j == pytest.approx(11e-3)


def test_given_sample_times_set_the_durations():
    edges = np.array([[0, 2], [2, 4]])
    t_s = np.array([0.0, 0.001, 0.003, 0.004, 0.010])
    many = integrate_windows(np.ones(4), edges, RATE, quantity="energy", t_s=t_s)
    assert many.duration_s.tolist() == pytest.approx([0.003, 0.007])
    assert many.gross_j.tolist() == pytest.approx([2.0, 2.0])


def test_the_edge_share_is_positive_for_a_negative_gross_and_infinite_for_none():
    assert edge_share(-2.0, -2.1, -1.9) == pytest.approx(0.05)
    assert edge_share(0.0, -0.1, 0.1) == math.inf
    assert edge_share(4.0, 3.9, 4.1) == pytest.approx(0.025)


def test_the_short_window_rule_at_its_limit():
    assert short_window_warning(400, 0.4, EDGE_SHARE_LIMIT) is None  # exactly at the limit: no warning
    msg = short_window_warning(399, 0.0399, 0.00501)
    assert msg == (
        "window of 399 samples (39.9 ms): one sample at each edge moves its energy by 0.5 % (limit 0.5 %); "
        "repeat inferences inside the window (INFER repeats) so it spans more samples"
    )
    assert short_window_warning(10, 0.01, 0.2, limit=0.25) is None
    assert short_window_warning(10, 0.01, 0.3, limit=0.25) is not None


def test_at_flat_power_a_window_under_400_samples_warns():
    for n, warns in ((401, False), (399, True)):  # 400 is the limit itself, where float rounding decides
        trig = np.r_[np.zeros(50), np.ones(n), np.zeros(50)]
        t = np.arange(len(trig)) / RATE
        w = measure_window(t, np.ones(len(trig)), np.full(len(trig), 2.0), trig, 50, 50 + n)
        assert bool(w.warnings) is warns, w.warnings


def test_find_windows_with_one_sample_windows_and_edges_at_both_ends():
    assert find_windows(np.array([0, 1, 0, 1, 0])) == [(1, 2), (3, 4)]
    assert find_windows(np.array([1, 0, 1, 1, 0, 0, 1])) == [(2, 4)]
    assert find_windows(np.array([True, True])) == [] and find_windows(np.array([])) == []
    assert find_windows(np.array([0.0, 2.0, 0.0]), offset=10) == [(11, 12)]


def test_integrate_windows_accepts_edges_at_the_stream_bounds_and_refuses_empty_windows():
    x = np.arange(1.0, 11.0)  # 10 samples of 1..10 W
    whole = integrate_windows(x, np.array([[0, 10]]), 0.5)  # a rate under 1 Hz is a rate
    assert whole.gross_j[0] == pytest.approx(55.0 / 0.5) and whole.duration_s[0] == pytest.approx(20.0)
    for bad in ([[-1, 3]], [[2, 11]], [[4, 4]], [[5, 4]]):
        with pytest.raises(ValueError, match=r"0 <= start < end <= 10"):
            integrate_windows(x, np.array(bad), 1.0)
    empty = integrate_windows(x, np.zeros((0, 2)), 1.0)
    assert len(empty) == 0


def test_integrate_windows_defaults_to_power_and_a_50_ms_idle_span():
    rate = 1000.0
    p = np.r_[np.full(100, 2.0), np.full(10, 7.0), np.full(100, 4.0)]
    many = integrate_windows(p, np.array([[100, 110]]), rate)
    assert many.gross_j[0] == pytest.approx(0.07)
    # idle: [50, 98) at 2 W and [112, 161) at 4 W
    assert many.n_idle_samples[0] == 48 + 49
    assert many.idle_power_w[0] == pytest.approx((48 * 2.0 + 49 * 4.0) / 97)


def test_edge_bands_of_two_sample_windows_and_windows_one_sample_from_the_ends():
    p = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])  # every sample's energy tells which one it is
    edges = np.array([[1, 3], [4, 6]])  # 2 samples each; the first starts one sample in, the second ends one before
    many = integrate_windows(p, edges, RATE, idle_span_s=0.0)
    assert many.gross_lo_j.tolist() == pytest.approx([0.0, 0.0])  # both samples of each are the inner band
    assert many.gross_hi_j.tolist() == pytest.approx([(1 + 2 + 4 + 8) / RATE, (8 + 16 + 32 + 64) / RATE])
    t = np.arange(8) / RATE
    trig = np.array([0, 1, 1, 0, 1, 1, 0, 0])
    for k, (start, end) in enumerate(edges):
        w = measure_window(t, np.ones(8), np.r_[p, 0.0], trig, int(start), int(end), idle_span_s=0.0)
        assert (w.gross_lo_j, w.gross_hi_j) == (pytest.approx(many.gross_lo_j[k]), pytest.approx(many.gross_hi_j[k]))


@pytest.mark.parametrize("start, end", [(1, 4), (3, 6), (6, 9)])
def test_idle_ranges_clipped_at_the_stream_start_agree_with_the_live_window_code(start, end):
    """Idle spans that reach before sample 0: the vectorised ranges clip at 0, as the live code's masks do."""
    rng = np.random.default_rng(start)
    p = 1 + rng.random(40)
    trig = np.zeros(40)
    trig[start:end] = 1
    t = np.arange(41) / RATE
    many = integrate_windows(p, np.array([[start, end]]), RATE, idle_span_s=0.0105, t_s=None)
    one = measure_window(t, np.ones(41), np.r_[p, 1.0], np.r_[trig, 0], start, end, idle_span_s=0.0105)
    assert many.n_idle_samples[0] == one.n_idle_samples
    assert many.idle_power_w[0] == pytest.approx(one.idle_power_w)


def test_one_idle_sample_gives_an_idle_level():
    p = np.array([5.0, 0.0, 0.0, 9.0, 9.0, 9.0])  # sample 0 idle; 1, 2 the guard; the window 3..5 runs to the end
    many = integrate_windows(p, np.array([[3, 6]]), RATE, idle_span_s=0.003)
    assert many.n_idle_samples[0] == 1 and many.idle_power_w[0] == pytest.approx(5.0)


def test_the_live_window_names_its_samples_and_honours_its_limit_and_default_span():
    t, p, trig = _stepped()
    w = measure_window(t, np.ones_like(p), p, trig, 200, 210)  # 10 samples at the default 50 ms idle span
    assert w.warnings[0].startswith("window of 10 samples (10 ms): one sample at each edge")
    span = measure_window(t, np.ones_like(p), p, trig, 200, 210, idle_span_s=0.05).n_idle_samples
    assert (
        w.n_idle_samples == span < measure_window(t, np.ones_like(p), p, trig, 200, 210, idle_span_s=1.0).n_idle_samples
    )
    assert measure_window(t, np.ones_like(p), p, trig, 200, 210, edge_share_limit=1.0).warnings == ()


def test_window_indices_one_idle_sample_and_an_empty_window():
    p = np.array([5.0, 0.0, 0.0, 9.0, 9.0, 9.0, 0.0])
    many = integrate_windows(p, np.array([[3, 6]]), RATE, idle_span_s=0.003)
    assert many.start_index.tolist() == [3] and many.end_index.tolist() == [6]
    t = np.arange(7) / RATE
    trig = np.array([0, 0, 0, 1, 1, 1, 1])
    w = measure_window(t, np.ones(7), p, trig, 3, 6, idle_span_s=0.0035)
    assert w.n_idle_samples == 1 and w.idle_power_w == pytest.approx(5.0)  # sample 0 only
    with pytest.raises(ValueError, match=r"window \[3, 3\) needs samples up to index 3"):
        integrate(t, p, 3, 3)


def test_a_window_ending_at_the_last_sample_with_a_period_has_no_sample_after_it():
    t = np.arange(8) / RATE
    p = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
    trig = np.array([0, 0, 0, 0, 0, 1, 1, 0])
    w = measure_window(t, np.ones(8), p, trig, 5, 7, idle_span_s=0.0)  # sample 7 ends the stream: no period
    assert w.gross_j == pytest.approx((32 + 64) / RATE)
    assert w.gross_hi_j == pytest.approx((16 + 32 + 64) / RATE)  # the sample before it only


def test_the_idle_span_includes_samples_exactly_at_its_ends():
    """Sample times in quarter seconds are exact in binary: t[start] - 1 s and t[end] + 1 s are sample times."""
    t = np.arange(20) * 0.25
    p = np.arange(20, dtype=float) + 1  # sample k draws k + 1 W
    trig = np.zeros(20)
    trig[8:12] = 1
    level, n = idle_power(t, p, trig, 8, 12, span_s=1.0, guard=2)
    # before: 4, 5 (t 1.0 and 1.25; 6 and 7 are the guard); after: 14, 15, 16 (t up to 4.0 = t[12] + 1)
    assert n == 5 and level == pytest.approx((5 + 6 + 15 + 16 + 17) / 5)
