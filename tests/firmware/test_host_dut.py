"""The real C firmware built for the host, driven over a pseudo-terminal, against the numpy reference."""

import os

import numpy as np
import pytest

from ffenergy.firmware import protocol as P
from ffenergy.firmware.dut import Dut, DutError, ProtocolMismatch
from ffenergy.firmware.export import deploy, export_model
from ffenergy.firmware.launch import HostDut, check_against_reference
from ffenergy.firmware.reference import reference_predict
from ffenergy.vocabulary import all_modes
from tests.firmware.fw_helpers import build_host_variant, make_inputs, make_net, make_policy

CONFIGS = [  # procedure, statistic, prune
    ("mp", "gap", False),
    ("mp", "max", False),
    ("mp", "gap", True),
    ("op", "gap", False),
    ("op", "max", False),
    ("exit", "gap", False),
    ("exit", "max", False),
]


@pytest.mark.parametrize("dtype", ["f32", "int8"])
@pytest.mark.parametrize("proc,stat,prune", CONFIGS)
def test_host_build_is_bit_exact(proc, stat, prune, dtype):
    net = make_net(proc, seed=3)
    x = make_inputs(40, seed=4)
    pol = make_policy(net, x, stat, prune)
    assert len(set(reference_predict(deploy(net, pol, "f32"), x, "light").exit_layer)) == 3  # a real mix
    assert check_against_reference(net, pol, x, "host", dtype, calib_x=make_inputs(30, seed=5)) == []


def test_f32_inputs_off_the_u8_grid_are_exact(tmp_path):
    net = make_net("op", seed=6)
    x = np.random.default_rng(7).normal(size=(10, 24)).astype(np.float32)
    assert P.u8_codes(x[0]) is None
    assert check_against_reference(net, make_policy(net, x, "max"), x, "host", "f32", modes=["light"]) == []


def test_info_names_the_exit_scheme(firmware_factory):
    net = make_net("exit", seed=3)
    _, exe = firmware_factory(net, make_policy(net, make_inputs(8), "max"), "int8", calib_x=make_inputs(8))
    with HostDut(exe) as host, Dut(host.port, timeout_s=1.0) as dut:
        info = dut.info()
    assert (info.dtype, info.scheme, info.statistic, info.prune_after) == ("int8", "exit", "max", 0)


@pytest.fixture(scope="module")
def mp_dut(tmp_path_factory, firmware_factory):
    net = make_net("mp", seed=3)
    x = make_inputs(16, seed=8)
    pol = make_policy(net, x, "gap")
    model, exe = firmware_factory(net, pol, key="mp-gap")
    trig = tmp_path_factory.mktemp("trig") / "trigger.bin"
    with HostDut(exe, trigger=trig) as host, Dut(host.port, timeout_s=1.0) as dut:
        yield model, x, dut, trig


def test_info_describes_the_model(mp_dut):
    _model, _, dut, _ = mp_dut
    info = dut.info()
    assert (info.proto_version, info.dtype, info.scheme, info.statistic) == (1, "f32", "mp", "gap")
    assert (info.n_in, info.dims, info.n_classes, info.model_name) == (24, (16, 12, 10), 4, "model")
    assert dut.ping(b"\x00\xa5\x5a" * 50) < 1.0


def test_trigger_events_frame_the_repeats(mp_dut):
    _model, x, dut, trig = mp_dut
    before = trig.read_bytes() if trig.exists() else b""
    dut.load(x[0])
    r = dut.infer("depth-2", repeats=5)
    events, tail = P.parse_trigger_events(trig.read_bytes()[len(before) :])
    assert events == [P.TriggerEvent(1, 0), P.TriggerEvent(0, 5 * r.macs)] and tail == b""
    assert r.repeats == 5 and r.ticks > 0 and 0 < r.seconds_per_inference < 0.1


def test_set_thresholds_changes_light_exits(mp_dut):
    model, x, dut, _ = mp_dut
    inf = np.full(3, np.inf, np.float32)
    dut.set_thresholds(inf)
    assert {dut.run(xi, ["light"])[0].exit_layer for xi in x} == {3}
    dut.set_thresholds(np.full(3, -np.inf, np.float32))
    assert {dut.run(xi, ["light"])[0].exit_layer for xi in x} == {1}
    dut.set_thresholds(model.thresholds)
    got = dut.predict(x, all_modes(3))
    for mode in all_modes(3):
        assert np.array_equal(got[mode].exit_layer, reference_predict(model, x, mode).exit_layer)
    assert len(set(got["light"].exit_layer)) == 3


def test_bad_requests_get_clear_errors(tmp_path, firmware_factory):
    net = make_net("mp", seed=3)
    x = make_inputs(16, seed=8)
    _, exe = firmware_factory(net, make_policy(net, x, "gap"), key="mp-gap")
    with HostDut(exe) as host, Dut(host.port, timeout_s=1.0) as dut:
        with pytest.raises(DutError, match="INFER refused with status NOT_LOADED"):
            dut.infer("full")
        with pytest.raises(ValueError, match="24"):
            dut.load(np.zeros(5))
        with pytest.raises(ValueError, match="depth-k"):
            dut.infer("depth-9")
        with pytest.raises(DutError, match="LOAD failed after 4 attempts: refused with status BAD_LEN"):
            dut._command(P.Cmd.LOAD, b"\x00" + bytes(7))
        with pytest.raises(DutError, match="status BAD_CMD"):
            dut._command(0x42)  # type: ignore[arg-type]


def test_trigger_on_a_pty(firmware_factory):
    net = make_net("mp", seed=3)
    x = make_inputs(16, seed=8)
    _, exe = firmware_factory(net, make_policy(net, x, "gap"), key="mp-gap")
    with HostDut(exe, trigger="pty") as host, Dut(host.port, timeout_s=1.0) as dut:
        dut.load(x[2])
        r = dut.infer("full", repeats=2)
        events, _ = P.parse_trigger_events(os.read(host.trigger_fd, 64))
    assert events == [P.TriggerEvent(1, 0), P.TriggerEvent(0, 2 * r.macs)]


def test_a_dut_of_another_protocol_version_is_refused_at_connect_and_at_boot(tmp_path, firmware_factory):
    net = make_net("mp", seed=3)
    pol = make_policy(net, make_inputs(16, seed=8), "gap")
    export_model(net, pol, tmp_path, board="host")
    other = build_host_variant(tmp_path, tmp_path / "v-next", f"-DFF_PROTO_VERSION={P.PROTO_VERSION + 1}")
    fix = r"build and flash the firmware from this ffenergy .*or install the ffenergy that built the firmware"
    versions = rf"protocol version {P.PROTO_VERSION + 1}, this ffenergy \S+ speaks version {P.PROTO_VERSION}"
    with HostDut(other) as host, pytest.raises(ProtocolMismatch, match=rf"{host.port}: .*{versions}: {fix}"):
        Dut(host.port, timeout_s=1.0, open_timeout_s=1.0)
    _, ours = firmware_factory(net, pol, key="mp-gap")
    with HostDut(ours) as host, Dut(host.port, timeout_s=1.0) as dut:
        host.exe = str(other)  # re-flashed with another ffenergy's firmware, then reset
        host.restart()
        with pytest.raises(ProtocolMismatch, match=versions):
            dut.ping()
