"""Attribution on hand-built windows whose answers are known exactly: signs, filters, fallbacks, boundaries.

Each test names the plausible one-line bug it catches: a prediction error of the wrong sign (hidden
by ``abs()`` elsewhere), rows of another domain or procedure let in, an exit probability of zero
treated as an exit, the window fit called identifiable (or not) for the wrong reason.
"""

from __future__ import annotations

import pytest

from ffenergy.analysis.attribution import Attribution, ModeWindow, attribute, exit_distribution, windows_from_rows

MACS = {"depth-1": 1e6, "depth-2": 2e6, "depth-3": 4e6}  # MACs per inference
J_PER_MAC, INTERCEPT, STATIC_W = 2e-9, 1e-4, 3.0


def _depth(mode: str, n: int = 10, duration: float | None = None) -> ModeWindow:
    """A window of ``n`` inferences; by default it lasts in step with its MACs (as on a microcontroller)."""
    duration = n * MACS[mode] / 1e7 if duration is None else duration
    net = n * (J_PER_MAC * MACS[mode] + INTERCEPT)
    return ModeWindow(mode, n, duration, net + STATIC_W * duration, net)


def _light(per_inference_j: float, n: int = 10) -> ModeWindow:
    return ModeWindow("light", n, 1.0, n * per_inference_j + STATIC_W, n * per_inference_j)


def _attribute(windows, exit_dist=None) -> Attribution:
    return attribute(windows, MACS, exit_dist, target="t", meter="m", procedure="p")


def _energy(mode: str) -> float:
    return J_PER_MAC * MACS[mode] + INTERCEPT


def test_the_prediction_error_is_predicted_minus_measured_over_measured_with_its_sign():
    depth = [_depth(m) for m in MACS]
    predicted = 0.5 * _energy("depth-1") + 0.5 * _energy("depth-3")
    over = _attribute([*depth, _light(0.8 * predicted)], {1: 0.5, 3: 0.5})  # light cheaper than predicted
    assert over.predicted_light_j == pytest.approx(predicted)
    assert over.measured_light_j == pytest.approx(0.8 * predicted)
    assert over.prediction_error == pytest.approx(0.25)  # (1 - 0.8) / 0.8: the prediction is too high
    under = _attribute([*depth, _light(1.25 * predicted)], {1: 0.5, 3: 0.5})
    assert under.prediction_error == pytest.approx(-0.2)  # the prediction is too low


def test_without_light_windows_or_exits_there_is_nothing_to_compare():
    depth = [_depth(m) for m in MACS]
    att = _attribute(depth, {1: 1.0})
    assert att.measured_light_j is None and att.prediction_error is None
    assert att.predicted_light_j == pytest.approx(_energy("depth-1"))
    att = _attribute([*depth, _light(1e-3)], None)
    assert att.predicted_light_j is None and att.prediction_error is None
    assert att.measured_light_j == pytest.approx(1e-3)


def test_the_per_inference_line_and_the_depth_means_are_exact():
    att = _attribute([_depth(m, n) for m in MACS for n in (10, 20)])
    assert not att.window_fit_identifiable  # durations in step with MACs, no idle windows
    assert att.per_inference_j_per_mac == pytest.approx(J_PER_MAC)
    assert att.intercept_j_per_inference == pytest.approx(INTERCEPT)
    assert att.per_inference_r2 == pytest.approx(1.0)
    assert att.depth_energy_j == pytest.approx({1: _energy("depth-1"), 2: _energy("depth-2"), 3: _energy("depth-3")})


def test_an_exit_of_probability_zero_needs_no_depth_window_and_adds_nothing():
    depth = [_depth("depth-1"), _depth("depth-2")]  # no depth-3 windows
    att = _attribute(depth, {1: 0.25, 2: 0.75, 3: 0.0})
    assert att.predicted_light_j == pytest.approx(0.25 * _energy("depth-1") + 0.75 * _energy("depth-2"))
    with pytest.raises(ValueError, match=r"depths \[3\]"):
        _attribute(depth, {1: 0.25, 2: 0.7, 3: 0.05})


def test_exit_probabilities_must_sum_to_one_within_a_millionth():
    depth = [_depth(m) for m in MACS]
    assert _attribute(depth, {1: 0.5, 2: 0.5 + 5e-7}).predicted_light_j is not None  # rounding in a stored file
    with pytest.raises(ValueError, match="exit probabilities sum to 0.5, not 1"):
        _attribute(depth, {1: 0.25, 2: 0.25})
    with pytest.raises(ValueError, match="sum to 1.00001, not 1"):
        _attribute(depth, {1: 0.5, 2: 0.50001})


def test_exit_distribution_counts_each_layer_and_refuses_no_samples():
    assert exit_distribution([3, 1, 1, 3, 3, 2, 3, 3]) == {1: 0.25, 2: 0.125, 3: 0.625}
    assert list(exit_distribution([3, 1, 2])) == [1, 2, 3]
    assert exit_distribution([2]) == {2: 1.0}
    with pytest.raises(ValueError, match="exit_distribution: no exit layers given"):
        exit_distribution([])


def test_the_window_fit_is_identifiable_from_durations_out_of_step_with_macs_even_without_idle():
    """No idle windows, but depth-3 windows last as long as depth-1's: the two terms separate."""
    windows = [_depth(m, 10, d) for m in MACS for d in (1.0, 2.0)]
    att = _attribute(windows)
    assert att.window_fit_identifiable
    assert att.window_static_power_w == pytest.approx(STATIC_W, rel=1e-3)  # the intercept has no term here
    entry = att.to_json()
    assert entry["static_power_w"] == att.window_static_power_w
    assert entry["window_fit"]["static_power_w"] == entry["static_power_w"]
    assert entry["window_fit"]["joules_per_mac"] == pytest.approx(att.window_j_per_mac)
    assert entry["window_fit"]["identifiable"] is True and entry["window_fit"]["r2"] == att.window_r2


def test_the_window_fit_separates_static_power_from_energy_per_mac_the_right_way_round():
    """Gross = static x duration + J/MAC x MACs with an intercept-free net: static 3 W, 2e-9 J/MAC."""
    windows = [
        ModeWindow(m, n, d, STATIC_W * d + J_PER_MAC * MACS[m] * n, J_PER_MAC * MACS[m] * n)
        for m in MACS
        for n, d in ((10, 1.0), (30, 2.0))
    ]
    att = _attribute([*windows, ModeWindow("idle", 0, 1.5, STATIC_W * 1.5, 0.0)])
    assert att.window_static_power_w == pytest.approx(STATIC_W)
    assert att.window_j_per_mac == pytest.approx(J_PER_MAC)
    assert att.window_r2 == pytest.approx(1.0) and att.n_points == 7


def test_to_json_names_every_field():
    att = Attribution(
        target="t",
        meter="m",
        procedure="p",
        window_j_per_mac=1.0,
        window_static_power_w=2.0,
        window_r2=0.5,
        n_points=7,
        window_fit_identifiable=True,
        per_inference_j_per_mac=3.0,
        intercept_j_per_inference=4.0,
        per_inference_r2=0.25,
        depth_energy_j={2: 6.0, 1: 5.0},
        predicted_light_j=7.0,
        measured_light_j=8.0,
        prediction_error=-0.125,
    )
    assert att.to_json() == {
        "target": "t",
        "meter": "m",
        "procedure": "p",
        "joules_per_mac": 3.0,
        "static_power_w": 2.0,
        "intercept_j_per_inference": 4.0,
        "r2": 0.25,
        "n_points": 7,
        "predicted_light_j": 7.0,
        "measured_light_j": 8.0,
        "prediction_error": -0.125,
        "window_fit": {"joules_per_mac": 1.0, "static_power_w": 2.0, "r2": 0.5, "identifiable": True},
        "depth_energy_j": {"1": 5.0, "2": 6.0},
    }
    assert list(att.to_json()["depth_energy_j"]) == ["1", "2"]
    hidden = Attribution(**{**att.__dict__, "window_fit_identifiable": False}).to_json()
    assert hidden["static_power_w"] is None and hidden["window_fit"]["static_power_w"] is None
    assert hidden["window_fit"]["joules_per_mac"] is None and hidden["window_fit"]["identifiable"] is False
    assert hidden["window_fit"]["r2"] == 0.5


def _row(procedure: str, mode: str, *, target: str = "cpu", meter: str = "rapl", domain: str = "total", e: float = 1.0):
    return {
        "target": target,
        "meter": meter,
        "procedure": procedure,
        "mode": mode,
        "domain": domain,
        "n_inferences": "0" if mode == "idle" else "10.0",
        "duration_s": "2.0",
        "energy_j": str(e),
        "net_energy_j": str(e / 2),
    }


def test_windows_from_rows_keeps_one_procedure_its_domain_and_every_idle_row_of_its_target_and_meter():
    rows = [
        _row("mp", "depth-1", e=1.0),
        _row("op", "depth-1", e=2.0),  # another procedure
        _row("mp", "depth-1", domain="package-0", e=3.0),  # another domain
        _row("mp", "depth-1", target="gpu", e=4.0),  # another target
        _row("mp", "depth-1", meter="nvml", e=5.0),  # another meter
        _row("idle", "idle", e=6.0),  # as the runner writes idle windows
        _row("mp", "idle", e=7.0),  # as older files did
        _row("idle", "idle", domain="package-0", e=8.0),
        _row("idle", "idle", target="gpu", e=9.0),
    ]
    got = windows_from_rows(rows, target="cpu", meter="rapl", procedure="mp")
    assert [(w.mode, w.energy_j) for w in got] == [("depth-1", 1.0), ("idle", 6.0), ("idle", 7.0)]
    assert got[0] == ModeWindow("depth-1", 10, 2.0, 1.0, 0.5)
    assert got[1].n_inferences == 0
    pkg = windows_from_rows(rows, target="cpu", meter="rapl", procedure="mp", domain="package-0")
    assert [(w.mode, w.energy_j) for w in pkg] == [("depth-1", 3.0), ("idle", 8.0)]
    assert [w.energy_j for w in windows_from_rows(rows, target="cpu", meter="rapl", procedure="op")] == [2.0, 6.0, 7.0]


def test_refusals_name_the_fit_and_the_modes():
    with pytest.raises(ValueError, match=r"^attribution for t/m/p: need windows of at least two depth-k modes"):
        _attribute([_depth("depth-2"), _depth("depth-2", 20)])
    with pytest.raises(ValueError, match=r"^attribution: no MACs per inference for modes \['depth-4'\]"):
        _attribute([_depth("depth-1"), _depth("depth-2"), ModeWindow("depth-4", 10, 1.0, 2.0, 1.0)])
    att = _attribute([_depth(m) for m in MACS])
    assert (att.target, att.meter, att.procedure) == ("t", "m", "p")
