"""An emulated X-NUCLEO-LPM01A for CI: ``python -m ffenergy.sim.lpm01a --recording PATH --port PATH``.

A test tool, labelled as one: it answers the PowerShield's ASCII commands (UM2269: htc, version, volt,
freq, acqtime, acqmode, output, format, trigsrc, eventsrc, pwr, start, stop, hrc) on a pseudo-terminal
linked at ``--port``, and on ``start`` streams a real recording (any format ``ffenergy import`` reads)
in the configured format: current (the recording's power over the set voltage) or energy per sample,
``ascii_dec`` or ``bin_hexa``, a timestamp once a second, and an ``event N ris`` at every window edge
(what the board reports for the DUT's timestamp pin on D7). Samples are quantised as the board's wire
format requires, with error feedback (``lpm01a_wire``), so every window's energy stays exact to one
least significant digit. It streams as fast as the host reads (the pty blocks), not in wall-clock time.

Faults for the tests, by sample index: ``--unplug-at`` (the pty and its link vanish for
``--replug-delay-s``, then a fresh board appears that must be configured again; the stream resumes
where it stopped), ``--corrupt-at`` (a garbled sample line, or a binary frame with a broken end),
``--stall-at`` (the stream stops, the port stays open), ``--drop-event N`` (event N never sent; the
counter goes on), ``--refuse CMD`` (``err`` to that command) and ``--version`` (the firmware version).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffenergy.meters import lpm01a_wire as wire
from ffenergy.recordings.formats import read_recording
from ffenergy.recordings.recording import Recording
from ffenergy.sim.pty import DeviceProcess, spawn_device

log = logging.getLogger(__name__)
CHUNK = 4096  # samples encoded per write
READY = b"LPM01A-EMULATOR READY\n"


@dataclass
class Faults:
    unplug_at: int | None = None
    replug_delay_s: float = 0.5
    corrupt_at: int | None = None
    stall_at: int | None = None
    refuse: str | None = None
    drop_event: int | None = None


@dataclass
class BoardState:
    """What the host configured (the emulated board forgets it when unplugged)."""

    controlled: bool = False
    voltage_v: float = 3.3
    freq_hz: int = 100
    output: str = "current"
    fmt: str = "ascii_dec"
    event_edge: str | None = None
    powered: bool = False
    acquiring: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def edge_positions(rec: Recording) -> np.ndarray:
    """Sample indices of the DUT timestamp pin's edges: an EnergyRunner session's opening edge, then every window's."""
    edges = rec.edges.reshape(-1)
    times = rec.details.get("edge_times_s")
    if times is not None and len(times) % 2 == 1:  # EnergyRunner: an opening edge before the first window
        edges = np.concatenate(([round(times[0] * rec.sample_rate_hz)], edges))
    return np.asarray(edges, np.int64)


class Lpm01aEmulator:
    def __init__(self, rec: Recording, port: Path, version: str = "1.0.4", faults: Faults | None = None):
        self.rec = rec
        self.port = port
        self.version = version
        self.faults = faults or Faults()
        self.state = BoardState()
        self.edges = edge_positions(rec)
        self.pos = 0  # next sample of the recording to stream
        self.events_sent = 0
        self.carry = 0.0
        self.master = self.slave = -1
        self._line = b""
        self.unplug_now = False

    # --- the pty ---------------------------------------------------------------------------
    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = self.port.with_name(self.port.name + ".new")
        tmp.unlink(missing_ok=True)
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.port)
        self.state = BoardState()  # a board that was unplugged powers up unconfigured

    def unplug(self) -> None:
        self.port.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            os.close(fd)
        self.master = self.slave = -1
        self._line = b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def say(self, text: str) -> None:
        self.write(text.encode() + b"\r\n")

    # --- commands --------------------------------------------------------------------------
    def poll_commands(self, timeout_s: float) -> None:
        if not select.select([self.master], [], [], timeout_s)[0]:
            return
        try:
            data = os.read(self.master, 1024)
        except OSError:
            return
        self._line += data
        while b"\n" in self._line:
            raw, self._line = self._line.split(b"\n", 1)
            line = raw.decode("ascii", "replace").strip()
            if line:
                self.command(line)

    def refuse(self, cmd: str, why: str) -> None:
        self.say(f"err {cmd}")
        self.say(f"Error detail: {why}")

    def command(self, line: str) -> None:
        cmd, *args = line.split()
        s = self.state
        if cmd == self.faults.refuse:
            self.refuse(cmd, "refused by the emulator (--refuse)")
            return
        if cmd == "htc":
            s.controlled = True
        elif cmd == "hrc":
            s.controlled = False
        elif not s.controlled and cmd not in ("powershield", "version", "help", "echo"):
            self.refuse(cmd, "board not controlled by host: send htc first")
            return
        elif cmd == "version":
            self.say(f"ack version {self.version}")
            return
        elif cmd == "powershield":
            self.say("ack powershield present EMULATED-0001")
            return
        elif cmd == "volt":
            s.voltage_v = _number(args[0]) if args else s.voltage_v
            if not 1.8 <= s.voltage_v <= 3.3:
                self.refuse(cmd, "voltage out of range [1800m; 3300m]")
                return
        elif cmd == "freq":
            hz = round(_number(args[0])) if args else 0
            if hz not in wire.FREQUENCIES_HZ:
                self.refuse(cmd, f"frequency {args} not in the list")
                return
            if hz != round(self.rec.sample_rate_hz):
                self.refuse(cmd, f"the emulator streams its recording at {self.rec.sample_rate_hz:g} Hz only")
                return
            s.freq_hz = hz
        elif cmd == "output" and args and args[0] in ("current", "energy"):
            s.output = args[0]
        elif cmd == "format" and args and args[0] in ("ascii_dec", "bin_hexa"):
            s.fmt = args[0]
        elif cmd == "eventsrc":
            s.event_edge = args[-1] if args else None
        elif cmd == "pwr":
            s.powered = bool(args) and args[0] in ("on", "auto")
        elif cmd == "start":
            problem = self._cannot_start()
            if problem:
                self.refuse(cmd, problem)
                return
            s.acquiring = True
        elif cmd == "stop":
            s.acquiring = False
            self.say("ack stop")
            self.say("Acquisition completed")
            return
        elif cmd in ("acqtime", "acqmode", "funcmode", "trigsrc", "trigdelay", "pwrend", "lcd", "currthre"):
            s.extra[cmd] = " ".join(args)
        else:
            self.refuse(cmd, "unknown command or argument")
            return
        self.say(f"ack {line}")

    def _cannot_start(self) -> str | None:
        s = self.state
        if s.output == "energy" and s.freq_hz > wire.ENERGY_MAX_HZ:
            return f"output energy is limited to {wire.ENERGY_MAX_HZ} Hz"
        if s.fmt == "ascii_dec" and s.freq_hz > wire.ASCII_MAX_HZ and s.extra.get("acqtime") in ("0", "inf"):
            return f"ascii_dec streams at most {wire.ASCII_MAX_HZ} Hz without an acquisition time limit"
        return None

    # --- the stream ------------------------------------------------------------------------
    def values(self, lo: int, hi: int) -> np.ndarray:
        if self.state.output == "energy":
            return self.rec.energy_per_sample_j()[lo:hi]
        return self.rec.power_w()[lo:hi] / self.state.voltage_v

    def stream_chunk(self) -> None:
        """Encode and write the next samples, with the events and timestamps that fall among them."""
        n, rate = self.rec.n_samples, round(self.rec.sample_rate_hz)
        hi = min(self.pos + CHUNK, n)
        marks = [(int(e), "event") for e in self.edges[self.events_sent :] if self.pos <= e < hi]
        marks += [(k, "tick") for k in range((self.pos // rate + 1) * rate, hi, rate) if k > 0]
        faults = self.faults
        for at, kind in ((faults.corrupt_at, "corrupt"), (faults.stall_at, "stall"), (faults.unplug_at, "unplug")):
            if at is not None and self.pos <= at < hi:
                marks.append((at, kind))
        cut = self.pos
        for at, kind in sorted(marks, key=lambda m: (m[0], m[1] != "tick")):
            self._samples(cut, at)
            cut = at
            if kind == "event":
                if self.events_sent != self.faults.drop_event:
                    self._meta_text(wire.event_line(self.events_sent))
                self.events_sent += 1
            elif kind == "tick":
                ms = at * 1000 // rate
                self.write(wire.timestamp_frame(ms) if self._binary else (wire.timestamp_line(ms) + "\r\n").encode())
            elif kind == "corrupt":  # a timestamp frame with a broken end; in ASCII a garbled sample line
                faults.corrupt_at = None
                self.write(
                    wire.timestamp_frame(at * 1000 // rate)[:-2] + b"\x00\x00" if self._binary else b"12#4-0?\r\n"
                )
                cut = at + 1  # that sample is lost
            else:  # stall or unplug: stop streaming here
                self.pos = at
                self.state.acquiring = False
                faults.stall_at = None if kind == "stall" else faults.stall_at
                self.unplug_now = kind == "unplug"
                return
        self._samples(cut, hi)
        self.pos = hi
        if self.pos >= n:
            self.state.acquiring = False
            self.write(wire.binary_frame(wire.META_END_ACQ) if self._binary else b"Acquisition completed\r\n")

    @property
    def _binary(self) -> bool:
        return self.state.fmt == "bin_hexa"

    def _samples(self, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        values = self.values(lo, hi)
        if self._binary:
            codes, self.carry = wire.quantise_binary(values, self.carry)
            self.write(wire.encode_binary(codes))
        else:
            mantissa, exponent, self.carry = wire.quantise_ascii(values, self.carry)
            self.write(wire.encode_ascii(mantissa, exponent))

    def _meta_text(self, text: str) -> None:
        self.write(wire.binary_frame(wire.META_INFO, text.encode()) if self._binary else (text + "\r\n").encode())

    def serve(self) -> None:
        """Answer commands and stream until killed (the port must be plugged)."""
        while True:
            if self.unplug_now:
                self.unplug_now = False
                self.faults.unplug_at = None
                self.unplug()
                time.sleep(self.faults.replug_delay_s)
                self.plug()
            self.poll_commands(0 if self.state.acquiring else 0.05)
            if self.state.acquiring:
                self.stream_chunk()


def _number(text: str) -> float:
    """A UM2269 number: ``3300m``, ``1k``, ``100u``, ``2-3`` (power of ten), ``inf``."""
    units = {"u": 1e-6, "m": 1e-3, "k": 1e3}
    if text[-1:] in units:
        return float(text[:-1]) * units[text[-1]]
    if len(text) > 3 and text[-3] in "+-" and text[:-3].isdigit():
        return float(text[:-3]) * 10.0 ** int(text[-3:])
    return float(text)


def spawn_emulator(recording: Path, port: Path, *args: str, timeout_s: float = 20.0) -> DeviceProcess:
    """Start ``python -m ffenergy.sim.lpm01a`` on ``recording`` and wait until its port exists."""
    argv = [sys.executable, "-m", "ffenergy.sim.lpm01a", "--recording", str(recording), "--port", str(port), *args]
    proc, _ = spawn_device(argv, READY, "the LPM01A emulator", timeout_s)
    return DeviceProcess(proc, Path(port))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ffenergy.sim.lpm01a", description=__doc__.splitlines()[0])
    ap.add_argument("--recording", required=True, type=Path, help="a recording ffenergy import reads")
    ap.add_argument("--port", required=True, type=Path, help="symlink to create to the emulated board's pty")
    ap.add_argument("--version", default="1.0.4", help="firmware version to report")
    ap.add_argument("--unplug-at", type=int, help="sample index at which the board is unplugged")
    ap.add_argument("--replug-delay-s", type=float, default=0.5)
    ap.add_argument("--corrupt-at", type=int, help="sample index replaced by a garbled line or frame")
    ap.add_argument("--stall-at", type=int, help="sample index at which the stream stops")
    ap.add_argument("--refuse", help="command answered with err")
    ap.add_argument("--drop-event", type=int, help="event number left out of the stream (its count goes on)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rec = read_recording(args.recording)
    faults = Faults(args.unplug_at, args.replug_delay_s, args.corrupt_at, args.stall_at, args.refuse, args.drop_event)
    emulator = Lpm01aEmulator(rec, args.port, args.version, faults)
    try:
        emulator.plug()
        sys.stdout.buffer.write(READY)
        sys.stdout.flush()
        emulator.serve()
    finally:
        args.port.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
