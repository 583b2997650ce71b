"""Host driver of the ST X-NUCLEO-LPM01A PowerShield (UM2269), MLPerf Tiny's usual energy meter.

The board powers the DUT at ``voltage_mv`` and streams current (or, with ``output="energy"``, the
energy of each sample period) over USB serial (``lpm01a_wire``). The trigger: the DUT's timestamp pin
wired to the board's D7 input, enabled as an event source (``eventsrc d7 fal``); the board puts an
``event N`` marker into its sample stream at each falling edge, so windows are sample-aligned with no
clock sync. A window runs from one event to the next (the DUT pulses the pin at a window's start and
at its end, EEMBC's timestamp convention): after the first ``opening_events`` of an acquisition
(EnergyRunner's DUT firmware pulses once before its first window), odd events open a window and even
ones close it, counted by the board's own event counter N so that a lost event cannot invert the rest.
An acquisition starts low: after a reopen the board starts a new one, so a window whose end pulse comes
after the replug would invert the phase; keep the DUT idle while the meter is unplugged. A gap in the event
counter N (a lost edge), a corrupt frame or samples missing between the board's once-a-second
timestamps break the stream for the windows open across them (``StreamRestarted``: measure again),
never silently. Time is the sample index over the sample rate, checked against those timestamps.

A missing port, a busy port, a firmware of another generation, an ``err`` reply (with the board's
error detail), a stream that stops for ``stall_timeout_s`` and an unplugged board are clear errors;
an unplugged board is reopened and configured again with bounded retries.

Tested against ``ffenergy.sim.lpm01a`` (an emulator streaming real EnergyRunner recordings), not
against a board: hardware/README.md lists what to check on one.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Literal, Unpack

import numpy as np
import serial

from ffenergy.meters import lpm01a_wire as wire
from ffenergy.meters.base import MeterError, MeterInfo, MeterUnavailable
from ffenergy.meters.triggered import DOMAIN, TriggeredMeter, WindowOptions

log = logging.getLogger(__name__)
FIRMWARE_MAJOR = 1  # the UM2269 protocol generation this driver speaks
ST_VCP_USB_ID = (0x0483, 0x5740)  # STMicroelectronics' virtual COM port, as the PowerShield enumerates
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass
class StreamStats:
    """Stream health, for the manifest and for warnings."""

    samples: int = 0
    events: int = 0
    lost_events: int = 0  # gaps in the event counter
    lost_samples: int = 0  # samples missing between the board's timestamps
    corrupt: int = 0  # garbled sample lines and corrupt binary frames
    discarded_bytes: int = 0  # bytes skipped to find the next timestamp after a corrupt frame
    reopens: int = 0
    messages: list[str] = dataclasses.field(default_factory=list)  # the board's own messages (last 20)


class Lpm01aMeter(TriggeredMeter):
    """An LPM01A on a serial port (a real board, or the emulator's pty)."""

    def __init__(
        self,
        port: str,
        *,
        voltage_mv: int = 3300,
        sample_rate_hz: int = 1000,
        output: Literal["current", "energy"] = "current",
        data_format: Literal["ascii_dec", "bin_hexa"] | None = None,
        event_edge: Literal["fal", "ris"] = "fal",
        opening_events: int = 0,
        baudrate: int = wire.BAUDRATE,
        reply_timeout_s: float = 2.0,
        stall_timeout_s: float = 3.0,
        reopen_retries: int = 10,
        reopen_interval_s: float = 0.5,
        **window_options: Unpack[WindowOptions],
    ):
        super().__init__(**window_options)
        wire.freq_arg(sample_rate_hz)  # raises for a rate the board does not have
        if not 1800 <= voltage_mv <= 3300:
            raise ValueError(f"LPM01A voltage_mv {voltage_mv}: the board supplies 1800..3300 mV")
        if output == "energy" and sample_rate_hz > wire.ENERGY_MAX_HZ:
            raise ValueError(f"LPM01A output energy runs at most {wire.ENERGY_MAX_HZ} Hz; lower sample_rate_hz")
        fmt = data_format or ("ascii_dec" if sample_rate_hz <= wire.ASCII_MAX_HZ else "bin_hexa")
        if fmt == "ascii_dec" and sample_rate_hz > wire.ASCII_MAX_HZ:
            raise ValueError(
                f"LPM01A ascii_dec streams at most {wire.ASCII_MAX_HZ} Hz without a time limit;"
                " use data_format bin_hexa or a lower sample_rate_hz"
            )
        if opening_events < 0:
            raise ValueError(f"opening_events {opening_events}: must be >= 0")
        if event_edge not in ("fal", "ris"):
            raise ValueError(f"LPM01A event_edge {event_edge!r}: 'fal' (falling edges on D7) or 'ris' (rising)")
        self.port, self.baudrate = port, baudrate
        self.voltage_v = voltage_mv / 1000.0
        self.sample_rate_hz, self.output, self.data_format = sample_rate_hz, output, fmt
        self.event_edge, self.opening_events = event_edge, opening_events
        self.reply_timeout_s, self.stall_timeout_s = reply_timeout_s, stall_timeout_s
        self.reopen_retries, self.reopen_interval_s = reopen_retries, reopen_interval_s
        self.stats = StreamStats()
        self.firmware = ""
        self.board_id = ""
        self._closing = threading.Event()
        self._next_index = 0  # time index of the next sample (sample_rate_hz ticks from the first)
        self._ser = self._open()
        self._thread = threading.Thread(target=self._run, name=f"lpm01a-{port}", daemon=True)
        self._thread.start()

    @staticmethod
    def port_candidates() -> str:
        """Serial ports here that may be a PowerShield (ST's virtual COM port USB id), for ``ffenergy meters``."""
        from serial.tools import list_ports

        ports = sorted(p.device for p in list_ports.comports() if (p.vid, p.pid) == ST_VCP_USB_ID)
        vid, pid = ST_VCP_USB_ID
        return f"ports with its USB id {vid:04x}:{pid:04x} here: {', '.join(ports) if ports else 'none'}"

    # --- port and commands ------------------------------------------------------------------
    def _open(self) -> serial.Serial:
        try:
            ser = serial.Serial(self.port, self.baudrate, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            busy = "lock" in str(exc).lower() or "busy" in str(exc).lower()
            why = (
                "another program holds it (STM32CubeMonitor-Power, EnergyRunner, a serial terminal): close it"
                if busy
                else "check the USB cable and the path (ls /dev/serial/by-id/), and that your user may open it"
                " (group dialout)"
            )
            raise MeterUnavailable(f"cannot open the LPM01A port {self.port}: {exc}; {why}") from exc
        try:
            self._configure(ser)
        except BaseException:
            ser.close()
            raise
        return ser

    def _configure(self, ser: serial.Serial) -> None:
        """Take control, check the firmware, configure and start the acquisition."""
        self._pending = b""
        self._command(ser, "htc")
        reply = self._command(ser, "version")
        found = _VERSION.search(reply)
        if not found or int(found.group(1)) != FIRMWARE_MAJOR:
            raise MeterUnavailable(
                f"the LPM01A on {self.port} reports firmware version {reply!r}; this driver speaks the UM2269"
                f" protocol of PowerShield firmware {FIRMWARE_MAJOR}.x with event reporting (eventsrc). Flash"
                " that firmware (ST's STM32CubeMonitor-Power updates it)"
            )
        self.firmware = found.group(0)
        self.board_id = self._command(ser, "powershield")
        for cmd in (
            f"volt {round(self.voltage_v * 1000)}m",
            f"freq {wire.freq_arg(self.sample_rate_hz)}",
            "acqtime 0",
            f"output {self.output}",
            f"format {self.data_format}",
            "trigsrc sw",
            f"eventsrc d7 {self.event_edge}",
            "pwr on",
        ):
            self._command(ser, cmd)
        self._decoder: wire.AsciiDecoder | wire.BinaryDecoder = (
            wire.AsciiDecoder() if self.data_format == "ascii_dec" else wire.BinaryDecoder()
        )
        self._first_event: int | None = None
        self._last_event: int | None = None
        self._level = 0.0
        self._tick: tuple[int, int] | None = None  # (acquisition sample count, board ms) of the last timestamp
        self._acq_samples = 0
        self._command(ser, "start")
        self._last_data = time.monotonic()
        if self._pending:  # samples that came right behind the ack of start
            self._ingest(self._decoder.feed(self._pending))

    def _command(self, ser: serial.Serial, cmd: str) -> str:
        """Send ``cmd``; its ack's text after the command word, or MeterUnavailable with the board's reason."""
        word = cmd.split()[0]
        ser.write(cmd.encode("ascii") + b"\n")
        deadline = time.monotonic() + self.reply_timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self._read_line(ser)
            if line is None:
                continue
            head, _, rest = line.partition(" ")
            if head == "ack" and rest.split(" ")[:1] == [word]:
                # the value follows the command word; some firmware prints it on lines before the ack
                return rest[len(word) :].strip() or " ".join(seen)
            if line.lower().startswith("err") and word in line.replace(":", " ").split():
                detail = self._error_detail(ser)
                raise MeterUnavailable(
                    f"the LPM01A on {self.port} refused {cmd!r} ({line}{': ' + detail if detail else ''});"
                    + _HINTS.get(word, " check the option against UM2269 and the board's firmware")
                )
            seen.append(line)
        raise MeterUnavailable(
            f"no reply to {cmd!r} from {self.port} within {self.reply_timeout_s} s (got {seen[-3:]}): is it an"
            f" LPM01A (PowerShield firmware), at {self.baudrate} baud, and not acquiring for another program?"
        )

    def _read_line(self, ser: serial.Serial) -> str | None:
        while b"\n" not in self._pending:
            try:
                data = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise MeterUnavailable(f"the LPM01A port {self.port} failed while configuring: {exc}") from exc
            if not data:
                return None
            self._pending += data
        raw, self._pending = self._pending.split(b"\n", 1)
        return raw.decode("ascii", "replace").strip() or None

    def _error_detail(self, ser: serial.Serial) -> str:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            line = self._read_line(ser)
            if line and line.lower().startswith("error detail"):
                return line.split(":", 1)[-1].strip()
        return ""

    # --- reader thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._ser.read(max(1, min(self._ser.in_waiting, 1 << 16)))
            except (serial.SerialException, OSError, TypeError) as exc:
                if self._closing.is_set() or not self._reopen(exc):
                    return
                continue
            now = time.monotonic()
            if data:
                self._last_data = now
                self._ingest(self._decoder.feed(data))
            elif now - self._last_data > self.stall_timeout_s:
                self._stream_down(f"no data from the LPM01A on {self.port} for {self.stall_timeout_s} s")
                self._fail(
                    MeterError(
                        f"the LPM01A on {self.port} stopped streaming: no data for {self.stall_timeout_s} s while"
                        " acquiring (stream stalled). Press its reset button or replug it, then resume the run"
                        " (ffenergy run CONFIG --resume RUN_DIR)"
                    )
                )
                return

    def _ingest(self, decoded: wire.Decoded) -> None:
        """Append the samples, cutting them at every event, timestamp and fault in stream order."""
        done = 0
        for position, kind, value in decoded.marks:  # in order of arrival, so in stream order
            self._append_samples(decoded.samples[done:position])
            done = position
            if kind == "tick":
                self._on_tick(int(value))
            elif kind == "event":
                self._on_event(int(value))
            else:
                self.stats.corrupt += 1
                log.warning("LPM01A on %s: %s; windows open across it are measured again", self.port, value)
                self._restart(f"corrupt data from the LPM01A: {value}")
                if isinstance(self._decoder, wire.AsciiDecoder):  # a garbled line stood for one sample
                    self._skip(1)
        self._append_samples(decoded.samples[done:])
        if isinstance(self._decoder, wire.BinaryDecoder):
            self.stats.discarded_bytes = self._decoder.discarded_bytes
        for line in decoded.lines:
            self._on_message(line)
        if decoded.ended:
            self._fail(
                MeterError(
                    f"the LPM01A on {self.port} ended its acquisition ({'; '.join(self.stats.messages[-3:])});"
                    " check the DUT's supply (overcurrent?) and resume the run"
                )
            )

    def _append_samples(self, values: np.ndarray) -> None:
        n = len(values)
        if n == 0:
            return
        t = (self._next_index + np.arange(n)) / self.sample_rate_hz
        self._next_index += n
        self._acq_samples += n
        self.stats.samples += n
        # current: I; energy: the mean current over the sample period, so that V * I * dt is the energy
        current = values if self.output == "current" else values * self.sample_rate_hz / self.voltage_v
        self._append(t, np.full(n, self.voltage_v), current, np.full(n, self._level))

    def _on_event(self, number: int) -> None:
        self.stats.events += 1
        if self._first_event is None:
            self._first_event = number
        elif number != (self._last_event or 0) + 1:
            lost = number - (self._last_event or 0) - 1
            self.stats.lost_events += max(lost, 1)
            log.warning("LPM01A on %s: event %d follows event %s (%d lost)", self.port, number, self._last_event, lost)
            self._restart(f"{lost} trigger events lost before event {number}")
        self._last_event = number
        # the level from the board's counter, not by toggling: a lost event cannot invert the later windows
        after = number - self._first_event + 1 - self.opening_events  # window edges seen, this one included
        self._level = float(after > 0 and after % 2 == 1)

    def _on_tick(self, ms: int) -> None:
        if self._tick is not None:
            n0, ms0 = self._tick
            expected = n0 + round((ms - ms0) * self.sample_rate_hz / 1000)
            lost = expected - self._acq_samples
            if lost > 0:
                log.warning("LPM01A on %s: %d samples missing before board time %d ms", self.port, lost, ms)
                if self._restarts[-1:] != [self.position]:  # not already broken here (a corrupt frame)
                    self._restart(f"{lost} samples missing before the LPM01A's timestamp {ms} ms")
                self._skip(lost)
            elif lost < 0:
                log.warning("LPM01A on %s: %d samples more than its clock allows by %d ms", self.port, -lost, ms)
                self._acq_samples = expected
        self._tick = (self._acq_samples, ms)

    def _skip(self, lost: int) -> None:
        """``lost`` samples never arrived: the timeline jumps over them."""
        self.stats.lost_samples += lost
        self._next_index += lost
        self._acq_samples += lost

    def _on_message(self, line: str) -> None:
        self.stats.messages = [*self.stats.messages[-19:], line]
        if line.lower().startswith(("error", "err ")):
            log.warning("LPM01A on %s says: %s", self.port, line)

    def _reopen(self, exc: BaseException) -> bool:
        """Reopen and configure again after the port vanished; False (and the meter failed) when retries run out."""
        self._ser.close()
        self._next_index += round(self.sample_rate_hz)  # a second of unknown length between the streams

        def reopen() -> None:
            self._ser = self._open()
            self.stats.reopens += 1

        return self._reopen_with_retries(
            f"LPM01A port {self.port} vanished ({exc})",
            reopen,
            self._closing,
            self.reopen_retries,
            self.reopen_interval_s,
            f"the LPM01A board on {self.port}",
        )

    # --- Meter interface --------------------------------------------------------------------
    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="lpm01a",
            provenance="measured",
            domains=(DOMAIN,),
            update_period_s=1.0 / self.sample_rate_hz,
            details={
                "port": self.port,
                "firmware": self.firmware,
                "board_id": self.board_id,
                "voltage_v": self.voltage_v,
                "sample_rate_hz": self.sample_rate_hz,
                "output": self.output,
                "format": self.data_format,
                "trigger": f"D7 events ({self.event_edge} edges), {self.opening_events} opening",
                "stream": dataclasses.asdict(self.stats),
            },
        )

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2.0)
        try:
            self._ser.write(b"stop\n")
            self._ser.write(b"hrc\n")
        except (serial.SerialException, OSError):
            pass  # the board is gone; nothing left to release
        self._ser.close()


_HINTS = {
    "htc": " the board may be in standalone mode with a menu open: press its reset button",
    "eventsrc": " this firmware has no event reporting on D7; flash the PowerShield firmware EnergyRunner uses",
    "volt": " the board supplies 1800..3300 mV",
    "freq": " use one of " + ", ".join(map(str, wire.FREQUENCIES_HZ)) + " Hz",
    "start": " the format, output and frequency do not go together (ascii_dec: <= 5 kHz; energy: <= 10 kHz)",
}
