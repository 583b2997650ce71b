"""Fault injection on the real host-built firmware: resets, corrupted/dropped/garbage bytes, a stalled DUT."""

import os
import select
import signal
import threading
import time
import tty

import numpy as np
import pytest

from ffenergy.firmware.dut import Dut, DutError, DutReset
from ffenergy.firmware.launch import HostDut
from ffenergy.firmware.reference import reference_predict
from ffenergy.vocabulary import all_modes
from tests.firmware.fw_helpers import make_inputs, make_net, make_policy

MODES = all_modes(3)


@pytest.fixture(scope="module")
def built(firmware_factory):
    net = make_net("mp", seed=11)
    x = make_inputs(20, seed=12)
    pol = make_policy(net, x, "gap", prune=True)
    model, exe = firmware_factory(net, pol, key="faults")
    return model, exe, x


def assert_matches_reference(model, x, got):
    for mode in MODES:
        ref = reference_predict(model, x, mode)
        assert np.array_equal(got[mode].pred, ref.pred) and np.array_equal(got[mode].exit_layer, ref.exit_layer)
        assert got[mode].scores.tobytes() == ref.scores.tobytes()


class ManglingProxy:
    """A pty in front of the DUT's tty that corrupts, drops and injects bytes in both directions."""

    def __init__(self, dut_port: str, seed: int, p_flip=0.08, p_drop=0.05, p_garbage=0.05):
        self.rng = np.random.default_rng(seed)
        self.p = (p_flip, p_drop, p_garbage)
        self.faults = 0
        self.dut_fd = os.open(dut_port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.dut_fd)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True)

    def mangle(self, data: bytes) -> bytes:
        b = bytearray(data)
        u = self.rng.random(3)
        if u[0] < self.p[0]:
            b[self.rng.integers(len(b))] ^= 1 << int(self.rng.integers(8))
        if u[1] < self.p[1] and len(b) > 1:
            del b[self.rng.integers(len(b))]
        if u[2] < self.p[2]:
            b[:0] = bytes(self.rng.integers(0, 256, 7).astype(np.uint8)) + b"\xa5\x5a"
        self.faults += int(np.sum(u < self.p))
        return bytes(b)

    def _relay(self) -> None:
        pair = {self.master: self.dut_fd, self.dut_fd: self.master}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(pair), [], [], 0.02)
            for fd in ready:
                data = os.read(fd, 4096)
                os.write(pair[fd], self.mangle(data))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for fd in (self.dut_fd, self.master, self.slave):
            os.close(fd)


@pytest.mark.slow
def test_corrupted_dropped_and_garbage_bytes_are_recovered(built):
    model, exe, x = built
    with HostDut(exe) as host, ManglingProxy(host.port, seed=5) as proxy:
        with Dut(proxy.port, timeout_s=0.2, retries=6) as dut:
            got = dut.predict(x[:10], MODES)
            assert proxy.faults >= 5
            assert dut._parser.crc_errors + dut._parser.garbage_bytes > 0
    assert_matches_reference(model, x[:10], got)


def test_reset_between_load_and_infer_is_detected_and_recovered(built):
    model, exe, x = built
    with HostDut(exe) as host, Dut(host.port, timeout_s=1.0) as dut:
        dut.load(x[0])
        host.restart()  # power cycle: the loaded input is gone
        with pytest.raises(DutReset, match="reset.*reload and retry"):
            dut.infer("full")
        assert dut.resets == 1

        load, calls = dut.load, []

        def load_then_reset(xi):  # the DUT reboots right after every 7th LOAD
            load(xi)
            calls.append(1)
            if len(calls) % 7 == 0:
                host.restart()

        dut.load = load_then_reset
        got = dut.predict(x, MODES)
        assert dut.resets >= 3
    assert_matches_reference(model, x, got)


def test_reset_loop_gives_up_with_a_clear_error(built):
    _model, exe, x = built
    with HostDut(exe) as host, Dut(host.port, timeout_s=1.0) as dut:
        load = dut.load

        def load_then_reset(xi):
            load(xi)
            host.restart()

        dut.load = load_then_reset
        with pytest.raises(DutError, match=r"reset loop.*rebooted 3 times"):
            dut.run(x[0], ["full"], max_resets=2)


def test_stalled_dut_gives_a_bounded_clear_error_then_recovers(built):
    model, exe, x = built
    with HostDut(exe) as host, Dut(host.port, timeout_s=0.2, retries=2) as dut:
        dut.load(x[0])
        os.kill(host.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(DutError, match=r"INFER failed after 3 attempts: no reply within 0.2 s.*stalled") as exc:
            dut.infer("light")
        assert host.port in str(exc.value) and time.monotonic() - t0 < 1.5
        os.kill(host.proc.pid, signal.SIGCONT)
        r = dut.infer("light")  # the stale replies to the retries are skipped by sequence number
        ref = reference_predict(model, x[:1], "light")
        assert (r.pred, r.exit_layer) == (ref.pred[0], ref.exit_layer[0])


def test_missing_dut_port_is_named(tmp_path):
    with pytest.raises(DutError, match=r"cannot open DUT port .*nope"):
        Dut(str(tmp_path / "nope"), open_timeout_s=0.1)
