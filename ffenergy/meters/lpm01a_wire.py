"""The X-NUCLEO-LPM01A (ST PowerShield, UM2269) serial stream, decoded and encoded. numpy only.

Commands are ASCII lines (``htc``, ``volt 3300m``, ``freq 1k``, ``format ascii_dec``, ``start`` ...); the
board answers ``ack <command> [value]`` or ``err <command>`` (often followed by ``Error detail: ...``).
While it acquires, the stream carries samples (current in A, or with ``output energy`` the energy in J
of each sample period) and metadata:

- ``ascii_dec``: one sample per line, ``DDDDsEE\\r\\n`` = DDDD x 10^(sEE) (``6409-07`` = 640.9 µA); text
  lines in between: ``TimeStamp: 001s 000ms, buff 00%`` (the board's clock, once a second), ``event N
  ris`` (an edge on the event input, D7, with ``eventsrc d7 ...``; N counts events, so a lost one shows),
  ``Acquisition completed``/``end``, error messages, ack/err replies.
- ``bin_hexa``: two bytes per sample, big-endian: the high nibble p, then a 12-bit value m: m x 16^-p.
  Metadata frames start with 0xF0 and a type byte 0xF1..0xF7 (a sample never starts with 0xF) and end
  with 0xFF 0xFF: F1 error text, F2 info text, F3 timestamp (4-byte ms, 1-byte buffer %), F4 end of
  acquisition, F5 overcurrent, F6 target powered down, F7 voltage (2-byte mV). UM2269 does not say how
  an ``event`` is framed in binary; we take it as the ASCII line inside an F2 info frame (to check on a
  real board, hardware/README.md).

Both decoders report each event and timestamp with its position: the number of samples decoded before
it. The encoders (for the emulator, ``ffenergy.sim.lpm01a``) quantise with error feedback: each
sample's rounding error is carried into the next sample, so any run of samples sums to the exact
values' sum within one least significant digit of its last sample.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

BAUDRATE = 3_686_400
FREQUENCIES_HZ = (100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100, 50, 20, 10, 5, 2, 1)
ASCII_MAX_HZ = 5_000  # ascii_dec streams without a time limit up to 5 kHz (10 kHz: 1 s, 20 kHz: 0.5 s)
ENERGY_MAX_HZ = 10_000  # output energy integrates over at least 100 µs
ASCII_SAMPLE_LEN = 9  # DDDDsEE\r\n
META, META_END = 0xF0, b"\xff\xff"
META_ERROR, META_INFO, META_TIMESTAMP, META_END_ACQ, META_OVERCURRENT, META_POWER_DOWN, META_VOLTAGE = range(0xF1, 0xF8)
_META_FIXED = {META_TIMESTAMP: 5, META_END_ACQ: 0, META_OVERCURRENT: 0, META_POWER_DOWN: 0, META_VOLTAGE: 2}
MAX_TEXT_FRAME = 256  # a text frame longer than this without its FF FF end is corrupt
EVENT_LINE = re.compile(r"^event (\d+) (ris|fal)$")
TIMESTAMP_LINE = re.compile(r"^TimeStamp:[ ><]?(\d+)s (\d+)ms, buff (\d+)%$")
END_LINES = ("Acquisition completed", "end")


def freq_arg(hz: int) -> str:
    """The ``freq`` argument for ``hz`` (``100k``, ``1k``, ``500``)."""
    if hz not in FREQUENCIES_HZ:
        raise ValueError(f"LPM01A sampling frequency {hz} Hz: choose one of {', '.join(map(str, FREQUENCIES_HZ))}")
    return f"{hz // 1000}k" if hz >= 1000 else str(hz)


Kind = Literal["event", "tick", "fault"]


@dataclass
class Decoded:
    """What one chunk of the stream held. ``marks`` are in order of arrival, each with its position: the
    number of this chunk's samples that came before it (events and timestamps sit between samples)."""

    samples: np.ndarray
    marks: list[tuple[int, Kind, Any]] = field(default_factory=list)  # (position, kind, value)
    lines: list[str] = field(default_factory=list)  # every other text: replies, messages, errors
    ended: bool = False  # the board ended the acquisition

    def mark(self, position: int, kind: Kind, value: Any) -> None:
        self.marks.append((position, kind, value))

    def _of(self, kind: Kind) -> list[tuple[int, Any]]:
        return [(p, v) for p, k, v in self.marks if k == kind]

    @property
    def events(self) -> list[tuple[int, Any]]:
        """(position, event number)"""
        return self._of("event")

    @property
    def ticks(self) -> list[tuple[int, Any]]:
        """(position, board time in ms)"""
        return self._of("tick")

    @property
    def faults(self) -> list[tuple[int, Any]]:
        """(position, what could not be decoded)"""
        return self._of("fault")


def _text(decoded: Decoded, position: int, line: str) -> None:
    """File one text line (or text frame) of the stream under events, ticks or lines."""
    if m := EVENT_LINE.match(line):
        decoded.mark(position, "event", int(m.group(1)))
    elif m := TIMESTAMP_LINE.match(line):
        decoded.mark(position, "tick", int(m.group(1)) * 1000 + int(m.group(2)))
    else:
        if line.strip() in END_LINES:
            decoded.ended = True
        decoded.lines.append(line)


class AsciiDecoder:
    """``ascii_dec`` stream: fixed 9-byte sample lines decoded in bulk, text lines one by one."""

    _SAMPLE = re.compile(rb"\d{4}[+-]\d{2}")

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> Decoded:
        buf = self._tail + data
        cut = buf.rfind(b"\n") + 1
        self._tail, buf = buf[cut:], buf[:cut]
        out = Decoded(np.zeros(0))
        parts: list[np.ndarray] = []
        n = 0
        pos = 0
        while pos < len(buf):
            run = self._sample_run(buf, pos)
            if run:
                values = _ascii_values(np.frombuffer(buf, np.uint8, count=run * ASCII_SAMPLE_LEN, offset=pos))
                parts.append(values)
                n += run
                pos += run * ASCII_SAMPLE_LEN
                continue
            end = buf.index(b"\n", pos) + 1
            line = buf[pos:end].rstrip(b"\r\n")
            pos = end
            if self._SAMPLE.fullmatch(line):  # a sample line ended by a bare \n
                parts.append(_ascii_values(np.frombuffer(line[:7] + b"\r\n", np.uint8)))
                n += 1
            elif line:
                text = line.decode("ascii", "replace")
                if text[:1].isdigit():  # a sample line that lost or garbled characters
                    out.mark(n, "fault", f"garbled sample line {text[:20]!r}")
                else:
                    _text(out, n, text)
        if len(self._tail) > MAX_TEXT_FRAME:  # no line is this long: not an ascii_dec stream (bin_hexa? noise?)
            out.mark(n, "fault", f"{len(self._tail)} bytes without a line end")
            self._tail = b""
        out.samples = np.concatenate(parts) if parts else np.zeros(0)
        return out

    @staticmethod
    def _sample_run(buf: bytes, pos: int) -> int:
        """How many well-formed 9-byte sample lines start at ``pos`` (checked in bulk)."""
        k = (len(buf) - pos) // ASCII_SAMPLE_LEN
        if k == 0 or not 48 <= buf[pos] <= 57:
            return 0
        a = np.frombuffer(buf, np.uint8, count=k * ASCII_SAMPLE_LEN, offset=pos).reshape(k, ASCII_SAMPLE_LEN)
        digit = (a[:, [0, 1, 2, 3, 5, 6]] >= 48) & (a[:, [0, 1, 2, 3, 5, 6]] <= 57)
        ok = digit.all(axis=1) & ((a[:, 4] == 43) | (a[:, 4] == 45)) & (a[:, 7] == 13) & (a[:, 8] == 10)
        bad = np.flatnonzero(~ok)
        return int(bad[0]) if bad.size else k


def _ascii_values(raw: np.ndarray) -> np.ndarray:
    a = raw.reshape(-1, ASCII_SAMPLE_LEN).astype(np.int64) - 48
    mantissa = a[:, 0] * 1000 + a[:, 1] * 100 + a[:, 2] * 10 + a[:, 3]
    exponent = np.where(a[:, 4] == 45 - 48, -1, 1) * (a[:, 5] * 10 + a[:, 6])
    return mantissa * np.power(10.0, exponent)


class BinaryDecoder:
    """``bin_hexa`` stream: 2-byte samples decoded in bulk between metadata frames.

    After a corrupt frame the byte alignment is unknown: everything up to the next well-formed
    timestamp frame is discarded (the board sends one a second), and decoding resumes there.
    """

    _TIMESTAMP = re.compile(rb"\xf0\xf3[\s\S]{5}\xff\xff")

    def __init__(self) -> None:
        self._tail = b""
        self._resync = False
        self.discarded_bytes = 0

    def feed(self, data: bytes) -> Decoded:
        buf = self._tail + data
        out = Decoded(np.zeros(0))
        parts: list[np.ndarray] = []
        n = 0
        pos = 0
        while pos + 1 < len(buf):
            if self._resync:
                found = self._TIMESTAMP.search(buf, pos)
                skip_to = found.start() if found else max(pos, len(buf) - 8)
                self.discarded_bytes += skip_to - pos
                pos = skip_to
                if not found:
                    break
                self._resync = False
            high = np.frombuffer(buf, np.uint8, count=(len(buf) - pos) // 2 * 2, offset=pos)[0::2]
            meta = np.flatnonzero(high >= 0xF0)
            k = int(meta[0]) if meta.size else len(high)
            if k:
                codes = np.frombuffer(buf, ">u2", count=k, offset=pos)
                parts.append(binary_values(codes))
                n += k
                pos += 2 * k
                continue
            used = self._frame(buf, pos, out, n)
            if used < 0:
                out.mark(n, "fault", f"corrupt metadata frame {buf[pos : pos + 9].hex(' ')}")
                self._resync = True
                pos += 2
            elif used == 0:
                break  # the frame is not complete yet
            else:
                pos += used
        self._tail = buf[pos:]
        out.samples = np.concatenate(parts) if parts else np.zeros(0)
        return out

    @staticmethod
    def _frame(buf: bytes, pos: int, out: Decoded, position: int) -> int:
        """Decode the metadata frame at ``pos``: its length, 0 if incomplete, -1 if corrupt."""
        kind = buf[pos + 1]
        if buf[pos] != META or not META_ERROR <= kind <= META_VOLTAGE:
            return -1
        body = pos + 2
        if kind in (META_ERROR, META_INFO):
            end = buf.find(META_END, body, body + MAX_TEXT_FRAME + 2)
            if end < 0:
                return 0 if len(buf) - body < MAX_TEXT_FRAME + 2 else -1
            text = buf[body:end].decode("ascii", "replace").strip()
            _text(out, position, text if kind == META_INFO else f"error: {text}")
            return end + 2 - pos
        size = _META_FIXED[kind]
        if len(buf) < body + size + 2:
            return 0
        if buf[body + size : body + size + 2] != META_END:
            return -1
        if kind == META_TIMESTAMP:
            ms = int.from_bytes(buf[body : body + 4], "big") & 0x7FFF_FFFF
            out.mark(position, "tick", ms)
        elif kind == META_END_ACQ:
            out.ended = True
            out.lines.append("end")
        elif kind == META_OVERCURRENT:
            out.lines.append("error: overcurrent")
        elif kind == META_POWER_DOWN:
            out.lines.append("error: target powered down")
        return size + 4


def binary_values(codes: np.ndarray) -> np.ndarray:
    """Values of ``bin_hexa`` sample codes: (code & 0xFFF) x 16^-(code >> 12), exact in float64."""
    codes = np.asarray(codes, np.int64)
    return (codes & 0xFFF) * np.ldexp(1.0, -4 * (codes >> 12))


# --- encoding (the emulator's side) ------------------------------------------------------------------


def _check_values(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, np.float64)
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0):
        raise ValueError("the LPM01A streams finite values >= 0; the recording holds others")
    return x


def ascii_exponents(values: np.ndarray) -> np.ndarray:
    """Each value's decimal exponent on the wire (4-digit mantissa): the step of its grid is 10^exponent."""
    x = _check_values(values)
    with np.errstate(divide="ignore"):
        exponent = np.where(x > 0, np.floor(np.log10(np.where(x > 0, x, 1.0))) - 3, -12).astype(np.int64)
    return np.clip(exponent, -99, 99)


def quantise_ascii(values: np.ndarray, carry: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """4-digit mantissas and decimal exponents of ``values`` with error feedback; returns the carry out.

    Values must be >= 0 (the LPM01A measures current one way). The exponent of each sample is that of
    its exact value, so the grid never changes with the carry; mantissas outside 0..9999 are clipped.
    """
    exponent = ascii_exponents(values)
    mantissa, carry = _error_feedback(_check_values(values), np.power(10.0, exponent), 9999, carry)
    return mantissa, exponent, carry


def _error_feedback(x: np.ndarray, scale: np.ndarray, top: int, carry: float) -> tuple[np.ndarray, float]:
    """Integers m_k in 0..top with m_k * scale_k tracking x_k plus the rounding error carried so far."""
    out = []
    for xk, sk in zip(x.tolist(), scale.tolist()):  # sequential by nature; plain floats run ~10x faster
        y = xk + carry
        m = int(y / sk + 0.5)  # round half up (y >= -half a step)
        if m > top:
            m = top
        elif m < 0:
            m = 0
        out.append(m)
        carry = y - m * sk
    return np.asarray(out, np.int64), carry


def encode_ascii(mantissa: np.ndarray, exponent: np.ndarray) -> bytes:
    """``DDDDsEE\\r\\n`` lines, built in bulk."""
    n = len(mantissa)
    a = np.empty((n, ASCII_SAMPLE_LEN), np.uint8)
    m = np.asarray(mantissa, np.int64)
    e = np.abs(np.asarray(exponent, np.int64))
    for col, div in enumerate((1000, 100, 10, 1)):
        a[:, col] = 48 + (m // div) % 10
    a[:, 4] = np.where(np.asarray(exponent) < 0, 45, 43)
    a[:, 5] = 48 + e // 10
    a[:, 6] = 48 + e % 10
    a[:, 7], a[:, 8] = 13, 10
    return a.tobytes()


def binary_steps(values: np.ndarray) -> np.ndarray:
    """Each value's grid step on the wire: 16^-p, the finest (p <= 14) on which it fits in 12 bits."""
    x = _check_values(values)
    with np.errstate(divide="ignore"):
        p = np.floor((math.log2(4095) - np.log2(np.where(x > 0, x, 1e-300))) / 4)
    return np.ldexp(1.0, -4 * np.clip(p, 0, 14).astype(np.int64))


def quantise_binary(values: np.ndarray, carry: float = 0.0) -> tuple[np.ndarray, float]:
    """``bin_hexa`` codes (p << 12 | m, m < 4096, p <= 14) with error feedback; returns the carry out."""
    step = binary_steps(values)
    mantissa, carry = _error_feedback(_check_values(values), step, 4095, carry)
    p = np.rint(-np.log2(step) / 4).astype(np.int64)
    return ((p << 12) | mantissa).astype(np.uint16), carry


def encode_binary(codes: np.ndarray) -> bytes:
    return np.asarray(codes, ">u2").tobytes()


def binary_frame(kind: int, payload: bytes = b"") -> bytes:
    """A metadata frame: 0xF0, ``kind``, ``payload``, 0xFF 0xFF."""
    return bytes((META, kind)) + payload + META_END


def timestamp_line(ms: int, buffer_pct: int = 0) -> str:
    return f"TimeStamp: {ms // 1000:03d}s {ms % 1000:03d}ms, buff {buffer_pct:02d}%"


def timestamp_frame(ms: int, buffer_pct: int = 0) -> bytes:
    return binary_frame(META_TIMESTAMP, (ms & 0x7FFF_FFFF).to_bytes(4, "big") + bytes((buffer_pct,)))


def event_line(number: int, edge: str = "ris") -> str:
    return f"event {number} {edge}"
