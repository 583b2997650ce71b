import dataclasses
import re

import numpy as np
import pytest

from ffenergy.firmware import protocol as P
from ffenergy.firmware.launch import firmware_source_dir


def test_crc_check_value():
    assert P.crc16(b"123456789") == 0x29B1


def test_firmware_and_host_define_the_same_protocol_version():
    header = (firmware_source_dir() / "core" / "proto.h").read_text()
    (defined,) = re.findall(r"^#define FF_PROTO_VERSION (\d+)$", header, re.M)
    assert int(defined) == P.PROTO_VERSION
    proto_c = (firmware_source_dir() / "core" / "proto.c").read_text()
    assert "*p++ = FF_PROTO_VERSION;" in proto_c  # the INFO payload's first byte is the define, not a literal


def test_frame_roundtrip_and_layout():
    f = P.encode_request(P.Cmd.PING, 7, b"\x01\x02")
    assert f[:5] == bytes([0xA5, 0x05, 7, 2, 0])
    assert int.from_bytes(f[-2:], "little") == P.crc16(f[1:-2])
    assert P.FrameParser(sync=P.SYNC_REQUEST).feed(f) == [P.Frame(5, 7, b"\x01\x02")]


def test_parser_resyncs_after_garbage_corruption_and_split_reads():
    good = P.encode_response(P.Status.OK, 3, b"abc")
    bad = bytearray(P.encode_response(P.Status.OK, 2, b"xyz"))
    bad[6] ^= 0x40
    p = P.FrameParser()
    stream = b"\x00\xff\x5a" + bytes(bad) + good
    frames = [fr for i in range(len(stream)) for fr in p.feed(stream[i : i + 1])]
    assert frames == []  # the stray sync byte announced a long frame that swallowed the good one
    assert p.skip_partial() == [P.Frame(0, 3, b"abc")]  # the line went quiet: rescan
    assert p.crc_errors >= 1 and p.garbage_bytes > 0


def test_parser_finds_frame_inside_a_truncated_one():
    # a frame that lost its tail is followed by a good one: scanning restarts after the bad sync byte
    broken = P.encode_response(P.Status.OK, 1, b"0123456789")[:-4]
    good = P.encode_response(P.Status.OK, 2, b"ok")
    p = P.FrameParser()
    assert p.feed(broken + good + bytes(20)) == [P.Frame(0, 2, b"ok")]


def test_oversized_length_is_dropped():
    p = P.FrameParser()
    assert p.feed(bytes([0x5A, 0, 1, 0xFF, 0xFF]) + P.encode_response(0, 9, b"")) == [P.Frame(0, 9, b"")]
    assert p.bad_lengths == 1
    with pytest.raises(ValueError, match="exceeds"):
        P.encode_request(P.Cmd.PING, 0, bytes(P.MAX_PAYLOAD + 1))


def test_info_and_result_roundtrip():
    info = P.Info(1, (0, 1, 0), "int8", "op", "max", 2, 10, 0, 0, 784, (128, 64), 25_000_000, "mnist")
    assert P.parse_info(P.pack_info(info)) == info
    exit_info = dataclasses.replace(info, scheme="exit")
    assert P.pack_info(exit_info)[5] == 2 and P.parse_info(P.pack_info(exit_info)) == exit_info
    r = P.Result(3, 2, 1234, 99, np.array([1.5, -np.inf], np.float32))
    back = P.parse_result(P.pack_result(r), 2)
    assert (back.pred, back.exit_layer, back.macs, back.ticks) == (3, 2, 1234, 99)
    assert back.scores.tobytes() == r.scores.tobytes()
    with pytest.raises(ValueError, match="expected"):
        P.parse_result(P.pack_result(r), 3)


def test_load_uses_u8_only_when_exact():
    x = np.arange(5, dtype=np.float32) / np.float32(255.0)
    assert P.pack_load(x) == bytes([1, 0, 1, 2, 3, 4])
    y = x.copy()
    y[1] += np.float32(1e-6)
    assert P.pack_load(y)[0] == 0 and len(P.pack_load(y)) == 1 + 4 * 5


def test_modes_and_trigger_events():
    assert P.mode_args("depth-2", 3) == (2, 2) and P.mode_args("light", 3) == (1, 0)
    with pytest.raises(ValueError, match="depth-k"):
        P.mode_args("depth-4", 3)
    stream = b"\x01" + P.pack_trigger_event(P.TriggerEvent(1, 0)) + P.pack_trigger_event(P.TriggerEvent(0, 77))
    events, tail = P.parse_trigger_events(stream[:-3])
    assert events == [P.TriggerEvent(1, 0)] and len(tail) == 5
    events, tail = P.parse_trigger_events(stream)
    assert events == [P.TriggerEvent(1, 0), P.TriggerEvent(0, 77)] and tail == b""


def test_counted_falling_edges_round_trip_and_wait_for_their_counts():
    counted = P.TriggerEvent(0, 0, (5, 4, 3, 2, 2**40))
    wire = P.pack_trigger_event(counted)
    assert len(wire) == P.COUNTED_EVENT_LEN == 48 and wire[:2] == b"X\x05"
    stream = P.pack_trigger_event(P.TriggerEvent(1, 0)) + wire
    events, tail = P.parse_trigger_events(stream[:-1])  # a counted edge is never cut short
    assert events == [P.TriggerEvent(1, 0)] and tail == wire[:-1]
    events, tail = P.parse_trigger_events(b"\x00" + stream)
    assert events == [P.TriggerEvent(1, 0), counted] and tail == b""
