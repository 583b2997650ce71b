"""Which inference targets can run on this machine, and why not."""

from __future__ import annotations

import torch

from ffenergy.targets.launch import missing_tools


def _tools(board: str) -> tuple[bool, str]:
    missing = missing_tools(board)
    if missing:
        return False, f"missing {', '.join(missing)} (apt-get install --no-install-recommends gcc-arm-none-eabi qemu-system-arm)"
    return True, "toolchain found"


def target_statuses() -> list[tuple[str, bool, str]]:
    """(name, usable, reason) for every target a config may name."""
    cuda = torch.cuda.is_available()
    sim_ok, sim_why = _tools("host")
    qemu_ok, qemu_why = _tools("qemu-mps2-an386")
    board_ok, board_why = _tools("nucleo-l476rg")
    return [
        ("cpu", True, f"torch {torch.__version__}, {torch.get_num_threads()} threads"),
        ("cuda", cuda, torch.cuda.get_device_name(0) if cuda else "torch sees no CUDA device"),
        ("mcu-sim", sim_ok, f"firmware built for this host on a pty + simulated INA226 logger; {sim_why}"),
        ("mcu-qemu", qemu_ok, f"Cortex-M4F firmware in QEMU + simulated INA226 logger; {qemu_why}"),
        ("mcu", board_ok, "a real board on mcu.options.dut_port and a meter on mcu.options.meter_port; "
                          f"building: {board_why}"),
    ]
