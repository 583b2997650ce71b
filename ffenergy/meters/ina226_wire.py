"""INA226 logger wire protocol v1 (hardware/meter/protocol.md): codec and CRC. Pure, no I/O.

Shared by the host driver (``ina226.py``) and the simulated logger (``ffenergy.sim.meter``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ffenergy.crc16 import crc16_rows

SYNC = b"\xa7\x7a"
INFO_PREFIX = b"#FFM1 "
INFO_REQUEST = b"i"
FRAME_LEN = 15
MAX_INFO_LEN = 512
FLAG_TRIGGER = 0x01
FLAG_MISSED = 0x02

_BODY = struct.Struct("<HIHhB")  # seq, t_us, bus, shunt, flags (bytes 2..12)
FRAME_DTYPE = np.dtype(
    [("sync", "S2"), ("seq", "<u2"), ("t_us", "<u4"), ("bus", "<u2"), ("shunt", "<i2"), ("flags", "u1"), ("crc", "<u2")]
)
assert FRAME_DTYPE.itemsize == FRAME_LEN


def encode_frames(seq: np.ndarray, t_us: np.ndarray, bus: np.ndarray, shunt: np.ndarray, flags: np.ndarray) -> bytes:
    """Sample frames for equal-length arrays of raw register values (seq and t_us wrap)."""
    n = len(seq)
    rec = np.zeros(n, dtype=FRAME_DTYPE)
    rec["sync"] = SYNC
    rec["seq"] = np.asarray(seq, np.int64) & 0xFFFF
    rec["t_us"] = np.asarray(t_us, np.int64) & 0xFFFFFFFF
    rec["bus"] = bus
    rec["shunt"] = shunt
    rec["flags"] = flags
    raw = rec.view(np.uint8).reshape(n, FRAME_LEN)
    rec["crc"] = crc16_rows(raw[:, 2:13])
    return rec.tobytes()


def encode_info(fields: dict[str, object]) -> bytes:
    """The info line for ``fields`` (values must not contain spaces)."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c.isspace() for c in text) or "=" in key:
            raise ValueError(f"info field {key}={text!r}: keys and values must be non-empty without spaces")
        parts.append(f"{key}={text}")
    line = INFO_PREFIX + " ".join(parts).encode("ascii") + b"\n"
    if len(line) > MAX_INFO_LEN:
        raise ValueError(f"info line is {len(line)} bytes, the protocol allows {MAX_INFO_LEN}")
    return line


def parse_info(line: bytes) -> dict[str, str]:
    """``key=value`` fields of an info line (with or without its prefix and newline)."""
    text = line.removeprefix(INFO_PREFIX).decode("ascii", "replace").strip()
    out = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


@dataclass
class RawSamples:
    """Raw register values of consecutive decoded frames (numpy arrays, equal length)."""

    seq: np.ndarray
    t_us: np.ndarray
    bus: np.ndarray
    shunt: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)


@dataclass
class Decoded:
    """What one ``feed`` found, in stream order: sample runs and info lines interleaved."""

    items: list[RawSamples | dict[str, str]] = field(default_factory=list)


@dataclass
class StreamDecoder:
    """Incremental decoder with resynchronisation; counts CRC errors and skipped bytes."""

    buf: bytearray = field(default_factory=bytearray)
    crc_errors: int = 0
    garbage_bytes: int = 0
    frames: int = 0

    def feed(self, data: bytes) -> Decoded:
        self.buf.extend(data)
        out = Decoded()
        buf = self.buf
        pos = 0
        while pos < len(buf):
            first = buf[pos]
            if first == SYNC[0] or first == INFO_PREFIX[0]:
                step = self._frames_at(pos, out) if first == SYNC[0] else self._info_at(pos, out)
                if step is None:  # an incomplete record: wait for more bytes
                    break
                pos += step
            else:
                nxt = _next_start(buf, pos + 1)
                nxt = len(buf) if nxt < 0 else nxt
                self.garbage_bytes += nxt - pos
                pos = nxt
        del buf[:pos]
        return out

    def _frames_at(self, pos: int, out: Decoded) -> int | None:
        """Consume aligned frames at ``pos``; bytes consumed, or None if more bytes are needed."""
        buf = self.buf
        if len(buf) - pos < 2:
            return None
        if buf[pos + 1] != SYNC[1]:
            self.garbage_bytes += 1
            return 1
        k = (len(buf) - pos) // FRAME_LEN
        if k == 0:
            return None
        rows = np.frombuffer(buf, np.uint8, k * FRAME_LEN, pos).reshape(k, FRAME_LEN)
        aligned = (rows[:, 0] == SYNC[0]) & (rows[:, 1] == SYNC[1])
        n_aligned = k if aligned.all() else int(np.argmin(aligned))
        rows = rows[:n_aligned]
        want = rows[:, 13].astype(np.uint16) | (rows[:, 14].astype(np.uint16) << np.uint16(8))
        crc_ok = crc16_rows(rows[:, 2:13]) == want
        n_good = n_aligned if crc_ok.all() else int(np.argmin(crc_ok))
        if n_good:
            rec = np.frombuffer(rows[:n_good].tobytes(), FRAME_DTYPE)
            out.items.append(RawSamples(rec["seq"], rec["t_us"], rec["bus"], rec["shunt"], rec["flags"]))
            self.frames += n_good
        if n_good < n_aligned:  # bad CRC: drop the frame's sync byte, rescan from the next byte
            self.crc_errors += 1
            self.garbage_bytes += 1
            return n_good * FRAME_LEN + 1
        return n_good * FRAME_LEN

    def _info_at(self, pos: int, out: Decoded) -> int | None:
        """Consume an info line at ``pos``; bytes consumed, or None if more bytes are needed."""
        buf = self.buf
        have = bytes(buf[pos : pos + len(INFO_PREFIX)])
        if not INFO_PREFIX.startswith(have):
            self.garbage_bytes += 1
            return 1
        end = buf.find(b"\n", pos, pos + MAX_INFO_LEN)
        if end < 0:
            if len(buf) - pos >= MAX_INFO_LEN:  # no newline within the limit: not an info line
                self.garbage_bytes += 1
                return 1
            return None
        if len(have) < len(INFO_PREFIX):
            self.garbage_bytes += 1
            return 1
        out.items.append(parse_info(bytes(buf[pos:end])))
        return end + 1 - pos


def _next_start(buf: bytearray, start: int) -> int:
    """Index of the next byte that may begin a record (sync or info prefix), or -1."""
    a = buf.find(SYNC[:1], start)
    b = buf.find(INFO_PREFIX[:1], start)
    if a < 0:
        return b
    return a if b < 0 else min(a, b)
