"""The public measurement API measures any callable with the method of ``ffenergy run``."""

from __future__ import annotations

import json
import logging
import sys
import time
import types

import pytest

from ffenergy.analysis.load import load_frames
from ffenergy.analysis.stats import mean_ci95
from ffenergy.config import MeasurementConfig
from ffenergy.contract import WINDOWS_COLUMNS, read_rows
from ffenergy.measure import MethodConfig
from ffenergy.meters.simulated import SimulatedMeter
from ffenergy.profiler import Profiler, profile

J_PER_MAC = 1e-9
STATIC_W = 0.5
FAST = MethodConfig(repeats=5, min_window_s=0.1, warmup_s=0.01, seed=7)


def sim(**overrides: float) -> SimulatedMeter:
    """A steady counter, fine-grained enough that 0.1 s windows resolve the work."""
    return SimulatedMeter(
        **{
            "joules_per_mac": J_PER_MAC,
            "static_power_w": STATIC_W,
            "update_period_s": 1e-4,
            "quantum_j": 1e-6,
            **overrides,
        }
    )


def batch() -> None:
    time.sleep(0.001)


def test_it_recovers_the_simulated_ground_truth_within_one_percent():
    # one call = 10 inferences of 100,000 MACs each: 100 µJ per inference net of the static 0.5 W
    result = profile(batch, "known", inferences=10, macs=1_000_000, meter=sim(), method=FAST)
    truth = 100_000 * J_PER_MAC
    assert result.net_j_per_inference == pytest.approx(truth, rel=0.01)
    assert result.net_ci95_j < 0.01 * truth
    per_inference_s = result.mean_window_s / result.inferences_per_window
    assert result.gross_j_per_inference == pytest.approx(truth + STATIC_W * per_inference_s, rel=0.02)
    assert result.idle_power_w == pytest.approx(STATIC_W, rel=0.01)
    assert (result.name, result.mode, result.target, result.meter, result.provenance) == (
        "known",
        "full",
        "cpu",
        "simulated",
        "simulated",
    )
    assert result.macs_per_inference == 100_000 and result.n_repeats == 5
    assert result.record["meter"]["details"]["ground_truth"]["joules_per_mac"] == J_PER_MAC
    assert result.record["versions"]["ffenergy"] and result.record["host"]["cores"]
    assert result.record["sync"] == "none"


def test_windows_follow_the_method_long_repeated_and_bracketed_by_matched_idle():
    slow = sim(update_period_s=0.01)  # 20 update periods = 0.2 s > min_window_s
    result = profile(batch, inferences=4, meter=slow, method=FAST)
    work = [w for w in result.windows if w.kind == "work"]
    idle = [w for w in result.windows if w.kind == "idle"]
    assert result.window_s == 0.2 and len(work) == 5 and len(idle) == 6
    assert all(w.duration_s >= 0.2 for w in work)
    assert sorted(w.repeat for w in work) == list(range(5))
    done: list[float] = []  # an idle window lasts as long as the mean work window measured before it
    for w in result.windows:
        if w.kind == "work":
            done.append(w.duration_s)
        elif done:
            assert w.duration_s == pytest.approx(sum(done) / len(done), rel=0.15)
    gross, ci = mean_ci95([w.joules["total"] / w.n_inferences for w in work])
    assert (result.gross_j_per_inference, result.gross_ci95_j) == pytest.approx((gross, ci))


def test_compare_interleaves_callables_in_random_order_and_tells_their_costs_apart(tmp_path):
    with Profiler(meter=sim(), method=FAST, out=tmp_path) as session:
        found = session.compare(
            {"cheap": batch, "dear": batch}, inferences=10, macs={"cheap": 1_000_000, "dear": 3_000_000}
        )
    assert found["dear"].net_j_per_inference / found["cheap"].net_j_per_inference == pytest.approx(3.0, rel=0.02)
    assert found["cheap"].net_j_per_inference == pytest.approx(100_000 * J_PER_MAC, rel=0.01)
    rows = [r for r in read_rows(tmp_path / "windows.csv") if r["domain"] == "total"]  # in the order measured
    rounds = [[r["procedure"] for r in rows if r["repeat"] == str(k) and r["procedure"] != "idle"] for k in range(5)]
    assert all(sorted(names) == ["cheap", "dear"] for names in rounds)
    assert len({tuple(names) for names in rounds}) == 2, "the order must be shuffled per round"
    assert [r["procedure"] for r in rows][::3] == ["idle"] * 6  # an idle window opens every round and closes the run


def test_sync_runs_at_both_edges_of_every_window_and_cuda_is_detected(monkeypatch):
    calls: list[float] = []
    result = profile(batch, inferences=1, meter=sim(), method=FAST, sync=lambda: calls.append(time.perf_counter()))
    assert result.record["sync"] == "custom" and result.target == "cpu"
    assert len(calls) >= 2 * 5 + 2  # calibration, and before opening and after the work of every window

    synced: list[int] = []
    cuda = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True, synchronize=lambda: synced.append(1)
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda, __version__="fake"))
    monkeypatch.setattr("ffenergy.experiment.manifest.host_info", lambda: {"cores": 1})
    result = profile(batch, inferences=1, meter=sim(), method=FAST)
    assert result.record["sync"] == "cuda" and result.target == "cuda" and len(synced) >= 12


def test_idle_drift_is_checked_and_named(caplog):
    drifting = sim(static_drift_w_per_s=2.0)  # idle power climbs 2 W per second from 0.5 W
    with caplog.at_level(logging.WARNING, "ffenergy.profiler"):
        result = profile(batch, inferences=10, macs=1_000_000, meter=drifting, method=FAST)
    assert not result.drift_ok and result.idle_drift_max > 0.05
    assert "idle power drifted by more than 5%" in caplog.text and "idle 0->1" in caplog.text
    steady = profile(batch, inferences=10, macs=1_000_000, meter=sim(), method=FAST, max_idle_drift=0.05)
    assert steady.drift_ok and steady.idle_drift_max < 0.05


def test_results_append_to_the_contract_files_and_a_name_is_never_measured_twice(tmp_path):
    out = tmp_path / "my-model"
    for name in ("first", "second"):  # two sessions into one directory, the meter by its registered name
        options = {"update_period_s": 1e-4}
        profile(
            batch, name, inferences=10, macs=1_000_000, meter="simulated", meter_options=options, method=FAST, out=out
        )
    rows = read_rows(out / "windows.csv")
    assert list(rows[0]) == WINDOWS_COLUMNS
    total = [r for r in rows if r["domain"] == "total"]
    assert {(r["procedure"], r["mode"]) for r in total} == {("idle", "idle"), ("first", "full"), ("second", "full")}
    keys = [(r["procedure"], r["repeat"]) for r in total]
    assert len(keys) == len(set(keys)) == 2 * (5 + 6)  # idle windows numbered on: every key unique
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"] for m in manifest["meters"]] == ["simulated"]
    assert [s["names"] for s in manifest["profiles"]] == [["first"], ["second"]]
    windows = load_frames(out).windows  # the public loader reads a profiled directory like a run's
    assert set(windows["procedure"]) == {"idle", "first", "second"} and len(windows) == len(rows)
    with pytest.raises(ValueError, match="first/full already measured on cpu/simulated"):
        profile(batch, "first", meter="simulated", method=FAST, out=out)


def test_the_default_method_is_the_one_ffenergy_run_uses():
    assert Profiler(meter="simulated").method == MeasurementConfig().method()
    assert MeasurementConfig(repeats=7, min_window_s=3.0, warmup_s=0.2, seed=4).method() == MethodConfig(
        repeats=7, min_window_s=3.0, warmup_s=0.2, seed=4
    )
