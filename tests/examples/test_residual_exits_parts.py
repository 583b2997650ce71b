"""The example plug-ins on their own: the residual multi-exit learner passes the checks every learner
must pass, and the CSV meter integrates a bench's power log exactly."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from ffenergy_residual_exits.csv_meter import CsvLogMeter, energy_between
from ffenergy_residual_exits.network import ResidualExits

from ffenergy.meters.base import MeterError, MeterUnavailable
from tests.learners import kit


def test_light_inference_equals_masking_and_macs_are_what_runs():
    learner, x, y = kit.trained(ResidualExits, {}, epochs=3)
    d, c = kit.DIMS, 4
    assert learner.layer_macs().tolist() == [a * b + b * b + b * c for a, b in zip(d[:-1], d[1:])]
    kit.check_light_inference_equals_masking(learner, x, y)
    kit.check_macs_are_exactly_what_inference_runs(learner, x, y)


def test_energy_between_integrates_power_with_interpolated_edges():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    p = np.array([2.0, 2.0, 4.0, 4.0])
    assert energy_between(t, p, 0.0, 1.0) == pytest.approx(2.0)
    assert energy_between(t, p, 1.0, 2.0) == pytest.approx(3.0)  # the ramp's mean
    assert energy_between(t, p, 0.5, 2.5) == pytest.approx(1.0 + 3.0 + 2.0)


def _log(path: Path, t0: float, t1: float, power_w: float, rate_hz: float = 100.0, torn: str = "") -> None:
    times = np.arange(t0, t1, 1 / rate_hz)
    path.write_text("t_s,volts,power_w\n" + "".join(f"{t:.6f},5.0,{power_w}\n" for t in times) + torn)


def test_a_window_is_the_power_in_the_log_over_it(tmp_path):
    log = tmp_path / "bench.csv"
    now = time.time()
    _log(log, now - 1.0, now + 2.0, 3.0, torn="1234.5,5.")  # a row the bench is still writing
    meter = CsvLogMeter(str(log))
    token = meter.start()
    time.sleep(0.05)
    energy = meter.stop(token)
    assert energy.joules["bench"] == pytest.approx(3.0 * energy.duration_s, rel=1e-6)
    assert meter.info.provenance == "measured" and meter.info.domains == ("bench",)


def test_a_log_that_stops_or_lacks_a_column_is_an_error_naming_it(tmp_path):
    with pytest.raises(MeterUnavailable, match="no log file; set meter_options"):
        CsvLogMeter()
    with pytest.raises(MeterUnavailable, match="does not exist; start the bench's logger"):
        CsvLogMeter(str(tmp_path / "absent.csv"))
    log = tmp_path / "bench.csv"
    log.write_text("t_s,amps\n1.0,0.2\n")
    with pytest.raises(MeterUnavailable, match="has no column power_w"):
        CsvLogMeter(str(log))
    now = time.time()
    _log(log, now - 1.0, now - 0.5, 3.0)  # the bench stopped half a second ago
    meter = CsvLogMeter(str(log), wait_s=0.05)
    with pytest.raises(MeterError, match="does not cover the window .* is the bench still logging"):
        meter.stop(meter.start())
