"""Fakes shared by the meter tests: an NVML module with the calls our meters make."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace


class FakeNVMLError(Exception):
    pass


class FakeNVMLErrorNotSupported(FakeNVMLError):
    pass


class FakeGPU:
    """One GPU: an energy counter set by the test, power as a function of time."""

    def __init__(
        self,
        name: str = "Fake H100",
        arch: int = 9,
        energy_mj: int = 1_000_000,
        power_w: Callable[[float], float] = lambda t: 150.0,
    ):
        self.name, self.arch, self.energy_mj, self.power_w = name, arch, energy_mj, power_w


def make_fake_nvml(gpus: list[FakeGPU], init_error: str | None = None) -> SimpleNamespace:
    state = {"init": 0, "shutdown": 0}
    volta = 2

    def init() -> None:
        if init_error:
            raise FakeNVMLError(init_error)
        state["init"] += 1

    def total_energy(h: FakeGPU) -> int:
        if h.arch < volta:
            raise FakeNVMLErrorNotSupported("Not Supported")
        return h.energy_mj

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        NVML_DEVICE_ARCH_VOLTA=volta,
        state=state,
        gpus=gpus,
        nvmlInit=init,
        nvmlShutdown=lambda: state.__setitem__("shutdown", state["shutdown"] + 1),
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: gpus[i],
        nvmlDeviceGetName=lambda h: h.name.encode(),
        nvmlDeviceGetArchitecture=lambda h: h.arch,
        nvmlDeviceGetTotalEnergyConsumption=total_energy,
        nvmlDeviceGetPowerUsage=lambda h: int(h.power_w(time.perf_counter()) * 1000),
    )
