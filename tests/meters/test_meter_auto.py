"""Meter registry and the auto choice."""

from __future__ import annotations

import pytest

from ffenergy.meters import auto_meter, available_meters, make_meter
from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.nvml import NvmlMeter
from ffenergy.meters.rapl import RaplMeter
from ffenergy.meters.simulated import SimulatedMeter
from tests.meters.fakes import FakeGPU


@pytest.fixture
def rapl_root(tmp_path):
    z = tmp_path / "intel-rapl:0"
    z.mkdir()
    for f, v in (("name", "package-0"), ("energy_uj", 1), ("max_energy_range_uj", 262_143_328_850)):
        (z / f).write_text(f"{v}\n")
    return tmp_path


def test_make_meter_by_name_and_bad_names_or_options():
    meter = make_meter("simulated", joules_per_mac=1e-9, static_power_w=2.0)
    assert isinstance(meter, SimulatedMeter) and meter.info.provenance == "simulated"
    assert meter.info.details["ground_truth"] == {
        "joules_per_mac": 1e-9,
        "static_power_w": 2.0,
        "static_drift_w_per_s": 0.0,
    }
    with pytest.raises(ValueError, match="unknown meter 'joulemeter'.*rapl"):
        make_meter("joulemeter")
    with pytest.raises(ValueError, match="bad options.*'static_watts'.*static_power_w"):
        make_meter("simulated", static_watts=3)


def test_auto_prefers_nvml_for_a_gpu_target(fake_nvml, rapl_root):
    meter, table = auto_meter(gpu=0, options={"nvml": {"nvml": fake_nvml([FakeGPU()])}, "rapl": {"root": rapl_root}})
    with meter:
        assert isinstance(meter, NvmlMeter)
    assert [(s.name, s.usable) for s in table] == [("nvml", True), ("rapl", False), ("codecarbon", False)]
    assert table[0].reason.startswith("chosen by auto")
    assert "not tried" in table[1].reason


def test_auto_takes_rapl_for_cpu_and_explains_a_missing_gpu(fake_nvml, rapl_root):
    nvml = fake_nvml([], init_error="Driver Not Loaded")
    meter, table = auto_meter(gpu=0, options={"nvml": {"nvml": nvml}, "rapl": {"root": rapl_root}})
    with meter:
        assert isinstance(meter, RaplMeter)
    assert not table[0].usable and "Driver Not Loaded" in table[0].reason
    assert table[1].usable and table[1].reason.startswith("chosen by auto")


def test_auto_with_nothing_usable_lists_every_reason(tmp_path):
    with pytest.raises(MeterUnavailable) as err:
        auto_meter(options={"rapl": {"root": tmp_path}, "codecarbon": {"grid_intensity_g_per_kwh": -1}})
    msg = str(err.value)
    assert "rapl: RAPL: no powercap zones" in msg and "codecarbon:" in msg and "--meter simulated" in msg


def test_available_meters_table(tmp_path):
    table = {s.name: s for s in available_meters({"rapl": {"root": tmp_path}})}
    assert set(table) >= {
        "nvml",
        "rapl",
        "pyjoules",
        "codecarbon",
        "simulated",
        "ina226",
        "ppk2",
        "lpm01a",
        "joulescope",
    }
    assert table["simulated"].usable and table["simulated"].provenance == "simulated"
    assert not table["rapl"].usable and "no powercap zones" in table["rapl"].reason
    assert not table["ina226"].usable and "port" in table["ina226"].reason
    assert not table["lpm01a"].usable and "ports with its USB id 0483:5740 here:" in table["lpm01a"].reason
    assert not table["joulescope"].usable and "Joulescope" in table["joulescope"].reason
    for s in table.values():
        assert s.reason and s.provenance in ("measured", "estimated", "simulated")
