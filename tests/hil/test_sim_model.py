"""The simulator's energy model and trace synthesis (pure, seeded)."""

import numpy as np
import pytest

from ffenergy.firmware.protocol import INSN_CLASSES, TriggerEvent
from ffenergy.meters.ina226_wire import StreamDecoder
from ffenergy.sim.model import SHUNT_LSB_V, EnergyModel, TraceSynth


def _decode(data: bytes):
    items = StreamDecoder().feed(data).items
    return np.concatenate([x.shunt for x in items]), np.concatenate([x.flags for x in items])


def test_window_sample_count_is_unbiased_and_levels_match_the_model():
    model = EnergyModel(sample_rate_hz=10_000, noise_rel=0.0, seed=4)
    work = int(10.3 * 1e-4 * model.f_clk_hz / model.cycles_per_mac)  # 10.3 sample periods of activity
    synth = TraceSynth(model)
    counts = [len(_decode(synth.window(TriggerEvent(0, work)))[0]) for _ in range(2000)]
    assert np.mean(counts) == pytest.approx(model.active_time_s(work) * model.sample_rate_hz, abs=0.03)
    assert set(counts) == {10, 11}
    shunt, flags = _decode(synth.window(TriggerEvent(0, work)))
    amps = model.window_energy_j(work) / (model.active_time_s(work) * model.supply_v)
    assert np.all(np.abs(shunt * SHUNT_LSB_V / model.shunt_ohm - amps) <= SHUNT_LSB_V / model.shunt_ohm / 2)
    assert np.all(flags == 1)
    idle, idle_flags = _decode(synth.idle(50))
    assert np.all(idle == round(model.idle_current_a * model.shunt_ohm / SHUNT_LSB_V)) and np.all(idle_flags == 0)


def test_noise_is_seeded_and_ground_truth_is_consistent():
    a, b = TraceSynth(EnergyModel(seed=1)), TraceSynth(EnergyModel(seed=1))
    assert a.idle(100) == b.idle(100)
    assert a.idle(100) != TraceSynth(EnergyModel(seed=2)).idle(100)
    m = EnergyModel()
    truth = m.ground_truth()
    assert truth["net_joules_per_mac"] * 1000 == pytest.approx(m.net_energy_j(1000))
    assert m.net_energy_j(1000) == pytest.approx(m.window_energy_j(1000) - m.idle_power_w * m.active_time_s(1000))
    assert "gt_net_joules_per_mac" in a.info_fields() and a.info_fields()["source"] == "simulator"


def test_bad_parameters_name_the_field():
    with pytest.raises(ValueError, match="f_clk_hz=0.0: must be > 0"):
        EnergyModel(f_clk_hz=0.0)
    with pytest.raises(ValueError, match="noise_rel=-0.1"):
        EnergyModel(noise_rel=-0.1)


def test_instruction_windows_take_each_class_cycles_and_energy():
    m = EnergyModel(noise_rel=0.0)
    loads, alu = (1000, 0, 0, 0, 0), (0, 0, 0, 0, 1000)
    assert m.insn_active_time_s(loads) == pytest.approx(2 * m.insn_active_time_s(alu))  # LDR: 2 cycles
    assert m.insn_active_time_s(alu) == pytest.approx(1000 / m.f_clk_hz)
    assert m.insn_window_energy_j(loads) == pytest.approx(
        1000 * m.joules_per_ldst + m.static_power_w * 2000 / m.f_clk_hz
    )
    mix = (10, 20, 30, 40, 50)
    per_class = m.net_joules_per_instruction()
    assert m.insn_net_energy_j(mix) == pytest.approx(sum(n * per_class[c] for c, n in zip(INSN_CLASSES, mix)))
    counted = TriggerEvent(0, 999, mix)  # a counted edge is priced by its classes, never by ``work``
    assert m.event_cost(counted) == (m.insn_active_time_s(mix), m.insn_window_energy_j(mix))
    assert m.event_cost(TriggerEvent(0, 999)) == (m.active_time_s(999), m.window_energy_j(999))
    assert m.ground_truth()["net_joules_per_fpu"] == per_class["fpu"]


def test_default_run_current_matches_the_stm32l476_datasheet():
    """A MAC loop's mix (int8 MLP on the M4: ~2 loads, 1 MAC, 1 compare, 1 branch per MAC) draws
    about 100 uA/MHz at 80 MHz, the STM32L476's run-mode figure (DS10198)."""
    m = EnergyModel()
    mix = (2, 1, 0, 1, 1)
    t = m.insn_active_time_s(mix)
    amps_per_mhz = m.insn_window_energy_j(mix) / t / m.supply_v / (m.f_clk_hz / 1e6)
    assert 85e-6 < amps_per_mhz < 115e-6
