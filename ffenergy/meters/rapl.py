"""CPU energy from Linux powercap RAPL counters (``intel-rapl:*``, also AMD since Linux 5.8).

Domains: ``package-N`` (or ``package-N-die-M`` for real per-die counters), ``dram-N`` and
``psys``. ``core``/``uncore`` sit inside their package and are not read. ``psys`` contains
the packages, so it is reported but left out of the total. Multi-die AMD parts expose one
zone per die that all mirror the socket counter: those are read once.

Counters wrap at ``max_energy_range_uj``; a background poller reads every counter more often
than the fastest possible wrap, so a window may span any number of wraps.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ffenergy.meters.base import Meter, MeterError, MeterInfo, MeterUnavailable, WindowEnergy

DEFAULT_ROOT = Path("/sys/class/powercap")
RAPL_UPDATE_PERIOD_S = 0.001  # RAPL counters update about every millisecond
ASSUMED_MAX_POWER_W = 1000.0  # per zone, when it publishes no constraint_0_max_power_uw
MIRROR_TOLERANCE_UJ = 50_000  # two zones read back to back within 0.05 J: one counter
_TOP = re.compile(r"^intel-rapl:(\d+)$")
_SUB = re.compile(r"^intel-rapl:(\d+):(\d+)$")
_PACKAGE = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")

PERMISSION_FIX = (
    "RAPL energy counters are root-only since Linux 5.10 (CVE-2020-8694). Fix one of:\n"
    "  * run as root: sudo ffenergy ...\n"
    "  * until reboot: sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj\n"
    "  * persistently, a udev rule in /etc/udev/rules.d/99-rapl.rules:\n"
    '      ACTION=="add", SUBSYSTEM=="powercap", RUN+="/bin/chmod a+r /sys%p/energy_uj"\n'
    "    or sysfsutils (/etc/sysfs.conf): mode class/powercap/intel-rapl:0/energy_uj = 0444\n"
    "  * a group with read access: sudo groupadd -f rapl && sudo usermod -aG rapl $USER &&\n"
    "      sudo chgrp rapl /sys/class/powercap/intel-rapl:*/energy_uj && "
    "sudo chmod g+r /sys/class/powercap/intel-rapl:*/energy_uj"
)


@dataclass(frozen=True)
class RaplZone:
    """One counter: its directory, kernel name, our domain name and wrap range."""

    path: Path
    name: str
    domain: str
    max_range_uj: int
    max_power_w: float

    @property
    def wrap_time_s(self) -> float:
        """Shortest time in which the counter can wrap (at its maximum power)."""
        return self.max_range_uj / 1e6 / self.max_power_w


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as exc:
        raise MeterUnavailable(f"permission denied reading {path}.\n{PERMISSION_FIX}") from exc
    except (OSError, ValueError) as exc:
        raise MeterError(f"RAPL: cannot read an integer from {path}: {exc}") from exc


def _zone_dirs(root: Path) -> dict[str, Path]:
    """``intel-rapl:N`` and ``intel-rapl:N:M`` zone directories, flat (sysfs) or nested."""
    found: dict[str, Path] = {}
    for top in sorted(root.glob("intel-rapl:*")):
        found.setdefault(top.name, top)
        for sub in sorted(top.glob("intel-rapl:*")):
            found.setdefault(sub.name, sub)
    return {zid: p for zid, p in found.items() if _TOP.match(zid) or _SUB.match(zid)}


def read_zone(path: Path, domain: str) -> RaplZone:
    """The zone at ``path`` (reads its name, wrap range and power limit)."""
    limit = path / "constraint_0_max_power_uw"
    max_power = ASSUMED_MAX_POWER_W
    if limit.exists():
        try:
            max_power = max(int(limit.read_text().strip()) / 1e6, 1.0)
        except (OSError, ValueError):
            pass  # a limit we cannot read only changes the poll period; keep the safe default
    return RaplZone(path, (path / "name").read_text().strip(), domain,
                    _read_int(path / "max_energy_range_uj"), max_power)


def discover_zones(root: Path = DEFAULT_ROOT) -> tuple[list[RaplZone], list[str]]:
    """The zones to read (no double counting) and notes on zones left out and why."""
    dirs = _zone_dirs(Path(root))
    if not dirs:
        raise MeterUnavailable(
            f"RAPL: no powercap zones (intel-rapl:*) under {root}: this host has no RAPL interface "
            "(no intel_rapl/amd rapl driver, or a VM/container that hides it). Use 'nvml' for an "
            "NVIDIA GPU or 'codecarbon' for a labelled estimate.")
    zones: list[RaplZone] = []
    notes: list[str] = []
    packages: dict[int, list[tuple[str, Path, str]]] = {}
    for zid, path in dirs.items():
        if not _TOP.match(zid):
            continue
        name = (path / "name").read_text().strip()
        m = _PACKAGE.match(name)
        if m:
            packages.setdefault(int(m.group(1)), []).append((zid, path, name))
        elif name == "psys":
            zones.append(read_zone(path, "psys"))
        else:
            notes.append(f"{zid} ({name}): unknown top-level zone, not read")
    kept_tops: dict[str, str] = {}  # zone id -> domain suffix for its sub-zones
    for socket, group in sorted(packages.items()):
        mirrored = len(group) > 1 and _mirror(group)
        for i, (zid, path, name) in enumerate(group):
            if mirrored and i > 0:
                notes.append(f"{zid} ({name}) mirrors {group[0][0]}: counted once")
                continue
            domain = f"package-{socket}" if mirrored else name
            zones.append(read_zone(path, domain))
            kept_tops[zid] = domain.removeprefix("package-")
    for zid, path in dirs.items():
        m = _SUB.match(zid)
        if not m:
            continue
        name = (path / "name").read_text().strip()
        parent = f"intel-rapl:{m.group(1)}"
        if name == "dram" and parent in kept_tops:
            zones.append(read_zone(path, f"dram-{kept_tops[parent]}"))
        elif name in ("core", "uncore"):
            continue  # inside its package: reading it would double count
        else:
            notes.append(f"{zid} ({name}): not read")
    return zones, notes


def _mirror(group: list[tuple[str, Path, str]]) -> bool:
    values = [_read_int(p / "energy_uj") for _, p, _ in group]
    return max(values) - min(values) <= MIRROR_TOLERANCE_UJ


@dataclass(frozen=True)
class _Token:
    t0: float
    counts_uj: dict[str, int]


class RaplMeter(Meter):
    """RAPL counter deltas with wrap tracking by a background poller (provenance: measured)."""

    def __init__(self, root: Path | str = DEFAULT_ROOT, poll_period_s: float | None = None):
        self.root = Path(root)
        self.zones, self.notes = discover_zones(self.root)
        if not self.zones:
            raise MeterUnavailable(f"RAPL: no package, dram or psys zone under {self.root} ({'; '.join(self.notes)})")
        fastest_wrap = min(z.wrap_time_s for z in self.zones)
        if poll_period_s is None:
            poll_period_s = min(1.0, fastest_wrap / 10)
        if not 0 < poll_period_s < fastest_wrap / 2:
            raise ValueError(f"RAPL: poll_period_s={poll_period_s} must be > 0 and under half the fastest "
                             f"counter wrap ({fastest_wrap:.3g} s), or wraps would be missed")
        self.poll_period_s = poll_period_s
        self._lock = threading.Lock()
        self._last = {z.domain: _read_int(z.path / "energy_uj") for z in self.zones}
        self._wraps = {z.domain: 0 for z in self.zones}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ffenergy-rapl-poller", daemon=True)
        self._thread.start()

    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="rapl", provenance="measured", domains=tuple(z.domain for z in self.zones),
            update_period_s=RAPL_UPDATE_PERIOD_S,
            details={"root": str(self.root), "poll_period_s": self.poll_period_s,
                     "zones": {z.domain: {"path": str(z.path), "name": z.name, "max_energy_range_uj": z.max_range_uj}
                               for z in self.zones},
                     "not_in_total": [z.domain for z in self.zones if z.domain == "psys"],
                     "notes": self.notes})

    @property
    def wraps(self) -> dict[str, int]:
        """Counter wraps seen so far, per domain."""
        with self._lock:
            return dict(self._wraps)

    def poll(self) -> dict[str, int]:
        """Read every counter once; return the unwrapped counts (µJ since the meter opened)."""
        with self._lock:
            counts = {}
            for z in self.zones:
                raw = _read_int(z.path / "energy_uj")
                if raw < self._last[z.domain]:
                    self._wraps[z.domain] += 1
                self._last[z.domain] = raw
                counts[z.domain] = raw + self._wraps[z.domain] * z.max_range_uj
            return counts

    def _run(self) -> None:
        while not self._stop.wait(self.poll_period_s):
            try:
                self.poll()
            except BaseException as exc:  # surfaced by the next start()/stop()
                self._error = exc
                return

    def _checked_poll(self) -> dict[str, int]:
        if self._error is not None:
            raise MeterError(f"RAPL poller failed: {self._error}") from self._error
        if not self._thread.is_alive():
            raise MeterError("RAPL meter is closed")
        return self.poll()

    def start(self) -> _Token:
        counts = self._checked_poll()
        return _Token(time.perf_counter(), counts)

    def stop(self, token: _Token, work_macs: int = 0) -> WindowEnergy:
        counts = self._checked_poll()
        duration = time.perf_counter() - token.t0
        joules = {d: (counts[d] - token.counts_uj[d]) / 1e6 for d in counts}
        return WindowEnergy(joules, duration, not_in_total=tuple(d for d in joules if d == "psys"))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
