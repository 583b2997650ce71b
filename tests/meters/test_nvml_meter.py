"""NVML meter against a fake pynvml module (no GPU here or in CI)."""

from __future__ import annotations

import sys
import time

import pytest

from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.nvml import NvmlMeter
from tests.meters.fakes import FakeGPU


def test_volta_plus_uses_the_energy_counter_in_millijoules(fake_nvml):
    gpu = FakeGPU(arch=9)
    nvml = fake_nvml([FakeGPU(), gpu])
    with NvmlMeter(1, nvml=nvml) as meter:
        assert meter.info.domains == ("gpu-1",)
        assert "energy counter" in meter.info.details["method"]
        assert meter.info.update_period_s == pytest.approx(0.1)
        token = meter.start()
        gpu.energy_mj += 250_000
        w = meter.stop(token)
    assert w.joules == {"gpu-1": pytest.approx(250.0)}
    assert nvml.state["shutdown"] == 1


def test_pre_volta_integrates_power_by_trapezoid(fake_nvml):
    origin = time.perf_counter()
    gpu = FakeGPU(arch=1, power_w=lambda t: 100.0 + 400.0 * (t - origin))  # a ramp: trapezoid is exact
    with NvmlMeter(0, nvml=fake_nvml([gpu]), poll_period_s=0.01) as meter:
        details = meter.info.details["method"]
        assert "trapezoid" in details and "pre-Volta" in details
        time.sleep(0.05)
        token = meter.start()
        time.sleep(0.3)
        w = meter.stop(token)
    a, b = token.t0 - origin, token.t0 - origin + w.duration_s
    assert w.duration_s >= 0.3
    assert w.joules["gpu-0"] == pytest.approx(100 * (b - a) + 200 * (b * b - a * a), rel=1e-3)


def test_unsupported_counter_falls_back_when_architecture_is_unknown(fake_nvml):
    nvml = fake_nvml([FakeGPU(arch=1)])
    nvml.NVML_DEVICE_ARCH_VOLTA = None
    with NvmlMeter(0, nvml=nvml, poll_period_s=0.01) as meter:
        assert "nvmlDeviceGetTotalEnergyConsumption failed: Not Supported" in meter.info.details["method"]
        token = meter.start()
        time.sleep(0.05)
        w = meter.stop(token)
    assert w.joules["gpu-0"] == pytest.approx(150.0 * w.duration_s, rel=1e-6)


def test_no_driver_is_unavailable_with_the_reason(fake_nvml):
    with pytest.raises(MeterUnavailable, match="Driver Not Loaded"):
        NvmlMeter(0, nvml=fake_nvml([], init_error="Driver Not Loaded"))


def test_bad_index_is_unavailable_and_releases_nvml(fake_nvml):
    nvml = fake_nvml([FakeGPU()])
    with pytest.raises(MeterUnavailable, match="no GPU with index 3.*valid: 0..0"):
        NvmlMeter(3, nvml=nvml)
    assert nvml.state["shutdown"] == 1


def test_missing_pynvml_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MeterUnavailable, match="pip install nvidia-ml-py"):
        NvmlMeter(0)
