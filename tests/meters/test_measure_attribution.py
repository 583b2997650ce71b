"""The measurement method and attribution recover a simulated meter's ground truth."""

from __future__ import annotations

import time

import pytest

from ffenergy.analysis.attribution import ModeWindow, attribute, exit_distribution, windows_from_rows
from ffenergy.analysis.stats import mean_ci95, round_drifts, summarise, summarise_rows
from ffenergy.contract import FIT_KEYS
from ffenergy.measure import MethodConfig, Workload, measure
from ffenergy.meters.base import Meter, MeterError, MeterInfo, WindowEnergy
from ffenergy.meters.simulated import SimulatedMeter

J_PER_MAC = 20e-12
STATIC_W = 10.0
MACS = {k: k * 1_500_000 for k in range(1, 5)}  # MACs per inference at depth k
EXITS = {1: 50, 2: 30, 3: 15, 4: 5}  # light mode: samples leaving at each depth, per batch of 100
FAST = MethodConfig(repeats=5, min_window_s=0.05, warmup_s=0.01, seed=3)


def depth_workload(k: int) -> Workload:
    def run_once() -> tuple[int, int]:
        time.sleep(0.0002 + 0.0001 * k)
        return 100, 100 * MACS[k]

    return Workload(run_once)


def light_workload() -> Workload:
    macs = sum(n * MACS[k] for k, n in EXITS.items())

    def run_once() -> tuple[int, int]:
        time.sleep(0.0002 + 0.0001 * 1.75)
        return 100, macs

    return Workload(run_once)


@pytest.fixture(scope="module")
def windows():
    meter = SimulatedMeter(J_PER_MAC, STATIC_W, noise=0.01, update_period_s=0.001, quantum_j=15.3e-6, seed=1)
    workloads = {("mp", f"depth-{k}"): depth_workload(k) for k in MACS}
    workloads[("mp", "light")] = light_workload()
    seen = []
    out = measure(meter, workloads, FAST, on_window=seen.append)
    assert seen == out
    return out


def test_windows_are_long_enough_repeated_and_bracketed_by_idle(windows):
    work = [w for w in windows if w.kind == "work"]
    idle = [w for w in windows if w.kind == "idle"]
    assert len(work) == 5 * 5 and len(idle) == 5 + 1
    assert windows[0].kind == "idle" and windows[-1].kind == "idle"
    assert all(w.duration_s >= 0.05 for w in windows)
    assert {(w.key, w.repeat) for w in work} == {(k, r) for k in {w.key for w in work} for r in range(5)}
    orders = [[w.key for w in work if w.repeat == r] for r in range(5)]
    assert len({tuple(o) for o in orders}) > 1, "order of modes must be randomised per round"
    for w in idle:
        assert w.idle_power_w["total"] == pytest.approx(STATIC_W, rel=0.05)
        assert w.net_joules["total"] == pytest.approx(0.0, abs=1e-12)
    # a steady meter: round-to-round changes are noise (1% per window, ±1 ms ticks in 50 ms windows)
    assert max(abs(d) for d in round_drifts([w.idle_power_w["total"] for w in idle])) < 0.1


def test_net_energy_subtracts_idle_power_of_the_round(windows):
    w = next(w for w in windows if w.kind == "work")
    row = {r["domain"]: r for r in w.domain_rows()}
    assert set(row) == {"simulated", "total"}
    expected = w.joules["total"] - w.idle_power_w["total"] * w.duration_s
    assert row["total"]["net_energy_j"] == pytest.approx(expected)
    assert w.net_joules["total"] == pytest.approx(J_PER_MAC * w.macs, rel=0.06)


def test_simulated_ground_truth_is_recovered_within_5_percent(windows):
    rows = []
    for w in windows:
        mode = w.key[1] if w.key else "idle"
        rows += [{"target": "sim", "meter": "simulated", "procedure": "mp", "mode": mode, **r} for r in w.domain_rows()]
    rows = [{k: str(v) for k, v in r.items()} for r in rows]  # as read back from windows.csv
    mode_windows = windows_from_rows(rows, target="sim", meter="simulated", procedure="mp")
    p = exit_distribution([k for k, n in EXITS.items() for _ in range(n)])
    att = attribute(
        mode_windows, {f"depth-{k}": m for k, m in MACS.items()}, p, target="sim", meter="simulated", procedure="mp"
    )
    assert att.window_j_per_mac == pytest.approx(J_PER_MAC, rel=0.05)
    assert att.window_static_power_w == pytest.approx(STATIC_W, rel=0.05)
    assert att.window_r2 > 0.99 and att.n_points == 20 + 6  # depth-k and idle windows
    assert att.per_inference_j_per_mac == pytest.approx(J_PER_MAC, rel=0.05)
    assert abs(att.prediction_error) < 0.05
    assert att.measured_light_j == pytest.approx(J_PER_MAC * sum(p[k] * MACS[k] for k in p), rel=0.05)
    entry = att.to_json()
    assert set(FIT_KEYS) <= set(entry)  # everything the reader of attribution.json expects


def test_summaries_give_ci_from_objects_and_from_csv_rows(windows):
    s = summarise(windows)
    light = s[("mp", "light")]
    assert light.n_repeats == 5
    assert 0 < light.net_ci95_j < 0.05 * light.net_j_per_inference
    assert light.gross_j_per_inference > light.net_j_per_inference
    assert light.macs_per_inference == sum(n * MACS[k] for k, n in EXITS.items()) / 100
    rows = [
        {"target": "t", "meter": "m", "procedure": k[0], "mode": k[1], **{a: str(b) for a, b in r.items()}}
        for w in windows
        if w.key
        for k in [w.key]
        for r in w.domain_rows()
    ]
    s2 = summarise_rows(rows)
    assert s2[("t", "m", "mp", "light")].net_j_per_inference == pytest.approx(light.net_j_per_inference)


def test_mean_ci95_uses_student_t():
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert half == pytest.approx(2.776445 * 1.5811388 / 5**0.5, rel=1e-5)


def test_resume_skips_done_pairs():
    meter = SimulatedMeter(J_PER_MAC, STATIC_W, update_period_s=0.001)
    workloads = {"a": depth_workload(1), "b": depth_workload(2)}
    done = {("a", r) for r in range(5)} | {("b", 0), ("b", 1)}
    out = measure(meter, workloads, FAST, done=done)
    assert sorted((w.key, w.repeat) for w in out if w.kind == "work") == [("b", 2), ("b", 3), ("b", 4)]
    assert sum(w.kind == "idle" for w in out) == 4
    all_done = {(k, r) for k in workloads for r in range(5)}
    assert measure(meter, workloads, FAST, done=all_done) == []


class HangingMeter(Meter):
    info = MeterInfo("hang", "measured", ("x",), 0.001)

    def start(self):
        time.sleep(30)

    def stop(self, token, work_macs=0) -> WindowEnergy:
        return WindowEnergy({"x": 0.0}, 0.0)


def test_hanging_meter_times_out():
    method = MethodConfig(min_window_s=0.01, warmup_s=0.0, meter_timeout_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(MeterError, match="did not return within"):
        measure(HangingMeter(), {"a": depth_workload(1)}, method)
    assert time.monotonic() - t0 < 3


def test_bad_config_and_bad_workloads_are_named():
    with pytest.raises(ValueError, match=r"measurement.repeats: invalid value; use an integer >= 5"):
        MethodConfig(repeats=3)
    meter = SimulatedMeter(update_period_s=0.001)
    with pytest.raises(TypeError, match="must return \\(n_inferences, macs\\)"):
        measure(meter, {"a": Workload(lambda: 5)}, FAST)  # type: ignore[arg-type, return-value]


def test_attribution_refuses_single_depth_and_unmeasured_exits():
    ws = [ModeWindow("depth-1", 10, 1.0, 1.0, 0.5), ModeWindow("depth-1", 10, 1.0, 1.0, 0.5)]
    with pytest.raises(ValueError, match="at least two depth-k modes"):
        attribute(ws, {"depth-1": 1.0}, None, target="t", meter="m", procedure="p")
    ws.append(ModeWindow("depth-2", 10, 1.0, 2.0, 1.5))
    with pytest.raises(ValueError, match="depths \\[3\\]"):
        attribute(ws, {"depth-1": 1.0, "depth-2": 2.0}, {1: 0.5, 3: 0.5}, target="t", meter="m", procedure="p")


class RecordingMeter(SimulatedMeter):
    def __init__(self, events):
        super().__init__(update_period_s=0.001)
        self.events = events

    def start(self):
        self.events.append("start")
        return super().start()

    def stop(self, token, work_macs=0):
        self.events.append("stop")
        return super().stop(token, work_macs)


def test_device_is_synced_at_both_window_edges():
    events: list[str] = []

    def run_once():
        events.append("run")
        time.sleep(0.001)
        return 1, 10

    measure(
        RecordingMeter(events),
        {"a": Workload(run_once, sync=lambda: events.append("sync"))},
        MethodConfig(min_window_s=0.01, warmup_s=0.0, idle=False),
    )
    first = events.index("start")
    work = events[first - 1 :]
    assert work[0] == "sync" and work[1] == "start"
    stop = work.index("stop")
    assert work[stop - 1] == "sync" and work[stop - 2] == "run"
    assert events.count("start") == events.count("stop") == 5


def test_idle_windows_pin_static_power_on_a_saturated_device():
    """Every work window: same power, same length, same MAC rate; only idle windows separate the terms."""
    p_idle, j, rate = 130.0, 2e-11, 2.5e13  # W, J/MAC, MAC/s
    macs = {f"depth-{k}": k * 4e6 for k in range(1, 5)}
    ws = []
    for mode, m in macs.items():
        for t in (2.0, 2.1, 1.95):
            n = int(rate * t / m)
            gross = (p_idle + j * rate) * t
            ws.append(ModeWindow(mode, n, t, gross, gross - p_idle * t))
    ws += [ModeWindow("idle", 0, t, p_idle * t, 0.0) for t in (2.0, 2.0, 2.05)]
    att = attribute(ws, macs, None, target="t", meter="m", procedure="p")
    assert att.window_static_power_w == pytest.approx(p_idle, rel=1e-3)
    assert att.window_j_per_mac == pytest.approx(j, rel=1e-3)


def test_window_fit_is_reported_unidentifiable_when_duration_tracks_macs_and_there_is_no_idle():
    """A microcontroller window lasts in proportion to its MACs: static power and J/MAC cannot be
    told apart from such windows alone, so only the per-inference line is reported."""
    macs = {"depth-1": 1e6, "depth-2": 1.5e6, "depth-3": 2e6}
    windows = [
        ModeWindow(mode, 10, 10 * m * 1e-7, 10 * (m * 2e-9 + 0.01 * m * 1e-7), 10 * (m * 2e-9 + 0.004 * m * 1e-7))
        for mode, m in macs.items()
    ]
    entry = attribute(windows, macs, None, target="mcu-sim", meter="ina226", procedure="mp").to_json()
    assert entry["window_fit"]["identifiable"] is False and entry["static_power_w"] is None
    assert entry["joules_per_mac"] == pytest.approx(2e-9 + 0.004 * 1e-7, rel=1e-6)  # net J/MAC
    assert entry["intercept_j_per_inference"] == pytest.approx(0.0, abs=1e-12)


def test_a_drifting_baseline_is_subtracted_round_by_round_and_reported():
    """Static power climbs 10 W -> ~16 W over the run: each round's own idle window must be subtracted
    (round 1's for all would leave ~+6 W x window in the last rounds), and the drift is measured. A work
    window keeps at most its round's climb, as its next idle window measures it: a loaded machine stretches
    the rounds, so no fixed tolerance holds."""
    meter = SimulatedMeter(J_PER_MAC, STATIC_W, update_period_s=0.0005, quantum_j=0.0, static_drift_w_per_s=8.0)
    workloads = {("mp", f"depth-{k}"): depth_workload(k) for k in (1, 4)}
    out = measure(meter, workloads, FAST)
    idle = [w.idle_power_w["total"] for w in out if w.kind == "idle"]
    rounds = [-1]  # each window's round: the idle windows before it, less one
    for w in out:
        rounds.append(rounds[-1] + (w.kind == "idle"))
    for w, r in zip(out, rounds[1:], strict=True):
        if w.kind == "work":  # the baseline climbed since its round's idle window, by at most the round's climb
            excess = w.net_joules["total"] - J_PER_MAC * w.macs
            climb = (idle[r + 1] - idle[r]) * w.duration_s
            assert -0.02 * J_PER_MAC * w.macs < excess < 1.05 * climb
    drifts = round_drifts(idle)
    assert len(drifts) == 5 and all(d > 0.02 for d in drifts)  # every round saw the baseline climb
    assert idle[-1] > idle[0] * 1.2


def test_idle_windows_last_as_long_as_the_work_windows_before_them():
    meter = SimulatedMeter(J_PER_MAC, STATIC_W, update_period_s=0.001)
    out = measure(meter, {"a": depth_workload(1), "b": depth_workload(4)}, FAST)
    work_s: list[float] = []
    for w in out:
        if w.kind == "idle" and work_s:
            assert w.duration_s == pytest.approx(sum(work_s) / len(work_s), rel=0.25)
        elif w.kind == "work":
            work_s.append(w.duration_s)


def test_resumed_idle_windows_number_on():
    meter = SimulatedMeter(J_PER_MAC, STATIC_W, update_period_s=0.001)
    done = {("a", r) for r in range(3)}
    out = measure(meter, {"a": depth_workload(1)}, FAST, done=done, first_idle_index=4)
    assert [w.repeat for w in out if w.kind == "idle"] == [4, 5, 6]


def test_measurement_shows_windows_done_and_total(capsys):
    meter = SimulatedMeter(J_PER_MAC, STATIC_W, update_period_s=0.001)
    out = measure(meter, {"a": depth_workload(1), "b": depth_workload(2)}, FAST, progress=True)
    err = capsys.readouterr().err
    assert f"{len(out)}/{len(out)}" in err and "measuring" in err  # 10 work + 6 idle windows, counted
    assert len(out) == 16
