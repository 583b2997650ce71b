"""pyJoules 0.5.1 adapter: its NVML unit bug is corrected and its RAPL wrap bug corrected or refused."""

from __future__ import annotations

import time

import pytest

pyJoules = pytest.importorskip("pyJoules")
from pyJoules.device import DeviceFactory, nvidia_device, rapl_device  # noqa: E402
from pyJoules.device.nvidia_device import NvidiaGPUDomain  # noqa: E402
from pyJoules.energy_meter import EnergyMeter  # noqa: E402

from conftest import FakeGPU  # noqa: E402
from ffenergy.meters.base import MeterError, MeterUnavailable  # noqa: E402
from ffenergy.meters.pyjoules_meter import PyJoulesMeter  # noqa: E402


def write(path, value):
    path.write_text(f"{value}\n")


@pytest.fixture
def rapl_dir(tmp_path, monkeypatch):
    base = tmp_path / "intel-rapl"
    pkg = base / "intel-rapl:0"
    pkg.mkdir(parents=True)
    write(pkg / "name", "package-0")
    write(pkg / "energy_uj", 5_000_000)
    write(pkg / "max_energy_range_uj", 262_143_328_850)
    monkeypatch.setattr(rapl_device, "RAPL_API_DIR", str(base))
    return base


def test_nvml_millijoules_are_not_taken_for_microjoules(monkeypatch, fake_nvml, tmp_path):
    monkeypatch.setattr(rapl_device, "RAPL_API_DIR", str(tmp_path / "none"))
    gpu = FakeGPU(energy_mj=1_000_000)
    monkeypatch.setattr(nvidia_device, "pynvml", fake_nvml([gpu]))

    raw = EnergyMeter(DeviceFactory.create_devices([NvidiaGPUDomain(0)]))  # pyJoules on its own
    raw.start()
    gpu.energy_mj += 5_000
    raw.stop()
    assert raw.get_trace()[0].energy == {"nvidia_gpu_0": 5_000}  # "uJ" per pyJoules: 0.005 J, 1000x too small

    meter = PyJoulesMeter(gpu_indices=[0])
    assert meter.info.domains == ("gpu-0",)
    token = meter.start()
    gpu.energy_mj += 5_000  # 5 J
    assert meter.stop(token).joules == {"gpu-0": pytest.approx(5.0)}


def test_rapl_single_wrap_is_corrected(rapl_dir):
    meter = PyJoulesMeter()
    assert meter.info.domains == ("package-0",)
    write(rapl_dir / "intel-rapl:0" / "energy_uj", 262_143_328_850 - 1_000_000)
    token = meter.start()
    write(rapl_dir / "intel-rapl:0" / "energy_uj", 2_000_000)
    assert meter.stop(token).joules == {"package-0": pytest.approx(3.0)}


def test_windows_that_could_hide_a_second_wrap_are_refused(rapl_dir):
    write(rapl_dir / "intel-rapl:0" / "max_energy_range_uj", 10_000)  # 10 mJ: wraps in 10 us at 1000 W
    meter = PyJoulesMeter()
    token = meter.start()
    time.sleep(0.01)
    with pytest.raises(MeterError, match="more than one RAPL counter wrap"):
        meter.stop(token)


def test_no_domain_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(rapl_device, "RAPL_API_DIR", str(tmp_path / "none"))
    with pytest.raises(MeterUnavailable, match="no RAPL package/dram domain"):
        PyJoulesMeter()


def test_other_versions_are_refused(monkeypatch):
    from ffenergy.meters import pyjoules_meter
    monkeypatch.setattr(pyjoules_meter.metadata, "version", lambda name: "0.5.2")
    with pytest.raises(MeterUnavailable, match="pip install pyjoules==0.5.1"):
        PyJoulesMeter()


def test_missing_pyjoules_names_the_pip_command(monkeypatch):
    from ffenergy.meters import pyjoules_meter

    def not_found(name):
        raise pyjoules_meter.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(pyjoules_meter.metadata, "version", not_found)
    with pytest.raises(MeterUnavailable, match="pip install pyjoules"):
        PyJoulesMeter()
