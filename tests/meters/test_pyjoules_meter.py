"""pyJoules 0.5.1 adapter: its NVML unit bug is corrected and its RAPL wrap bug corrected or refused."""

from __future__ import annotations

import re
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

pyJoules = pytest.importorskip("pyJoules")
from pyJoules.device import DeviceFactory, nvidia_device, rapl_device  # noqa: E402
from pyJoules.device.nvidia_device import NvidiaGPUDomain  # noqa: E402
from pyJoules.energy_meter import EnergyMeter  # noqa: E402

from ffenergy.meters.base import MeterError, MeterUnavailable  # noqa: E402
from ffenergy.meters.pyjoules_meter import PyJoulesMeter  # noqa: E402
from tests.meters.fakes import FakeGPU  # noqa: E402


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
    monkeypatch.setattr(pyJoules, "__version__", "0.5.2")
    with pytest.raises(MeterUnavailable, match="version 0.5.2.*pip install pyjoules==0.5.1"):
        PyJoulesMeter()


def test_missing_pyjoules_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyJoules", None)  # import pyJoules raises ImportError
    with pytest.raises(MeterUnavailable, match="pyJoules is not installed: pip install pyjoules==0.5.1"):
        PyJoulesMeter()


def test_the_imported_module_decides_not_the_distribution_metadata(monkeypatch):
    """The installed metadata says 0.5.1, the module that is imported is a fixed release."""
    assert metadata.version("pyjoules") == "0.5.1"
    monkeypatch.setattr(pyJoules, "__version__", "0.6.0")
    with pytest.raises(MeterUnavailable, match=r"version 0\.6\.0 \(it shadows the installed pyjoules 0\.5\.1\)"):
        PyJoulesMeter()
    monkeypatch.delattr(pyJoules, "__version__")
    with pytest.raises(MeterUnavailable, match=r"version unknown \(no __version__\)"):
        PyJoulesMeter()


@pytest.fixture
def restore_pyjoules_modules():
    saved = {k: m for k, m in sys.modules.items() if k == "pyJoules" or k.startswith("pyJoules.")}
    yield
    for k in [k for k in sys.modules if k == "pyJoules" or k.startswith("pyJoules.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_a_shadowing_copy_of_a_fixed_pyjoules_is_refused(tmp_path, monkeypatch, restore_pyjoules_modules):
    """A whole pyJoules tree earlier on sys.path (PYTHONPATH, a vendored copy) that reports 0.6.0."""
    shadow = tmp_path / "pyJoules"
    shutil.copytree(Path(pyJoules.__file__).parent, shadow, ignore=shutil.ignore_patterns("__pycache__"))
    init = shadow / "__init__.py"
    init.write_text(re.sub(r"__version__ = .*", "__version__ = '0.6.0'", init.read_text()))
    for k in [k for k in sys.modules if k == "pyJoules" or k.startswith("pyJoules.")]:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MeterUnavailable, match=rf"imported from {re.escape(str(init))} is version 0\.6\.0"):
        PyJoulesMeter(gpu_indices=[0])


def test_a_vendored_0_5_1_without_metadata_is_used(monkeypatch, fake_nvml, tmp_path):
    from ffenergy.meters import pyjoules_meter

    def not_found(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(pyjoules_meter.metadata, "version", not_found)
    monkeypatch.setattr(rapl_device, "RAPL_API_DIR", str(tmp_path / "none"))
    gpu = FakeGPU(energy_mj=1_000_000)
    monkeypatch.setattr(nvidia_device, "pynvml", fake_nvml([gpu]))
    meter = PyJoulesMeter(gpu_indices=[0])
    assert meter.info.details["pyjoules_module"] == pyJoules.__file__
    assert meter.info.details["pyjoules_distribution"] is None
    token = meter.start()
    gpu.energy_mj += 2_000
    assert meter.stop(token).joules == {"gpu-0": pytest.approx(2.0)}
