"""The board registry: memory budgets the export must fit, and the programs a build needs.

A board with ``tools`` has a HAL under ffenergy/firmware/c/boards/<name>/ and can be built;
one without is a memory budget only (the model is checked against it, never built for it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from ffenergy.registry import Registry

APT_HINT = "apt-get update && apt-get install -y --no-install-recommends"


@dataclass(frozen=True)
class Board:
    name: str
    flash_bytes: int
    ram_bytes: int
    note: str
    tools: dict[str, str] = field(default_factory=dict)  # program -> Debian package that provides it

    @property
    def buildable(self) -> bool:
        return bool(self.tools)

    def missing_tools(self) -> list[str]:
        """The programs a build (and, for QEMU, a run) needs that are not on PATH."""
        return [tool for tool in self.tools if shutil.which(tool) is None]

    def install_hint(self, missing: list[str]) -> str:
        return f"{APT_HINT} {' '.join(sorted({self.tools[t] for t in missing}))}"


def _check_board(obj: object) -> None:
    if not isinstance(obj, Board):
        raise TypeError(f"{obj!r} is not an ffenergy.firmware.boards.Board")


BOARDS: Registry[Board] = Registry("board", "ffenergy.boards", _check_board)


def buildable_boards() -> list[str]:
    """Boards with a HAL to build for (the others are memory budgets)."""
    return [e.name for e in BOARDS if BOARDS.get(e.name).buildable]


_ARM = {"arm-none-eabi-gcc": "gcc-arm-none-eabi", "make": "make"}
for _board in (
    Board(
        "qemu-mps2-an386",
        4 << 20,
        4 << 20,
        "QEMU MPS2 AN386, Cortex-M4F, 4 MB code SSRAM / 4 MB data",
        {**_ARM, "qemu-system-arm": "qemu-system-arm"},
    ),
    Board("nucleo-l476rg", 1 << 20, 128 << 10, "STM32L476RG, Cortex-M4F 80 MHz, 1 MB flash / 128 KB SRAM", _ARM),
    Board("nrf52840", 1 << 20, 256 << 10, "nRF52840, Cortex-M4F 64 MHz, 1 MB flash / 256 KB RAM"),
    Board("mcu-256k", 256 << 10, 64 << 10, "generic MCU budget: 256 KB flash / 64 KB RAM"),
    Board("host", 1 << 40, 1 << 40, "POSIX host build (tests); no limit", {"gcc": "gcc", "make": "make"}),
):
    BOARDS.register(_board.name, _board, _board.note)
