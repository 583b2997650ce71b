"""CPU energy from Linux powercap RAPL counters (``intel-rapl:*``, also AMD since Linux 5.8).

Domains: ``package-N`` (or ``package-N-die-M`` for real per-die counters), ``dram-N`` and
``psys``. ``core``/``uncore`` sit inside their package and are not read. ``psys`` is platform
energy and contains the packages, so it is reported but left out of the total; on a host with
no package zone psys *is* the total, and the meter info says so. Multi-die AMD parts expose one
zone per die that all mirror the socket counter: those are read once.

Zones are found as flat ``intel-rapl:N`` entries under the root (``/sys/class/powercap``) or
nested under ``<root>/intel-rapl/`` (all a container that bind-mounts the control type sees).
A package zone that cannot be read refuses the meter (the total would be short); a broken
``psys`` or ``dram`` zone is skipped with a note in ``MeterInfo.details``.

Counters wrap at ``max_energy_range_uj``; a background poller reads every counter more often
than the fastest possible wrap, so a window may span any number of wraps. Counter state is
kept per zone directory, never per name (two zones may carry the same name).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

from ffenergy.meters.base import Meter, MeterError, MeterInfo, MeterUnavailable, WindowEnergy

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/sys/class/powercap")
CONTROL_TYPE = "intel-rapl"  # the control type directory that holds the zones, nested
RAPL_UPDATE_PERIOD_S = 0.001  # RAPL counters update about every millisecond
ASSUMED_MAX_POWER_W = 1000.0  # per zone, when it publishes no constraint_0_max_power_uw
MIRROR_ROUNDS = 8  # back-to-back reads of one socket's zones, to tell mirrors from real dies
MIRROR_MATCHES = 2  # rounds with identical values that make two zones one counter
MIRROR_GAP_S = RAPL_UPDATE_PERIOD_S  # between rounds: one counter update spoils at most one round
FROZEN_AFTER_S = 0.05  # a window this long in which no counted zone moved: the counters are frozen
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
BROKEN_FIX = (
    "Check the RAPL driver (dmesg | grep -i rapl) and how /sys is mounted here (ls -lR the zone), "
    "or use 'nvml' for an NVIDIA GPU or 'codecarbon' for a labelled estimate."
)
PLATFORM_ENERGY = (
    "psys is platform energy (the whole SoC: cores, graphics, memory controller and "
    "more on some laptops), not CPU-package energy"
)


@dataclass(frozen=True)
class RaplZone:
    """One counter: its directory, kernel name, our domain name, wrap range and whether it is summed."""

    path: Path
    name: str
    domain: str
    max_range_uj: int
    max_power_w: float
    in_total: bool = True

    @property
    def wrap_time_s(self) -> float:
        """Shortest time in which the counter can wrap (at its maximum power)."""
        return self.max_range_uj / 1e6 / self.max_power_w


@dataclass(frozen=True)
class _Found:
    """A top-level zone directory and its kernel name, before it is opened."""

    zid: str
    path: Path
    name: str


def _dangling_hint(zone_dir: Path) -> str:
    """Why a zone directory reads as missing, when it is a link to a path not mounted here."""
    if not os.path.islink(zone_dir) or os.path.exists(zone_dir):
        return ""
    try:
        target = os.readlink(zone_dir)
    except OSError:
        target = "?"
    return (
        f"; {zone_dir} links to {target}, which is not mounted here (mount "
        "/sys/devices/virtual/powercap too, or pass root= the directory that holds intel-rapl:N)"
    )


def _read_text(path: Path) -> str:
    """A sysfs attribute, stripped. Errors say what is wrong and how to fix it."""
    try:
        return path.read_text().strip()
    except PermissionError as exc:
        raise MeterUnavailable(f"permission denied reading {path}.\n{PERMISSION_FIX}") from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MeterError(f"cannot read {path} ({reason}){_dangling_hint(path.parent)}") from exc


def _read_int(path: Path) -> int:
    text = _read_text(path)
    try:
        return int(text)
    except ValueError as exc:
        raise MeterError(f"cannot read an integer from {path}: it holds {text[:40]!r}") from exc


def _read_name(path: Path) -> str:
    name = _read_text(path / "name")
    if not name:
        raise MeterError(f"{path / 'name'} is empty")
    return name


def read_zone(path: Path, domain: str) -> RaplZone:
    """The zone at ``path`` (reads its name, wrap range and power limit)."""
    try:
        max_power = max(int((path / "constraint_0_max_power_uw").read_text().strip()) / 1e6, 1.0)
    except (OSError, ValueError):
        max_power = ASSUMED_MAX_POWER_W  # no limit, or one we cannot read: only the poll period changes
    max_range = _read_int(path / "max_energy_range_uj")
    if max_range <= 0:
        raise MeterError(f"{path / 'max_energy_range_uj'} is {max_range}: the counter has no wrap range")
    return RaplZone(path, _read_name(path), domain, max_range, max_power)


def _open_zone(found: _Found, domain: str, in_total: bool = True) -> RaplZone:
    """``found`` as a zone, checked readable: its range, its limit and one counter read."""
    zone = replace(read_zone(found.path, domain), in_total=in_total)
    _read_int(found.path / "energy_uj")
    return zone


def _unusable(reason: str, exc: MeterError) -> MeterUnavailable:
    fix = "" if isinstance(exc, MeterUnavailable) else f"\n{BROKEN_FIX}"  # a permission error carries its fixes
    return MeterUnavailable(f"RAPL: not usable, because {reason}: {exc}{fix}")


def _note(notes: list[str], text: str, skipped: bool = False) -> None:
    notes.append(text)
    (logger.warning if skipped else logger.info)("RAPL: %s", text)


def _zid_key(zid: str) -> tuple[int, ...]:
    return tuple(int(n) for n in zid.split(":")[1:])


def _entries(base: Path) -> list[tuple[str, Path]]:
    """Zone entries (``intel-rapl:N``, ``intel-rapl:N:M``) directly in ``base``, in zone-id order."""
    try:
        names = os.listdir(base)
    except OSError:
        return []
    zids = sorted((n for n in names if _TOP.match(n) or _SUB.match(n)), key=_zid_key)
    return [(zid, base / zid) for zid in zids]


def _zone_dirs(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Zone id -> directory, flat in ``root`` (sysfs) or nested in ``root/intel-rapl/`` (a bind
    mount); sub-zones also inside their parent. A real directory beats a dangling link of the same id."""
    flat, nested = _entries(root), _entries(root / CONTROL_TYPE)
    candidates: dict[str, list[Path]] = {}
    for zid, path in flat + nested:
        candidates.setdefault(zid, []).append(path)
        if _TOP.match(zid):
            for sub, sub_path in _entries(path):
                if sub.startswith(zid + ":"):
                    candidates.setdefault(sub, []).append(sub_path)
    dirs = {
        zid: next((p for p in paths if os.path.isdir(p)), paths[0])
        for zid, paths in sorted(candidates.items(), key=lambda kv: _zid_key(kv[0]))
    }
    notes = []
    if nested and not any(_TOP.match(zid) and os.path.isdir(path) for zid, path in flat):
        notes.append(
            f"zones read through {root / CONTROL_TYPE}/: {root} has no usable flat intel-rapl:N entries "
            "(as in a container that bind-mounts only the control type)"
        )
    return dirs, notes


def _sort_tops(dirs: dict[str, Path], notes: list[str]) -> tuple[dict[int, list[_Found]], list[_Found]]:
    """Top-level zones by kind: packages per socket, and psys. A zone without a readable name refuses."""
    packages: dict[int, list[_Found]] = {}
    platforms: list[_Found] = []
    for zid, path in dirs.items():
        if not _TOP.match(zid):
            continue
        try:
            name = _read_name(path)
        except MeterError as exc:
            raise _unusable(
                f"the name of top-level zone {zid} cannot be read (it may be a CPU package, "
                "and leaving it out would undercount)",
                exc,
            ) from exc
        m = _PACKAGE.match(name)
        if m:
            packages.setdefault(int(m.group(1)), []).append(_Found(zid, path, name))
        elif name == "psys":
            platforms.append(_Found(zid, path, name))
        else:
            _note(notes, f"{zid} ({name}): unknown top-level zone, not read")
    return packages, platforms


def _mirror_clusters(zones: list[RaplZone]) -> list[list[RaplZone]]:
    """``zones`` grouped by the counter they show. Two zones are one counter when their values,
    read back to back, are identical in MIRROR_MATCHES rounds: a counter update between two reads
    spoils one round, not several, and two real counters are not equal to the microjoule twice."""
    if len(zones) < 2:
        return [zones]
    matches = dict.fromkeys(combinations(range(len(zones)), 2), 0)
    for round_ in range(MIRROR_ROUNDS):
        if round_:
            time.sleep(MIRROR_GAP_S)
        values = [_read_int(z.path / "energy_uj") for z in zones]
        for i, j in matches:
            matches[i, j] += values[i] == values[j]
        if min(matches.values()) >= MIRROR_MATCHES:
            break
    head = list(range(len(zones)))  # union-find over the zones that matched
    for (i, j), n in matches.items():
        if n >= MIRROR_MATCHES:
            head[_find(head, j)] = _find(head, i)
    clusters: dict[int, list[RaplZone]] = {}
    for i, zone in enumerate(zones):
        clusters.setdefault(_find(head, i), []).append(zone)
    return list(clusters.values())


def _find(head: list[int], i: int) -> int:
    while head[i] != i:
        i = head[i]
    return i


def _socket_zones(socket: int, group: list[_Found], notes: list[str]) -> list[RaplZone]:
    """The counters of one socket: every die zone opened, mirrors counted once."""
    try:
        opened = [_open_zone(f, f.name) for f in group]
        clusters = _mirror_clusters(opened)
    except MeterError as exc:
        zids = ", ".join(f"{f.zid} ({f.name})" for f in group)
        raise _unusable(f"package zone {zids} cannot be read (the total would be short)", exc) from exc
    kept = []
    for cluster in clusters:
        for other in cluster[1:]:
            _note(
                notes,
                f"{other.path.name} ({other.name}) mirrors {cluster[0].path.name} "
                f"({cluster[0].name}): one counter, counted once",
            )
        domain = f"package-{socket}" if len(group) > 1 and len(clusters) == 1 else cluster[0].name
        kept.append(replace(cluster[0], domain=domain))
    return kept


def _unique_domains(zones: list[RaplZone], notes: list[str]) -> list[RaplZone]:
    """Zones whose domain names clash (two zones with one kernel name) get their zone id appended."""
    names = [z.domain for z in zones]
    out = []
    for z in zones:
        if names.count(z.domain) > 1:
            _note(notes, f"{z.path.name}: another zone is also named {z.name!r}; reported as {z.domain}@{z.path.name}")
            z = replace(z, domain=f"{z.domain}@{z.path.name}")
        out.append(z)
    return out


def _dram_zone(zid: str, path: Path, parents: dict[str, str], notes: list[str]) -> RaplZone | None:
    """The sub-zone ``zid`` when it is the dram of a counted package; None (with a note) otherwise."""
    parent = zid.rpartition(":")[0]
    try:
        name = _read_name(path)
    except MeterError as exc:
        _note(
            notes,
            f"{zid}: skipped, its name cannot be read ({exc}); if it is {parent}'s dram, "
            "dram energy is missing from the total",
            skipped=True,
        )
        return None
    if name in ("core", "uncore"):
        return None  # inside its package: reading it would double count
    if name != "dram" or parent not in parents:
        _note(notes, f"{zid} ({name}): not read" + ("" if name != "dram" else f", its parent {parent} is not counted"))
        return None
    try:
        return _open_zone(_Found(zid, path, name), f"dram-{parents[parent]}")
    except MeterError as exc:
        _note(
            notes,
            f"{zid} (dram of {parent}): skipped, {exc}; the total holds that package without its dram",
            skipped=True,
        )
        return None


def _psys_zones(platforms: list[_Found], have_packages: bool, notes: list[str]) -> list[RaplZone]:
    """psys zones: reported beside the packages, or the total when there is no package zone."""
    zones = []
    for f in platforms:
        try:
            zones.append(_open_zone(f, "psys", in_total=False))
        except MeterError as exc:
            if not have_packages:
                raise _unusable(f"{f.zid} (psys), the only energy zone here, cannot be read", exc) from exc
            _note(
                notes,
                f"{f.zid} (psys): skipped, {exc}; psys is not in the total, the packages are measured without it",
                skipped=True,
            )
    if have_packages or not zones:
        return zones
    if len(zones) > 1:
        raise MeterUnavailable(
            f"RAPL: not usable, because there is no package zone and {len(zones)} psys zones "
            f"({', '.join(z.path.name for z in zones)}): which one is the platform total is unknown. "
            "Use 'codecarbon' for a labelled estimate."
        )
    _note(notes, f"no package zone: {zones[0].path.name} (psys) is the total. {PLATFORM_ENERGY}")
    return [replace(zones[0], in_total=True)]


def discover_zones(root: Path | str = DEFAULT_ROOT) -> tuple[list[RaplZone], list[str]]:
    """The zones to read (no double counting) and notes on zones left out and why."""
    root = Path(root)
    dirs, notes = _zone_dirs(root)
    if not dirs:
        raise MeterUnavailable(
            f"RAPL: no powercap zones (intel-rapl:*) under {root} or {root / CONTROL_TYPE}: this host has no "
            "RAPL interface (no intel_rapl/amd rapl driver, or a VM/container that hides it). Use 'nvml' for an "
            "NVIDIA GPU or 'codecarbon' for a labelled estimate."
        )
    for text in notes:
        logger.info("RAPL: %s", text)
    packages, platforms = _sort_tops(dirs, notes)
    zones = _unique_domains([z for s, g in sorted(packages.items()) for z in _socket_zones(s, g, notes)], notes)
    parents = {z.path.name: z.domain.removeprefix("package-") for z in zones}
    drams = [_dram_zone(zid, path, parents, notes) for zid, path in dirs.items() if _SUB.match(zid)]
    psys = _unique_domains(_psys_zones(platforms, bool(zones), notes), notes)
    return zones + [d for d in drams if d is not None] + psys, notes


@dataclass(frozen=True)
class _Token:
    t0: float
    counts_uj: dict[str, int]


class RaplMeter(Meter):
    """RAPL counter deltas with wrap tracking by a background poller (provenance: measured)."""

    def __init__(self, root: Path | str = DEFAULT_ROOT, poll_period_s: float | None = None):
        self.root = Path(root)
        self.zones, self.notes = discover_zones(self.root)
        if not any(z.in_total for z in self.zones):
            raise MeterUnavailable(
                f"RAPL: no package, dram or psys zone under {self.root} "
                f"({'; '.join(self.notes) or 'no zones'}). {BROKEN_FIX}"
            )
        fastest_wrap = min(z.wrap_time_s for z in self.zones)
        if poll_period_s is None:
            poll_period_s = min(1.0, fastest_wrap / 10)
        if not 0 < poll_period_s < fastest_wrap / 2:
            raise ValueError(
                f"RAPL: poll_period_s={poll_period_s} must be > 0 and under half the fastest "
                f"counter wrap ({fastest_wrap:.3g} s), or wraps would be missed"
            )
        self.poll_period_s = poll_period_s
        self._not_in_total = tuple(z.domain for z in self.zones if not z.in_total)
        self._lock = threading.Lock()
        self._last = {z.path: _read_int(z.path / "energy_uj") for z in self.zones}  # keyed by directory
        self._wraps = {z.path: 0 for z in self.zones}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ffenergy-rapl-poller", daemon=True)
        self._thread.start()

    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="rapl",
            provenance="measured",
            domains=tuple(z.domain for z in self.zones),
            update_period_s=RAPL_UPDATE_PERIOD_S,
            details={
                "root": str(self.root),
                "poll_period_s": self.poll_period_s,
                "total": self._total_label(),
                "zones": {
                    z.domain: {
                        "path": str(z.path),
                        "name": z.name,
                        "max_energy_range_uj": z.max_range_uj,
                        "in_total": z.in_total,
                    }
                    for z in self.zones
                },
                "not_in_total": list(self._not_in_total),
                "notes": self.notes,
            },
        )

    def _total_label(self) -> str:
        counted = [z for z in self.zones if z.in_total]
        if any(z.name == "psys" for z in counted):
            return f"platform energy (psys), no package zone on this host: {PLATFORM_ENERGY}"
        return "CPU packages" + (" + DRAM" if any(z.name == "dram" for z in counted) else "")

    @property
    def wraps(self) -> dict[str, int]:
        """Counter wraps seen so far, per domain."""
        with self._lock:
            return {z.domain: self._wraps[z.path] for z in self.zones}

    def poll(self) -> dict[str, int]:
        """Read every counter once; return the unwrapped counts (µJ since the meter opened), per domain."""
        with self._lock:
            counts = {}
            for z in self.zones:
                try:
                    raw = _read_int(z.path / "energy_uj")
                except MeterError as exc:
                    raise type(exc)(f"RAPL: {z.domain} ({z.path.name}) is no longer readable: {exc}") from exc
                if raw < self._last[z.path]:
                    self._wraps[z.path] += 1
                self._last[z.path] = raw
                counts[z.domain] = raw + self._wraps[z.path] * z.max_range_uj
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
        energy = WindowEnergy(joules, duration, not_in_total=self._not_in_total)
        if energy.total_j == 0 and duration >= FROZEN_AFTER_S:
            counted = ", ".join(d for d in joules if d not in self._not_in_total)
            raise MeterError(
                f"RAPL: the counters of {counted} did not move in {duration:.3g} s, so they are frozen (a VM or "
                "container that exposes RAPL without updating it?); 0 J would be reported as measured. Measure "
                "on the host, or use 'codecarbon' for a labelled estimate."
            )
        return energy

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
