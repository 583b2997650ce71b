"""The target registry: where inference runs, and whether it can run here (``ffenergy targets``).

Facts: ``device`` (host targets: the torch device), ``mcu`` (a microcontroller target, run by
the hil stage), ``board`` (the board an emulated target builds for; a real ``mcu`` uses the
config's ``mcu.board``), ``simulated`` (its meter is the simulated INA226 logger). Checking
whether a target is usable imports no torch: the CUDA check reads the driver through NVML.
"""

from __future__ import annotations

import importlib.metadata
import os

from ffenergy.firmware.boards import BOARDS
from ffenergy.registry import Registry

TARGETS: Registry[str] = Registry("target", "ffenergy.targets")
TARGETS.register("cpu", "ffenergy.targets.host:HostTarget", "this machine's CPU, with torch", device="cpu")
TARGETS.register("cuda", "ffenergy.targets.host:HostTarget", "an NVIDIA GPU, with torch", device="cuda")
TARGETS.register(
    "mcu-sim",
    "ffenergy.targets.mcu:open_mcu",
    "firmware built for this host on a pty + simulated INA226 logger",
    mcu=True,
    board="host",
    simulated=True,
)
TARGETS.register(
    "mcu-qemu",
    "ffenergy.targets.mcu:open_mcu",
    "Cortex-M4F firmware in QEMU + simulated INA226 logger",
    mcu=True,
    board="qemu-mps2-an386",
    simulated=True,
)
TARGETS.register(
    "mcu",
    "ffenergy.targets.mcu:open_mcu",
    "a real board on mcu.options.dut_port and a meter on mcu.options.meter_port",
    mcu=True,
    board="nucleo-l476rg",
)


def host_targets(names: list[str]) -> list[str]:
    return [n for n in names if TARGETS.entry(n).fact("device")]


def mcu_targets(names: list[str]) -> list[str]:
    return [n for n in names if TARGETS.entry(n).fact("mcu")]


def target_status(name: str) -> tuple[bool, str]:
    """(usable, reason) of one target on this machine."""
    entry = TARGETS.entry(name)
    device = entry.fact("device")
    if device == "cpu":
        return True, f"torch {_torch_version()}, {os.cpu_count()} cores"
    if isinstance(device, str) and device.startswith("cuda"):
        return _cuda_status()
    if device is not None or not entry.fact("mcu") or entry.fact("board") not in BOARDS:
        return (
            False,
            f"device {device!r} and board {entry.fact('board')!r}: a target runs on cpu or cuda, or is an mcu on a board",
        )
    board = BOARDS.get(entry.fact("board"))
    missing = board.missing_tools()
    tools = f"missing {', '.join(missing)} ({board.install_hint(missing)})" if missing else "toolchain found"
    if not entry.fact("simulated"):  # a real board: nothing here can tell whether one is plugged in
        return False, f"needs a board and a meter on serial ports (mcu.options.dut_port, meter_port); building: {tools}"
    return not missing, f"{entry.summary}; needs: {tools}"


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cuda_status() -> tuple[bool, str]:
    version = _torch_version()
    if version.endswith("+cpu"):
        return False, f"torch {version} is a CPU-only build; install a CUDA build of torch"
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0)) if count else ""
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:
        return False, f"no NVIDIA driver or GPU found ({type(exc).__name__}: {exc})"
    if not count:
        return False, "the NVIDIA driver sees no GPU"
    return True, f"{name if isinstance(name, str) else name.decode()} (NVML), torch {version}"
