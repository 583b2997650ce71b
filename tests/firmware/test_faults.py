"""Fault injection on the real host-built firmware: resets, corrupted/dropped/garbage bytes, a stalled DUT."""

import os
import select
import signal
import threading
import time
import tty

import numpy as np
import pytest

from ffenergy.analysis.load import load_run
from ffenergy.config import McuSection
from ffenergy.contract import HilFaults, read_rows
from ffenergy.data.base import Dataset
from ffenergy.experiment.manifest import Manifest
from ffenergy.experiment.mcu_run import McuJob, run_mcu_job
from ffenergy.experiment.measure_stage import record_meter
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


class _FaultyDut:
    """Delegates to a Dut; before the INFERs numbered in ``resets`` it power-cycles the real firmware, before
    those in ``unplugs`` it pulls the simulated meter's cable and waits until it is back (the stream started over),
    or with ``replugged=False`` lets the INFER run while the meter is still away."""

    def __init__(self, session, resets: tuple[int, ...], unplugs: tuple[int, ...], replugged: bool = True):
        self._session, self._resets, self._unplugs, self._calls = session, resets, unplugs, 0
        self._replugged = replugged
        self._dut = session.dut

    def __getattr__(self, name):
        return getattr(self._dut, name)

    def infer(self, mode, repeats=1, timeout_s=None):
        self._calls += 1
        if self._calls in self._resets:
            self._session.launcher.restart()
        if self._calls in self._unplugs and self._replugged:  # the window is open: it spans the restart
            self._replug_meter()
        elif self._calls in self._unplugs:
            self._session.sim_meter.unplug()
            time.sleep(0.2)  # the driver has seen its port vanish
        return self._dut.infer(mode, repeats, timeout_s)

    def _replug_meter(self) -> None:
        """Unplug the meter and wait until its driver has reopened the port (the stream has started over)."""
        stats = self._session.meter.stats
        reopens, deadline = stats.reopens, time.monotonic() + 10
        self._session.sim_meter.unplug()
        while stats.reopens == reopens:
            assert time.monotonic() < deadline, "the meter did not come back within 10 s"
            time.sleep(0.02)


def test_faults_ridden_through_are_in_the_manifest_and_add_up_on_resume(tmp_path):
    """run_mcu_job on mcu-sim with a runner-like manifest: resets and meter restarts injected per procedure
    come back from manifest.json through analysis.load, and a resumed call keeps them."""
    net = make_net("mp", seed=11)
    x, y = make_inputs(6, seed=12), np.arange(6) % 4
    data = Dataset("toy", x, y, x, y, x, y, class_names=list("abcd"))
    section = McuSection(repeats=2, max_samples=3, modes=["full", "light"])
    path = tmp_path / "manifest.json"
    Manifest(path, {"run_id": "r", "config": {}, "meters": [], "targets": {}}).save()
    injected = {"mp": ((2,), (4,)), "mp-again": ((1, 5), ())}  # procedure: INFER calls to reset at, to unplug at

    def run(procedure: str) -> None:  # what Runner.hil does (the manifest read back as a resume does), plus faults
        manifest = Manifest.load(path)

        def on_session(session):
            record_meter(manifest, "mcu-sim", session.meter)
            manifest.record_target("mcu-sim", session.manifest())
            if not isinstance(session.dut, _FaultyDut):
                session.dut = _FaultyDut(session, *injected[procedure])

        job = McuJob("mcu-sim", procedure, net, make_policy(net, x, "gap"), tmp_path / "hil" / procedure)
        manifest.add_hil_faults("mcu-sim", procedure, run_mcu_job(job, data, section, tmp_path, on_session))

    run("mp")
    run("mp-again")
    expected = {"mp": HilFaults(dut_resets=1, meter_restarts=1), "mp-again": HilFaults(dut_resets=2)}
    assert load_run(tmp_path).manifest.hil_faults == {"mcu-sim": expected}
    run("mp")  # a resume: nothing left to measure, so no INFER and no fault; the earlier count stays
    assert load_run(tmp_path).manifest.hil_faults == {"mcu-sim": expected}
    assert len(read_rows(tmp_path / "samples.csv")) == 2 * 3 * 2


def test_fault_counts_add_up_per_procedure_and_survive_a_new_session_entry(tmp_path):
    manifest = Manifest(tmp_path / "manifest.json", {"run_id": "r", "config": {}, "meters": [], "targets": {}})
    manifest.add_hil_faults("mcu-sim", "mp", HilFaults(dut_resets=1))
    manifest.add_hil_faults("mcu-sim", "op", HilFaults(meter_restarts=4))
    manifest.record_target("mcu-sim", {"target": "mcu-sim", "dut": {}, "meter": {}})  # a resumed run's session
    manifest.add_hil_faults("mcu-sim", "mp", HilFaults(dut_resets=2, meter_restarts=3))
    assert load_run(tmp_path).manifest.hil_faults == {
        "mcu-sim": {"mp": HilFaults(dut_resets=3, meter_restarts=3), "op": HilFaults(meter_restarts=4)}
    }


def test_a_manifest_without_fault_counts_still_loads(tmp_path):
    Manifest(
        tmp_path / "manifest.json", {"run_id": "old", "config": {}, "meters": [], "targets": {"mcu-sim": {}}}
    ).save()
    assert load_run(tmp_path).manifest.hil_faults == {}


def test_a_window_retried_after_a_meter_restart_opens_once_samples_flow_again(tmp_path):
    """The meter is unplugged as an INFER starts and comes back a second later: the window is measured again only
    once the driver has reopened the port (one opened at once would miss its pulse and time out)."""
    net = make_net("mp", seed=13)
    x, y = make_inputs(4, seed=14), np.arange(4) % 4
    data = Dataset("toy", x, y, x, y, x, y, class_names=list("abcd"))
    section = McuSection(repeats=2, max_samples=2, modes=["full"])

    def on_session(session):
        if not isinstance(session.dut, _FaultyDut):
            session.dut = _FaultyDut(session, (), (1,), replugged=False)

    job = McuJob("mcu-sim", "mp", net, make_policy(net, x, "gap"), tmp_path / "hil")
    start = time.monotonic()
    ridden = run_mcu_job(job, data, section, tmp_path, on_session)
    assert time.monotonic() - start < 10  # no window timed out
    assert ridden == HilFaults(meter_restarts=1)
    assert len(read_rows(tmp_path / "samples.csv")) == 2
