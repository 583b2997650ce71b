"""Replay devices: a real recording streamed through the same code path a live meter uses (a test tool).

``Ina226Replay`` speaks the INA226 logger wire protocol (hardware/meter/protocol.md) on a
pseudo-terminal linked at a path, so a real ``Ina226Meter`` (or ``ffenergy run`` with
``mcu.options.meter ina226``) reads it like a logger: ``python -m ffenergy.sim.replay ina226
RECORDING --port LINK``. ``Ppk2ReplayApi`` stands in for the ``ppk2_api.PPK2_API`` object that
``Ppk2Meter`` drives (pass it through ``api_factory``). Both stream the recording's own samples, and
its windows as the trigger line: the trigger flag of each frame, or one logic bit of the PPK2.

What a replay proves: the drivers parse, window and integrate real data (edges, levels and noise of
a real board on a real meter) exactly as ``ffenergy import`` does from the file. What it does not:
anything about a meter's analog front end, ADC or timing, which a replay never exercises.

Provenance. A replay is a stand-in meter: its figures never measured the DUT of the run reading
it. The drivers therefore label it ``simulated`` (the INA226 info line says ``source=replay``;
the PPK2 stand-in carries a ``replay`` attribute), with the recording's format, board, workload
and file hash in the meter's details. ``ffenergy import`` of the same file stays ``measured``.

INA226 registers. The replay keeps the chip's fixed LSBs (bus 1.25 mV, shunt 2.5 µV) and chooses
the shunt resistor per recording so that its largest current fills about 30000 of the signed 16-bit
shunt register's 32767 counts. The current is quantised with error feedback: each sample's register
value is the one that keeps the *running* energy (Σ V·I·Δt as the driver computes it) within half a
count of the recording's, so every window's energy is exact to one count's energy (2.5 µV / R · V ·
Δt, about 1/30000 of the peak sample's energy), whatever its length. Plain rounding would add up to
±0.5 count of independent error per sample instead. The bus register holds the supply voltage
rounded to 1.25 mV; the current absorbs that rounding, so power, not current, is what matches.

Pacing. A replay streams as fast as the host reads (``speed=0``), or at ``speed`` times real time.
Gated, it streams only up to the sample index given to ``release``: ``replay_windows`` uses that to
step a meter through the windows one by one, as a DUT would run them when asked.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ffenergy.meters.ina226_wire import INFO_REQUEST, encode_frames, encode_info
from ffenergy.recordings.recording import Recording, RecordingError
from ffenergy.sim.pty import PtyLink

BUS_LSB_V = 1.25e-3  # the INA226's bus-voltage register LSB
SHUNT_LSB_V = 2.5e-6  # the INA226's shunt-voltage register LSB
SHUNT_FULL_COUNTS = 30_000  # the recording's largest current maps to about this many counts (i16: 32767)
CHUNK_SAMPLES = 4096  # samples written (or handed out) per turn


def _sanitize(text: str, limit: int = 48) -> str:
    """An info-line value: no spaces, no '=' trouble, bounded length."""
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in str(text))[:limit] or "-"


def replay_label(recording: Recording) -> dict[str, str]:
    """The facts a replayed meter reports about its recording (format, board, workload, first file's hash)."""
    first = next(iter(recording.files.values()), "")
    return {
        "format": recording.format,
        "board": _sanitize(recording.board),
        "workload": _sanitize(recording.workload),
        "meter": _sanitize(recording.meter),
        "sha256": first[:16] or "-",
    }


def _replayable(recording: Recording) -> None:
    """Raise ``RecordingError`` if one trigger line cannot carry the recording's windows."""
    start, end = recording.edges[:, 0], recording.edges[:, 1]
    if len(start) and start[0] == 0:
        raise RecordingError(
            "the first window starts at the first sample: a driver sees no rising edge there; a replay needs idle first"
        )
    touching = np.flatnonzero(start[1:] <= end[:-1])
    if touching.size:
        k = int(touching[0])
        raise RecordingError(
            f"windows {k} and {k + 1} touch (sample {int(end[k])}): one trigger line would merge them; a replay needs"
            " at least one idle sample between windows"
        )


# --- INA226 -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ina226Scale:
    """The info line's register scales for one recording, as the driver will parse them."""

    bus_lsb_v: float
    shunt_lsb_v: float
    shunt_ohm: float
    bus: int  # the bus register: the supply voltage in counts

    @property
    def amp_lsb(self) -> float:
        return self.shunt_lsb_v / self.shunt_ohm

    @property
    def volts(self) -> float:
        return self.bus * self.bus_lsb_v


def _round_down_3(x: float) -> float:
    """``x`` rounded down to three significant digits, as a float that prints short."""
    exp = math.floor(math.log10(x)) - 2
    mantissa = math.floor(x / 10.0**exp)
    return float(f"{mantissa}e{exp}")


def ina226_times_us(recording: Recording) -> np.ndarray:
    """Each sample's ``t_us`` (unwrapped) and one past the last: n + 1 integers, strictly increasing."""
    n = recording.n_samples
    if recording.t_s is not None:
        t_us = np.rint((np.asarray(recording.t_s, np.float64) - recording.t_s[0]) * 1e6).astype(np.int64)
        if len(t_us) == n:  # no time after the last sample: give it the previous period
            t_us = np.append(t_us, 2 * t_us[-1] - t_us[-2] if n > 1 else 1)
    else:
        t_us = np.rint(np.arange(n + 1) * (1e6 / recording.sample_rate_hz)).astype(np.int64)
    if np.any(np.diff(t_us) <= 0):
        raise RecordingError(
            f"sample rate {recording.sample_rate_hz:g} Hz: samples closer than the logger's 1 µs clock; an INA226"
            " replay needs at most 1 MS/s"
        )
    return t_us


def ina226_scale(recording: Recording, voltage_v: float | None = None) -> Ina226Scale:
    """The chip's LSBs and a shunt resistor that puts the recording's largest current near 30000 counts."""
    volts = voltage_v or recording.voltage_v
    if volts is None:
        raise RecordingError("the recording has no supply voltage; give one (voltage_v, --voltage-v) to replay it")
    bus = round(volts / BUS_LSB_V)
    if not 1 <= bus <= 0x7FFF:
        raise RecordingError(f"supply voltage {volts} V: outside the INA226 bus range (1.25 mV .. 40.96 V)")
    dt_s = np.diff(ina226_times_us(recording)) * 1e-6
    peak_a = float(np.max(np.abs(recording.energy_per_sample_j() / dt_s))) / (bus * BUS_LSB_V)
    shunt_ohm = _round_down_3(SHUNT_FULL_COUNTS * SHUNT_LSB_V / peak_a) if peak_a > 0 else 0.1
    return Ina226Scale(BUS_LSB_V, SHUNT_LSB_V, shunt_ohm, bus)


def quantize_with_error_feedback(energy_j: np.ndarray, unit_j: np.ndarray | float) -> np.ndarray:
    """Integer counts c_k with Σ c_k·unit_k within half a unit of Σ energy_k after every sample.

    Each sample's rounding error is carried into the next, so a run of samples is exact to one
    count's energy (plain rounding: up to ±0.5 count per sample). ``unit_j`` is the energy of one
    count in each sample (a scalar when constant: then one cumulative sum does it).
    """
    energy = np.asarray(energy_j, np.float64)
    if np.ndim(unit_j) == 0:
        running = np.rint(np.cumsum(energy) / float(unit_j))  # type: ignore[arg-type]
        return np.diff(running, prepend=0.0).astype(np.int64)
    unit = np.asarray(unit_j, np.float64)
    counts = np.empty(len(energy), np.int64)
    carry = 0.0
    for k, (e, u) in enumerate(zip(energy.tolist(), unit.tolist())):  # periods differ: one sample at a time
        want = e + carry
        c = round(want / u)
        counts[k] = c
        carry = want - c * u
    return counts


@dataclass(frozen=True)
class Ina226Registers:
    """What the replay sends per sample: times (n + 1 entries), the bus count, shunt counts, trigger flags."""

    t_us: np.ndarray
    bus: int
    shunt: np.ndarray
    flags: np.ndarray


def ina226_registers(recording: Recording, scale: Ina226Scale) -> Ina226Registers:
    """The recording as INA226 register values, the current quantised with error feedback."""
    t_us = ina226_times_us(recording)
    dt_s = np.diff(t_us) * 1e-6  # the driver's Δt of each sample (the last: one more period)
    count_j = scale.volts * scale.amp_lsb
    unit: np.ndarray | float = count_j * float(dt_s[0]) if np.all(dt_s == dt_s[0]) else count_j * dt_s
    shunt = quantize_with_error_feedback(recording.energy_per_sample_j(), unit)
    if np.abs(shunt).max(initial=0) > 0x7FFF:
        raise RecordingError("the shunt register overflows; this is a bug in the replay's choice of shunt_ohm")
    return Ina226Registers(t_us, scale.bus, shunt.astype(np.int16), recording.trigger())


class Ina226Replay:
    """A recording replayed as an INA226 logger on a pty linked at ``port`` (a test tool, labelled so).

    The info line (``source=replay``) is sent whenever the host asks (``i``); samples flow after the
    first one, as fast as the host reads (``speed=0``) or at ``speed`` times real time, from the
    start again when ``loop`` (sequence counter and clock run on). ``gated``: only up to the index
    given to ``release``.
    """

    def __init__(
        self,
        recording: Recording,
        port: Path,
        *,
        voltage_v: float | None = None,
        speed: float = 0.0,
        loop: bool = False,
        gated: bool = False,
    ):
        _replayable(recording)
        self.recording = recording
        self.port = Path(port)
        self.scale = ina226_scale(recording, voltage_v)
        self.registers = ina226_registers(recording, self.scale)
        self.speed, self.loop = speed, loop
        self.sent = 0  # samples written (absolute: counts on across loops)
        self.info_requests = 0
        self._released = 0 if gated else -1  # -1: no gate
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._pty = PtyLink(self.port)
        self._thread = threading.Thread(target=self._serve, name=f"ina226-replay-{self.port.name}", daemon=True)

    def info_fields(self) -> dict[str, object]:
        s = self.scale
        fields: dict[str, object] = {
            "device": "ffenergy-replay",
            "source": "replay",
            "fw": "1.0.0",
            "shunt_ohm": s.shunt_ohm,
            "shunt_lsb_v": s.shunt_lsb_v,
            "bus_lsb_v": s.bus_lsb_v,
            "avg": 1,
            "period_us": round(1e6 / self.recording.sample_rate_hz, 3),
            "trigger_pin": "replay",
        }
        fields.update({f"rec_{k}": v for k, v in replay_label(self.recording).items()})
        return fields

    def start(self) -> Ina226Replay:
        self._pty.open()
        self._thread.start()
        return self

    def release(self, upto: int) -> None:
        """Let a gated replay stream samples up to (not including) absolute index ``upto``."""
        with self._cond:
            self._released = max(self._released, upto)
            self._cond.notify_all()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._pty.is_open:
            self._pty.close()

    def __enter__(self) -> Ina226Replay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def total(self) -> int | None:
        """Samples the replay will send; None when it loops for ever."""
        return None if self.loop else self.recording.n_samples

    def _limit(self, t0: float) -> int:
        """How many samples may have been sent by now."""
        limit = self.total if self.total is not None else 1 << 62
        if self._released >= 0:
            limit = min(limit, self._released)
        if self.speed > 0:
            limit = min(limit, int((time.monotonic() - t0) * self.recording.sample_rate_hz * self.speed))
        return limit

    def frames(self, a0: int, a1: int) -> bytes:
        """Frames of absolute samples [a0, a1) (past the recording's end when looping)."""
        reg, n = self.registers, self.recording.n_samples
        index = np.arange(a0, a1, dtype=np.int64)
        lap, k = np.divmod(index, n)
        t_us = lap * int(reg.t_us[n]) + reg.t_us[k]
        return encode_frames(index, t_us, np.full(len(k), reg.bus), reg.shunt[k], reg.flags[k])

    def _serve(self) -> None:
        t0: float | None = None
        while not self._stop.is_set():
            busy = t0 is not None and self._limit(t0) > self.sent
            if INFO_REQUEST in self._pty.read_requests(0.0 if busy else 0.01):
                self.info_requests += 1
                if not self._pty.write(encode_info(self.info_fields()), self._stop):
                    return
                t0 = time.monotonic() if t0 is None else t0
            if t0 is None:
                continue
            limit = self._limit(t0)
            if limit <= self.sent:
                with self._cond:
                    self._cond.wait(0.01)
                continue
            upto = min(limit, self.sent + CHUNK_SAMPLES)
            if not self._pty.write(self.frames(self.sent, upto), self._stop):
                return
            self.sent = upto


# --- PPK2 -------------------------------------------------------------------------------------
class Ppk2ReplayApi:
    """Stands in for ``ppk2_api.PPK2_API``: streams a recording's samples, its trigger on logic bit ``trigger_bit``.

    ``get_data()`` hands out the next chunk (opaque bytes), ``get_samples(data)`` turns it into
    (µA list, logic list) as ppk2-api does. The current is the recording's power divided by the
    voltage the driver set (``set_source_voltage``), so the driver's V·I is the recording's power
    whatever ``voltage_mv`` it runs at. ``sample_rate_hz`` is the recording's (``Ppk2Meter`` reads
    it); ``replay`` makes the driver label its figures simulated and name the recording.
    """

    def __init__(
        self,
        recording: Recording,
        port: str = "replay",
        *,
        trigger_bit: int = 0,
        chunk_samples: int = CHUNK_SAMPLES,
        gated: bool = False,
    ):
        _replayable(recording)
        if recording.t_s is not None:
            raise RecordingError("the recording is not uniformly sampled; a PPK2 stream has no timestamps to carry it")
        if not 0 <= trigger_bit <= 7:
            raise ValueError(f"trigger_bit {trigger_bit}: the PPK2 has logic inputs D0..D7")
        self.recording = recording
        self.port = port
        self.sample_rate_hz = recording.sample_rate_hz
        self.replay = replay_label(recording)
        self.trigger_bit = trigger_bit
        self.chunk_samples = chunk_samples
        self.calls: list[tuple[Any, ...]] = []
        self.voltage_mv: int | None = None
        self.measuring = False
        self.sent = 0
        self._power = recording.power_w()
        self._logic = recording.trigger().astype(np.int64) << trigger_bit
        self._released = 0 if gated else recording.n_samples
        self._lock = threading.Lock()

    # the API boundary Ppk2Meter calls
    def get_modifiers(self) -> None:
        self.calls.append(("get_modifiers",))

    def use_source_meter(self) -> None:
        self.calls.append(("source",))

    def use_ampere_meter(self) -> None:
        self.calls.append(("ampere",))

    def set_source_voltage(self, mv: int) -> None:
        self.calls.append(("voltage", mv))
        self.voltage_mv = mv

    def toggle_DUT_power(self, state: str) -> None:
        self.calls.append(("power", state))

    def start_measuring(self) -> None:
        self.calls.append(("start",))
        self.measuring = True

    def stop_measuring(self) -> None:
        self.calls.append(("stop",))
        self.measuring = False

    def get_data(self) -> bytes:
        with self._lock:
            if not self.measuring or self.voltage_mv is None:
                return b""
            a0 = self.sent
            a1 = min(self._released, self.recording.n_samples, a0 + self.chunk_samples)
            if a1 <= a0:
                return b""
            self.sent = a1
            return struct.pack("<QQ", a0, a1)

    def get_samples(self, data: bytes) -> tuple[list[float], list[int]]:
        a0, a1 = struct.unpack("<QQ", data)
        volts = (self.voltage_mv or 0) / 1000.0
        micro_amps = self._power[a0:a1] / volts * 1e6
        return micro_amps.tolist(), self._logic[a0:a1].tolist()

    def release(self, upto: int) -> None:
        """Let a gated replay hand out samples up to (not including) index ``upto``."""
        with self._lock:
            self._released = max(self._released, upto)


# --- stepping a meter through the windows --------------------------------------------------------
class Gate(Protocol):
    def release(self, upto: int) -> None: ...


class WindowMeter(Protocol):
    """What ``replay_windows`` needs of a meter (``TriggeredMeter``)."""

    def start(self) -> Any: ...

    def next_window(self, token: Any, timeout_s: float | None = None) -> Any: ...


def window_stops(recording: Recording, post_idle_samples: int = 0) -> np.ndarray:
    """Where a gated replay pauses after each window: mid-gap before the next window; the end after the last.

    A meter completes a window once ``post_idle_samples`` samples follow its falling edge, and
    needs the next token taken before the next rising edge: the gap must leave room for both.
    """
    start, end = recording.edges[:, 0], recording.edges[:, 1]
    stops = np.append((end[:-1] + start[1:]) // 2, recording.n_samples)
    short = np.flatnonzero(stops - end < post_idle_samples + 1)
    if short.size:
        k = int(short[0])
        raise RecordingError(
            f"window {k} is followed by {int(stops[k] - end[k])} samples before the replay must pause; the meter"
            f" needs {post_idle_samples + 1} after a window to complete it"
        )
    return stops


def replay_windows(meter: WindowMeter, gate: Gate, recording: Recording, timeout_s: float = 30.0) -> Iterator[Any]:
    """Each window of ``recording`` as ``meter`` measures it from the gated replay ``gate``, in order.

    Per window, as a run does: take a token (``start``), let the replay stream through the window
    and half the gap after it (the DUT runs), wait for the window (``next_window``).
    """
    post_idle_s = float(getattr(meter, "post_idle_s", 0.0))
    post = math.ceil(post_idle_s * recording.sample_rate_hz)
    for stop in window_stops(recording, post):
        token = meter.start()
        gate.release(int(stop))
        yield meter.next_window(token, timeout_s=timeout_s)


# --- command line ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from ffenergy.recordings.formats import ReadOptions, read_recording

    ap = argparse.ArgumentParser(
        prog="python -m ffenergy.sim.replay",
        description="TEST TOOL: replay a real meter recording as a live meter, so the drivers read real data."
        " Its figures are labelled simulated (source=replay): they never measured the DUT of the run reading it.",
    )
    sub = ap.add_subparsers(dest="device", required=True)
    ina = sub.add_parser("ina226", help="serve the recording as an INA226 logger on a pseudo-terminal")
    ina.add_argument("recording", type=Path, help="a recording ffenergy import reads (file or session folder)")
    ina.add_argument("--port", required=True, type=Path, help="symlink to create to the replay's pty")
    ina.add_argument("--format", default=None, help="the recording's format (default: detected)")
    ina.add_argument("--voltage-v", type=float, default=None, help="supply voltage, if the recording has none")
    ina.add_argument("--speed", type=float, default=1.0, help="times real time; 0: as fast as the host reads")
    ina.add_argument("--once", action="store_true", help="stop after one pass (default: loop, clock running on)")
    args = ap.parse_args(argv)
    try:
        recording = read_recording(args.recording, args.format, ReadOptions(voltage_v=args.voltage_v))
        replay = Ina226Replay(recording, args.port, speed=args.speed, loop=not args.once)
    except RecordingError as exc:
        ap.error(str(exc))
    print(
        f"REPLAY (test tool, not a measurement): {args.recording} ({recording.format}, {recording.board},"
        f" {recording.n_samples} samples at {recording.sample_rate_hz:g} Hz, {recording.n_windows} windows) as an"
        f" INA226 logger on {args.port}; speed {args.speed:g}x{', once' if args.once else ', looping'}."
        " Drivers label its figures simulated.",
        file=sys.stderr,
    )
    with replay:
        sys.stdout.buffer.write(encode_info(replay.info_fields()))  # the "ready" line, as the simulator's
        sys.stdout.flush()
        try:
            while replay.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
