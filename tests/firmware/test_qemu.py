"""The cross-compiled firmware in qemu-system-arm (mps2-an386, Cortex-M4F) against the numpy reference."""

import subprocess

import pytest

from ffenergy.firmware import protocol as P
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.export import export_model
from ffenergy.firmware.launch import QemuDut, ToolchainMissing, build_firmware, check_against_reference
from ffenergy.firmware.reference import reference_predict
from tests.firmware.fw_helpers import make_inputs, make_net, make_policy, require_qemu

pytestmark = pytest.mark.qemu


@pytest.fixture(autouse=True)
def _qemu_available():
    require_qemu()


@pytest.mark.parametrize(
    "proc,stat,prune,dtype",
    [
        ("mp", "gap", False, "f32"),
        ("mp", "max", True, "f32"),
        ("op", "max", False, "f32"),
        ("mp", "gap", True, "int8"),
        ("op", "gap", False, "int8"),
        ("exit", "max", False, "f32"),
        ("exit", "gap", False, "int8"),
    ],
)
def test_qemu_build_is_bit_exact(proc, stat, prune, dtype):
    net = make_net(proc, seed=21)
    x = make_inputs(24, seed=22)
    pol = make_policy(net, x, stat, prune)
    assert check_against_reference(net, pol, x, "qemu", dtype, calib_x=make_inputs(30, seed=23)) == []


@pytest.mark.parametrize("proc", ["mp", "exit"])
def test_dsp_kernel_tails_are_bit_exact(proc):
    """Input widths that leave 1..7-weight tails after the 8-weight steps, row counts that are not a
    multiple of 4 (the last rows run in C: exit's 6-row heads too), and MP's layer 1 starting at the
    word boundary before the last label slot (6 classes: slots 4 and 5 zeroed), for the SMLAD kernel
    of the Cortex-M build; every mode."""
    net = make_net(proc, dims=[23, 7, 13, 5], n_classes=6, seed=26)
    x = make_inputs(6, d=23, seed=27)
    pol = make_policy(net, x, "gap", prune=proc == "mp")
    assert check_against_reference(net, pol, x, "qemu", "int8", calib_x=make_inputs(30, d=23, seed=28)) == []


def test_qemu_trigger_uart_and_info(tmp_path, firmware_factory):
    net = make_net("op", seed=24)
    x = make_inputs(4, seed=25)
    model, elf = firmware_factory(net, make_policy(net, x, "gap"), board="qemu-mps2-an386", key="qemu-op")
    trig = tmp_path / "uart1.bin"
    with QemuDut(elf, trigger=trig) as vm, Dut(vm.port, timeout_s=3.0) as dut:
        info = dut.info()
        assert (info.scheme, info.n_in, info.tick_hz) == ("op", 24, 25_000_000)
        dut.load(x[1])
        r = dut.infer("depth-2", repeats=3)
        assert r.macs == reference_predict(model, x[1:2], "depth-2").macs[0]
        dut.ping()  # the reply follows the trigger bytes, so they are in the file by now
    events, tail = P.parse_trigger_events(trig.read_bytes())
    assert events == [P.TriggerEvent(1, 0), P.TriggerEvent(0, 3 * r.macs)] and tail == b""


@pytest.mark.parametrize("proc", ["mp", "exit"])
def test_mcu_sized_model_links_within_the_estimate(tmp_path, proc):
    """784-128x3 int8: the ELF's flash and RAM stay under export's estimate and the 256 KB / 64 KB budget."""
    net = make_net(proc, dims=[784, 128, 128, 128], n_classes=10)
    pol = make_policy(net, make_inputs(8, 784), "gap")
    rep = export_model(net, pol, tmp_path, "int8", "mcu-256k", calib_x=make_inputs(20, 784))
    elf = build_firmware(tmp_path, "nucleo-l476rg")
    text, data, bss = map(
        int,
        subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True)
        .stdout.splitlines()[1]
        .split()[:3],
    )
    assert text + data <= rep.flash_used <= 256 << 10
    assert data + bss + 2048 <= rep.ram_used <= 64 << 10


def test_missing_toolchain_names_the_apt_command(tmp_path, monkeypatch):
    export_model(make_net("mp"), make_policy(make_net("mp"), make_inputs(8), "gap"), tmp_path, "f32", "host")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match="apt-get install -y --no-install-recommends gcc-arm-none-eabi"):
        build_firmware(tmp_path, "qemu-mps2-an386")


def test_qemu_that_cannot_start_raises_with_its_message(tmp_path):
    elf = tmp_path / "ffdut.elf"
    elf.write_bytes(b"\x7fELF")
    with pytest.raises(
        RuntimeError, match="qemu-system-arm exited with 1: .*unsupported machine(.|\n)*-M no-such-board"
    ):
        QemuDut(elf, machine="no-such-board").start().stop()
    with pytest.raises(FileNotFoundError, match="build_firmware"):
        QemuDut(tmp_path / "missing.elf")
