"""Executed-instruction accounting on QEMU: the ``ffinsn`` TCG plugin (``c/tools/ffinsn.c``), built
into the user cache like the firmware, the plugin arguments for a firmware ELF, and the reader of
its per-window log.

The plugin counts every instruction the guest executes between the firmware's ``hil_trace_begin``
and ``hil_trace_end`` markers, by class (``protocol.INSN_CLASSES``), skipping the SysTick ISR, and
apart those executed in chosen functions (``focus``: the mat-vec kernel, to price it alone). It is also the
trigger probe of the simulated meter: it writes the window's rising edge and a counted falling edge
to the meter's trigger input, so the meter prices what the CPU executed, not what the firmware says.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ffenergy.firmware.launch import ToolchainMissing, firmware_cache_dir, firmware_source_dir

PLUGIN_NAME = "libffinsn.so"
SKIPPED_SYMBOLS = ("SysTick_Handler",)  # interrupts that fire at host-time moments: never counted


@dataclass(frozen=True)
class InsnCounts:
    """Instructions executed in one window, by class (``protocol.INSN_CLASSES`` order), and how many
    of them ran in the ``focus`` functions of ``plugin_args`` (0 when none were named)."""

    ldst: int
    mul: int
    fpu: int
    branch: int
    other: int
    focus: int = 0

    @property
    def total(self) -> int:
        return self.ldst + self.mul + self.fpu + self.branch + self.other

    def as_tuple(self) -> tuple[int, ...]:
        return (self.ldst, self.mul, self.fpu, self.branch, self.other)


def plugin_source() -> Path:
    return firmware_source_dir() / "tools" / "ffinsn.c"


def build_plugin() -> Path:
    """``gcc -O2 -shared -fPIC`` the plugin into ``firmware_cache_dir()/ffinsn-<hash>/``; returns the .so."""
    if shutil.which("gcc") is None:
        raise ToolchainMissing(
            "the QEMU instruction-count plugin needs gcc: install it with"
            " `apt-get install -y --no-install-recommends gcc`"
        )
    src = plugin_source()
    key = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = firmware_cache_dir() / f"ffinsn-{key}" / PLUGIN_NAME
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{PLUGIN_NAME}.{time.monotonic_ns()}")
    proc = subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-o", str(tmp), str(src)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"building the QEMU plugin {src} failed:\n{proc.stderr[-4000:]}")
    tmp.replace(out)
    return out


def elf_symbols(elf: str | Path) -> dict[str, tuple[int, int]]:
    """Function symbols of ``elf``: name -> (address with the Thumb bit cleared, size), via arm-none-eabi-nm."""
    if shutil.which("arm-none-eabi-nm") is None:
        raise ToolchainMissing(
            "reading the firmware's marker addresses needs arm-none-eabi-nm:"
            " install it with `apt-get install -y --no-install-recommends binutils-arm-none-eabi`"
        )
    proc = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"arm-none-eabi-nm {elf} failed: {proc.stderr.strip()}")
    symbols = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            symbols[parts[3]] = (int(parts[0], 16) & ~1, int(parts[1], 16))
    return symbols


def plugin_args(elf: str | Path, trigger: str | Path, log: str | Path, focus: Sequence[str] = ()) -> list[str]:
    """The ``-plugin`` option of qemu-system-arm that counts ``elf``'s trigger windows, and apart the
    instructions executed in the functions named in ``focus``."""
    symbols = elf_symbols(elf)
    missing = [s for s in ("hil_trace_begin", "hil_trace_end", *focus) if s not in symbols]
    if missing:
        raise RuntimeError(f"{elf} has no {', '.join(missing)}: build it from ffenergy's firmware sources")
    spec = [
        str(build_plugin()),
        f"begin={symbols['hil_trace_begin'][0]:#x}",
        f"end={symbols['hil_trace_end'][0]:#x}",
        f"trigger={trigger}",
        f"log={log}",
    ]
    for name in SKIPPED_SYMBOLS:
        if name in symbols:
            addr, size = symbols[name]
            spec.append(f"skip={addr:#x}-{addr + size:#x}")
    for name in focus:
        addr, size = symbols[name]
        spec.append(f"focus={addr:#x}-{addr + size:#x}")
    return ["-plugin", ",".join(spec)]


class InsnLog:
    """Follows the plugin's log (one line per window: ``seq ldst mul fpu branch other focus``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def latest(self, timeout_s: float = 2.0) -> InsnCounts:
        """The last window logged since the previous call (the plugin writes it before the DUT replies)."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self._new_lines()
            if lines:
                fields = [int(v) for v in lines[-1].split()]
                return InsnCounts(*fields[1:7])
            if time.monotonic() > deadline:
                raise RuntimeError(f"the QEMU plugin logged no window in {self.path} within {timeout_s} s")
            time.sleep(0.002)

    def _new_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return complete.decode().splitlines()
