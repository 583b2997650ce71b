"""The meter registry: every energy source by name, imported only when used.

Facts: ``provenance`` (what it gives when usable; CodeCarbon decides measured or estimated on
the machine), ``needs_port`` (a serial meter: not probed without its port option), ``mcu`` (a
microcontroller meter that finds its device itself, so it is probed) and ``host`` (may measure a host
target: the config's ``meter``; the others are microcontroller meters, chosen by ``mcu.options.meter``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ffenergy.registry import Registry

if TYPE_CHECKING:
    from ffenergy.meters.base import Meter


def _check_meter(obj: object) -> None:
    from ffenergy.meters.base import Meter

    if not (isinstance(obj, type) and issubclass(obj, Meter)):
        raise TypeError(f"{obj!r} is not a subclass of ffenergy.meters.base.Meter")


METERS: Registry[type[Meter]] = Registry("meter", "ffenergy.meters", _check_meter)
METERS.register(
    "nvml", "ffenergy.meters.nvml:NvmlMeter", "NVIDIA GPU energy counter (NVML)", provenance="measured", host=True
)
METERS.register(
    "rapl", "ffenergy.meters.rapl:RaplMeter", "CPU package/DRAM RAPL counters", provenance="measured", host=True
)
METERS.register(
    "pyjoules",
    "ffenergy.meters.pyjoules_meter:PyJoulesMeter",
    "pyJoules 0.5.1 with its unit/wrap bugs corrected (cross-check)",
    provenance="measured",
    host=True,
)
METERS.register(
    "codecarbon",
    "ffenergy.meters.codecarbon_meter:CodeCarbonMeter",
    "CodeCarbon offline tracker (CPU TDP x load estimate without RAPL)",
    provenance="estimated",
    host=True,
)
METERS.register(
    "simulated",
    "ffenergy.meters.simulated:SimulatedMeter",
    "energy model with known ground truth (CI); never chosen by auto",
    provenance="simulated",
    host=True,
)
METERS.register(
    "ina226",
    "ffenergy.meters.ina226:Ina226Meter",
    "INA226 logger on a serial port",
    provenance="measured",
    needs_port=True,
)
METERS.register(
    "ppk2", "ffenergy.meters.ppk2:Ppk2Meter", "Nordic PPK2 on a serial port", provenance="measured", needs_port=True
)
METERS.register(
    "lpm01a",
    "ffenergy.meters.lpm01a:Lpm01aMeter",
    "ST X-NUCLEO-LPM01A PowerShield (MLPerf Tiny's meter) on a serial port, DUT trigger on D7",
    provenance="measured",
    needs_port=True,
)


def host_meter_choices() -> list[str]:
    """What the config's ``meter`` (and ``--meter``) accepts."""
    return ["none", "auto"] + [e.name for e in METERS if e.fact("host")]


METERS.register(
    "joulescope",
    "ffenergy.meters.joulescope:JoulescopeMeter",
    "Joulescope JS220 on USB (pyjoulescope_driver), DUT trigger on GPI 0",
    provenance="measured",
    mcu=True,
)


def mcu_meter_choices() -> list[str]:
    """What ``mcu.options.meter`` accepts for a real board: serial meters, and USB meters found by their library."""
    return [e.name for e in METERS if e.fact("needs_port") or e.fact("mcu")]
