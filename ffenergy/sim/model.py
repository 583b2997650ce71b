"""The simulated DUT's energy model and the INA226 sample trace it produces. Pure (seeded RNG).

Inside a trigger window that did ``work`` MACs: active time = work * cycles_per_mac / f_clk_hz,
window energy = work * joules_per_mac + static_power_w * active time (all the DUT draws while
active); outside windows it draws ``idle_current_a``. The net energy the pipeline must recover is
window energy - idle power * active time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ffenergy.meters.ina226_wire import FLAG_TRIGGER, encode_frames

SHUNT_LSB_V = 2.5e-6  # INA226 shunt-voltage register LSB
BUS_LSB_V = 1.25e-3  # INA226 bus-voltage register LSB


@dataclass(frozen=True)
class EnergyModel:
    """Ground truth of the simulated DUT and meter (defaults: a Cortex-M4F at 64 MHz, 3.3 V)."""

    supply_v: float = 3.3
    idle_current_a: float = 2.0e-3
    joules_per_mac: float = 1.5e-9
    static_power_w: float = 10e-3
    cycles_per_mac: float = 6.0
    f_clk_hz: float = 64e6
    noise_rel: float = 0.02  # Gaussian current noise, relative (standard deviation)
    sample_rate_hz: float = 20_000.0
    shunt_ohm: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "seed" and (not math.isfinite(value) or value < 0):
                raise ValueError(f"sim meter {f.name}={value}: must be a finite number >= 0")
        for name in ("supply_v", "cycles_per_mac", "f_clk_hz", "sample_rate_hz", "shunt_ohm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sim meter {name}={getattr(self, name)}: must be > 0")

    @property
    def idle_power_w(self) -> float:
        return self.supply_v * self.idle_current_a

    def active_time_s(self, work: int) -> float:
        return work * self.cycles_per_mac / self.f_clk_hz

    def window_energy_j(self, work: int) -> float:
        return work * self.joules_per_mac + self.static_power_w * self.active_time_s(work)

    def net_energy_j(self, work: int) -> float:
        return self.window_energy_j(work) - self.idle_power_w * self.active_time_s(work)

    @property
    def net_joules_per_mac(self) -> float:
        """Net (idle-subtracted) joules per MAC: what attribution should recover."""
        return self.net_energy_j(1)

    def ground_truth(self) -> dict[str, float]:
        """Every parameter plus the derived figures, for the manifest and the info line."""
        return {
            **dataclasses.asdict(self),
            "idle_power_w": self.idle_power_w,
            "net_joules_per_mac": self.net_joules_per_mac,
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

    def window(self, work: int) -> bytes:
        """Frames of one trigger window that did ``work`` MACs.

        The rising edge falls at a uniformly random point in the sample period before the next
        sample, so counting high samples estimates the active time without bias.
        """
        m = self.model
        active = m.active_time_s(work)
        lead = self.rng.uniform(0.0, 1.0)
        n_high = max(0, math.ceil((active / self.period_s) - lead))
        if n_high == 0:
            return b""
        current = m.window_energy_j(work) / (active * m.supply_v)
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
        fields.update({f"gt_{k}": f"{v:.9g}" for k, v in m.ground_truth().items()})
        return fields
