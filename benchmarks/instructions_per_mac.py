"""Executed instructions per MAC of the Cortex-M4F firmware in QEMU (the ffinsn plugin's counts),
full mode, per dtype and network: the cost of the mat-vec kernel plus everything around it.

    python benchmarks/instructions_per_mac.py [--dims 784,128,128,128] [--procedure mp]
"""

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.export import export_model
from ffenergy.firmware.insn import InsnLog, plugin_args
from ffenergy.firmware.launch import QemuDut, build_firmware
from ffenergy.firmware.protocol import INSN_CLASSES

log = logging.getLogger("instructions_per_mac")


def random_net(procedure: str, dims: list[int], n_classes: int = 10) -> NetworkArrays:
    rng = np.random.default_rng(0)
    weights = [(rng.normal(size=(b, a)) / np.sqrt(a)).astype(np.float32) for a, b in zip(dims, dims[1:])]
    biases = [(0.1 * rng.normal(size=d)).astype(np.float32) for d in dims[1:]]
    heads = (
        [rng.normal(size=(n_classes, sum(dims[1 : k + 2]))).astype(np.float32) for k in range(len(dims) - 1)]
        if procedure == "op"
        else []
    )
    return NetworkArrays(procedure, weights, biases, heads, n_classes, label_value=1.0, norm_eps=1e-4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="784,128,128,128")
    ap.add_argument("--procedure", default="mp", choices=["mp", "op"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dims = [int(d) for d in args.dims.split(",")]
    net = random_net(args.procedure, dims)
    x = (np.random.default_rng(1).integers(0, 256, size=(2, dims[0])) / 255.0).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("int8", "f32"):
            out = Path(tmp) / dtype
            policy = ExitPolicy("gap", np.zeros(len(dims) - 1, np.float32))
            export_model(net, policy, out, dtype, "qemu-mps2-an386", calib_x=x)
            elf = build_firmware(out, "qemu-mps2-an386")
            insn = InsnLog(out / "insn.log")
            with QemuDut(elf, extra=plugin_args(elf, out / "trigger.bin", out / "insn.log")) as vm, Dut(vm.port) as dut:
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


if __name__ == "__main__":
    main()
