"""Board profiles of the simulated MCU meter: ``EnergyModel`` parameters for a named board, each
anchored to its datasheet, and the calibration that scales one to a recording of a real board.

A profile scales the reference model (STM32L476 at 80 MHz and 3.3 V, 100 µA/MHz: ``EnergyModel``'s
defaults, docs/hil.md) to another part by its datasheet run current per MHz, supply voltage and
clock: energy per cycle scales with µA/MHz × V (per-class energies and static power alike), static
and idle power with the clock too. The CPI values stay the Cortex-M4's (QEMU runs the M4F build for
every profile; on the M33 of the U575 they are close, on the M7 of the H7A3 they are not: no profile).

``calibrated(profile, scale)`` multiplies every energy by ``scale``: fitted to a recording of the
user's own board as measured mean power in its inference windows ÷ the profile's simulated mean
power in a run's windows (``calibration_scale``), and recorded in the manifest as ``calibrated``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ffenergy.sim.model import EnergyModel

REFERENCE = EnergyModel()  # STM32L476, 80 MHz, 3.3 V, 100 µA/MHz (DS10198)
REFERENCE_UA_PER_MHZ = 100.0


@dataclass(frozen=True)
class BoardProfile:
    """A board's simulated-meter parameters and where they come from."""

    name: str
    part: str
    f_clk_hz: float
    supply_v: float
    run_ua_per_mhz: float  # datasheet run-mode supply current per MHz (typical, code from flash)
    source: str  # the datasheet and the figure used
    # measured mean power in the inference windows of real recordings of this board ÷ the profile's simulated
    # mean power in an int8 run (benchmarks/board_profiles.py); None where no recording of the board exists
    measured_ratio: float | None = None
    measured_note: str = ""

    @property
    def off_measured(self) -> bool:
        """More than 25 % off the real board: an uncalibrated run says so in its manifest."""
        return self.measured_ratio is not None and not 1 / 1.25 <= self.measured_ratio <= 1.25

    def record(self, scale: float) -> dict[str, object]:
        """What a run's manifest says of the profile it priced windows with, at calibration ``scale``."""
        calibrated = scale != 1.0
        return {
            "name": self.name,
            "source": self.source,
            "scale": scale,
            "status": "calibrated" if calibrated else "datasheet",
            "against_measurement": self.measured_note or "no recording of this board checked it",
            "off_measured_by_more_than_25_percent": self.off_measured and not calibrated,
        }

    def model(self, scale: float = 1.0, **overrides: float) -> EnergyModel:
        """The ``EnergyModel`` of this board, every energy multiplied by ``scale`` (1: uncalibrated)."""
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"profile {self.name}: calibration scale {scale!r} must be a positive number")
        per_cycle = scale * (self.run_ua_per_mhz * self.supply_v) / (REFERENCE_UA_PER_MHZ * REFERENCE.supply_v)
        clock = self.f_clk_hz / REFERENCE.f_clk_hz
        fields = {
            "supply_v": self.supply_v,
            "f_clk_hz": self.f_clk_hz,
            "static_power_w": REFERENCE.static_power_w * per_cycle * clock,
            "idle_current_a": REFERENCE.idle_current_a * per_cycle * clock * REFERENCE.supply_v / self.supply_v,
            **{f"joules_per_{c}": getattr(REFERENCE, f"joules_per_{c}") * per_cycle for c in _CLASSES},
            "joules_per_mac": REFERENCE.joules_per_mac * per_cycle,
        }
        return dataclasses.replace(REFERENCE, **(fields | overrides))


_CLASSES = ("ldst", "mul", "fpu", "branch", "other")

PROFILES: dict[str, BoardProfile] = {
    p.name: p
    for p in (
        BoardProfile(
            "stm32l476",
            "STM32L476 (Cortex-M4F)",
            80e6,
            3.3,
            100.0,
            "STMicroelectronics DS10198: about 100 µA/MHz in Run mode, Range 1, LDO, code from flash with ART",
        ),
        BoardProfile(
            "nucleo-l4r5zi",
            "STM32L4R5ZI (Cortex-M4F) on a Nucleo-144, LDO",
            120e6,
            1.8,
            110.0,
            "STMicroelectronics DS12023 (STM32L4R5xx): 110 µA/MHz in Run mode (LDO), 120 MHz in Range 1 boost;"
            " 1.8 V as in the MLPerf Tiny v1.2 LPM01A sessions",
            measured_ratio=1.775,
            measured_note="simulated 23.5 mW against 38.7-43.8 mW measured in the inference windows of the 4 MLPerf"
            " Tiny v1.2 LPM01A sessions of this board (ffenergy 0.3): calibrate with sim.scale 1.77",
        ),
        BoardProfile(
            "nucleo-u575zi-q",
            "STM32U575ZI (Cortex-M33) on a Nucleo-144 with SMPS",
            160e6,
            1.8,
            19.5 * 3.3 / 1.8,
            "STMicroelectronics DS13737 (STM32U575xx): 19.5 µA/MHz in Run mode at 3.3 V with the SMPS, taken as"
            " constant input power at 1.8 V (an SMPS converts power, not current); 160 MHz",
            measured_ratio=2.287,
            measured_note="simulated 10.2 mW against 22.7-24.0 mW measured in the inference windows of the 4 MLPerf"
            " Tiny v1.2 LPM01A sessions of this board (ffenergy 0.3): calibrate with sim.scale 2.29",
        ),
    )
}


def profile(name: str) -> BoardProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown board profile {name!r}; use one of {', '.join(PROFILES)}") from None


def calibration_scale(measured_w: float, simulated_w: float) -> float:
    """The scale that makes a profile's simulated mean window power equal a measured one."""
    if not (measured_w > 0 and simulated_w > 0):
        raise ValueError(f"calibration needs positive powers (measured {measured_w} W, simulated {simulated_w} W)")
    return measured_w / simulated_w
