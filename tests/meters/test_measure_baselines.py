"""The idle-window matching rule of DESIGN.md section 3 against baselines with structure.

A flat or steadily climbing idle level cannot tell one idle window from another, so these meters
step their idle level up and down at every idle window: each round opens with an idle window, the
last one closes the run, a work window subtracts the idle power of the window opening its round,
and drift compares consecutive idle windows. The idle rows go to windows.csv as the runner writes
them (``measure.window_rows``: procedure and mode ``idle``), and attribution reads them back.
"""

from __future__ import annotations

import threading
import time

import pytest

from ffenergy.analysis.attribution import attribute, windows_from_rows
from ffenergy.analysis.stats import idle_drift, round_drifts
from ffenergy.measure import (
    IDLE,
    TOTAL,
    MethodConfig,
    WindowResult,
    Workload,
    call_with_timeout,
    calls_per_window,
    measure,
    next_idle_index,
    window_rows,
)
from ffenergy.meters.base import Meter, MeterError, MeterInfo, WindowEnergy
from ffenergy.meters.simulated import SimulatedMeter

IDLE_LEVELS_W = [4.0, 9.0, 2.0, 7.0, 3.0, 8.0, 5.0]  # one per idle window: up, down, up, ... never monotone
WORK_EXTRA_W = 1.0  # a work window draws its round's idle level plus this
J_PER_MAC = 1e-9


class StepMeter(Meter):
    """Idle level ``levels[i]`` from the i-th idle window (a window of no MACs) until the next one.

    Work windows report ``work_s`` (cycled) as their duration, so the idle windows' planned length
    (the mean of the work windows so far) differs from the last, the first and the sum of them."""

    info = MeterInfo("step", "simulated", ("dev",), 0.001)

    def __init__(self, levels: list[float], work_s: tuple[float, ...] = (0.02,)):
        self.levels = levels
        self.work_s = work_s
        self.n_idle = self.n_work = 0
        self.level = levels[0]
        self.idle_elapsed: list[float] = []

    def start(self) -> float:
        return time.perf_counter()

    def stop(self, token: float, work_macs: int = 0) -> WindowEnergy:
        elapsed = time.perf_counter() - token
        if work_macs == 0:
            self.level = self.levels[self.n_idle]
            self.n_idle += 1
            self.idle_elapsed.append(elapsed)
            return WindowEnergy({"dev": self.level * elapsed}, elapsed)
        duration = self.work_s[self.n_work % len(self.work_s)]
        self.n_work += 1
        return WindowEnergy({"dev": (self.level + WORK_EXTRA_W) * duration + J_PER_MAC * work_macs}, duration)


def _workload(macs: int) -> Workload:
    return Workload(lambda: (10, macs))


METHOD = MethodConfig(repeats=5, min_window_s=0.01, warmup_s=0.0, seed=7)


def test_each_work_window_subtracts_the_idle_window_opening_its_round():
    meter = StepMeter(IDLE_LEVELS_W)
    out = measure(meter, {("p", "depth-1"): _workload(1000), ("p", "depth-2"): _workload(3000)}, METHOD)
    idle = [w for w in out if w.kind == "idle"]
    assert [w.repeat for w in idle] == list(range(6))  # one opening each of 5 rounds, one closing the run
    assert out[0].kind == "idle" and out[-1].kind == "idle"
    assert [w.idle_power_w[TOTAL] for w in idle] == pytest.approx(IDLE_LEVELS_W[:6])
    opening = None
    for w in out:
        if w.kind == "idle":
            opening = w
            continue
        assert opening is not None and w.repeat == opening.repeat  # round r opens with idle window r
        assert w.idle_power_w == pytest.approx(opening.idle_power_w)
        assert w.idle_power_w["dev"] == pytest.approx(IDLE_LEVELS_W[w.repeat])
        # net = what the work added above its round's baseline, never above another round's
        assert w.net_joules["dev"] == pytest.approx(WORK_EXTRA_W * w.duration_s + J_PER_MAC * w.macs)
    # the closing window's level reaches no work window
    assert all(w.idle_power_w["dev"] != IDLE_LEVELS_W[5] for w in out if w.kind == "work")


def test_idle_windows_net_to_zero_and_their_power_is_their_own():
    meter = StepMeter(IDLE_LEVELS_W)
    out = measure(meter, {"a": _workload(1000)}, METHOD)
    for w in (w for w in out if w.kind == "idle"):
        assert w.key is None and w.n_inferences == 0 and w.macs == 0
        assert w.idle_power_w["dev"] == pytest.approx(w.joules["dev"] / w.duration_s)
        assert w.net_joules == pytest.approx({"dev": 0.0, TOTAL: 0.0}, abs=1e-12)


def test_drift_compares_consecutive_idle_windows_with_its_sign():
    meter = StepMeter(IDLE_LEVELS_W)
    out = measure(meter, {"a": _workload(1000)}, METHOD)
    powers = [w.idle_power_w[TOTAL] for w in out if w.kind == "idle"]
    expected = [(b - a) / a for a, b in zip(IDLE_LEVELS_W[:6], IDLE_LEVELS_W[1:6])]
    assert round_drifts(powers) == pytest.approx(expected)
    assert [d > 0 for d in expected] == [True, False, True, False, True]  # the steps go both ways
    drift = idle_drift(list(enumerate(powers)), limit=0.6)
    assert drift.max_abs == pytest.approx(max(abs(d) for d in expected))
    # 4->9 (+125%), 9->2 (-78%), 2->7 (+250%), 7->3 (-57%, under the limit), 3->8 (+167%)
    assert drift.moved == ("idle 0->1: +125.0%", "idle 1->2: -77.8%", "idle 2->3: +250.0%", "idle 4->5: +166.7%")


def test_idle_windows_last_the_mean_work_window_so_far():
    """Work windows of 0.05 s and 0.25 s: the idle windows after them sleep their mean (0.15 s), not the
    last (0.25 s), the first (0.05 s) or their sum; the first idle window sleeps the planned window."""
    meter = StepMeter(IDLE_LEVELS_W, work_s=(0.05, 0.25))
    method = MethodConfig(repeats=5, min_window_s=0.02, warmup_s=0.0, seed=1)
    measure(meter, {"a": _workload(1000), "b": _workload(2000)}, method)
    first, *rest = meter.idle_elapsed
    assert 0.02 <= first < 0.045
    assert len(rest) == 5
    for elapsed in rest:  # every round has one 0.05 s and one 0.25 s window: the mean is 0.15 s
        assert 0.15 <= elapsed < 0.2


def test_a_resumed_run_opens_its_rounds_and_numbers_idle_windows_on_from_the_rows_on_disk():
    meter = StepMeter(IDLE_LEVELS_W)
    first = measure(meter, {("p", "full"): _workload(1000)}, METHOD, done={(("p", "full"), r) for r in (3, 4)})
    rows = [row for w in first for row in window_rows(w, "cpu", "step")]
    start = next_idle_index(rows, "cpu", "step")
    assert start == 4  # rounds 0, 1, 2 and the closing window; one TOTAL row each, the "dev" rows not counted
    assert next_idle_index(rows, "cpu", "other") == 0 and next_idle_index(rows, "gpu", "step") == 0
    second = measure(
        StepMeter(IDLE_LEVELS_W[4:] + [1.0, 1.0]),
        {("p", "full"): _workload(1000)},
        METHOD,
        done={(("p", "full"), r) for r in range(3)},
        first_idle_index=start,
    )
    assert [w.repeat for w in second if w.kind == "idle"] == [4, 5, 6]
    work = [w for w in second if w.kind == "work"]
    assert [w.repeat for w in work] == [3, 4]
    assert [w.idle_power_w["dev"] for w in work] == pytest.approx(IDLE_LEVELS_W[4:6])


def test_runner_shaped_idle_rows_pin_the_static_power_of_every_procedure():
    """Idle rows as the runner writes them (procedure ``idle``), from a stepped baseline, serve both procedures;
    rows of another target or meter do not."""
    meter = StepMeter(IDLE_LEVELS_W)
    macs = {"depth-1": 1000, "depth-2": 3000}
    workloads = {(proc, mode): _workload(m) for proc in ("mp", "op") for mode, m in macs.items()}
    out = measure(meter, workloads, METHOD)
    rows = [row for w in out for row in window_rows(w, "cpu", "step")]
    idle_rows = [r for r in rows if r["mode"] == IDLE]
    assert idle_rows and all(r["procedure"] == IDLE and r["n_inferences"] == 0 for r in idle_rows)
    stray = [{**r, "target": "gpu"} for r in idle_rows] + [{**r, "meter": "other"} for r in idle_rows]
    text = [{k: str(v) for k, v in r.items()} for r in rows + stray]
    for proc in ("mp", "op"):
        ws = windows_from_rows(text, target="cpu", meter="step", procedure=proc)
        assert sum(w.mode == IDLE for w in ws) == 6 and len(ws) == 6 + 10
        other = "op" if proc == "mp" else "mp"
        assert len(ws) == len(windows_from_rows(text, target="cpu", meter="step", procedure=other))
        att = attribute(ws, {m: v / 10 for m, v in macs.items()}, None, target="cpu", meter="step", procedure=proc)
        assert att.n_points == 16 and att.window_fit_identifiable
        # net energy per inference is exact: the work's extra draw plus J/MAC, whatever the round's baseline
        for k in (1, 2):
            work = [w for w in out if w.key == (proc, f"depth-{k}")]
            net = [(WORK_EXTRA_W * w.duration_s + J_PER_MAC * w.macs) / w.n_inferences for w in work]
            assert att.depth_energy_j[k] == pytest.approx(sum(net) / len(net))


def test_a_windows_csv_row_per_domain_with_zero_idle_power_for_a_domain_the_baseline_lacks():
    w = WindowResult(("p", "light"), 3, "work", 100, 5000, 2.0, {"a": 10.0, TOTAL: 12.0}, {TOTAL: 4.0})
    assert window_rows(w, "cpu", "m") == [
        {
            "target": "cpu",
            "meter": "m",
            "procedure": "p",
            "mode": "light",
            "domain": "a",
            "repeat": 3,
            "n_inferences": 100,
            "duration_s": 2.0,
            "energy_j": 10.0,
            "idle_power_w": 0.0,
            "net_energy_j": 10.0,
        },
        {
            "target": "cpu",
            "meter": "m",
            "procedure": "p",
            "mode": "light",
            "domain": TOTAL,
            "repeat": 3,
            "n_inferences": 100,
            "duration_s": 2.0,
            "energy_j": 12.0,
            "idle_power_w": 4.0,
            "net_energy_j": 4.0,
        },
    ]
    idle = WindowResult(None, 7, "idle", 0, 0, 2.0, {TOTAL: 6.0}, {TOTAL: 3.0})
    assert [(r["procedure"], r["mode"], r["repeat"], r["net_energy_j"]) for r in window_rows(idle, "cpu", "m")] == [
        (IDLE, IDLE, 7, 0.0)
    ]


class TotalMeter(StepMeter):
    """A meter that names one of its domains ``total``, the name the method keeps for the sum."""

    def stop(self, token: float, work_macs: int = 0) -> WindowEnergy:
        return WindowEnergy({TOTAL: 1.0}, 0.01)


def test_a_meter_domain_named_total_is_refused():
    with pytest.raises(
        MeterError, match=r"^meter reported a domain named 'total', which the method reserves for the sum$"
    ):
        measure(TotalMeter(IDLE_LEVELS_W), {"a": _workload(1)}, METHOD)


@pytest.mark.parametrize("result", [(0, 5), (3, -1)])
def test_a_workload_must_return_inferences_and_non_negative_macs(result):
    with pytest.raises(ValueError) as err:
        measure(StepMeter(IDLE_LEVELS_W), {"w": Workload(lambda: result)}, METHOD)
    assert str(err.value) == (
        f"workload 'w': run_once returned n_inferences={result[0]}, macs={result[1]}; need n_inferences > 0 and macs >= 0"
    )


def test_no_workloads_is_an_error_and_zero_macs_a_workload():
    with pytest.raises(ValueError, match="^measure: no workloads given$"):
        measure(StepMeter(IDLE_LEVELS_W), {}, METHOD)
    out = measure(SimulatedMeter(update_period_s=0.001), {"w": Workload(lambda: (1, 0))}, METHOD)
    assert all(w.macs == 0 for w in out) and sum(w.kind == "work" for w in out) == 5


def test_without_idle_windows_net_is_gross():
    meter = StepMeter(IDLE_LEVELS_W)
    out = measure(meter, {"a": _workload(1000)}, MethodConfig(repeats=5, min_window_s=0.01, warmup_s=0.0, idle=False))
    assert [w.kind for w in out] == ["work"] * 5 and meter.n_idle == 0
    for w in out:
        assert w.idle_power_w == {} and w.net_joules == w.joules


def test_call_with_timeout_returns_the_value_and_raises_the_callers_error():
    assert call_with_timeout(lambda: 42, 1.0, "x") == 42

    def boom() -> int:
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        call_with_timeout(boom, 1.0, "x")
    with pytest.raises(MeterError, match=r"^meter.stop\(\) did not return within 0.05 s: the meter hangs"):
        call_with_timeout(lambda: time.sleep(0.5), 0.05, "meter.stop()")


def test_calibration_fills_the_window_with_calls_of_known_length():
    """Calls of about 2 ms fill a 60 ms window with about 30 of them (warm-up and calibration included)."""

    def run_once() -> tuple[int, int]:
        time.sleep(0.002)
        return 1, 1

    method = MethodConfig(min_window_s=0.06, warmup_s=0.01, calibration_fraction=0.5)
    n = calls_per_window(Workload(run_once), "k", 0.06, method)
    assert 15 <= n <= 30  # ceil(0.06 / per call), per call a little over 2 ms on a busy machine
    assert calls_per_window(Workload(lambda: (1, 1)), "k", 0.06, method) > 1000  # instant calls: many


class StopHangs(StepMeter):
    info = MeterInfo("hangs", "simulated", ("dev",), 0.001)

    def stop(self, token: float, work_macs: int = 0) -> WindowEnergy:
        time.sleep(5)
        return super().stop(token, work_macs)


def test_a_meter_whose_stop_hangs_is_named_with_its_call():
    method = MethodConfig(min_window_s=0.01, warmup_s=0.0, meter_timeout_s=0.1)
    with pytest.raises(MeterError, match=r"^hangs.stop\(\) did not return within 0.1 s"):
        measure(StopHangs(IDLE_LEVELS_W), {"a": _workload(1)}, method)


def test_work_windows_count_whole_calls_and_warm_up_first():
    calls: list[float] = []

    def run_once() -> tuple[int, int]:
        calls.append(time.perf_counter())
        time.sleep(0.001)
        return 10, 1000

    t0 = time.perf_counter()
    out = measure(StepMeter(IDLE_LEVELS_W), {"a": Workload(run_once)}, MethodConfig(min_window_s=0.02, warmup_s=0.05))
    warm = [t for t in calls if t - t0 < 0.045]
    assert len(warm) >= 10  # about 0.05 s of 1 ms calls before calibrating
    for w in (w for w in out if w.kind == "work"):
        assert w.n_inferences > 0 and w.n_inferences % 10 == 0 and w.macs == 100 * w.n_inferences


def test_the_order_of_modes_is_seeded_and_the_bar_is_off_unless_asked(capsys):
    keys = {k: _workload(100) for k in "abcdef"}
    first = [w.key for w in measure(StepMeter(IDLE_LEVELS_W), keys, METHOD) if w.kind == "work"]
    again = [w.key for w in measure(StepMeter(IDLE_LEVELS_W), keys, METHOD) if w.kind == "work"]
    assert first == again and first[:6] != list("abcdef")  # same seed, same shuffled order
    assert capsys.readouterr().err == ""
    measure(
        StepMeter(IDLE_LEVELS_W),
        {"a": _workload(1)},
        MethodConfig(min_window_s=0.01, warmup_s=0.0, idle=False),
        progress=True,
    )
    err = capsys.readouterr().err
    assert "5/5" in err and "window" in err  # no idle windows counted when there are none


class StartHangs(StepMeter):
    info = MeterInfo("stuck", "simulated", ("dev",), 0.001)

    def start(self) -> float:
        time.sleep(5)
        return super().start()


def test_a_hung_start_is_named_and_its_thread_does_not_hold_the_process():
    method = MethodConfig(min_window_s=0.01, warmup_s=0.0, meter_timeout_s=0.1)
    with pytest.raises(MeterError, match=r"^stuck.start\(\) did not return within 0.1 s"):
        measure(StartHangs(IDLE_LEVELS_W), {"a": _workload(1)}, method)
    left = [t for t in threading.enumerate() if t.name == "ffenergy-stuck.start()"]
    assert left and all(t.daemon for t in left)
