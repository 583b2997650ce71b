"""The LPM01A driver against the emulator (``ffenergy.sim.lpm01a``) on real pseudo-terminals: the 16 shared
EnergyRunner sessions window by window, and the faults a board and its cable have."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from ffenergy.meters import lpm01a_wire as wire
from ffenergy.meters.base import MeterError, MeterUnavailable
from ffenergy.meters.lpm01a import Lpm01aMeter
from ffenergy.meters.trigger_windows import WindowEnergyDetail
from ffenergy.meters.triggered import StreamRestarted
from ffenergy.recordings.formats import read_recording
from ffenergy.sim.lpm01a import spawn_emulator
from tests.meters.windowkit import REL, relative_errors, walk_windows
from tests.recordings.sessions import SESSIONS, SESSIONS_DIR, write_session

FAST = {"reply_timeout_s": 5.0, "history_s": 1e4}  # the emulator streams ~100x real time: keep the whole session


def test_the_shared_sessions_are_there_when_the_folder_is():
    if not SESSIONS_DIR.is_dir():
        pytest.skip(f"no shared EnergyRunner sessions at {SESSIONS_DIR} (set FFENERGY_SHARED_DATA)")
    assert len(SESSIONS) == 16


@pytest.mark.parametrize(
    "output,data_format", [("energy", "ascii_dec"), ("current", "bin_hexa")], ids=["energy-ascii", "current-binary"]
)
@pytest.mark.parametrize("session", SESSIONS)
def test_every_window_of_a_real_session_matches_the_import(session, output, data_format, tmp_path):
    """EnergyRunner's own set-up (energy at 1 kHz in ASCII, as these sessions were recorded) and the binary format."""
    rec = read_recording(SESSIONS_DIR / session)
    assert rec.voltage_v is not None
    with spawn_emulator(SESSIONS_DIR / session, tmp_path / "lpm01a") as emu:
        with Lpm01aMeter(
            str(emu.port),
            voltage_mv=round(rec.voltage_v * 1000),
            sample_rate_hz=round(rec.sample_rate_hz),
            output=output,
            data_format=data_format,
            opening_events=1,  # EnergyRunner's DUT pulses once before its first window
            **FAST,
        ) as meter:
            windows = walk_windows(meter, rec.n_windows)
            stats = meter.stats
    assert all(isinstance(w, WindowEnergyDetail) for w in windows)
    errors = relative_errors(rec, windows)  # type: ignore[arg-type]
    # error feedback: a window's sum is off by at most the carries at its two ends, half a step each; that
    # is below 1e-6 but for bin_hexa's 12 bits on v0.5 ad's 100-sample windows (there: <= one step)
    wire_values = rec.energy_per_sample_j() if output == "energy" else rec.power_w() / rec.voltage_v
    step = 10.0 ** wire.ascii_exponents(wire_values) if data_format == "ascii_dec" else wire.binary_steps(wire_values)
    start, end = rec.edges.T
    one_step = (step[start - 1] + step[end - 1]) / 2 / np.add.reduceat(wire_values, rec.edges.reshape(-1))[::2]
    assert np.all(errors <= np.maximum(REL, one_step)), (session, errors, one_step)
    assert errors.max() < REL or (data_format == "bin_hexa" and session == "v0.5-reference-nucleo-l4r5zi-ad")
    assert stats.lost_samples == stats.lost_events == stats.corrupt == 0
    assert stats.events == 2 * rec.n_windows + 1


# --- faults, on a small synthetic session in EnergyRunner's format ------------------------------------
RATE = 1000


@pytest.fixture
def session(tmp_path):
    """22 s at 1 kHz: an opening edge at 0.5 s, then four 2 s windows 3 s apart at 30 µJ per sample over 10 µJ
    idle (3 s: more than the ~2700 ASCII samples a pty holds unread, so an unplug in a window spares the last)."""
    rng = np.random.default_rng(5)
    energy = 10 + rng.uniform(0, 0.5, 22 * RATE)
    times = [0.5, 2.0, 4.0, 7.0, 9.0, 12.0, 14.0, 17.0, 19.0]
    for a, b in zip(times[1::2], times[2::2]):
        energy[round(a * RATE) : round(b * RATE)] += 20
    return write_session(tmp_path / "session", energy, times, voltage_mv=1800)


def _meter(port, **options):
    return Lpm01aMeter(str(port), **{"voltage_mv": 1800, "output": "energy", "opening_events": 1, **FAST, **options})


def test_a_missing_port_says_how_to_find_it(tmp_path):
    with pytest.raises(MeterUnavailable, match=r"cannot open the LPM01A port .*ls /dev/serial/by-id"):
        _meter(tmp_path / "nothing-here")


def test_a_busy_port_names_the_programs_that_hold_one(session, tmp_path):
    with spawn_emulator(session, tmp_path / "lpm01a") as emu:
        with serial.Serial(str(emu.port), exclusive=True):
            with pytest.raises(MeterUnavailable, match="another program holds it"):
                _meter(emu.port)


def test_a_firmware_of_another_generation_is_refused(session, tmp_path):
    with spawn_emulator(session, tmp_path / "lpm01a", "--version", "2.1.0") as emu:
        with pytest.raises(MeterUnavailable, match=r"firmware version '2\.1\.0'.*firmware 1\.x with event reporting"):
            _meter(emu.port)


def test_an_err_reply_carries_the_boards_detail_and_a_fix(session, tmp_path):
    with spawn_emulator(session, tmp_path / "lpm01a", "--refuse", "eventsrc") as emu:
        with pytest.raises(MeterUnavailable, match=r"refused 'eventsrc d7 fal'.*refused by the emulator.*no event"):
            _meter(emu.port)


def test_an_option_the_board_lacks_is_refused_before_opening(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        _meter(tmp_path / "x", sample_rate_hz=3000)
    with pytest.raises(ValueError, match="'fal' .falling edges on D7. or 'ris'"):
        _meter(tmp_path / "x", event_edge="both")
    with pytest.raises(ValueError, match="ascii_dec streams at most 5000 Hz"):
        _meter(tmp_path / "x", output="current", sample_rate_hz=10_000, data_format="ascii_dec")


def _fault_run(session, tmp_path, *emulator_args, **options):
    rec = read_recording(session)
    with spawn_emulator(session, tmp_path / "lpm01a", *emulator_args) as emu:
        with _meter(emu.port, **options) as meter:
            windows = walk_windows(meter, rec.n_windows, timeout_s=20)
            return rec, windows, meter.stats


@pytest.mark.parametrize("shift", [0, 300], ids=["on-a-timestamp", "between-timestamps"])
@pytest.mark.parametrize("data_format", ["ascii_dec", "bin_hexa"])
def test_a_corrupt_sample_or_frame_breaks_only_the_window_around_it(session, tmp_path, data_format, shift):
    inside = int(read_recording(session).edges[1].mean()) + shift  # 8000: where the board's 8 s timestamp sits
    rec, windows, stats = _fault_run(
        session, tmp_path, "--corrupt-at", str(inside), data_format=data_format, output="current"
    )
    assert [type(w) for w in windows] == [WindowEnergyDetail, StreamRestarted, WindowEnergyDetail, WindowEnergyDetail]
    assert "corrupt data" in str(windows[1]) and "measure the window again" in str(windows[1])
    assert stats.corrupt == 1
    if data_format == "bin_hexa":  # realigned at the next timestamp: the rest of that second is lost
        assert stats.discarded_bytes > 0 and stats.lost_samples == RATE - inside % RATE
    else:  # the garbled line is one sample the board's clock counts and the stream lacks
        assert stats.lost_samples == 1
    assert relative_errors(rec, windows[:1], [0]).max() < REL
    assert relative_errors(rec, windows[2:], [2, 3], offset=-stats.lost_samples).max() < REL  # type: ignore[arg-type]


def test_a_lost_event_breaks_its_window_and_the_counter_keeps_the_later_ones_right(session, tmp_path):
    rec, windows, stats = _fault_run(session, tmp_path, "--drop-event", "3")  # the second window's opening pulse
    assert stats.lost_events == 1 and stats.events == 2 * rec.n_windows
    assert [type(w) for w in windows] == [WindowEnergyDetail, StreamRestarted, WindowEnergyDetail, WindowEnergyDetail]
    assert "1 trigger events lost before event 4" in str(windows[1])
    assert relative_errors(rec, [windows[0], windows[2], windows[3]], [0, 2, 3]).max() < REL  # type: ignore[list-item]


def test_unplugged_mid_window_the_board_is_reopened_and_the_next_windows_are_exact(session, tmp_path):
    inside = int(read_recording(session).edges[1].mean())
    rec, windows, stats = _fault_run(
        session, tmp_path, "--unplug-at", str(inside), "--replug-delay-s", "0.3", reopen_interval_s=0.1
    )
    assert stats.reopens == 1 and stats.lost_samples == 0
    assert [type(w) for w in windows] == [WindowEnergyDetail, StreamRestarted, WindowEnergyDetail, WindowEnergyDetail]
    assert "vanished" in str(windows[1])
    assert relative_errors(rec, windows[:1], [0]).max() < REL
    # what the board had sent but the host had not read when the cable went is lost: the later windows sit
    # that many samples earlier in the stream; on the meter's timeline the replugged stream starts 1 s on
    unread = rec.edges[2, 0] - windows[2].start_index  # type: ignore[union-attr]
    assert 0 <= unread < inside - rec.edges[0, 1]  # at most what followed the first window
    assert relative_errors(rec, windows[2:], [2, 3], offset=-unread).max() < REL  # type: ignore[arg-type]
    assert windows[2].start_s == pytest.approx((rec.edges[2, 0] - unread) / RATE + 1)  # type: ignore[union-attr]


def test_a_stalled_stream_fails_clearly_and_keeps_the_windows_before_it(session, tmp_path):
    rec = read_recording(session)
    stall = int(rec.edges[1].mean())
    with spawn_emulator(session, tmp_path / "lpm01a", "--stall-at", str(stall)) as emu:
        with _meter(emu.port, stall_timeout_s=0.5) as meter:
            first = meter.next_window(meter.token_at(0), timeout_s=10)
            with pytest.raises(MeterError, match=r"stopped streaming: no data for 0.5 s .*stalled"):
                meter.next_window(meter.token_at(first.end_index), timeout_s=10)
            assert "no data" in (meter.stream_problem() or "")
            again = meter.next_window(meter.token_at(0), timeout_s=1)  # a completed window outlives the failure
    assert (again.start_index, again.end_index, again.gross_j) == (first.start_index, first.end_index, first.gross_j)
    assert relative_errors(rec, [first], [0]).max() < REL


def test_the_ascii_decoder_files_samples_events_timestamps_and_faults_by_position():
    d = wire.AsciiDecoder()
    first = d.feed(b"6409-07\r\n1000+00\r\nevent 0 ris\r\n12")  # a line split across reads
    second = d.feed(b"34-05\r\nTimeStamp: 001s 000ms, buff 00%\r\n12#4-0?\r\nack stop\r\n" + b"\xff" * 300)
    assert list(first.samples) == [6409e-7, 1000.0] and first.events == [(2, 0)]
    assert list(second.samples) == [pytest.approx(1234e-5)] and second.ticks == [(1, 1000)]
    assert second.lines == ["ack stop"]
    assert [pos for pos, _ in second.faults] == [1, 1] and "300 bytes without a line end" in second.faults[1][1]


def test_the_binary_decoder_realigns_at_the_next_timestamp_after_a_corrupt_frame():
    codes, _ = wire.quantise_binary(np.array([1e-3, 2e-3, 3e-3]))
    good = wire.encode_binary(codes)
    stream = good + wire.timestamp_frame(1000)[:-2] + b"\x00\x00" + b"\x12" + good + wire.timestamp_frame(2000) + good
    d = wire.BinaryDecoder()
    out = d.feed(stream[:7]), d.feed(stream[7:])
    samples = np.concatenate([o.samples for o in out])
    assert np.allclose(samples, [1e-3, 2e-3, 3e-3] * 2, rtol=1e-3)  # the bytes in between are skipped
    # positions count the samples of their own chunk: the second chunk's first sample came after the frame
    assert [f[0] for o in out for f in o.faults] == [0] and d.discarded_bytes == 8 + len(good)
    assert [t for o in out for t in o.ticks] == [(0, 2000)]
