"""The simulated INA226 logger process: ``python -m ffenergy.sim.meter --port PATH --trigger PATH``.

It reads the DUT's trigger events (8-byte events of hardware/protocol.md, from a FIFO, a tty or a
growing file), turns them into a noisy current trace with ``EnergyModel`` and streams it in the
INA226 logger's wire protocol (hardware/meter/protocol.md) on a pseudo-terminal. ``--port`` is a
symlink it creates to that pty, so the host opens a stable path. Its info line says
``source=simulator`` and carries the ground truth (``gt_*``), also printed as the first stdout line.

Idle samples are paced to wall-clock time. A window's samples are emitted when its falling edge
arrives (the work, and so the active time, is known only then); the stream pauses meanwhile.
SIGUSR1 "unplugs" the logger: the pty closes, the path disappears for ``--replug-delay-s``, then
a fresh pty appears at the same path and the logger restarts (counter and clock from zero).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import queue
import signal
import stat
import sys
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from ffenergy.firmware.protocol import TriggerEvent, parse_trigger_events
from ffenergy.meters.ina226_wire import INFO_REQUEST, encode_info
from ffenergy.sim.model import EnergyModel, TraceSynth
from ffenergy.sim.pty import DeviceProcess, PtyLink, spawn_device

MAX_CATCH_UP_S = 0.2  # idle backlog emitted at most per loop turn after a stall


class TriggerReader(threading.Thread):
    """Reads trigger events from a path into a queue; reopens it when its writer goes away."""

    def __init__(self, path: Path, events: queue.Queue[TriggerEvent]):
        super().__init__(name="trigger-reader", daemon=True)
        self.path = path
        self.events = events
        if not path.exists():
            os.mkfifo(path)

    def run(self) -> None:
        regular = stat.S_ISREG(self.path.stat().st_mode)
        tail = b""
        while True:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY)  # a FIFO blocks here until a writer opens it
            if os.isatty(fd):
                tty.setraw(fd)
            if regular:  # events written before we started are not ours
                os.lseek(fd, 0, os.SEEK_END)
            try:
                while True:
                    try:
                        data = os.read(fd, 4096)
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:
                        if regular:  # follow a growing file
                            time.sleep(0.002)
                            continue
                        self.events.put(TriggerEvent(0, 0))  # the DUT went away (reset): its pin drops
                        break  # reopen and wait for the next writer
                    events, tail = parse_trigger_events(tail + data)
                    for event in events:
                        self.events.put(event)
            finally:
                os.close(fd)
            time.sleep(0.01)


class SimLogger:
    """Streams the trace on a pty linked at ``port``."""

    def __init__(self, model: EnergyModel, port: Path, trigger: Path, replug_delay_s: float = 1.0):
        self.model = model
        self.port = port
        self.synth = TraceSynth(model)
        self.events: queue.Queue[TriggerEvent] = queue.Queue()
        self.reader = TriggerReader(trigger, self.events)
        self.replug_delay_s = replug_delay_s
        self.unplug_requested = threading.Event()
        self.pty = PtyLink(port)

    def plug(self) -> None:
        self.pty.open()
        self.synth.restart()
        self.write(encode_info(self.synth.info_fields()))

    def unplug(self) -> None:
        self.pty.close()

    def write(self, data: bytes) -> None:
        self.pty.write(data)

    def answer_requests(self) -> None:
        if INFO_REQUEST in self.pty.read_requests():
            self.write(encode_info(self.synth.info_fields()))

    def start(self) -> None:
        self.reader.start()
        self.plug()

    def serve(self) -> None:
        """Stream until killed."""
        rising = False
        last = time.monotonic()
        while True:
            try:
                event: TriggerEvent | None = self.events.get(timeout=0.002)
            except queue.Empty:
                event = None
            now = time.monotonic()
            if self.unplug_requested.is_set():
                self.unplug()
                time.sleep(self.replug_delay_s)
                self.unplug_requested.clear()
                self.plug()
                rising, last = False, time.monotonic()
                continue
            self.answer_requests()
            if not rising:
                owed = now - last
                if owed > MAX_CATCH_UP_S:
                    last, owed = now - MAX_CATCH_UP_S, MAX_CATCH_UP_S
                n = int(owed * self.model.sample_rate_hz)
                if n:
                    self.write(self.synth.idle(n))
                    last += n / self.model.sample_rate_hz
            if event is None:
                continue
            if event.level == 1:
                rising = True  # a second rising edge (DUT reset mid-window) restarts the window
            elif rising:
                self.write(self.synth.window(event))
                rising, last = False, time.monotonic()


@dataclass
class SimMeterProcess(DeviceProcess):
    """A running simulated logger; ``port`` is the path to open with ``Ina226Meter``."""

    trigger: Path
    model: EnergyModel

    @property
    def ground_truth(self) -> dict[str, float]:
        return self.model.ground_truth()

    def unplug(self) -> None:
        """Pull the cable: the pty closes and comes back after the replug delay."""
        os.kill(self.proc.pid, signal.SIGUSR1)


def spawn_sim_meter(
    port: Path, trigger: Path, model: EnergyModel | None = None, replug_delay_s: float = 1.0, timeout_s: float = 10.0
) -> SimMeterProcess:
    """Start ``python -m ffenergy.sim.meter`` and wait until its port exists."""
    model = model or EnergyModel()
    args = [
        sys.executable,
        "-m",
        "ffenergy.sim.meter",
        "--port",
        str(port),
        "--trigger",
        str(trigger),
        "--replug-delay-s",
        str(replug_delay_s),
        "--model",
        json.dumps(dataclasses.asdict(model)),
    ]
    proc, _ = spawn_device(args, b"#FFM1", "the simulated meter", timeout_s)
    return SimMeterProcess(proc, Path(port), Path(trigger), model)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ffenergy.sim.meter", description=__doc__.splitlines()[0])
    ap.add_argument("--port", required=True, type=Path, help="symlink to create to the meter's pty")
    ap.add_argument(
        "--trigger",
        required=True,
        type=Path,
        help="where the DUT writes trigger events (a FIFO is made if it does not exist)",
    )
    ap.add_argument("--replug-delay-s", type=float, default=1.0, help="how long SIGUSR1 keeps the meter unplugged")
    ap.add_argument("--model", default="{}", help="EnergyModel fields as JSON, e.g. '{\"seed\": 3}'")
    for f in dataclasses.fields(EnergyModel):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None)
    args = ap.parse_args(argv)
    try:
        fields = json.loads(args.model)
        fields.update(
            {
                f.name: getattr(args, f.name)
                for f in dataclasses.fields(EnergyModel)
                if getattr(args, f.name) is not None
            }
        )
        model = EnergyModel(**fields)
    except (ValueError, TypeError) as exc:
        ap.error(f"bad energy model: {exc}")
    logger = SimLogger(model, args.port, args.trigger, args.replug_delay_s)
    signal.signal(signal.SIGUSR1, lambda *_: logger.unplug_requested.set())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the run stops us itself
    try:
        logger.start()
        sys.stdout.buffer.write(encode_info(logger.synth.info_fields()))  # the spawner's "ready"
        sys.stdout.flush()
        logger.serve()
    finally:
        args.port.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
