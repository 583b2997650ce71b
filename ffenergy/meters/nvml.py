"""NVIDIA GPU energy through NVML (package ``nvidia-ml-py``, module ``pynvml``).

Volta and later: deltas of ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load,
updated about every 100 ms). Older GPUs: a polling thread integrates
``nvmlDeviceGetPowerUsage`` (mW) over time by the trapezoid rule; ``info.details`` says so.
Synchronising CUDA is the measurement method's job, not the meter's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ffenergy.meters.base import Meter, MeterError, MeterInfo, MeterUnavailable, WindowEnergy

NVML_UPDATE_PERIOD_S = 0.1


@dataclass(frozen=True)
class _Token:
    t0: float
    counter_mj: int | None


def _load_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as exc:
        raise MeterUnavailable("NVML: module pynvml not found; pip install nvidia-ml-py") from exc
    return pynvml


class NvmlMeter(Meter):
    """Energy of one NVIDIA GPU, by index (provenance: measured)."""

    def __init__(self, index: int = 0, nvml: ModuleType | None = None, poll_period_s: float = 0.05):
        if poll_period_s <= 0:
            raise ValueError(f"NVML: poll_period_s must be > 0, got {poll_period_s}")
        self.nvml = nvml if nvml is not None else _load_pynvml()
        self.index = index
        self.poll_period_s = poll_period_s
        err = self.nvml.NVMLError
        try:
            self.nvml.nvmlInit()
        except err as exc:
            raise MeterUnavailable(
                f"NVML: cannot initialise the NVIDIA driver ({exc}): no NVIDIA GPU or driver here (check nvidia-smi)"
            ) from exc
        try:
            count = self.nvml.nvmlDeviceGetCount()
            if not 0 <= index < count:
                raise MeterUnavailable(
                    f"NVML: no GPU with index {index}; this machine has {count} (valid: 0..{count - 1})"
                    if count
                    else "NVML: the driver sees no GPU"
                )
            self._handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            name = self.nvml.nvmlDeviceGetName(self._handle)
            self.gpu_name = name.decode() if isinstance(name, bytes) else str(name)
            self.counter_reason = self._counter_unsupported()
        except (err, MeterUnavailable) as exc:
            self.nvml.nvmlShutdown()
            if isinstance(exc, MeterUnavailable):
                raise
            raise MeterUnavailable(f"NVML: cannot open GPU {index}: {exc}") from exc
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float]] = []  # (time, watts), power mode only
        self._open: set[float] = set()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.counter_reason is not None:
            self._sample()
            self._thread = threading.Thread(target=self._run, name="ffenergy-nvml-power", daemon=True)
            self._thread.start()

    def _counter_unsupported(self) -> str | None:
        """Why the energy counter cannot be used (None: it can)."""
        arch_fn = getattr(self.nvml, "nvmlDeviceGetArchitecture", None)
        volta = getattr(self.nvml, "NVML_DEVICE_ARCH_VOLTA", None)
        if arch_fn is not None and volta is not None:
            try:
                if arch_fn(self._handle) < volta:
                    return "pre-Volta GPU has no total-energy counter"
            except self.nvml.NVMLError:
                pass  # unknown architecture: try the counter itself
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except self.nvml.NVMLError as exc:
            return f"nvmlDeviceGetTotalEnergyConsumption failed: {exc}"
        return None

    @property
    def info(self) -> MeterInfo:
        if self.counter_reason is None:
            method = "energy counter nvmlDeviceGetTotalEnergyConsumption (mJ), deltas"
        else:
            method = (
                f"power polling: nvmlDeviceGetPowerUsage (mW) every {self.poll_period_s:g} s, "
                f"integrated by the trapezoid rule ({self.counter_reason})"
            )
        return MeterInfo(
            name="nvml",
            provenance="measured",
            domains=(self.domain,),
            update_period_s=max(NVML_UPDATE_PERIOD_S, self.poll_period_s),
            details={"gpu_index": self.index, "gpu_name": self.gpu_name, "method": method},
        )

    @property
    def domain(self) -> str:
        return f"gpu-{self.index}"

    def _sample(self) -> None:
        watts = self.nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        now = time.perf_counter()
        with self._lock:
            self._samples.append((now, watts))
            oldest = min(self._open, default=now)
            while len(self._samples) > 2 and self._samples[1][0] <= oldest:
                self._samples.pop(0)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_period_s):
            try:
                self._sample()
            except BaseException as exc:  # surfaced by the next start()/stop()
                self._error = exc
                return

    def _check(self) -> None:
        if self._error is not None:
            raise MeterError(f"NVML power poller failed: {self._error}") from self._error

    def start(self) -> _Token:
        self._check()
        try:
            if self.counter_reason is None:
                return _Token(time.perf_counter(), self.nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            self._sample()
        except self.nvml.NVMLError as exc:
            raise MeterError(f"NVML: reading GPU {self.index} failed: {exc}") from exc
        with self._lock:
            t0 = self._samples[-1][0]
            self._open.add(t0)
        return _Token(t0, None)

    def stop(self, token: _Token, work_macs: int = 0) -> WindowEnergy:
        self._check()
        try:
            if token.counter_mj is not None:
                mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                return WindowEnergy({self.domain: (mj - token.counter_mj) / 1000.0}, time.perf_counter() - token.t0)
            self._sample()
        except self.nvml.NVMLError as exc:
            raise MeterError(f"NVML: reading GPU {self.index} failed: {exc}") from exc
        with self._lock:
            self._open.discard(token.t0)
            t, w = np.array([s for s in self._samples if s[0] >= token.t0]).T
        return WindowEnergy({self.domain: float(np.trapezoid(w, t))}, float(t[-1] - token.t0))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass  # already shut down: nothing left to release
