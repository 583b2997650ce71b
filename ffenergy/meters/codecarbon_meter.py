"""CodeCarbon as a meter of last resort, plus the grams-of-CO2 conversion.

CodeCarbon's offline tracker (no network) reads RAPL when it can and otherwise estimates CPU
power from the CPU's TDP and load. Its windows are ``start_task``/``stop_task`` deltas.
Provenance is ``measured`` only when its CPU figure came from a counter and its RAM guess
(5 W per DIMM) is left out; otherwise ``estimated``.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ffenergy.meters.base import Meter, MeterError, MeterInfo, MeterUnavailable, Provenance, WindowEnergy

J_PER_KWH = 3.6e6
COUNTER_CPU_MODES = ("intel_rapl", "windows_emi", "intel_power_gadget", "apple_powermetrics")
PIP = "pip install codecarbon"


@dataclass(frozen=True)
class CarbonIntensity:
    """Grid carbon intensity and where it came from."""

    g_per_kwh: float
    source: str


def grams_co2_per_1000_inferences(joules_per_inference: float, intensity: CarbonIntensity) -> float:
    """gCO2eq emitted by 1,000 inferences at ``joules_per_inference`` on this grid."""
    return joules_per_inference * 1000 / J_PER_KWH * intensity.g_per_kwh


def resolve_intensity(
    country_iso_code: str | None = None, grid_intensity_g_per_kwh: float | None = None
) -> CarbonIntensity:
    """From a configured g/kWh, or from CodeCarbon's country energy-mix data (ISO 3166-1 alpha-3)."""
    if (country_iso_code is None) == (grid_intensity_g_per_kwh is None):
        raise ValueError(
            "carbon: give exactly one of country_iso_code (e.g. 'FRA') or grid_intensity_g_per_kwh (e.g. 475)"
        )
    if grid_intensity_g_per_kwh is not None:
        if not (math.isfinite(grid_intensity_g_per_kwh) and grid_intensity_g_per_kwh >= 0):
            raise ValueError(f"carbon: grid_intensity_g_per_kwh must be >= 0, got {grid_intensity_g_per_kwh!r}")
        return CarbonIntensity(float(grid_intensity_g_per_kwh), "configured")
    try:
        from codecarbon.input import DataSource
    except ImportError as exc:
        raise MeterUnavailable(
            f"carbon: country data comes with CodeCarbon: {PIP} (or give grid_intensity_g_per_kwh)"
        ) from exc
    mix = DataSource().get_global_energy_mix_data()
    assert country_iso_code is not None  # exactly one of the two was given
    iso = country_iso_code.upper()
    if iso not in mix or mix[iso].get("carbon_intensity") is None:
        raise ValueError(
            f"carbon: no grid data for country {country_iso_code!r}; use an ISO 3166-1 alpha-3 "
            "code such as 'FRA', 'DEU', 'USA', or give grid_intensity_g_per_kwh"
        )
    entry = mix[iso]
    return CarbonIntensity(
        float(entry["carbon_intensity"]), f"CodeCarbon energy mix {iso} ({entry.get('year', 'year unknown')})"
    )


def provenance_for(cpu_mode: str | None, include_ram: bool) -> Provenance:
    """``measured`` only for a counter-read CPU without the RAM guess."""
    return "measured" if cpu_mode in COUNTER_CPU_MODES and not include_ram else "estimated"


class CodeCarbonMeter(Meter):
    """CodeCarbon offline tracker, one task per window (no network, nothing written to disk).

    ``country_iso_code`` or ``grid_intensity_g_per_kwh`` sets :attr:`intensity` for
    :func:`grams_co2_per_1000_inferences`; with neither, the meter gives energy only.
    """

    def __init__(
        self,
        country_iso_code: str | None = None,
        grid_intensity_g_per_kwh: float | None = None,
        include_ram: bool = False,
        measure_power_secs: float = 1.0,
    ):
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError as exc:
            raise MeterUnavailable(f"CodeCarbon is not installed: {PIP}") from exc
        self.intensity: CarbonIntensity | None = None  # energy only, no CO2, when neither is given
        if country_iso_code is not None or grid_intensity_g_per_kwh is not None:
            self.intensity = resolve_intensity(country_iso_code, grid_intensity_g_per_kwh)
        self.include_ram = include_ram
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=(country_iso_code or "USA").upper(),  # its own CO2 figure is not used
            output_methods=[],
            log_level="error",
            allow_multiple_runs=True,
            measure_power_secs=measure_power_secs,
            project_name="ffenergy",
        )
        hardware = self._tracker.get_detected_hardware()
        cpus = [h for h in self._tracker._hardware if type(h).__name__ == "CPU"]
        self.cpu_mode: str | None = getattr(cpus[0], "_mode", None) if cpus else None
        self._gpu = bool(hardware.get("gpu_count"))
        self._details: dict[str, Any] = {
            "cpu_mode": self.cpu_mode,
            "cpu_model": hardware.get("cpu_model"),
            "cpu_tdp_w": getattr(cpus[0], "_tdp", None) if cpus else None,
            "gpu_model": hardware.get("gpu_model"),
            "include_ram": include_ram,
            "carbon_intensity_g_per_kwh": self.intensity.g_per_kwh if self.intensity else None,
            "carbon_intensity_source": self.intensity.source if self.intensity else None,
        }
        self._open: str | None = None

    @property
    def info(self) -> MeterInfo:
        domains = ("cpu",) + (("gpu",) if self._gpu else ()) + (("ram",) if self.include_ram else ())
        return MeterInfo(
            name="codecarbon",
            provenance=provenance_for(self.cpu_mode, self.include_ram),
            domains=domains,
            update_period_s=1.0,
            details=dict(self._details),
        )

    def start(self) -> str:
        if self._open is not None:
            raise MeterError("codecarbon meter: a window is already open (one task at a time)")
        self._open = f"w-{uuid.uuid4().hex[:8]}"
        self._t0 = time.perf_counter()
        self._tracker.start_task(self._open)
        return self._open

    def stop(self, token: str, work_macs: int = 0) -> WindowEnergy:
        if token != self._open:
            raise MeterError("codecarbon meter: stop() got a token that is not the open window")
        data = self._tracker.stop_task(token)
        duration = time.perf_counter() - self._t0
        self._open = None
        if data is None:
            raise MeterError("codecarbon meter: CodeCarbon returned no data for the window (see its log)")
        joules = {"cpu": data.cpu_energy * J_PER_KWH}
        if self._gpu:
            joules["gpu"] = data.gpu_energy * J_PER_KWH
        if self.include_ram:
            joules["ram"] = data.ram_energy * J_PER_KWH
        return WindowEnergy(joules, duration)

    def close(self) -> None:
        if self._open is not None:
            self._tracker.stop_task(self._open)
            self._open = None
