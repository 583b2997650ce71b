"""Real recordings through the live drivers: the INA226 replay on a real pty into ``Ina226Meter``, the
PPK2 stand-in API into ``Ppk2Meter``. Every window must come out as ``ffenergy import`` integrates
it from the file (``integrate_windows``), to 1e-6, with no sample lost.

The EnergyRunner sessions (MLPerf Tiny, real Nucleo boards on an LPM01A at 1 kHz) live in the
shared data folder (``$FFENERGY_SHARED_DATA/energyrunner``, else ``../shared/data/energyrunner``):
without it these tests skip saying so; with it, every one of the 16 sessions must be there.
"""

from __future__ import annotations

import dataclasses
import select
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from ffenergy.meters.ina226 import Ina226Meter
from ffenergy.meters.ina226_wire import RawSamples, StreamDecoder
from ffenergy.meters.ppk2 import Ppk2Meter
from ffenergy.meters.trigger_windows import integrate_windows
from ffenergy.meters.triggered import Token, TriggeredMeter
from ffenergy.recordings.formats import read_recording
from ffenergy.recordings.recording import Recording, RecordingError
from ffenergy.sim.replay import (
    Ina226Replay,
    Ppk2ReplayApi,
    ina226_registers,
    ina226_scale,
    quantize_with_error_feedback,
    replay_windows,
)
from tests.hil.hilkit import shared_data_dir

SESSIONS = [f"v0.5-reference-nucleo-l4r5zi-{w}" for w in ("ad", "ic", "kws", "vww")] + [
    f"v1.2-st-nucleo-{b}-{w}" for b in ("h7a3zi-q", "l4r5zi", "u575zi-q") for w in ("ad", "ic", "kws", "vww")
]
REL = 1e-6
ENERGYRUNNER = shared_data_dir() / "energyrunner"


@cache
def session(name: str) -> Recording:
    if not ENERGYRUNNER.is_dir():
        pytest.skip(f"the EnergyRunner sessions are not at {ENERGYRUNNER} (set FFENERGY_SHARED_DATA)")
    folder = ENERGYRUNNER / name
    assert folder.is_dir(), f"{folder} is missing from the shared EnergyRunner data: all 16 sessions must be there"
    return read_recording(folder)


def imported(rec: Recording) -> np.ndarray:
    """Gross joules per window as ``ffenergy import`` computes them from the file."""
    return integrate_windows(rec.samples, rec.edges, rec.sample_rate_hz, quantity=rec.quantity, t_s=rec.t_s).gross_j


def ppk2_meter(api: Ppk2ReplayApi, rec: Recording) -> Ppk2Meter:
    assert rec.voltage_v is not None
    return Ppk2Meter("replay", voltage_mv=round(rec.voltage_v * 1000), trigger_channel=5, api_factory=lambda _: api)


def assert_windows(got: list, rec: Recording) -> None:
    want = imported(rec)
    assert [[w.start_index, w.end_index] for w in got] == rec.edges.tolist()
    gross = np.array([w.gross_j for w in got])
    assert np.max(np.abs(gross / want - 1)) < REL, (gross / want - 1).tolist()


def test_all_sixteen_sessions_are_tested():
    if not ENERGYRUNNER.is_dir():
        pytest.skip(f"the EnergyRunner sessions are not at {ENERGYRUNNER} (set FFENERGY_SHARED_DATA)")
    assert sorted(p.name for p in ENERGYRUNNER.iterdir() if p.is_dir()) == sorted(SESSIONS)


@pytest.mark.parametrize("name", SESSIONS)
def test_ina226_driver_on_a_replayed_session(name, tmp_path):
    rec = session(name)
    with Ina226Replay(rec, tmp_path / "meter", gated=True) as replay, Ina226Meter(str(tmp_path / "meter")) as meter:
        assert_windows(list(replay_windows(meter, replay, rec)), rec)
        assert meter.stats.lost_samples == 0 and meter.stats.crc_errors == 0 and meter.stats.garbage_bytes == 0
        assert meter.info.provenance == "simulated" and meter.header["source"] == "replay"
        assert meter.header["rec_board"] == rec.board


@pytest.mark.parametrize("name", SESSIONS)
def test_ppk2_driver_on_a_replayed_session(name):
    rec = session(name)
    api = Ppk2ReplayApi(rec, trigger_bit=5, gated=True)
    with ppk2_meter(api, rec) as meter:
        assert meter.sample_rate_hz == rec.sample_rate_hz
        assert_windows(list(replay_windows(meter, api, rec)), rec)
        assert meter.lost_samples == 0
        assert meter.info.provenance == "simulated" and meter.info.details["replay"]["board"] == rec.board


def _late_window(meter: TriggeredMeter, gate: Ina226Replay | Ppk2ReplayApi, rec: Recording):
    """The first window, asked for only after the whole recording has streamed past it."""
    token = meter.start()
    gate.release(rec.n_samples)
    deadline = time.monotonic() + 30
    while meter.position < rec.n_samples and time.monotonic() < deadline:
        time.sleep(0.01)
    assert meter.position == rec.n_samples
    return meter.next_window(token, timeout_s=5)


def _joined(rec: Recording, first: int, last: int) -> Recording:
    """Real windows first..last of a session as one window, the gaps between them included."""
    edges = np.array([[rec.edges[first, 0], rec.edges[last, 1]]])
    return dataclasses.replace(rec, edges=edges, inferences=rec.inferences[:1])


def _cut(rec: Recording, seconds: float) -> Recording:
    """One window of ``seconds`` of real samples from the first window's rising edge on (our falling edge)."""
    start = int(rec.edges[0, 0])
    edges = np.array([[start, start + round(seconds * rec.sample_rate_hz)]])
    return dataclasses.replace(rec, edges=edges, inferences=rec.inferences[:1])


LONG = {  # real windows as recorded, and real samples under windows we join or cut
    "60.3 s as recorded (v0.5 L4R5 vww)": lambda: session("v0.5-reference-nucleo-l4r5zi-vww"),
    "18.1 s as recorded (v0.5 L4R5 kws)": lambda: session("v0.5-reference-nucleo-l4r5zi-kws"),
    "60 s cut (v0.5 L4R5 vww)": lambda: _cut(session("v0.5-reference-nucleo-l4r5zi-vww"), 60.0),
    "15 s cut (H7A3 kws: a window, the gap, part of the next)": lambda: _cut(
        session("v1.2-st-nucleo-h7a3zi-q-kws"), 15.0
    ),
    "72 s joined (five L4R5 kws windows and their gaps)": lambda: _joined(session("v1.2-st-nucleo-l4r5zi-kws"), 0, 4),
}


@pytest.mark.parametrize("which", LONG)
def test_long_windows_at_default_history(which, tmp_path):
    """Windows longer than the PPK2's 10 s and the INA226's 60 s default history, read after the whole
    recording streamed past them: the open window's samples stay in the history however long it lasts."""
    rec = LONG[which]()
    want = imported(rec)[0]
    with Ina226Replay(rec, tmp_path / "meter", gated=True) as replay, Ina226Meter(str(tmp_path / "meter")) as meter:
        assert meter.history_s == 60.0
        w = _late_window(meter, replay, rec)
        assert [w.start_index, w.end_index] == rec.edges[0].tolist()
        assert w.gross_j == pytest.approx(want, rel=REL)
    api = Ppk2ReplayApi(rec, gated=True)
    with Ppk2Meter("replay", voltage_mv=1800, api_factory=lambda _: api) as meter:
        assert meter.history_s == 10.0
        w = _late_window(meter, api, rec)
        assert [w.start_index, w.end_index] == rec.edges[0].tolist()
        assert w.gross_j == pytest.approx(want, rel=REL)


# --- without the shared data -------------------------------------------------------------------------
def _recording(power_w: np.ndarray, edges: list[list[int]], rate: float = 1000.0, **kw) -> Recording:
    fields = {
        "samples": power_w,
        "quantity": "power",
        "sample_rate_hz": rate,
        "voltage_v": 3.3,
        "edges": np.array(edges, np.int64).reshape(-1, 2),
        "edge_uncertainty": 0,
        "inferences": np.ones(len(edges), np.int64),
        "meter": "test",
        "board": "test-board",
        "workload": "test",
        "format": "test",
        "files": {},
    }
    fields.update(kw)
    return Recording(**fields)  # type: ignore[arg-type]


def test_error_feedback_keeps_every_run_of_samples_exact_to_one_count():
    rng = np.random.default_rng(3)
    energy = rng.uniform(0.2, 40.3, 20_000)  # in counts of 1.0
    for unit in (1.0, rng.uniform(0.9, 1.1, len(energy))):
        counts = quantize_with_error_feedback(energy, unit)
        drift = np.cumsum(counts * unit) - np.cumsum(energy)
        assert np.all(np.abs(drift) <= 0.5 * np.asarray(unit) + 1e-9)  # so any window [a, b): one count
    plain = np.rint(energy)
    windows = np.add.reduceat(plain - energy, np.arange(0, len(energy), 1000))
    assert np.abs(windows).max() > 1.5  # plain rounding: errors of a 1000-sample window add up


def test_ina226_registers_fit_and_keep_the_power():
    rng = np.random.default_rng(1)
    power = np.r_[np.full(100, 0.01), 0.05 + 0.02 * rng.standard_normal(1000), np.full(100, 0.01)]
    rec = _recording(power, [[100, 1100]], voltage_v=1.8011)
    scale = ina226_scale(rec)
    reg = ina226_registers(rec, scale)
    assert scale.bus == 1441 and scale.bus_lsb_v == 1.25e-3 and scale.shunt_lsb_v == 2.5e-6
    assert 25_000 < np.abs(reg.shunt).max() <= 30_001
    assert reg.flags.tolist() == [0] * 100 + [1] * 1000 + [0] * 100
    energy = reg.shunt * scale.amp_lsb * scale.volts * 1e-3
    assert energy[100:1100].sum() == pytest.approx(power[100:1100].sum() * 1e-3, rel=REL)


def test_recordings_a_replay_cannot_carry_are_refused():
    power = np.full(100, 0.01)
    with pytest.raises(RecordingError, match="windows 0 and 1 touch"):
        Ppk2ReplayApi(_recording(power, [[10, 20], [20, 30]]))
    with pytest.raises(RecordingError, match="no rising edge"):
        Ina226Replay(_recording(power, [[0, 20]]), Path("/nonexistent/link"))
    with pytest.raises(RecordingError, match="no supply voltage"):
        ina226_scale(_recording(power, [[10, 20]], voltage_v=None))
    with pytest.raises(RecordingError, match="not uniformly sampled"):
        Ppk2ReplayApi(_recording(power, [[10, 20]], t_s=np.arange(101) * 1e-3))


def _jittered_trace(path: Path) -> None:
    """An ffenergy trace.csv with a jittery clock (97..103 µs periods) and two windows."""
    rng = np.random.default_rng(5)
    n = 3000
    t_us = np.cumsum(rng.integers(97, 104, n)) - 100
    trig = ((t_us > 50_000) & (t_us < 120_000)) | ((t_us > 180_000) & (t_us < 260_000))
    current = np.where(trig, 0.012, 0.002) + 0.0005 * rng.standard_normal(n)
    rows = np.column_stack([t_us * 1e-6, current, np.full(n, 3.3), trig.astype(int)])
    np.savetxt(path, rows, delimiter=",", header="t_s,current_a,voltage_v,trigger", comments="", fmt="%.17g")


def test_command_line_replay_into_the_ina226_driver(tmp_path):
    trace = tmp_path / "trace.csv"
    _jittered_trace(trace)
    rec = read_recording(trace)
    link = tmp_path / "replay.tty"
    args = [sys.executable, "-m", "ffenergy.sim.replay", "ina226", str(trace), "--port", str(link)]
    proc = subprocess.Popen([*args, "--speed", "0", "--once"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert select.select([proc.stdout], [], [], 20)[0], "the replay printed no ready line"
        assert proc.stdout.readline().startswith(b"#FFM1 device=ffenergy-replay source=replay")
        with Ina226Meter(str(link)) as meter:
            first = meter.next_window(Token(0, 0), timeout_s=10)
            second = meter.next_window(Token(first.end_index, 0), timeout_s=10)
            assert meter.info.provenance == "simulated" and meter.header["rec_format"] == "ffenergy-trace"
            assert meter.stats.lost_samples == 0 and meter.stats.crc_errors == 0
        got = np.array([first.gross_j, second.gross_j])
        assert [[w.start_index, w.end_index] for w in (first, second)] == rec.edges.tolist()
        assert np.max(np.abs(got / imported(rec) - 1)) < REL
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert b"REPLAY (test tool, not a measurement)" in err


def test_a_looping_replay_runs_its_counter_and_clock_on():
    rec = _recording(np.full(70_000, 0.01), [[10, 20]])  # past the 16-bit counter's wrap
    replay = Ina226Replay(rec, Path("/nonexistent/link"), loop=True)
    (raw,) = StreamDecoder().feed(replay.frames(69_990, 140_030)).items
    assert isinstance(raw, RawSamples)
    assert np.all(np.diff(raw.seq.astype(np.int64)) % (1 << 16) == 1)
    assert np.all(np.diff(raw.t_us.astype(np.int64)) % (1 << 32) == 1000)
    assert np.flatnonzero(raw.flags).tolist() == [*range(20, 30), *range(70_020, 70_030)]
