"""Executed-instruction accounting on mcu-qemu: the ffinsn plugin in qemu-system-arm, the simulated
meter pricing the counts it reports, and samples.csv's instruction columns.

Firmware: a tiny OP network with 10 classes and the softmax (``max``) exit rule, so one exit check
(10 expf) costs a sizeable fraction of a layer: light mode exiting at layer k and depth-k run the
same MACs but different instructions.
"""

from __future__ import annotations

import numpy as np
import pytest

from ffenergy.contract import INSN_CLASS_COLUMNS, SAMPLES_COLUMNS, WINDOWS_COLUMNS, CsvAppender, read_rows
from ffenergy.experiment.mcu_stage import run_mcu_stage
from ffenergy.firmware.arrays import ExitPolicy
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.export import export_model
from ffenergy.firmware.insn import InsnLog, plugin_args
from ffenergy.firmware.launch import QemuDut, build_firmware
from ffenergy.firmware.protocol import INSN_CLASSES
from ffenergy.sim.model import EnergyModel
from ffenergy.targets.mcu import open_mcu
from ffenergy.targets.mcu_config import McuConfig
from tests.firmware.fw_helpers import KERNEL_FUNCTIONS, kernel_macs, make_inputs, make_net, require_qemu

pytestmark = pytest.mark.qemu

DIMS = [16, 8, 8, 8]
N_CLASSES = 10
REPEATS = 20
SIM = EnergyModel(f_clk_hz=1e6, seed=5)  # ~1 k meter samples per window at 20 kHz


@pytest.fixture(autouse=True)
def _qemu_available():
    require_qemu()


def _elf(out, dtype: str, procedure: str = "op"):
    net = make_net(procedure, DIMS, N_CLASSES, seed=3)
    policy = ExitPolicy("max", np.full(len(DIMS) - 1, -1e30, np.float32))  # light always exits at layer 1
    export_model(net, policy, out, dtype, "qemu-mps2-an386", calib_x=make_inputs(20, DIMS[0], seed=4))
    return build_firmware(out, "qemu-mps2-an386")


@pytest.fixture(scope="module")
def elf(tmp_path_factory):
    return _elf(tmp_path_factory.mktemp("fw"), "int8")


def _counts(elf, tmp_path, runs):
    """Per-window counts of ``runs`` = [(input, mode, repeats)], in one fresh QEMU."""
    log = tmp_path / f"insn-{len(list(tmp_path.iterdir()))}.log"
    insn = InsnLog(log)
    with QemuDut(elf, extra=plugin_args(elf, tmp_path / "trigger.bin", log)) as vm, Dut(vm.port) as dut:
        out = []
        for x, mode, repeats in runs:
            dut.load(x)
            out.append((dut.infer(mode, repeats), insn.latest()))
        return out


def test_counts_are_exact_and_identical_across_runs_and_qemu_processes(elf, tmp_path):
    x = make_inputs(2, DIMS[0], seed=8)
    runs = [(x[0], "full", 1), (x[1], "depth-2", 1), (x[0], "full", 1), (x[0], "full", 3)]
    first, second = _counts(elf, tmp_path, runs), _counts(elf, tmp_path, runs)
    assert [c for _, c in first] == [c for _, c in second]
    (_, full), (_, depth2), (_, again), (_, thrice) = first
    assert full == again and depth2.total < full.total
    per_repeat = thrice.total - full.total  # the repeat loop's own instructions are few and fixed
    assert 2 * full.total - 40 < per_repeat < 2 * full.total + 40


def test_the_classifier_sees_the_mac_loops_instructions(tmp_path):
    """MP (every MAC in a layer): int8 runs the DSP kernel, one SMLAD per two MACs and one weight
    word per four; fp32 a VMUL and a VADD per MAC and no integer multiplies."""
    x = make_inputs(1, DIMS[0], seed=9)
    for dtype in ("int8", "f32"):
        ((res, c),) = _counts(_elf(tmp_path / dtype, dtype, "mp"), tmp_path, [(x[0], "full", 1)])
        if dtype == "int8":
            # MP layer 1 is factorised: one kernel product over the input from the label slots' last
            # word boundary on (8 of the 10 slots skipped, 2 zeroed), then each of the N_CLASSES passes
            # adds its label column (a MUL per MAC); layers 2.. in the kernel. These widths leave no
            # tails for the kernel's C loop.
            label_macs = N_CLASSES * DIMS[1]
            later_macs = res.macs - (DIMS[0] - N_CLASSES) * DIMS[1] - label_macs
            kernel_from = N_CLASSES & ~3
            expected = ((DIMS[0] - kernel_from) * DIMS[1] + later_macs) / 2 + label_macs
            assert expected <= c.mul <= 1.02 * expected
            assert c.ldst >= res.macs / 4  # at least the weight words
        else:
            assert c.fpu >= 2 * res.macs and c.mul < 0.02 * res.macs and c.ldst >= 2 * res.macs


@pytest.mark.parametrize(("procedure", "bound"), [("mp", 1.5), ("exit", 1.55)])
def test_the_int8_kernel_runs_about_1_5_instructions_per_mac(tmp_path, procedure, bound):
    """The plugin's focus count over the kernel's functions (264-128x3, widths with no tails): the
    SMLAD loop's 44 instructions per 32 MACs plus per-row and per-layer overhead stays under 1.5 per
    MAC for MP's layers (issue #13's floor is 2.0), and the kernel is most, not all, of the window.
    exit's layers and 10-row heads: 1.52 measured, as the last 2 rows of each head run in the
    kernel's C loop."""
    dims, n_classes = [264, 128, 128, 128], 10
    net = make_net(procedure, dims, n_classes, seed=12)
    x = make_inputs(1, dims[0], seed=13)
    export_model(net, ExitPolicy("gap", np.zeros(3, np.float32)), tmp_path, "int8", "qemu-mps2-an386", calib_x=x)
    elf = build_firmware(tmp_path, "qemu-mps2-an386")
    log = tmp_path / "insn.log"
    insn = InsnLog(log)
    with QemuDut(elf, extra=plugin_args(elf, tmp_path / "t.bin", log, focus=KERNEL_FUNCTIONS)) as vm, Dut(vm.port) as d:
        d.load(x[0])
        d.infer("full", 1)
        counts = insn.latest()
    macs = kernel_macs(procedure, dims, n_classes)
    assert 1.375 * macs < counts.focus < bound * macs
    assert counts.focus < 0.9 * counts.total


def test_focus_names_a_function_the_firmware_has(elf, tmp_path):
    with pytest.raises(RuntimeError, match="no no_such_kernel"):
        plugin_args(elf, tmp_path / "t.bin", tmp_path / "log", focus=("no_such_kernel",))


def test_mcu_qemu_prices_executed_instructions_not_reported_macs(elf, tmp_path):
    """light@1 and depth-1 do the same MACs; light also runs the exit check. Their energies differ
    in the ratio the instruction counts imply (within 2%), and every sample's energy is the model's
    price of its counted instructions (within 5%)."""
    x = make_inputs(3, DIMS[0], seed=10)
    y = np.zeros(len(x), int)
    config = McuConfig(target="mcu-qemu", firmware=str(elf), sim=SIM)
    samples = CsvAppender(tmp_path / "samples.csv", SAMPLES_COLUMNS)
    windows = CsvAppender(tmp_path / "windows.csv", WINDOWS_COLUMNS)
    with open_mcu(config, tmp_path / "run") as session, samples, windows:
        assert session.manifest()["meter"]["energy_model"] == "instructions-qemu-plugin"
        run_mcu_stage(
            session.dut,
            session.meter,
            x,
            y,
            ["light", "depth-1", "full"],
            REPEATS,
            samples,
            windows,
            "mcu-qemu",
            insn_log=session.insn_log,
        )
    rows = read_rows(tmp_path / "samples.csv")
    by = {(r["mode"], int(r["sample"])): r for r in rows}
    truth = {k: SIM.insn_net_energy_j(tuple(float(r[c]) for c in INSN_CLASS_COLUMNS)) for k, r in by.items()}
    for k, r in by.items():
        assert float(r["instructions"]) == pytest.approx(sum(float(r[c]) for c in INSN_CLASS_COLUMNS))
        assert float(r["energy_j"]) == pytest.approx(truth[k], rel=0.05)
    for i in range(len(x)):
        light, depth1 = by[("light", i)], by[("depth-1", i)]
        assert (light["exit_layer"], light["macs"]) == (depth1["exit_layer"], depth1["macs"]) == ("1", light["macs"])
        implied = truth[("light", i)] / truth[("depth-1", i)]
        assert implied > 1.05  # the exit check is not free: a MAC-priced meter would say 1.0
        assert float(light["energy_j"]) / float(depth1["energy_j"]) == pytest.approx(implied, rel=0.02)
    assert INSN_CLASSES == tuple(c.removeprefix("insn_") for c in INSN_CLASS_COLUMNS)
