"""The simulated DUT's energy model and the INA226 sample trace it produces. Pure (seeded RNG).

A trigger window is priced from what the DUT did inside it, in one of two ways:

- **instructions** (``mcu-qemu``: a counted falling edge from the QEMU plugin, executed
  instructions per class c): active time = sum_c n_c * cpi_c / f_clk_hz, window energy =
  sum_c n_c * joules_per_c + static_power_w * active time;
- **MACs** (``mcu-sim``, the host build, which reports only its MAC count ``work``): active time =
  work * cycles_per_mac / f_clk_hz, window energy = work * joules_per_mac + static_power_w * active time.

Outside windows the DUT draws ``idle_current_a``. The net energy the pipeline must recover is
window energy - idle power * active time. Defaults: an STM32L476 (Cortex-M4F) at 80 MHz and 3.3 V,
anchored to its datasheet's run-mode current and the Cortex-M4 cycle timings (docs/hil.md).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ffenergy.firmware.protocol import INSN_CLASSES, TriggerEvent
from ffenergy.meters.ina226_wire import FLAG_TRIGGER, encode_frames

SHUNT_LSB_V = 2.5e-6  # INA226 shunt-voltage register LSB
BUS_LSB_V = 1.25e-3  # INA226 bus-voltage register LSB
INFO_TRUTH = (
    "supply_v",
    "f_clk_hz",
    "seed",
    "idle_power_w",
    "net_joules_per_mac",
    *(f"net_joules_per_{c}" for c in INSN_CLASSES),
)  # the ground truth on the info line


@dataclass(frozen=True)
class EnergyModel:
    """Ground truth of the simulated DUT and meter (defaults: STM32L476 Cortex-M4F, 80 MHz, 3.3 V)."""

    supply_v: float = 3.3
    idle_current_a: float = 2.0e-3  # sleep (WFI) with the clock running
    static_power_w: float = 10e-3  # clock tree, flash + ART, regulator, leakage while running
    f_clk_hz: float = 80e6
    # instruction model: energy per executed instruction of each class (beyond static power) ...
    joules_per_ldst: float = 420e-12
    joules_per_mul: float = 220e-12
    joules_per_fpu: float = 240e-12
    joules_per_branch: float = 300e-12
    joules_per_other: float = 180e-12
    # ... and cycles per instruction (Cortex-M4 TRM timings; branch: 1 + pipeline refill)
    cpi_ldst: float = 2.0
    cpi_mul: float = 1.0
    cpi_fpu: float = 1.0
    cpi_branch: float = 2.0
    cpi_other: float = 1.0
    # MAC model (the host build, which can count nothing but its MACs)
    joules_per_mac: float = 1.5e-9
    cycles_per_mac: float = 6.0
    # the meter
    noise_rel: float = 0.02  # Gaussian current noise, relative (standard deviation)
    sample_rate_hz: float = 20_000.0
    shunt_ohm: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "seed" and (not math.isfinite(value) or value < 0):
                raise ValueError(f"sim meter {f.name}={value}: must be a finite number >= 0")
        positive = ("supply_v", "cycles_per_mac", "f_clk_hz", "sample_rate_hz", "shunt_ohm")
        for name in positive + tuple(f"cpi_{c}" for c in INSN_CLASSES):
            if getattr(self, name) <= 0:
                raise ValueError(f"sim meter {name}={getattr(self, name)}: must be > 0")

    @property
    def idle_power_w(self) -> float:
        return self.supply_v * self.idle_current_a

    def cpi(self, cls: str) -> float:
        return float(getattr(self, f"cpi_{cls}"))

    def joules_per(self, cls: str) -> float:
        return float(getattr(self, f"joules_per_{cls}"))

    def active_time_s(self, work: int) -> float:
        return work * self.cycles_per_mac / self.f_clk_hz

    def window_energy_j(self, work: int) -> float:
        return work * self.joules_per_mac + self.static_power_w * self.active_time_s(work)

    def net_energy_j(self, work: int) -> float:
        return self.window_energy_j(work) - self.idle_power_w * self.active_time_s(work)

    def insn_active_time_s(self, classes: tuple[int, ...]) -> float:
        return sum(n * self.cpi(c) for c, n in zip(INSN_CLASSES, classes, strict=True)) / self.f_clk_hz

    def insn_window_energy_j(self, classes: tuple[int, ...]) -> float:
        dynamic = sum(n * self.joules_per(c) for c, n in zip(INSN_CLASSES, classes, strict=True))
        return dynamic + self.static_power_w * self.insn_active_time_s(classes)

    def insn_net_energy_j(self, classes: tuple[int, ...]) -> float:
        return self.insn_window_energy_j(classes) - self.idle_power_w * self.insn_active_time_s(classes)

    def event_cost(self, event: TriggerEvent) -> tuple[float, float]:
        """(active time s, window energy J) of the window a falling edge closes: priced by its
        executed instructions when it carries them, else by the MACs the firmware reported."""
        if event.classes:
            return self.insn_active_time_s(event.classes), self.insn_window_energy_j(event.classes)
        return self.active_time_s(event.work), self.window_energy_j(event.work)

    @property
    def net_joules_per_mac(self) -> float:
        """Net (idle-subtracted) joules per MAC of the MAC model: what attribution should recover."""
        return self.net_energy_j(1)

    def net_joules_per_instruction(self) -> dict[str, float]:
        """Net joules per executed instruction of each class (instruction model)."""
        unit = [tuple(int(c == k) for c in INSN_CLASSES) for k in INSN_CLASSES]
        return {k: self.insn_net_energy_j(u) for k, u in zip(INSN_CLASSES, unit, strict=True)}

    def ground_truth(self) -> dict[str, float]:
        """Every parameter plus the derived figures, for the manifest and the info line."""
        return {
            **dataclasses.asdict(self),
            "idle_power_w": self.idle_power_w,
            "net_joules_per_mac": self.net_joules_per_mac,
            **{f"net_joules_per_{k}": v for k, v in self.net_joules_per_instruction().items()},
        }


class TraceSynth:
    """Turns idle stretches and trigger windows into INA226 logger frames, in simulated time."""

    def __init__(self, model: EnergyModel):
        self.model = model
        self.rng = np.random.default_rng(model.seed)
        self.seq = 0
        self.period_s = 1.0 / model.sample_rate_hz

    def restart(self) -> None:
        """A logger reset: counter and clock start from zero (noise stream continues)."""
        self.seq = 0

    def idle(self, n: int) -> bytes:
        return self._frames(np.full(n, self.model.idle_current_a), np.zeros(n, np.uint8))

    def window(self, event: TriggerEvent) -> bytes:
        """Frames of the trigger window that the falling edge ``event`` closes (``EnergyModel.event_cost``).

        The rising edge falls at a uniformly random point in the sample period before the next
        sample, so counting high samples estimates the active time without bias.
        """
        m = self.model
        active, energy = m.event_cost(event)
        lead = self.rng.uniform(0.0, 1.0)
        n_high = max(0, math.ceil((active / self.period_s) - lead))
        if n_high == 0:
            return b""
        current = energy / (active * m.supply_v)
        return self._frames(np.full(n_high, current), np.full(n_high, FLAG_TRIGGER, np.uint8))

    def _frames(self, current_a: np.ndarray, flags: np.ndarray) -> bytes:
        n = len(current_a)
        if n == 0:
            return b""
        m = self.model
        noisy = current_a * (1.0 + m.noise_rel * self.rng.standard_normal(n))
        shunt = np.clip(np.rint(noisy * m.shunt_ohm / SHUNT_LSB_V), -32768, 32767).astype(np.int16)
        bus = np.full(n, round(m.supply_v / BUS_LSB_V), np.uint16)
        seq = self.seq + np.arange(n)
        t_us = np.rint(seq * self.period_s * 1e6).astype(np.int64)
        self.seq += n
        return encode_frames(seq, t_us, bus, shunt, flags)

    def info_fields(self) -> dict[str, object]:
        m = self.model
        fields: dict[str, object] = {
            "device": "ffenergy-sim",
            "source": "simulator",
            "fw": "1.0.0",
            "shunt_ohm": m.shunt_ohm,
            "shunt_lsb_v": SHUNT_LSB_V,
            "bus_lsb_v": BUS_LSB_V,
            "avg": 1,
            "period_us": round(self.period_s * 1e6, 3),
            "trigger_pin": "sim",
        }
        truth = m.ground_truth()  # the line holds 512 bytes: the figures a reader checks (the manifest has all)
        fields.update({f"gt_{k}": f"{truth[k]:.9g}" for k in INFO_TRUTH})
        return fields
