"""The meter interface: every energy source (RAPL, NVML, serial meters, simulators) speaks it.

A meter measures *windows*: ``start()`` opens one, ``stop()`` closes it and returns the
joules per domain spent inside it. Meters know counters, sample streams and units; they
know nothing about models or experiments.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ffenergy.vocabulary import Provenance


class MeterError(RuntimeError):
    """A meter cannot be used or failed mid-window. The message says how to fix it."""


class MeterUnavailable(MeterError):
    """The meter does not exist or cannot be read on this machine (never reported as zero)."""


@dataclass(frozen=True)
class MeterInfo:
    """What the manifest records about a meter."""

    name: str
    provenance: Provenance
    domains: tuple[str, ...]
    update_period_s: float
    details: dict[str, Any] = field(default_factory=dict)  # e.g. simulated ground truth, GPU name


@dataclass(frozen=True)
class WindowEnergy:
    """Energy of one closed window, per domain, in joules (gross: idle not subtracted)."""

    joules: dict[str, float]
    duration_s: float
    # Domains reported but contained in others (RAPL psys holds the packages): not summed.
    not_in_total: tuple[str, ...] = ()

    @property
    def total_j(self) -> float:
        return sum(j for d, j in self.joules.items() if d not in self.not_in_total)


class Meter(ABC):
    """One energy source. Use as a context manager so ``close()`` always runs."""

    @property
    @abstractmethod
    def info(self) -> MeterInfo: ...

    @abstractmethod
    def start(self) -> Any:
        """Open a window and return an opaque token for :meth:`stop`."""

    @abstractmethod
    def stop(self, token: Any, work_macs: int = 0) -> WindowEnergy:
        """Close the window opened by ``token``.

        ``work_macs`` is the work done inside the window. Only simulated meters use it
        (their energy model is driven by it); real meters ignore it.
        """

    def close(self) -> None:  # noqa: B027 - most meters hold nothing to release
        """Release threads, handles and ports."""

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
