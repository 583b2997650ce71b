"""A simulated energy counter with a known ground truth, for CI and for checking the method.

Energy model: the device draws ``static_power_w`` all the time (idle windows see it) plus
``joules_per_mac`` for every multiply-accumulate reported to :meth:`SimulatedMeter.stop`.
Like RAPL and NVML, the counter only advances every ``update_period_s`` and in steps of
``quantum_j``; a window's reading is then scaled by ``1 + noise * N(0, 1)`` (seeded RNG).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ffenergy.meters.base import Meter, MeterInfo, WindowEnergy

DOMAIN = "simulated"


@dataclass(frozen=True)
class _Token:
    t0: float
    counter_j: float


class SimulatedMeter(Meter):
    """Counter model over ``static_power_w * t + joules_per_mac * MACs`` (provenance: simulated).

    ``static_drift_w_per_s`` lets the static power drift linearly from the meter's creation (a device
    warming up), so the method's per-round idle windows and its drift check can be tested.
    """

    def __init__(
        self,
        joules_per_mac: float = 20e-12,
        static_power_w: float = 10.0,
        noise: float = 0.0,
        update_period_s: float = 0.001,
        quantum_j: float = 15.3e-6,
        static_drift_w_per_s: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        for name, value in (
            ("joules_per_mac", joules_per_mac),
            ("static_power_w", static_power_w),
            ("noise", noise),
            ("quantum_j", quantum_j),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"simulated meter: {name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(update_period_s) and update_period_s > 0):
            raise ValueError(f"simulated meter: update_period_s must be > 0, got {update_period_s!r}")
        self.joules_per_mac = joules_per_mac
        self.static_power_w = static_power_w
        self.noise = noise
        self.update_period_s = update_period_s
        self.quantum_j = quantum_j
        if not math.isfinite(static_drift_w_per_s):
            raise ValueError(f"simulated meter: static_drift_w_per_s must be finite, got {static_drift_w_per_s!r}")
        self.static_drift_w_per_s = static_drift_w_per_s
        self.seed = seed
        self._clock = clock
        self._origin = clock()
        self._macs_done = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="simulated",
            provenance="simulated",
            domains=(DOMAIN,),
            update_period_s=self.update_period_s,
            details={
                "ground_truth": {
                    "joules_per_mac": self.joules_per_mac,
                    "static_power_w": self.static_power_w,
                    "static_drift_w_per_s": self.static_drift_w_per_s,
                },
                "noise": self.noise,
                "quantum_j": self.quantum_j,
                "seed": self.seed,
            },
        )

    def _counter_j(self, now: float) -> float:
        """The counter as a real one shows it: last update tick, whole quanta."""
        elapsed = now - self._origin
        tick = math.floor(elapsed / self.update_period_s) * self.update_period_s
        static = self.static_power_w * tick + 0.5 * self.static_drift_w_per_s * tick * tick
        energy = static + self.joules_per_mac * self._macs_done
        if self.quantum_j > 0:
            energy = math.floor(energy / self.quantum_j) * self.quantum_j
        return energy

    def start(self) -> _Token:
        with self._lock:
            now = self._clock()
            return _Token(now, self._counter_j(now))

    def stop(self, token: _Token, work_macs: int = 0) -> WindowEnergy:
        if work_macs < 0:
            raise ValueError(f"simulated meter: work_macs must be >= 0, got {work_macs}")
        with self._lock:
            now = self._clock()
            self._macs_done += work_macs
            energy = self._counter_j(now) - token.counter_j
            if self.noise > 0:
                energy *= 1.0 + self.noise * float(self._rng.standard_normal())
        return WindowEnergy(joules={DOMAIN: energy}, duration_s=now - token.t0)
