"""The INA226 logger wire codec: framing, CRC, resync, info lines."""

import numpy as np

from ffenergy.crc16 import crc16
from ffenergy.meters.ina226_wire import FRAME_LEN, StreamDecoder, encode_frames, encode_info, parse_info


def _frames(n: int, start: int = 0) -> bytes:
    k = np.arange(start, start + n)
    return encode_frames(k, k * 50, np.full(n, 2640), k % 300 - 150, k % 2)


def _samples(items) -> np.ndarray:
    return np.concatenate([x.seq for x in items if not isinstance(x, dict)])


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


def test_roundtrip_in_odd_chunks_keeps_every_field():
    data = _frames(1000)
    dec = StreamDecoder()
    items = []
    for i in range(0, len(data), 7):
        items += dec.feed(data[i : i + 7]).items
    raws = [x for x in items if not isinstance(x, dict)]
    seq = np.concatenate([r.seq for r in raws])
    shunt = np.concatenate([r.shunt for r in raws])
    flags = np.concatenate([r.flags for r in raws])
    assert seq.tolist() == list(range(1000))
    assert shunt.tolist() == [k % 300 - 150 for k in range(1000)]
    assert flags.tolist() == [k % 2 for k in range(1000)]
    assert dec.crc_errors == dec.garbage_bytes == 0


def test_corrupted_frame_is_dropped_counted_and_stream_resyncs():
    data = bytearray(b"\x00\xa7junk" + _frames(50))
    data[6 + 10 * FRAME_LEN + 5] ^= 0x40  # inside frame 10's timestamp
    dec = StreamDecoder()
    seq = _samples(dec.feed(bytes(data)).items)
    assert dec.crc_errors == 1
    assert seq.tolist() == [k for k in range(50) if k != 10]
    assert dec.garbage_bytes == 6 + FRAME_LEN


def test_info_line_between_frames_and_garbage_hash():
    line = encode_info({"device": "ina226-logger", "source": "hardware", "shunt_ohm": 0.1})
    dec = StreamDecoder()
    items = dec.feed(_frames(3) + b"#x" + line + _frames(2, 3)).items
    infos = [x for x in items if isinstance(x, dict)]
    assert infos == [{"device": "ina226-logger", "source": "hardware", "shunt_ohm": "0.1"}]
    assert _samples(items).tolist() == [0, 1, 2, 3, 4]
    assert parse_info(line)["device"] == "ina226-logger"


def test_truncated_frame_waits_for_the_rest():
    data = _frames(2)
    dec = StreamDecoder()
    assert _samples(dec.feed(data[: FRAME_LEN + 4]).items).tolist() == [0]
    assert _samples(dec.feed(data[FRAME_LEN + 4 :]).items).tolist() == [1]
