"""Executed instructions per MAC of the Cortex-M4F firmware in QEMU (the ffinsn plugin's counts),
full mode, per dtype and network: for the whole inference (the mat-vec kernel plus everything around
it: normalisation, quantising, activations, MP's label columns, OP's fp32 heads, goodness) and, for
int8, for the layer kernel alone (the instructions executed in its functions,
``tests.firmware.fw_helpers.KERNEL_FUNCTIONS``, over the MACs of the layers' weight matrices).

    python benchmarks/instructions_per_mac.py [--dims 784,128,128,128] [--procedure mp|op|exit]
"""

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: its tests package

from ffenergy.firmware.arrays import ExitPolicy
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.export import export_model
from ffenergy.firmware.insn import InsnLog, plugin_args
from ffenergy.firmware.launch import QemuDut, build_firmware
from ffenergy.firmware.protocol import INSN_CLASSES
from tests.firmware.fw_helpers import KERNEL_FUNCTIONS, kernel_macs, make_inputs, make_net

log = logging.getLogger("instructions_per_mac")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="784,128,128,128")
    ap.add_argument("--procedure", default="mp", choices=["mp", "op", "exit"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dims = [int(d) for d in args.dims.split(",")]
    n_classes = 10
    net = make_net(args.procedure, dims, n_classes=n_classes)
    x = make_inputs(2, dims[0])
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("int8", "f32"):
            out = Path(tmp) / dtype
            policy = ExitPolicy("gap", np.zeros(len(dims) - 1, np.float32))
            export_model(net, policy, out, dtype, "qemu-mps2-an386", calib_x=x)
            elf = build_firmware(out, "qemu-mps2-an386")
            insn = InsnLog(out / "insn.log")
            focus = KERNEL_FUNCTIONS if dtype == "int8" else ()
            plugin = plugin_args(elf, out / "trigger.bin", out / "insn.log", focus=focus)
            with QemuDut(elf, extra=plugin) as vm, Dut(vm.port) as dut:
                dut.load(x[0])
                res = dut.infer("full", 1)
                counts = insn.latest()
            per_mac = ", ".join(f"{c} {n / res.macs:.2f}" for c, n in zip(INSN_CLASSES, counts.as_tuple()))
            log.info(
                "%s %s %s: %d MACs, %d instructions, %.3f per MAC (%s)",
                args.procedure,
                "-".join(map(str, dims)),
                dtype,
                res.macs,
                counts.total,
                counts.total / res.macs,
                per_mac,
            )
            if focus:
                macs = kernel_macs(args.procedure, dims, n_classes)
                log.info(
                    "  layer kernel: %d instructions for %d weight-matrix MACs, %.3f per MAC",
                    counts.focus,
                    macs,
                    counts.focus / macs,
                )


if __name__ == "__main__":
    main()
