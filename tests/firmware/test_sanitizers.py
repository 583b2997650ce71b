"""The host firmware built with AddressSanitizer and UndefinedBehaviorSanitizer, driven through every kind of
exchange over a pseudo-terminal: BOOT and INFO at the largest name with the fewest classes (the reply buffer's
tightest case), LOAD / INFER / SET_THRESHOLDS, and frames that are corrupted, oversized, truncated or unknown.
Any report aborts the firmware (``-fno-sanitize-recover=all``), so a missing reply fails the test with the log."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import serial

from ffenergy.firmware import protocol as P
from ffenergy.firmware.deployed import MODEL_NAME_MAX
from ffenergy.firmware.export import export_model
from ffenergy.firmware.launch import HostDut
from tests.firmware.fw_helpers import build_host_variant, make_inputs, make_net, make_policy

SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
NAME = "n" * MODEL_NAME_MAX
DIMS = [8, 6, 5]
N_CLASSES = 2  # with the longest name, INFO outgrows a buffer sized for the result frame


def _sanitizers_missing(tmp: Path) -> str | None:
    """Why gcc cannot build and run a sanitized program here, or None when it can."""
    if shutil.which("gcc") is None:
        return "gcc not found"
    src = tmp / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    built = subprocess.run(
        ["gcc", *SANITIZE.split(), str(src), "-o", str(tmp / "probe")], capture_output=True, text=True
    )
    if built.returncode:
        return f"gcc cannot build with {SANITIZE}: {built.stderr.strip()[-300:]}"
    ran = subprocess.run([str(tmp / "probe")], capture_output=True, text=True)
    return f"a sanitized program does not run here: {ran.stderr.strip()[-300:]}" if ran.returncode else None


@pytest.fixture(scope="module", params=[("mp", "f32"), ("exit", "int8")], ids=["mp-f32", "exit-int8"])
def sanitized_fw(request, tmp_path_factory) -> tuple[Path, Path]:
    """(the sanitized host executable, the folder its sanitizer logs go to) for a 2-class, 64-character model."""
    tmp = tmp_path_factory.mktemp("asan")
    missing = _sanitizers_missing(tmp)
    if missing and os.environ.get("HIL_REQUIRE_QEMU"):  # CI: the firmware tests must run, never skip
        pytest.fail(f"HIL_REQUIRE_QEMU is set but there is no sanitizer build: {missing}")
    if missing:
        pytest.skip(f"no sanitizer build: {missing}")
    scheme, dtype = request.param
    net = make_net(scheme, dims=DIMS, n_classes=N_CLASSES, seed=2)
    x = make_inputs(16, d=DIMS[0], seed=3)
    export_model(net, make_policy(net, x, "gap"), tmp, dtype, "host", calib_x=x, name=NAME)
    return build_host_variant(tmp, tmp / "build", SANITIZE), tmp


@dataclass
class Link:
    """Raw frames to and from the DUT on its pty (no retries: every reply must come)."""

    port: str
    logs: Path
    ser: serial.SerialBase = field(init=False)
    parser: P.FrameParser = field(default_factory=P.FrameParser)

    def __post_init__(self) -> None:
        self.ser = serial.serial_for_url(self.port, timeout=0.02)

    def reply(self, timeout_s: float = 2.0) -> P.Frame:
        deadline = time.monotonic() + timeout_s
        frames: list[P.Frame] = []
        while not frames:
            if time.monotonic() > deadline:
                reports = "\n".join(f.read_text() for f in sorted(self.logs.glob("san.*")))
                pytest.fail(f"no reply from the sanitized firmware within {timeout_s} s:\n{reports or '(no log)'}")
            frames = self.parser.feed(self.ser.read(max(1, self.ser.in_waiting)))
        assert len(frames) == 1, frames
        return frames[0]

    def ask(self, cmd: int, seq: int, payload: bytes = b"") -> P.Frame:
        self.ser.write(P.encode_request(cmd, seq, payload))
        frame = self.reply()
        assert frame.seq == seq
        return frame

    def send_raw(self, data: bytes) -> P.Frame:
        self.ser.write(data)
        return self.reply()


@pytest.fixture
def link(sanitized_fw, monkeypatch) -> Iterator[Link]:
    exe, tmp = sanitized_fw
    logs = tmp / f"logs-{time.monotonic_ns()}"
    logs.mkdir()
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        monkeypatch.setenv(var, f"log_path={logs}/san:print_stacktrace=1")
    host = HostDut(exe)
    dut_link = Link(host.port, logs)  # open before the DUT starts: opening flushes input, its BOOT frame too
    with host:
        yield dut_link
        dut_link.ser.close()
        assert host.proc is not None and host.proc.poll() is None, "the sanitized firmware exited"
    assert not list(logs.glob("san.*")), "\n".join(f.read_text() for f in logs.glob("san.*"))


def test_boot_and_info_report_the_longest_name_with_two_classes(link):
    boot = link.reply()
    assert boot.code == P.Status.BOOT
    info = link.ask(P.Cmd.INFO, 1)
    assert info.code == P.Status.OK and info.payload == boot.payload
    parsed = P.parse_info(info.payload)
    assert (parsed.model_name, parsed.n_classes, parsed.dims, parsed.proto_version) == (
        NAME,
        N_CLASSES,
        tuple(DIMS[1:]),
        P.PROTO_VERSION,
    )


def test_inference_in_every_mode_and_both_load_formats(link):
    assert link.reply().code == P.Status.BOOT
    x = make_inputs(2, d=DIMS[0], seed=5)
    f32 = bytes([P.LoadFormat.F32]) + np.asarray(x[1] + 1e-3, "<f4").tobytes()
    for seq, load in enumerate([P.pack_load(x[0]), f32], start=1):
        assert link.ask(P.Cmd.LOAD, seq, load).code == P.Status.OK
        for mode in ("full", "light", "depth-1", "depth-2"):
            r = link.ask(P.Cmd.INFER, seq, P.pack_infer(*P.mode_args(mode, len(DIMS) - 1), repeats=3))
            assert r.code == P.Status.OK
            assert P.parse_result(r.payload, N_CLASSES).exit_layer in (1, 2)
    thresholds = P.pack_thresholds(np.array([-np.inf, np.inf], np.float32))
    assert link.ask(P.Cmd.SET_THRESHOLDS, 9, thresholds).code == P.Status.OK
    light = link.ask(P.Cmd.INFER, 10, P.pack_infer(P.InferMode.LIGHT, 0, 1))
    assert P.parse_result(light.payload, N_CLASSES).exit_layer == 1


def test_bad_frames_get_their_status_and_the_line_recovers(link):
    assert link.reply().code == P.Status.BOOT
    assert link.ask(P.Cmd.INFER, 1, P.pack_infer(P.InferMode.FULL, 0, 1)).code == P.Status.NOT_LOADED
    bad_crc = bytearray(P.encode_request(P.Cmd.PING, 2, b"abc"))
    bad_crc[-1] ^= 0xFF
    assert link.send_raw(bytes(bad_crc)).code == P.Status.BAD_CRC
    oversized = struct.pack("<BBBH", P.SYNC_REQUEST, P.Cmd.PING, 3, P.MAX_PAYLOAD + 1)
    assert link.send_raw(oversized).code == P.Status.BAD_LEN
    refused = [
        (0x42, b"", P.Status.BAD_CMD),
        (P.Cmd.INFO, b"x", P.Status.BAD_LEN),
        (P.Cmd.INFER, b"\x00\x00\x01", P.Status.BAD_LEN),
        (P.Cmd.INFER, P.pack_infer(7, 0, 1), P.Status.BAD_ARG),
        (P.Cmd.INFER, P.pack_infer(P.InferMode.DEPTH, 3, 1), P.Status.BAD_ARG),
        (P.Cmd.LOAD, b"\x00" * 7, P.Status.BAD_LEN),
        (P.Cmd.LOAD, b"\x05" * (1 + DIMS[0]), P.Status.BAD_ARG),
        (P.Cmd.SET_THRESHOLDS, b"\x00" * 12, P.Status.BAD_LEN),
    ]
    for seq, (cmd, payload, status) in enumerate(refused, start=4):
        assert link.ask(cmd, seq, payload).code == status, (cmd, payload)
    largest = bytes(range(256)) * (P.MAX_PAYLOAD // 256)
    assert link.ask(P.Cmd.PING, 20, largest).payload == largest
    link.ser.write(P.encode_request(P.Cmd.PING, 21, b"cut short")[:-3])  # dropped after 200 ms of silence
    time.sleep(0.3)
    link.ser.write(os.urandom(64).replace(bytes([P.SYNC_REQUEST]), b"\0"))
    assert link.ask(P.Cmd.PING, 22, b"still here").payload == b"still here"
