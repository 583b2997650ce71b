"""Host driver of the INA226 logger (hardware/meter/) and of its simulator (ffenergy.sim.meter).

A reader thread parses the wire protocol (``ina226_wire``), counts CRC errors, garbage and lost
samples (gaps in the conversion counter), and feeds (t, V, I, trigger) to ``TriggeredMeter``.
If the port vanishes (unplugged, pty closed) it reopens it with bounded retries; if that fails,
every waiting and later call raises ``MeterDisconnected`` naming the port.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Unpack

import numpy as np
import serial

from ffenergy.meters.base import MeterInfo, MeterUnavailable, Provenance
from ffenergy.meters.ina226_wire import FLAG_TRIGGER, INFO_REQUEST, RawSamples, StreamDecoder
from ffenergy.meters.triggered import DOMAIN, TriggeredMeter, WindowOptions

log = logging.getLogger(__name__)
DEFAULT_BAUD = 500_000
_REQUIRED = ("shunt_ohm", "shunt_lsb_v", "bus_lsb_v")
READ_BATCH = 1 << 16  # bytes decoded at once when they are waiting (a tty read returns at most 4 KiB)
STAND_INS = ("simulator", "replay")  # info-line sources whose figures are not measurements of the DUT


@dataclass
class StreamStats:
    """Stream health, for the manifest and for warnings."""

    samples: int = 0
    lost_samples: int = 0  # gaps in the logger's conversion counter (its drops and our CRC rejects)
    crc_errors: int = 0
    garbage_bytes: int = 0
    reopens: int = 0


class _Timeline:
    """Unwraps the 16-bit conversion counter and the 32-bit microsecond clock of one stream segment."""

    def __init__(self, origin_s: float):
        self.origin_s = origin_s
        self.abs_us = 0  # unwrapped time of the last sample, from the segment's first sample
        self.last_us: int | None = None
        self.last_seq: int | None = None

    def convert(self, raw: RawSamples) -> tuple[np.ndarray, int]:
        """Seconds on the meter's continuous timeline, and the samples lost before and inside ``raw``."""
        t_us = raw.t_us.astype(np.int64)
        seq = raw.seq.astype(np.int64)
        prev_us = np.concatenate(([t_us[0] if self.last_us is None else self.last_us], t_us[:-1]))
        abs_us = self.abs_us + np.cumsum((t_us - prev_us) % (1 << 32))
        prev_seq = np.concatenate(([seq[0] - 1 if self.last_seq is None else self.last_seq], seq[:-1]))
        lost = int(((seq - prev_seq - 1) % (1 << 16)).sum())
        self.abs_us, self.last_us, self.last_seq = int(abs_us[-1]), int(t_us[-1]), int(seq[-1])
        return self.origin_s + abs_us * 1e-6, lost


class Ina226Meter(TriggeredMeter):
    """INA226 logger on a serial port (a real board, or the simulator's pty).

    Provenance is ``simulated`` when the info line says ``source=simulator`` or ``source=replay`` (a
    recording replayed by ``ffenergy.sim.replay``: real samples, but not of the DUT this run
    drives), else ``measured``.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUD,
        *,
        info_timeout_s: float = 5.0,
        reopen_retries: int = 10,
        reopen_interval_s: float = 0.5,
        **window_options: Unpack[WindowOptions],
    ):
        super().__init__(**window_options)
        self.port = port
        self.baudrate = baudrate
        self.info_timeout_s = info_timeout_s
        self.reopen_retries = reopen_retries
        self.reopen_interval_s = reopen_interval_s
        self.stats = StreamStats()
        self.header: dict[str, str] = {}
        self._decoder = StreamDecoder()
        self._timeline = _Timeline(0.0)
        self._closing = threading.Event()
        self._ser = self._open()
        self._thread = threading.Thread(target=self._run, name=f"ina226-{port}", daemon=True)
        self._thread.start()

    # --- port handling ----------------------------------------------------------------------
    def _open(self) -> serial.Serial:
        """Open the port and wait for the info line (asking for it with ``i``)."""
        try:
            ser = serial.Serial(self.port, self.baudrate, timeout=0.05)
        except (serial.SerialException, OSError) as exc:
            raise MeterUnavailable(
                f"cannot open the INA226 logger port {self.port}: {exc}. Check the cable and the path"
                " (ls /dev/serial/by-id/), and that your user may open it (group dialout)"
            ) from exc
        try:
            header, seen = self._await_header(ser)
        except BaseException:
            ser.close()
            raise
        if header is not None:
            return ser
        ser.close()
        raise MeterUnavailable(
            f"no INA226 logger info line from {self.port} within {self.info_timeout_s} s ({seen}): is the logger"
            f" sketch flashed (hardware/meter/README.md) and the baud rate {self.baudrate}?"
        )

    def _await_header(self, ser: serial.Serial) -> tuple[dict[str, str] | None, str]:
        """Ask for the info line until it comes; adopt it and the samples after it."""
        decoder = StreamDecoder()
        deadline = time.monotonic() + self.info_timeout_s
        next_ask = 0.0
        got = 0
        try:
            while time.monotonic() < deadline:
                if time.monotonic() >= next_ask:  # an Arduino may still be in its bootloader: ask again
                    ser.write(INFO_REQUEST)
                    next_ask = time.monotonic() + 0.5
                data = ser.read(4096)
                got += len(data)
                items = decoder.feed(data).items
                headers = [(k, item) for k, item in enumerate(items) if isinstance(item, dict)]
                if headers:
                    last, header = headers[-1]
                    self._set_header(header)
                    decoder.crc_errors += self._decoder.crc_errors  # keep the totals across reopens
                    decoder.garbage_bytes += self._decoder.garbage_bytes
                    self._decoder = decoder
                    self._timeline = _Timeline(self._timeline_end())
                    self._ingest(items[last + 1 :])
                    return header, ""
        except (serial.SerialException, OSError) as exc:
            raise MeterUnavailable(f"the INA226 logger port {self.port} failed while opening: {exc}") from exc
        return None, f"{got} bytes, {decoder.frames} valid frames"

    def _set_header(self, header: dict[str, str]) -> None:
        if "error" in header:
            raise MeterUnavailable(
                f"the logger on {self.port} reports {header['error']}: check the INA226 wiring"
                " (SDA/SCL/VCC/GND) and its I2C address (hardware/meter/README.md)"
            )
        missing = [k for k in _REQUIRED if k not in header]
        if missing:
            raise MeterUnavailable(
                f"the logger on {self.port} sent an info line without {', '.join(missing)}:"
                f" {header}; flash the logger sketch of this ffenergy version"
            )
        if self.header and header.get("source") != self.header.get("source"):
            log.warning(
                "meter on %s changed source from %s to %s", self.port, self.header.get("source"), header.get("source")
            )
        self.header = header
        self._bus_lsb = float(header["bus_lsb_v"])
        self._amp_lsb = float(header["shunt_lsb_v"]) / float(header["shunt_ohm"])

    def _timeline_end(self) -> float:
        with self._cond:
            return float(self._cols[0, self._n - 1]) + 1.0 if self._n else 0.0

    # --- reader thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._ser.read(max(1, min(self._ser.in_waiting, READ_BATCH)))
                while data and len(data) < READ_BATCH and self._ser.in_waiting:  # a tty hands out 4 KiB a read
                    data += self._ser.read(min(self._ser.in_waiting, READ_BATCH - len(data)))
            except (serial.SerialException, OSError, TypeError) as exc:  # TypeError: port closed under us
                if self._closing.is_set():
                    return
                if not self._reopen(exc):
                    return
                continue
            if data:
                self._ingest(self._decoder.feed(data).items)

    def _ingest(self, items: list) -> None:
        self.stats.crc_errors = self._decoder.crc_errors
        self.stats.garbage_bytes = self._decoder.garbage_bytes
        for item in items:
            if isinstance(item, dict):  # an unasked info line: the logger reset, its clock restarted
                log.warning("INA226 logger on %s reset (new info line); the stream starts over", self.port)
                try:
                    self._set_header(item)
                except MeterUnavailable as exc:
                    self._fail(exc)
                    return
                self._timeline = _Timeline(self._timeline_end())
                self._restart()
                continue
            t, lost = self._timeline.convert(item)
            self.stats.samples += len(item)
            self.stats.lost_samples += lost
            self._append(
                t, item.bus * self._bus_lsb, item.shunt * self._amp_lsb, (item.flags & FLAG_TRIGGER).astype(np.float64)
            )

    def _reopen(self, exc: BaseException) -> bool:
        """Reopen after the port vanished; False (and the meter failed) when retries run out."""
        self._ser.close()

        def reopen() -> None:
            self._ser = self._open()
            self.stats.reopens += 1

        return self._reopen_with_retries(
            f"meter port {self.port} vanished ({exc})",
            reopen,
            self._closing,
            self.reopen_retries,
            self.reopen_interval_s,
            f"the meter on {self.port}",
        )

    # --- Meter interface --------------------------------------------------------------------
    @property
    def provenance(self) -> Provenance:
        return "simulated" if self.header.get("source") in STAND_INS else "measured"

    @property
    def info(self) -> MeterInfo:
        period = float(self.header.get("period_us", "nan")) * 1e-6
        truth = {k[3:]: _number(v) for k, v in self.header.items() if k.startswith("gt_")}
        details = {
            "port": self.port,
            "baudrate": self.baudrate,
            "header": dict(self.header),
            "stream": dataclasses.asdict(self.stats),
        }
        if truth:
            details["ground_truth"] = truth
        return MeterInfo(
            name="ina226", provenance=self.provenance, domains=(DOMAIN,), update_period_s=period, details=details
        )

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2.0)
        self._ser.close()


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
