"""CodeCarbon meter: our conversion logic without the package, the real tracker where installed."""

from __future__ import annotations

import builtins
import time

import pytest

from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.codecarbon_meter import (
    CarbonIntensity,
    CodeCarbonMeter,
    grams_co2_per_1000_inferences,
    provenance_for,
    resolve_intensity,
)


def test_grams_per_1000_inferences():
    # 1 J per inference -> 1000 J = 1/3600 kWh; at 360 g/kWh that is 0.1 g
    assert grams_co2_per_1000_inferences(1.0, CarbonIntensity(360.0, "configured")) == pytest.approx(0.1)
    assert grams_co2_per_1000_inferences(0.0, CarbonIntensity(360.0, "configured")) == 0.0


def test_configured_intensity_needs_exactly_one_source():
    assert resolve_intensity(grid_intensity_g_per_kwh=475) == CarbonIntensity(475.0, "configured")
    with pytest.raises(ValueError, match="exactly one of country_iso_code"):
        resolve_intensity()
    with pytest.raises(ValueError, match="exactly one of"):
        resolve_intensity("FRA", 50.0)
    with pytest.raises(ValueError, match=">= 0"):
        resolve_intensity(grid_intensity_g_per_kwh=-1)


def test_provenance_is_measured_only_for_a_counter_without_ram_guess():
    assert provenance_for("intel_rapl", include_ram=False) == "measured"
    assert provenance_for("intel_rapl", include_ram=True) == "estimated"
    assert provenance_for("cpu_load", include_ram=False) == "estimated"
    assert provenance_for("constant", include_ram=False) == "estimated"
    assert provenance_for(None, include_ram=False) == "estimated"


def test_missing_codecarbon_names_the_pip_command(monkeypatch):
    real_import = builtins.__import__

    def no_codecarbon(name, *args, **kwargs):
        if name.startswith("codecarbon"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_codecarbon)
    with pytest.raises(MeterUnavailable, match="pip install codecarbon"):
        CodeCarbonMeter(grid_intensity_g_per_kwh=100)
    with pytest.raises(MeterUnavailable, match="pip install codecarbon"):
        resolve_intensity("FRA")


def test_real_offline_tracker_window_and_country_intensity():
    pytest.importorskip("codecarbon")
    assert resolve_intensity("fra").g_per_kwh == pytest.approx(56.039, rel=0.5)  # France: low-carbon grid
    with pytest.raises(ValueError, match="no grid data for country 'XXX'"):
        resolve_intensity("XXX")
    meter = CodeCarbonMeter(country_iso_code="FRA")
    try:
        info = meter.info
        assert "cpu" in info.domains and "ram" not in info.domains
        if info.details["cpu_mode"] not in ("intel_rapl", "windows_emi", "intel_power_gadget", "apple_powermetrics"):
            assert info.provenance == "estimated"  # e.g. TDP x load here: no readable counter
        token = meter.start()
        time.sleep(0.3)
        w = meter.stop(token)
    finally:
        meter.close()
    assert w.duration_s >= 0.3
    assert w.joules["cpu"] > 0
    assert w.joules["cpu"] / w.duration_s < 1000  # watts, not kW or kWh mistaken for J
