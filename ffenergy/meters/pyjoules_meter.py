"""Adapter over pyJoules 0.5.1 (PyPI ``pyjoules``), kept as a cross-check of our own readers.

That release has two known faults, and the adapter handles both:

* NVML energy (millijoules) is labelled microjoules, 1000x too small: corrected (mJ -> J).
* RAPL counter wraps are not handled: a single wrap (negative delta) is corrected with the
  zone's ``max_energy_range_uj``; a window long enough to hold more than one wrap (longer
  than the range at the zone's maximum power) is refused, since pyJoules cannot see it.

Other versions are refused: the correction would be wrong once the bug is fixed upstream. The
version is the imported module's own ``__version__``, not the installed distribution's metadata:
a copy of a fixed pyJoules earlier on ``sys.path`` would shadow the install, and NVML energy
would be multiplied by 1000 again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ffenergy.meters.base import Meter, MeterError, MeterInfo, MeterUnavailable, WindowEnergy
from ffenergy.meters.nvml import NVML_UPDATE_PERIOD_S
from ffenergy.meters.rapl import PERMISSION_FIX, RAPL_UPDATE_PERIOD_S, RaplZone, read_zone

logger = logging.getLogger(__name__)

SUPPORTED_VERSION = "0.5.1"


@dataclass(frozen=True)
class _Token:
    t0: float


def _distribution_version() -> str | None:
    try:
        return metadata.version("pyjoules")
    except metadata.PackageNotFoundError:
        return None


def _checked_pyjoules() -> tuple[str, str | None]:
    """The imported pyJoules' file and the installed distribution's version, once the imported
    module itself is checked to be 0.5.1 (the only release whose bugs this adapter corrects)."""
    try:
        import pyJoules
    except ImportError as exc:
        raise MeterUnavailable(f"pyJoules is not installed: pip install pyjoules=={SUPPORTED_VERSION}") from exc
    version, path = getattr(pyJoules, "__version__", None), str(getattr(pyJoules, "__file__", None) or "?")
    installed = _distribution_version()
    if version != SUPPORTED_VERSION:
        shadow = f" (it shadows the installed pyjoules {installed})" if installed and installed != version else ""
        raise MeterUnavailable(
            f"pyJoules imported from {path} is version {version or 'unknown (no __version__)'}{shadow}; this adapter "
            f"corrects the known unit and wrap bugs of {SUPPORTED_VERSION} only, and would multiply a fixed release's "
            f"NVML energy by 1000: pip install pyjoules=={SUPPORTED_VERSION} and take the other copy off sys.path "
            "(PYTHONPATH, the working directory), or use the rapl/nvml meters"
        )
    if installed != SUPPORTED_VERSION:
        logger.warning(
            "pyJoules: the imported module at %s is %s but the installed distribution says %s; trusting the module",
            path,
            version,
            installed or "not installed",
        )
    return path, installed


def _domain_name(pyjoules_key: str) -> str:
    """``package_0`` -> ``package-0``, ``dram_0`` -> ``dram-0``, ``nvidia_gpu_0`` -> ``gpu-0``."""
    if pyjoules_key.startswith("nvidia_gpu_"):
        return "gpu-" + pyjoules_key.removeprefix("nvidia_gpu_")
    kind, _, socket = pyjoules_key.rpartition("_")
    return f"{kind}-{socket}"


class PyJoulesMeter(Meter):
    """RAPL package/dram of every socket and the given NVIDIA GPUs, read through pyJoules."""

    def __init__(self, gpu_indices: Sequence[int] = (), rapl: bool = True):
        self._module_path, self._distribution = _checked_pyjoules()
        try:
            from pyJoules.device import DeviceFactory
            from pyJoules.device.rapl_device import RaplDevice
            from pyJoules.energy_meter import EnergyMeter
            from pyJoules.exception import PyJoulesException
        except ImportError as exc:
            raise MeterUnavailable(
                f"pyJoules at {self._module_path} is incomplete ({exc}): "
                f"pip install --force-reinstall pyjoules=={SUPPORTED_VERSION}"
            ) from exc
        try:
            domains: list[Any] = []
            if rapl and RaplDevice._rapl_api_available():
                domains += RaplDevice.available_package_domains() + RaplDevice.available_dram_domains()
            if gpu_indices:
                from pyJoules.device.nvidia_device import NvidiaGPUDomain

                domains += [NvidiaGPUDomain(i) for i in gpu_indices]
            if not domains:
                raise MeterUnavailable(
                    "pyJoules found no RAPL package/dram domain (no /sys/class/powercap/intel-rapl) "
                    "and no GPU was asked for (gpu_indices)"
                )
            self._devices = DeviceFactory.create_devices(domains)
            self._meter = EnergyMeter(self._devices)
            self._zones = self._rapl_zones()
            for device in self._devices:
                device.get_energy()  # permission problems surface now, not mid-run
        except PermissionError as exc:
            raise MeterUnavailable(f"pyJoules: permission denied reading {exc.filename}.\n{PERMISSION_FIX}") from exc
        except (PyJoulesException, ImportError, OSError) as exc:
            raise MeterUnavailable(f"pyJoules cannot open its devices: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # NVMLError and friends from inside pyJoules
            if type(exc).__name__.startswith("NVMLError"):
                raise MeterUnavailable(f"pyJoules: NVML failed: {exc}") from exc
            raise
        self._domains = tuple(_domain_name(str(d)) for dev in self._devices for d in dev.get_configured_domains())
        self._open: _Token | None = None

    def _rapl_zones(self) -> dict[str, RaplZone]:
        """pyJoules key -> our zone description (for wrap range and maximum power)."""
        zones = {}
        for dev in self._devices:
            for domain, api_file in zip(dev.get_configured_domains(), getattr(dev, "_api_file_names", None) or []):
                zones[str(domain)] = read_zone(Path(api_file).parent, _domain_name(str(domain)))
        return zones

    @property
    def info(self) -> MeterInfo:
        gpu = any(d.startswith("gpu-") for d in self._domains)
        return MeterInfo(
            name="pyjoules",
            provenance="measured",
            domains=self._domains,
            update_period_s=NVML_UPDATE_PERIOD_S if gpu else RAPL_UPDATE_PERIOD_S,
            details={
                "pyjoules_version": SUPPORTED_VERSION,
                "pyjoules_module": self._module_path,
                "pyjoules_distribution": self._distribution,
                "corrections": "NVML mJ reported as uJ: x1000 corrected; one RAPL wrap corrected, "
                "windows that could hold more refused",
            },
        )

    @property
    def max_window_s(self) -> float:
        """Longest window in which a RAPL counter cannot wrap more than once."""
        return min((z.wrap_time_s for z in self._zones.values()), default=float("inf"))

    def start(self) -> _Token:
        if self._open is not None:
            raise MeterError("pyJoules meter: a window is already open (pyJoules keeps one trace at a time)")
        self._meter.start(tag="window")
        self._open = _Token(time.perf_counter())
        return self._open

    def stop(self, token: _Token, work_macs: int = 0) -> WindowEnergy:
        if token is not self._open:
            raise MeterError("pyJoules meter: stop() got a token that is not the open window")
        self._meter.stop()
        duration = time.perf_counter() - token.t0
        self._open = None
        if duration >= self.max_window_s:
            raise MeterError(
                f"pyJoules meter: a {duration:.3g} s window may hold more than one RAPL counter wrap "
                f"(fastest wrap {self.max_window_s:.3g} s) and pyJoules {SUPPORTED_VERSION} cannot count them; "
                "use the 'rapl' meter or shorter windows"
            )
        (sample,) = self._meter.get_trace()
        joules = {}
        for key, value in sample.energy.items():
            if key.startswith("nvidia_gpu_"):
                joules[_domain_name(key)] = value / 1e3  # pyJoules 0.5.1: this "uJ" value is NVML mJ
            else:
                uj = value + self._zones[key].max_range_uj if value < 0 else value  # one wrap
                joules[_domain_name(key)] = uj / 1e6
        return WindowEnergy(joules, duration)
