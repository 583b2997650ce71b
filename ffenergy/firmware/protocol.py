"""DUT serial protocol v1 (hardware/protocol.md): frame codec, CRC and payload layouts. Pure, no I/O."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from ffenergy.contract import INSN_CLASSES
from ffenergy.crc16 import crc16
from ffenergy.firmware.arrays import SCHEMES, Scheme
from ffenergy.vocabulary import forced_depth

PROTO_VERSION = 1
SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
MAX_PAYLOAD = 4096
HEADER_LEN = 5  # sync, cmd/status, seq, len u16
TRIGGER_EVENT_LEN = 8


class Cmd(IntEnum):
    INFO = 0x01
    LOAD = 0x02
    INFER = 0x03
    SET_THRESHOLDS = 0x04
    PING = 0x05


class Status(IntEnum):
    OK = 0x00
    BAD_CRC = 0x01
    BAD_CMD = 0x02
    BAD_LEN = 0x03
    NOT_LOADED = 0x04
    BAD_ARG = 0x05
    BOOT = 0x80


class InferMode(IntEnum):
    FULL = 0
    LIGHT = 1
    DEPTH = 2


class LoadFormat(IntEnum):
    F32 = 0
    U8 = 1  # x_i = (float)q_i / 255.0f


def _encode(sync: int, code: int, seq: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the protocol limit of {MAX_PAYLOAD}")
    body = struct.pack("<BBH", code & 0xFF, seq & 0xFF, len(payload)) + bytes(payload)
    return bytes([sync]) + body + struct.pack("<H", crc16(body))


def encode_request(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    """A host -> DUT frame."""
    return _encode(SYNC_REQUEST, cmd, seq, payload)


def encode_response(status: int, seq: int, payload: bytes = b"") -> bytes:
    """A DUT -> host frame (used by fakes and tests)."""
    return _encode(SYNC_RESPONSE, status, seq, payload)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``code`` is the command (requests) or the status (responses)."""

    code: int
    seq: int
    payload: bytes


@dataclass
class FrameParser:
    """Incremental decoder with resynchronisation.

    ``feed`` returns the complete frames found; garbage before a sync byte is skipped, and a frame
    with a bad CRC or an oversized length is dropped and scanning restarts one byte after its sync
    byte (so a good frame hidden inside a corrupted one is still found). Counters say what was lost.
    """

    sync: int = SYNC_RESPONSE
    buf: bytearray = field(default_factory=bytearray)
    garbage_bytes: int = 0
    crc_errors: int = 0
    bad_lengths: int = 0

    def feed(self, data: bytes) -> list[Frame]:
        self.buf.extend(data)
        frames: list[Frame] = []
        while True:
            start = self.buf.find(bytes([self.sync]))
            if start < 0:
                self.garbage_bytes += len(self.buf)
                self.buf.clear()
                return frames
            if start:
                self.garbage_bytes += start
                del self.buf[:start]
            if len(self.buf) < HEADER_LEN:
                return frames
            code, seq, length = struct.unpack_from("<BBH", self.buf, 1)
            if length > MAX_PAYLOAD:
                self.bad_lengths += 1
                del self.buf[:1]
                continue
            total = HEADER_LEN + length + 2
            if len(self.buf) < total:
                return frames
            body = bytes(self.buf[1 : HEADER_LEN + length])
            (crc,) = struct.unpack_from("<H", self.buf, HEADER_LEN + length)
            if crc != crc16(body):
                self.crc_errors += 1
                del self.buf[:1]
                continue
            frames.append(Frame(code, seq, bytes(body[4:])))
            del self.buf[:total]

    def skip_partial(self) -> list[Frame]:
        """The line went quiet inside a frame: treat its sync byte as garbage and rescan the rest."""
        if not self.buf:
            return []
        del self.buf[:1]
        self.garbage_bytes += 1
        return self.feed(b"")


@dataclass(frozen=True)
class Info:
    """The INFO (and BOOT) payload."""

    proto_version: int
    fw_version: tuple[int, int, int]
    dtype: str  # "f32" | "int8"
    scheme: Scheme  # "mp" (one pass per candidate label) | "op" (neutral label, heads) | "exit" (heads, no norm)
    statistic: str  # "gap" | "max"
    n_layers: int
    n_classes: int
    prune_after: int
    prune_keep: int
    n_in: int
    dims: tuple[int, ...]  # hidden widths d_1..d_L
    tick_hz: int
    model_name: str


_DTYPES = ("f32", "int8")
_STATISTICS = ("gap", "max")


def pack_info(info: Info) -> bytes:
    head = struct.pack(
        "<12BH",
        info.proto_version,
        *info.fw_version,
        _DTYPES.index(info.dtype),
        SCHEMES.index(info.scheme),
        _STATISTICS.index(info.statistic),
        info.n_layers,
        info.n_classes,
        info.prune_after,
        info.prune_keep,
        0,
        info.n_in,
    )
    return head + struct.pack(f"<{info.n_layers}HI", *info.dims, info.tick_hz) + info.model_name.encode("ascii")


def parse_info(payload: bytes) -> Info:
    if len(payload) < 14:
        raise ValueError(f"INFO payload too short ({len(payload)} bytes)")
    v = struct.unpack_from("<12BH", payload)
    n_layers = v[7]
    need = 14 + 2 * n_layers + 4
    if len(payload) < need:
        raise ValueError(f"INFO payload of {len(payload)} bytes is short for {n_layers} layers (need {need})")
    dims = struct.unpack_from(f"<{n_layers}H", payload, 14)
    (tick_hz,) = struct.unpack_from("<I", payload, 14 + 2 * n_layers)
    try:
        return Info(
            proto_version=v[0],
            fw_version=(v[1], v[2], v[3]),
            dtype=_DTYPES[v[4]],
            scheme=SCHEMES[v[5]],
            statistic=_STATISTICS[v[6]],
            n_layers=n_layers,
            n_classes=v[8],
            prune_after=v[9],
            prune_keep=v[10],
            n_in=v[12],
            dims=tuple(dims),
            tick_hz=tick_hz,
            model_name=payload[need:].decode("ascii", "replace"),
        )
    except IndexError as exc:
        raise ValueError(f"INFO payload has an unknown dtype/scheme/statistic code: {v[4:7]}") from exc


@dataclass(frozen=True)
class Result:
    """The INFER reply."""

    pred: int
    exit_layer: int
    macs: int  # one inference
    ticks: int  # all repeats
    scores: np.ndarray  # float32 (n_classes,)


def pack_result(r: Result) -> bytes:
    return struct.pack("<BBHII", r.pred, r.exit_layer, 0, r.macs, r.ticks) + np.asarray(r.scores, "<f4").tobytes()


def parse_result(payload: bytes, n_classes: int) -> Result:
    need = 12 + 4 * n_classes
    if len(payload) != need:
        raise ValueError(f"RESULT payload is {len(payload)} bytes, expected {need} for {n_classes} classes")
    pred, exit_layer, _, macs, ticks = struct.unpack_from("<BBHII", payload)
    scores = np.frombuffer(payload, "<f4", n_classes, 12).astype(np.float32)
    return Result(pred, exit_layer, macs, ticks, scores)


def mode_args(mode: str, n_layers: int) -> tuple[int, int]:
    """Map a target mode name (full / light / depth-k) to the INFER ``mode, depth`` bytes."""
    depth = forced_depth(mode, n_layers)  # raises on an unknown mode
    if mode == "full":
        return InferMode.FULL, 0
    if depth is None:
        return InferMode.LIGHT, 0
    return InferMode.DEPTH, depth


def pack_infer(mode: int, depth: int, repeats: int) -> bytes:
    if not 1 <= repeats <= 0xFFFF:
        raise ValueError(f"repeats must be in 1..65535, got {repeats}")
    return struct.pack("<BBH", mode, depth, repeats)


def u8_codes(x: np.ndarray) -> np.ndarray | None:
    """The u8 codes q with float32(q)/255 == x exactly, or None when x is not on that grid."""
    x = np.asarray(x, np.float32)
    q = np.rint(x.astype(np.float64) * 255.0)
    if np.any(q < 0) or np.any(q > 255):
        return None
    q8 = q.astype(np.uint8)
    if not np.array_equal(q8.astype(np.float32) / np.float32(255.0), x):
        return None
    return q8


def pack_load(x: np.ndarray) -> bytes:
    """LOAD payload: the compact u8 format when x is exactly on the q/255 grid, else f32."""
    q = u8_codes(x)
    if q is not None:
        return bytes([LoadFormat.U8]) + q.tobytes()
    return bytes([LoadFormat.F32]) + np.asarray(x, "<f4").tobytes()


def pack_thresholds(thresholds: np.ndarray) -> bytes:
    return np.asarray(thresholds, "<f4").tobytes()


COUNTED_EVENT = 0x58  # 'X': a falling edge with executed-instruction counts (the QEMU plugin)
COUNTED_EVENT_LEN = TRIGGER_EVENT_LEN + 8 * len(INSN_CLASSES)  # the counts in INSN_CLASSES order


@dataclass(frozen=True)
class TriggerEvent:
    """One trigger edge: level 1 = rising, 0 = falling; work = MACs since the rising edge (as the
    firmware reports them). ``classes``: on a counted falling edge, the instructions the CPU
    executed since the rising edge, per ``INSN_CLASSES``; empty otherwise."""

    level: int
    work: int
    classes: tuple[int, ...] = ()


def parse_trigger_events(data: bytes) -> tuple[list[TriggerEvent], bytes]:
    """Decode trigger events (8-byte 'T' edges and 48-byte 'X' counted falling edges); returns the
    events and the unconsumed tail.

    Bytes that do not start an event are skipped, so a stream joined mid-event resyncs.
    """
    events: list[TriggerEvent] = []
    n_classes = len(INSN_CLASSES)
    i = 0
    while len(data) - i >= TRIGGER_EVENT_LEN:
        if data[i] == COUNTED_EVENT and data[i + 1] == n_classes:
            if len(data) - i < COUNTED_EVENT_LEN:
                break
            classes = struct.unpack_from(f"<{n_classes}Q", data, i + TRIGGER_EVENT_LEN)
            events.append(TriggerEvent(0, 0, tuple(classes)))
            i += COUNTED_EVENT_LEN
            continue
        if data[i] != 0x54 or data[i + 1] > 1:
            i += 1
            continue
        _, level, _, work = struct.unpack_from("<BBHI", data, i)
        events.append(TriggerEvent(level, work))
        i += TRIGGER_EVENT_LEN
    return events, bytes(data[i:])


def pack_trigger_event(event: TriggerEvent) -> bytes:
    if event.classes:
        head = struct.pack("<BBH", COUNTED_EVENT, len(event.classes), 0) + b"\0" * 4
        return head + struct.pack(f"<{len(event.classes)}Q", *event.classes)
    return struct.pack("<BBHI", 0x54, event.level, 0, event.work)
