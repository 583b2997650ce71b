"""The INA226 host driver against the simulated logger process and a scripted logger on a pty."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from ffenergy.firmware.protocol import INSN_CLASSES, TriggerEvent, pack_trigger_event
from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.ina226 import Ina226Meter
from ffenergy.meters.ina226_wire import FRAME_LEN, encode_frames, encode_info
from ffenergy.meters.triggered import MeterDisconnected, StreamRestarted, Token
from ffenergy.sim.meter import spawn_sim_meter
from ffenergy.sim.model import EnergyModel


@pytest.fixture
def sim(tmp_path):
    with spawn_sim_meter(tmp_path / "meter", tmp_path / "trig", EnergyModel(seed=7), replug_delay_s=0.3) as s:
        fd = os.open(s.trigger, os.O_WRONLY)
        s.pulse = lambda work: os.write(
            fd, pack_trigger_event(TriggerEvent(1, 0)) + pack_trigger_event(TriggerEvent(0, work))
        )  # type: ignore[attr-defined]
        s.counted = lambda classes: os.write(
            fd, pack_trigger_event(TriggerEvent(1, 0)) + pack_trigger_event(TriggerEvent(0, 0, classes))
        )  # type: ignore[attr-defined]
        yield s
        os.close(fd)


def test_simulated_windows_recover_the_model_and_say_simulated(sim):
    with Ina226Meter(str(sim.port), reopen_interval_s=0.1) as meter:
        assert meter.info.provenance == "simulated"
        assert meter.info.details["ground_truth"]["net_joules_per_mac"] == pytest.approx(
            sim.model.net_joules_per_mac, rel=1e-6
        )
        for work in (150_000, 300_000):
            token = meter.start()
            sim.pulse(work)
            w = meter.next_window(token)
            assert w.net_j == pytest.approx(sim.model.net_energy_j(work), rel=0.02)
            assert w.idle_power_w == pytest.approx(sim.model.idle_power_w, rel=0.01)
            assert w.duration_s == pytest.approx(sim.model.active_time_s(work), abs=2 / sim.model.sample_rate_hz)
        assert meter.stats.crc_errors == 0 and meter.stats.lost_samples == 0


def test_unplug_breaks_the_open_window_and_replug_recovers(sim):
    with Ina226Meter(str(sim.port), reopen_interval_s=0.1, reopen_retries=30) as meter:
        token = meter.start()
        sim.unplug()
        with pytest.raises(StreamRestarted, match="measure the window again"):
            meter.next_window(token, timeout_s=5)
        deadline = time.monotonic() + 5
        while meter.stats.reopens == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert meter.stats.reopens == 1
        token = meter.start()
        sim.pulse(200_000)
        assert meter.next_window(token).net_j == pytest.approx(sim.model.net_energy_j(200_000), rel=0.02)


def test_meter_gone_for_good_names_the_port(sim):
    meter = Ina226Meter(str(sim.port), reopen_interval_s=0.1, reopen_retries=5)
    try:
        sim.stop()
        t0 = time.monotonic()
        with pytest.raises(MeterDisconnected, match=f"{sim.port}.*vanished.*--resume"):
            while True:  # the first tries see the restart; then the reopen budget runs out
                try:
                    meter.next_window(meter.start(), timeout_s=10)
                except StreamRestarted:
                    time.sleep(0.05)
        assert time.monotonic() - t0 < 3
        with pytest.raises(MeterDisconnected):
            meter.start()
    finally:
        meter.close()


def _window_stream(n_idle=400, n_high=600, idle_raw=80, high_raw=400):
    levels = np.r_[np.zeros(n_idle), np.ones(n_high), np.zeros(n_idle)].astype(np.uint8)
    k = np.arange(len(levels))
    shunt = np.where(levels > 0, high_raw, idle_raw)
    return encode_frames(k, k * 100, np.full(len(k), 4000), shunt, levels)


def test_corrupted_bytes_are_counted_and_the_window_still_measures(fake_logger):
    header = encode_info(
        {
            "device": "ina226-logger",
            "source": "hardware",
            "shunt_ohm": 0.1,
            "shunt_lsb_v": 2.5e-6,
            "bus_lsb_v": 1.25e-3,
            "period_us": 100,
        }
    )
    stream = bytearray(_window_stream())
    for frame in (50, 700, 1200):  # one idle before, one inside, one idle after the window
        stream[frame * FRAME_LEN + 9] ^= 0xFF
    stream[300 * FRAME_LEN : 300 * FRAME_LEN] = b"\x00\xa7 garbage #"
    logger = fake_logger(header + bytes(stream))
    with Ina226Meter(logger.port) as meter:
        w = meter.next_window(Token(0, 0), timeout_s=5)
        deadline = time.monotonic() + 5
        while meter.stats.samples < 1397 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert meter.info.provenance == "measured"
        assert meter.stats.crc_errors == 3 and meter.stats.lost_samples == 3
        assert meter.stats.garbage_bytes >= 3 * FRAME_LEN
        volts, idle_a, high_a = 4000 * 1.25e-3, 80 * 25e-6, 400 * 25e-6
        assert w.duration_s == pytest.approx(600e-4)
        # the frame lost inside the window is bridged by its neighbour's longer dt: same level, same energy
        assert w.gross_j == pytest.approx(volts * high_a * 600e-4)
        assert w.net_j == pytest.approx(volts * (high_a - idle_a) * 600e-4)


def test_missing_header_fields_and_silent_port_are_clear_errors(fake_logger):
    logger = fake_logger(encode_info({"device": "ina226-logger", "shunt_ohm": 0.1}))
    with pytest.raises(MeterUnavailable, match="without shunt_lsb_v, bus_lsb_v"):
        Ina226Meter(logger.port, info_timeout_s=2)
    broken = fake_logger(
        encode_info({"device": "ina226-logger", "source": "hardware", "error": "no-INA226-answering-at-0x40"})
    )
    with pytest.raises(MeterUnavailable, match="reports no-INA226-answering-at-0x40: check the INA226 wiring"):
        Ina226Meter(broken.port, info_timeout_s=2)
    silent = fake_logger(b"")
    with pytest.raises(MeterUnavailable, match=f"no INA226 logger info line from {silent.port}"):
        Ina226Meter(silent.port, info_timeout_s=0.5)
    with pytest.raises(MeterUnavailable, match="cannot open the INA226 logger port /nonexistent/tty"):
        Ina226Meter("/nonexistent/tty")


def test_counted_windows_recover_the_per_class_ground_truth(sim):
    """Counted falling edges (the QEMU plugin's) with five different instruction mixes: solving the
    measured net energies for joules per instruction class recovers the simulator's within 5%."""
    mixes = np.full((5, 5), 20_000) + np.diag(np.full(5, 300_000))
    with Ina226Meter(str(sim.port), reopen_interval_s=0.1) as meter:
        energies = []
        for mix in mixes:
            token = meter.start()
            sim.counted(tuple(int(n) for n in mix))
            w = meter.next_window(token)
            assert w.duration_s == pytest.approx(
                sim.model.insn_active_time_s(tuple(mix)), abs=2 / sim.model.sample_rate_hz
            )
            energies.append(w.net_j)
    recovered = np.linalg.solve(mixes.astype(float), np.array(energies))
    truth = sim.model.net_joules_per_instruction()
    for cls, joules in zip(INSN_CLASSES, recovered):
        assert joules == pytest.approx(truth[cls], rel=0.05), cls
