"""Board profiles of the simulated meter: anchored to their datasheets, scaled by a calibration, recorded."""

from __future__ import annotations

import pytest

from ffenergy.sim.model import EnergyModel
from ffenergy.sim.profiles import PROFILES, calibration_scale, profile
from ffenergy.targets.mcu_config import McuConfig

MAC_LOOP = (2, 1, 0, 1, 1)  # the int8 mat-vec loop's mix per MAC: 2 loads, 1 MAC, 1 compare, 1 branch


def _amps_per_mhz(m: EnergyModel) -> float:
    t = m.insn_active_time_s(MAC_LOOP)
    return m.insn_window_energy_j(MAC_LOOP) / t / m.supply_v / (m.f_clk_hz / 1e6)


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_draws_its_datasheet_run_current_on_the_mac_loop(name):
    p = PROFILES[name]
    m = p.model()
    assert (m.f_clk_hz, m.supply_v) == (p.f_clk_hz, p.supply_v)
    assert _amps_per_mhz(m) == pytest.approx(p.run_ua_per_mhz * 1e-6, rel=0.15)
    assert m.idle_power_w < m.static_power_w  # sleeping costs less than running


def test_the_reference_profile_is_the_default_model():
    assert profile("stm32l476").model() == EnergyModel()


def test_a_calibration_scales_every_energy_and_nothing_else():
    p = profile("nucleo-l4r5zi")
    base, scaled = p.model(), p.model(1.8)
    assert scaled.insn_window_energy_j(MAC_LOOP) == pytest.approx(1.8 * base.insn_window_energy_j(MAC_LOOP))
    assert scaled.insn_active_time_s(MAC_LOOP) == base.insn_active_time_s(MAC_LOOP)
    assert scaled.idle_power_w == pytest.approx(1.8 * base.idle_power_w)
    assert calibration_scale(0.042, 0.021) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive"):
        calibration_scale(0.042, 0.0)
    with pytest.raises(ValueError, match="scale"):
        p.model(0.0)


def test_mcu_options_name_a_profile_and_its_scale(tmp_path):
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF")
    cfg = McuConfig.from_dict(
        "mcu-qemu", {"firmware": str(elf), "sim": {"profile": "nucleo-u575zi-q", "scale": 2.0, "seed": 3}}
    )
    assert cfg.sim == profile("nucleo-u575zi-q").model(2.0, seed=3)
    assert (cfg.sim_profile, cfg.sim_scale) == ("nucleo-u575zi-q", 2.0)
    with pytest.raises(ValueError, match="unknown board profile 'nucleo-f4'"):
        McuConfig.from_dict("mcu-qemu", {"firmware": str(elf), "sim": {"profile": "nucleo-f4"}})
    with pytest.raises(ValueError, match="give sim.profile too"):
        McuConfig.from_dict("mcu-qemu", {"firmware": str(elf), "sim": {"scale": 2.0}})
    with pytest.raises(ValueError, match="unknown MCU option"):
        McuConfig.from_dict("mcu-qemu", {"firmware": str(elf), "sim_scale": 2.0})


def test_the_manifest_says_when_a_profile_is_off_its_board_and_when_it_is_calibrated():
    l4r5 = profile("nucleo-l4r5zi")
    assert l4r5.off_measured and l4r5.record(1.0)["off_measured_by_more_than_25_percent"] is True
    calibrated = l4r5.record(1.77)
    assert calibrated["status"] == "calibrated" and calibrated["off_measured_by_more_than_25_percent"] is False
    assert profile("stm32l476").record(1.0)["against_measurement"] == "no recording of this board checked it"
