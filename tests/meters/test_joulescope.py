"""The Joulescope JS220 driver against an emulated JS220 at pyjoulescope_driver's API boundary
(``ffenergy.sim.joulescope``): the 16 shared EnergyRunner sessions window by window, dropped samples, a
stalled stream, and a missing library or device."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

from ffenergy.meters.base import MeterError, MeterUnavailable
from ffenergy.meters.joulescope import JoulescopeMeter, SampleAligner
from ffenergy.meters.trigger_windows import WindowEnergyDetail
from ffenergy.meters.triggered import StreamRestarted
from ffenergy.recordings.formats import read_recording
from ffenergy.sim.joulescope import EmulatedJoulescopeDriver
from tests.meters.windowkit import REL, relative_errors, walk_windows
from tests.recordings.sessions import SESSIONS, SESSIONS_DIR, write_session

FAST = {"history_s": 1e4}  # the emulated JS220 streams far faster than real time: keep the whole session


def _meter(rec, emulated=None, **options):
    emulated = emulated or EmulatedJoulescopeDriver(rec)
    return JoulescopeMeter(
        sample_rate_hz=round(rec.sample_rate_hz), driver_factory=lambda: emulated, **{**FAST, **options}
    )


@pytest.mark.parametrize("session", SESSIONS)
def test_every_window_of_a_real_session_matches_the_import(session):
    rec = read_recording(SESSIONS_DIR / session)
    with _meter(rec) as meter:
        windows = walk_windows(meter, rec.n_windows)
        stats = meter.stats
    assert all(isinstance(w, WindowEnergyDetail) for w in windows)
    errors = relative_errors(rec, windows, offset=None)  # type: ignore[arg-type]
    assert errors.max() < REL, (session, errors)  # float32 on the wire: no quantisation trick needed
    assert stats.dropped_samples == 0 and stats.gaps == []


# --- faults, on a small synthetic session ----------------------------------------------------------
RATE = 1000


@pytest.fixture
def rec(tmp_path):
    """12 s at 1 kHz, three 2 s windows at 30 µJ per sample over 10 µJ idle (EnergyRunner's format)."""
    energy = 10 + np.random.default_rng(3).uniform(0, 0.5, 12 * RATE)
    times = [0.5, 2.0, 4.0, 5.0, 7.0, 8.0, 10.0]
    for a, b in zip(times[1::2], times[2::2]):
        energy[round(a * RATE) : round(b * RATE)] += 20
    return read_recording(write_session(tmp_path / "session", energy, times, voltage_mv=3000))


def test_a_sample_id_gap_is_reported_and_breaks_only_the_window_across_it(rec):
    gap = (5500, 123)  # inside the second window
    with _meter(rec, EmulatedJoulescopeDriver(rec, drop=gap)) as meter:
        windows = walk_windows(meter, rec.n_windows)
        info = meter.info.details["stream"]
    assert [type(w) for w in windows] == [WindowEnergyDetail, StreamRestarted, WindowEnergyDetail]
    assert "the JS220 dropped 123 samples, sample ids 5500..5623" in str(windows[1])
    assert info["dropped_samples"] == 123 and info["gaps"] == [(5500, 5623)]
    assert relative_errors(rec, [windows[0], windows[2]], [0, 2], offset=None).max() < REL  # type: ignore[list-item]


def test_a_stalled_stream_fails_clearly_and_keeps_the_windows_before_it(rec):
    with _meter(rec, EmulatedJoulescopeDriver(rec, stall_at=6000), stall_timeout_s=0.5) as meter:
        first = meter.next_window(meter.token_at(0), timeout_s=10)
        with pytest.raises(MeterError, match="sent no samples for 0.5 s .stream stalled or unplugged"):
            meter.next_window(meter.token_at(first.end_index), timeout_s=10)
        again = meter.next_window(meter.token_at(0), timeout_s=1)  # a completed window outlives the failure
    assert (again.start_index, again.end_index, again.gross_j) == (first.start_index, first.end_index, first.gross_j)
    assert relative_errors(rec, [first], [0], offset=None).max() < REL


def test_the_trigger_input_can_be_trigger_in_and_the_library_is_configured_as_documented(rec):
    emulated = EmulatedJoulescopeDriver(rec)
    with _meter(rec, emulated, trigger="trigger_in") as meter:
        windows = walk_windows(meter, rec.n_windows)
    assert relative_errors(rec, windows, offset=None).max() < REL  # type: ignore[arg-type]
    dev = "u/js220/004242"
    assert (f"{dev}/h/fs", RATE) in emulated.published
    assert {t for t, v in emulated.published if t.endswith("/ctrl") and v == 1} == {
        f"{dev}/s/{s}/ctrl" for s in ("i", "v", "p", "gpi/7")
    }


def test_no_device_or_another_rate_is_a_clear_error(rec):
    with pytest.raises(MeterUnavailable, match=r"no Joulescope JS220 .*devices seen: none.*plug it in"):
        _meter(rec, EmulatedJoulescopeDriver(rec, devices=()))
    with pytest.raises(MeterUnavailable, match="no Joulescope JS220 matching '999'"):
        _meter(rec, device="999")
    with pytest.raises(MeterUnavailable, match="cannot start the Joulescope.*at 1000 Hz only"):
        JoulescopeMeter(sample_rate_hz=500, driver_factory=lambda: EmulatedJoulescopeDriver(rec))
    with pytest.raises(ValueError, match="integer divisor"):
        JoulescopeMeter(sample_rate_hz=3, driver_factory=lambda: EmulatedJoulescopeDriver(rec))


@pytest.mark.skipif(importlib.util.find_spec("pyjoulescope_driver") is not None, reason="pyjoulescope_driver installed")
def test_without_the_library_the_error_says_which_extra_to_install():
    with pytest.raises(MeterUnavailable, match=r"pip install 'ffenergy\[joulescope\]'"):
        JoulescopeMeter()


def test_the_aligner_waits_for_every_signal_and_overwrites_padding_bits():
    a = SampleAligner(("x", "t"))
    a.add("x", 10, np.arange(10.0, 20.0))
    assert a.take() is None  # no trigger yet
    a.add("t", 8, np.ones(16), slack=7)  # 16 bits from index 8, the last 7 maybe padding
    first, got = a.take()  # type: ignore[misc]
    assert first == 10 and list(got["x"]) == list(range(10, 17))  # up to 8 + 16 - 7 = 17
    a.add("t", 20, np.zeros(8))  # the next message starts at 20: bits 20..23 of the first were padding
    a.add("x", 20, np.arange(20.0, 30.0))
    first, got = a.take()  # type: ignore[misc]
    assert first == 17 and list(got["t"]) == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    a.add("x", 40, np.arange(40.0, 45.0))  # x skipped 30..39
    a.add("t", 28, np.zeros(20))
    first, got = a.take()  # type: ignore[misc]
    assert first == 28 and list(got["x"]) == [28, 29]  # up to the hole
    assert a.take() == (30, 40)
    first, got = a.take()  # type: ignore[misc]
    assert first == 40 and list(got["x"]) == [40, 41, 42, 43, 44]


def test_close_stops_the_emulated_stream(rec):
    emulated = EmulatedJoulescopeDriver(rec, block=8)
    meter = _meter(rec, emulated)
    meter.close()
    n = meter.stats.samples
    time.sleep(0.1)
    assert meter.stats.samples == n


@pytest.mark.parametrize("meter", ["lpm01a", "joulescope"])
def test_an_mcu_config_may_name_the_bench_meters_and_builds_options_they_take(meter):
    from ffenergy.meters.auto import check_meter_options
    from ffenergy.targets.mcu_config import McuConfig

    cfg = McuConfig(target="mcu", dut_port="/dev/ttyACM0", meter=meter, meter_port="/dev/ttyACM1")
    cfg.validate()
    check_meter_options(meter, cfg.meter_options())  # raises ValueError for options the meter does not take
