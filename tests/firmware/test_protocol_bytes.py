"""The protocol's bytes exactly (hardware/protocol.md): reserved fields zero, unsigned fields past the signed
range, float32 arrays whatever dtype comes in, and the trigger-event scanner's resync over bytes that only
look like an event. A round trip through the same codec hides a field packed wrong both ways."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ffenergy.firmware import protocol as P


def test_a_response_frame_byte_by_byte():
    frame = P.encode_response(P.Status.BAD_ARG, 0x1FF, b"ab")  # seq wraps to one byte
    body = bytes([0x05, 0xFF, 0x02, 0x00]) + b"ab"
    assert frame == bytes([0x5A]) + body + P.crc16(body).to_bytes(2, "little")


def test_skip_partial_counts_the_dropped_sync_byte_and_finds_the_frame_behind_it():
    good = P.encode_response(P.Status.OK, 4, b"hi")
    p = P.FrameParser()
    assert p.feed(bytes([0x5A, 0x00, 0x01, 0x40, 0x00]) + good) == []  # a header announcing 64 bytes
    assert p.skip_partial() == [P.Frame(0, 4, b"hi")]
    assert p.garbage_bytes == 5  # the stale sync byte and the 4 header bytes before the good frame
    assert p.skip_partial() == [] and p.garbage_bytes == 5  # nothing buffered: nothing dropped


def test_info_payload_layout_with_values_past_the_signed_range():
    info = P.Info(1, (200, 1, 255), "f32", "mp", "gap", 3, 200, 1, 2, 40_000, (50_000, 300, 10), 4_000_000_000, "net")
    payload = P.pack_info(info)
    assert payload[:14] == struct.pack("<12BH", 1, 200, 1, 255, 0, 0, 0, 3, 200, 1, 2, 0, 40_000)
    assert payload[11] == 0  # reserved
    assert payload[14:] == struct.pack("<3HI", 50_000, 300, 10, 4_000_000_000) + b"net"
    assert P.parse_info(payload) == info


def test_result_payload_layout_and_float32_scores_from_any_dtype():
    r = P.Result(250, 3, 3_000_000_000, 4_000_000_000, np.array([0.5, -2.0, 1e-3], np.float64))
    payload = P.pack_result(r)
    assert len(payload) == 12 + 4 * 3
    assert payload[:12] == struct.pack("<BBHII", 250, 3, 0, 3_000_000_000, 4_000_000_000)
    assert payload[2:4] == b"\0\0"  # reserved
    assert payload[12:] == np.array([0.5, -2.0, 1e-3], "<f4").tobytes()
    back = P.parse_result(payload, 3)
    assert (back.pred, back.exit_layer, back.macs, back.ticks) == (250, 3, 3_000_000_000, 4_000_000_000)


def test_thresholds_go_as_little_endian_float32_whatever_comes_in():
    assert P.pack_thresholds(np.array([0.25, np.inf])) == np.array([0.25, np.inf], "<f4").tobytes()
    assert P.pack_thresholds([1.0, 2.0]) == struct.pack("<2f", 1.0, 2.0)


def test_trigger_events_on_the_wire():
    assert P.pack_trigger_event(P.TriggerEvent(1, 3_000_000_000)) == b"T\x01\x00\x00" + struct.pack("<I", 3_000_000_000)
    counted = P.pack_trigger_event(P.TriggerEvent(0, 0, (1, 2, 3, 4, 5)))
    assert counted[:8] == b"X\x05" + bytes(6) and counted[8:] == struct.pack("<5Q", 1, 2, 3, 4, 5)


def test_the_scanner_skips_what_only_looks_like_an_event():
    rise, fall = P.TriggerEvent(1, 0), P.TriggerEvent(0, 3_000_000_000)
    counted = P.TriggerEvent(0, 0, (9, 8, 7, 6, 5))
    stream = (
        b"abc"  # garbage before the first event
        + P.pack_trigger_event(rise)
        + b"T\x02"  # a 'T' whose level is no edge
        + b"X\x04"  # an 'X' announcing the wrong number of classes
        + b"\x05"  # the class count alone, no 'X'
        + P.pack_trigger_event(fall)
        + P.pack_trigger_event(counted)
        + b"\x00T\x01"  # a tail too short for an event
    )
    events, tail = P.parse_trigger_events(stream)
    assert events == [rise, fall, counted]
    assert tail == b"\x00T\x01"
    events, tail = P.parse_trigger_events(stream[: -3 - P.COUNTED_EVENT_LEN + 10])  # a counted edge cut short
    assert events == [rise, fall] and tail == P.pack_trigger_event(counted)[:10]


def test_info_refusals_name_the_size_and_the_codes():
    info = P.Info(1, (0, 1, 0), "int8", "op", "max", 2, 10, 0, 0, 784, (128, 64), 25_000_000, "")
    payload = P.pack_info(info)
    assert len(payload) == 14 + 2 * 2 + 4 and P.parse_info(payload) == info  # an empty model name
    with pytest.raises(ValueError, match=r"^INFO payload too short \(13 bytes\)$"):
        P.parse_info(payload[:13])
    with pytest.raises(ValueError, match=r"^INFO payload of 21 bytes is short for 2 layers \(need 22\)$"):
        P.parse_info(payload[:21])
    bad = bytearray(payload)
    bad[6] = 7  # no such statistic
    with pytest.raises(ValueError, match=r"^INFO payload has an unknown dtype/scheme/statistic code: \(1, 1, 7\)$"):
        P.parse_info(bytes(bad))


def test_result_length_must_match_the_classes():
    r = P.Result(1, 1, 10, 20, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"^RESULT payload is 24 bytes, expected 28 for 4 classes$"):
        P.parse_result(P.pack_result(r), 4)


def test_infer_arguments_and_repeats_bounds():
    assert P.pack_infer(P.InferMode.DEPTH, 3, 1) == bytes([2, 3, 1, 0])
    assert P.pack_infer(P.InferMode.LIGHT, 0, 0xFFFF) == bytes([1, 0, 0xFF, 0xFF])
    for bad in (0, 0x10000):
        with pytest.raises(ValueError, match=rf"^repeats must be in 1..65535, got {bad}$"):
            P.pack_infer(P.InferMode.FULL, 0, bad)
    assert P.mode_args("full", 3) == (P.InferMode.FULL, 0)
    assert P.mode_args("depth-3", 3) == (P.InferMode.DEPTH, 3)


def test_u8_codes_cover_the_whole_grid_and_nothing_off_it():
    grid = np.arange(256, dtype=np.float32) / np.float32(255.0)
    assert P.u8_codes(grid).tolist() == list(range(256))
    assert P.u8_codes(np.array([-1 / 255], np.float32)) is None
    assert P.u8_codes(np.array([256 / 255], np.float32)) is None
    assert P.u8_codes(np.array([0.5], np.float32)) is None  # between 127/255 and 128/255
    assert P.pack_load(np.array([0.5, 1.0], np.float32)) == bytes([0]) + np.array([0.5, 1.0], "<f4").tobytes()


def test_payload_size_limit_and_short_info_at_their_boundaries():
    assert len(P.encode_request(P.Cmd.LOAD, 1, bytes(P.MAX_PAYLOAD))) == P.HEADER_LEN + P.MAX_PAYLOAD + 2
    head = P.pack_info(P.Info(1, (0, 1, 0), "f32", "mp", "gap", 0, 2, 0, 0, 4, (), 1, ""))[:14]
    with pytest.raises(ValueError, match=r"^INFO payload of 14 bytes is short for 0 layers \(need 18\)$"):
        P.parse_info(head)
    info = P.Info(1, (0, 1, 0), "f32", "mp", "gap", 1, 2, 0, 0, 4, (3,), 1, "x")
    assert P.parse_info(P.pack_info(info)[:-1] + b"\xff").model_name == "\ufffd"  # a stray byte, not an error


def test_the_parser_counts_every_loss():
    p = P.FrameParser()
    assert p.feed(b"\x00\x01\x02") == [] and p.garbage_bytes == 3
    big = bytes([0x5A, 0, 1, 0xFF, 0xFF])
    good = P.encode_response(0, 9, b"k")
    assert p.feed(big + big + good) == [P.Frame(0, 9, b"k")] and p.bad_lengths == 2
    bad = bytearray(P.encode_response(0, 1, b"ab"))
    bad[-1] ^= 1
    assert p.feed(bytes(bad) + bytes(bad) + good) == [P.Frame(0, 9, b"k")] and p.crc_errors == 2
    q = P.FrameParser()
    q.feed(b"\x01\x5a\x00\x01\x40\x00")  # a byte of garbage, then a header announcing 64 bytes
    q.skip_partial()
    assert q.garbage_bytes == 1 + 5


def test_events_after_a_counted_edge_are_read_and_reserved_bytes_ignored():
    counted = P.TriggerEvent(0, 0, (1, 1, 1, 1, 1))
    rise = P.TriggerEvent(1, 7)
    stream = P.pack_trigger_event(counted) + P.pack_trigger_event(rise) + b"T\x00\x05\x00" + bytes(4)
    events, tail = P.parse_trigger_events(stream)
    assert events == [counted, rise, P.TriggerEvent(0, 0)] and tail == b""


def test_a_frame_right_behind_a_stray_sync_byte_is_found_after_an_oversized_or_corrupt_header():
    """The stray 0x5A makes the good frame's first bytes read as a header: with a 32-byte payload its length
    field reads 8192 (oversized); with a 1-byte payload and padding it reads 259 and fails its CRC. Either
    way the scan restarts one byte on, where the good frame's own sync byte is."""
    big = P.encode_response(0, 0, bytes(32))
    p = P.FrameParser()
    assert p.feed(b"\x5a" + big) == [P.Frame(0, 0, bytes(32))] and p.bad_lengths == 1
    small = P.encode_response(0, 3, b"z")
    q = P.FrameParser()
    assert q.feed(b"\x5a" + small + bytes(300)) == [P.Frame(0, 3, b"z")] and q.crc_errors == 1
    full = P.encode_response(0, 1, bytes(P.MAX_PAYLOAD))
    assert P.FrameParser().feed(full) == [P.Frame(0, 1, bytes(P.MAX_PAYLOAD))]  # the largest payload allowed


def test_frames_carry_an_empty_payload_by_default():
    assert P.encode_request(P.Cmd.PING, 7) == P.encode_request(P.Cmd.PING, 7, b"")
    assert len(P.encode_request(P.Cmd.PING, 7)) == len(P.encode_response(P.Status.OK, 7)) == P.HEADER_LEN + 2
