"""Host driver for a device under test speaking hardware/protocol.md over pyserial.

Timeouts, resync after garbage, CRC-error retries and reset detection (BOOT frame) live here;
callers get either a valid reply, a ``DutReset`` (reload and retry) or a ``DutError`` that names
the port, the command and what went wrong. A DUT whose INFO or BOOT frame gives another protocol
version than ``protocol.PROTO_VERSION`` raises ``ProtocolMismatch`` at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import serial

import ffenergy
from ffenergy.firmware import protocol as P
from ffenergy.firmware.reference import ScoredPredictions

QUIET_S = 0.1  # silence inside a partial frame after which the rest is rescanned


class DutError(RuntimeError):
    """The DUT did not answer correctly within the bounded retries."""


class ProtocolMismatch(DutError):
    """The DUT's firmware speaks another protocol version than this ffenergy (its INFO / BOOT payload says which)."""


class DutReset(DutError):
    """The DUT rebooted (BOOT frame): its loaded input and thresholds are gone. ``info``: its BOOT payload."""

    def __init__(self, message: str, info: P.Info):
        super().__init__(message)
        self.info = info


@dataclass(frozen=True)
class DutResult:
    pred: int
    exit_layer: int
    macs: int  # one inference
    ticks: int  # all repeats
    tick_hz: int
    repeats: int
    scores: np.ndarray  # float32 (n_classes,)

    @property
    def seconds_per_inference(self) -> float:
        return self.ticks / self.tick_hz / self.repeats


class Dut:
    """A DUT on ``port`` (a tty path or a pyserial URL such as ``socket://127.0.0.1:PORT``).

    Opening retries for ``open_timeout_s`` (QEMU's TCP server may not listen yet), then handshakes
    by retrying INFO. Each command waits ``timeout_s`` per attempt and makes ``retries`` more attempts.
    """

    def __init__(
        self, port: str, timeout_s: float = 2.0, retries: int = 3, baudrate: int = 115200, open_timeout_s: float = 10.0
    ):
        self.port, self.timeout_s, self.retries = port, timeout_s, retries
        self._parser = P.FrameParser(sync=P.SYNC_RESPONSE)
        self._seq = 0
        self.resets = 0
        self._thresholds: np.ndarray | None = None
        self._ser = self._open(baudrate, open_timeout_s)
        try:
            self.info_ = self.info()
        except DutReset as reset:  # booted while we were asking: the BOOT frame carries INFO too
            self.info_ = reset.info
        except DutError:
            self.close()
            raise
        self.resets = 0  # the power-on BOOT frame is not a reset

    def _open(self, baudrate: int, open_timeout_s: float) -> serial.SerialBase:
        deadline = time.monotonic() + open_timeout_s
        while True:
            try:
                return serial.serial_for_url(self.port, baudrate=baudrate, timeout=0.02, write_timeout=self.timeout_s)
            except (serial.SerialException, OSError) as exc:
                if time.monotonic() > deadline:
                    raise DutError(f"cannot open DUT port {self.port}: {exc} (is the DUT connected/started?)") from exc
                time.sleep(0.05)

    def close(self) -> None:
        self._ser.close()

    def __enter__(self) -> Dut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------
    def info(self) -> P.Info:
        return self._parse_info(self._command(P.Cmd.INFO))

    def ping(self, data: bytes = b"ping") -> float:
        """Round trip in seconds; raises DutError if the echo differs."""
        t0 = time.perf_counter()
        echo = self._command(P.Cmd.PING, data)
        if echo != data:
            raise DutError(f"{self.port}: PING echoed {echo!r} instead of {data!r}")
        return time.perf_counter() - t0

    def load(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32).ravel()
        if x.size != self.info_.n_in:
            raise ValueError(f"input has {x.size} values, the DUT model takes {self.info_.n_in}")
        self._command(P.Cmd.LOAD, P.pack_load(x))

    def set_thresholds(self, thresholds: np.ndarray) -> None:
        thr = np.asarray(thresholds, np.float32).ravel()
        if thr.size != self.info_.n_layers:
            raise ValueError(f"{thr.size} thresholds for a {self.info_.n_layers}-layer model")
        self._command(P.Cmd.SET_THRESHOLDS, P.pack_thresholds(thr))
        self._thresholds = thr

    def infer(self, mode: str, repeats: int = 1, timeout_s: float | None = None) -> DutResult:
        """Run the loaded input ``repeats`` times in ``mode`` (full / light / depth-k)."""
        m, depth = P.mode_args(mode, self.info_.n_layers)
        payload = self._command(P.Cmd.INFER, P.pack_infer(m, depth, repeats), timeout_s)
        r = P.parse_result(payload, self.info_.n_classes)
        return DutResult(r.pred, r.exit_layer, r.macs, r.ticks, self.info_.tick_hz, repeats, r.scores)

    def run(self, x: np.ndarray, modes: list[str], repeats: int = 1, max_resets: int = 2) -> list[DutResult]:
        """Load x and infer it in each mode; after a DUT reset, reload (and re-send thresholds) and retry."""
        resets = 0
        while True:
            try:
                if resets and self._thresholds is not None:
                    self.set_thresholds(self._thresholds)
                self.load(x)
                return [self.infer(mode, repeats) for mode in modes]
            except DutReset as exc:
                resets += 1
                if resets > max_resets:
                    raise DutError(
                        f"{self.port}: reset loop, the DUT rebooted {resets} times in a row "
                        f"while running one input ({exc})"
                    ) from exc

    def predict(self, x: np.ndarray, modes: list[str]) -> dict[str, ScoredPredictions]:
        """Every row of x in every mode (each input is loaded once)."""
        rows = [self.run(xi, modes) for xi in np.asarray(x, np.float32)]
        out = {}
        for j, mode in enumerate(modes):
            out[mode] = ScoredPredictions(
                pred=np.array([r[j].pred for r in rows]),
                exit_layer=np.array([r[j].exit_layer for r in rows]),
                macs=np.array([r[j].macs for r in rows]),
                scores=np.stack([r[j].scores for r in rows]),
            )
        return out

    def _parse_info(self, payload: bytes) -> P.Info:
        """An INFO / BOOT payload, refused before parsing when its first byte (the version) is not ours."""
        version = payload[0] if payload else None
        if version != P.PROTO_VERSION:
            raise ProtocolMismatch(
                f"{self.port}: the DUT's firmware speaks protocol version {version}, this ffenergy "
                f"{ffenergy.__version__} speaks version {P.PROTO_VERSION}: build and flash the firmware from this "
                "ffenergy (ffenergy export, then hardware/README.md), or install the ffenergy that built the firmware"
            )
        return P.parse_info(payload)

    # -- transport --------------------------------------------------------------------------
    def _command(self, cmd: int, payload: bytes = b"", timeout_s: float | None = None) -> bytes:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        name = P.Cmd(cmd).name if cmd in P.Cmd._value2member_map_ else f"command {cmd:#04x}"
        problems: list[str] = []
        for _ in range(self.retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            crc_before = self._parser.crc_errors
            try:
                self._ser.write(P.encode_request(cmd, self._seq, payload))
                frame = self._await(self._seq, timeout)
            except (serial.SerialException, OSError) as exc:
                raise DutError(f"{self.port}: {name} failed, serial port error: {exc}") from exc
            if frame is None:
                problems.append(
                    "corrupted reply (CRC error)"
                    if self._parser.crc_errors > crc_before
                    else f"no reply within {timeout:g} s"
                )
                continue
            if frame.code == P.Status.OK:
                return frame.payload
            if frame.code == P.Status.BAD_CRC:
                problems.append("the DUT saw a corrupted request (CRC error)")
                continue
            if frame.code == P.Status.BAD_LEN:  # also sent for a garbled header (len > 4096): retry
                problems.append("refused with status BAD_LEN (payload length wrong for the command)")
                continue
            status = P.Status(frame.code).name if frame.code in P.Status._value2member_map_ else hex(frame.code)
            raise DutError(f"{self.port}: {name} refused with status {status}")
        stalled = all(p.startswith("no reply") for p in problems)
        raise DutError(
            f"{self.port}: {name} failed after {len(problems)} attempts: {'; '.join(problems)}"
            + (" (DUT stalled, hung or disconnected?)" if stalled else "")
        )

    def _await(self, seq: int, timeout: float) -> P.Frame | None:
        """The reply to ``seq``; None on timeout or when the reply was corrupted (resend)."""
        deadline = time.monotonic() + timeout
        crc_before = self._parser.crc_errors
        skipped = False
        last_rx = time.monotonic()
        while time.monotonic() < deadline:
            data = self._ser.read(max(1, self._ser.in_waiting))
            now = time.monotonic()
            if data:
                last_rx = now
                frames = self._parser.feed(data)
            elif self._parser.buf and now - last_rx > QUIET_S:
                frames = self._parser.skip_partial()  # a partial frame (lost bytes or stray sync): rescan
                skipped = True
            else:
                frames = []
            for frame in frames:
                if frame.code == P.Status.BOOT:
                    self.resets += 1
                    info = self._parse_info(frame.payload)
                    self.info_ = info
                    raise DutReset(
                        f"{self.port}: the DUT reset (BOOT frame) while waiting for a reply; "
                        "its input and thresholds are lost: reload and retry",
                        info,
                    )
                if frame.seq == seq:
                    return frame
            if not data and (skipped or self._parser.crc_errors > crc_before):
                return None  # our reply arrived broken and the line went quiet: resend now
        return None
