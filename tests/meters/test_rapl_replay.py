"""Replay of RAPL counter sequences and sysfs layouts from the public test suites of Zeus (with
zeusd's wraparound tests), CodeCarbon and pyJoules, re-created as real powercap trees under a
temp dir. Each case gives exact joules (compared in integer microjoules) or a clear error.

The scenarios are theirs (each case names its source); the trees and the code are ours.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ffenergy.meters.base import MeterError, MeterUnavailable, WindowEnergy
from ffenergy.meters.rapl import RaplMeter

R = 262_143_328_850  # the max_energy_range_uj all three suites use

# where the zones live, the meter's root, where flat intel-rapl:N links go (None: no links)
LAYOUTS: dict[str, tuple[str, str, str | None]] = {
    "flat": ("", "", None),  # zones directly in the root: CodeCarbon's tests/test_data/rapl
    "control": ("intel-rapl", "intel-rapl", None),  # root is the control type: Zeus/zeusd RAPL_DIR
    "nested": ("intel-rapl", "", None),  # powercap/ with only intel-rapl/: pyJoules' fake fs, a bind mount
    "sysfs": ("devices/virtual/powercap/intel-rapl", "class/powercap", "class/powercap"),  # the kernel's
    "xeon-links": ("intel-rapl", "", ""),  # CodeCarbon's Xeon tree: nested zones and flat links side by side
    "xeon-links-control": ("intel-rapl", "intel-rapl", ""),  # the same, read from the control type
    "zeus-container": ("zeus_sys/class/powercap/intel-rapl", "zeus_sys/class/powercap", None),  # Zeus in Docker
}


@dataclass(frozen=True)
class Z:
    """One zone: id, kernel name (None: no name file), first counter value (None: no energy_uj,
    str: written verbatim), wrap range (None: no file) and constraint_0_max_power_uw."""

    zid: str
    name: str | None
    energy: int | str | None = 0
    max_range: int | None = R
    max_power_uw: int | None = None


def small(zid: str, name: str, energy: int, max_range: int) -> Z:
    """A zone with a test-sized wrap range and a power limit that makes it wrap in 0.1 s at most."""
    return Z(zid, name, energy, max_range, max_power_uw=max_range * 10)


@dataclass(frozen=True)
class Case:
    """Counter values per zone id, one poll after each tick; the expected µJ per domain, or an error."""

    id: str
    source: str
    zones: tuple[Z, ...]
    layout: str = "flat"
    ticks: tuple[dict[str, int | str], ...] = ()
    joules_uj: dict[str, int] = field(default_factory=dict)
    total_uj: int | None = None
    wraps: dict[str, int] | None = None
    notes: tuple[str, ...] = ()
    open_error: str | None = None  # MeterUnavailable when the meter opens
    window_error: str | None = None  # MeterError inside the window
    idle_s: float = 0.0  # wait before stop()


def seq(zid: str, values: list[int]) -> tuple[dict[str, int | str], ...]:
    """One zone's counter values, one tick each."""
    return tuple({zid: v} for v in values)


def together(*columns: tuple[dict[str, int | str], ...]) -> tuple[dict[str, int | str], ...]:
    """Several zones' sequences, advanced in the same ticks."""
    return tuple({k: v for tick in ticks for k, v in tick.items()} for ticks in zip(*columns, strict=True))


ZEUSD_SEQUENCE = [10000, 10001, 12313, 8213, 0]  # zeusd tests/cpu.rs: raw values, two wraps at 1 J
ZEUS_POLL = [90000, 80000, 70000, 60000, 50000, 40000, 50000, 20000, 10000]  # 8 wraps at 0.1 J
ZEUS_FIVE_WRAPS = [90000] + [20000, 95000] * 4 + [20000, 80000]  # after the first read, 5 wraps to 80000
CC_PKG, CC_PSYS = 52_649_883_221, 117_870_082_040  # CodeCarbon's package-0 and psys readings

CASES = [
    # --- Zeus: tests/device/cpu/test_rapl.py, test_socket_detection.py ---
    Case(
        "zeus-polling-process-8-wraps",
        "zeus test_rapl.py::test_rapl_polling_process",
        (small("intel-rapl:0", "package-0", 100000, 100000),),
        "control",
        seq("intel-rapl:0", ZEUS_POLL),
        {"package-0": 10000 + 8 * 100000 - 100000},
        wraps={"package-0": 8},
    ),
    Case(
        "zeus-raplfile-read-then-5-more-wraps",
        "zeus test_rapl.py::test_rapl_file_class (80000 + 5 x 100000)",
        (small("intel-rapl:0", "package-0", 100000, 100000),),
        "control",
        seq("intel-rapl:0", ZEUS_FIVE_WRAPS),
        {"package-0": 80000 + 6 * 100000 - 100000},
        wraps={"package-0": 6},
    ),  # 100000 -> 90000 is a wrap too
    Case(
        "zeus-raplfile-init-no-name",
        "zeus test_rapl.py::test_rapl_file_class_exceptions (name)",
        (Z("intel-rapl:0", None, 5),),
        "control",
        open_error=r"not usable, because the name of top-level zone intel-rapl:0 cannot be read",
    ),
    Case(
        "zeus-raplfile-init-no-energy",
        "zeus test_rapl.py::test_rapl_file_class_exceptions (energy_uj)",
        (Z("intel-rapl:0", "package-0", None),),
        "control",
        open_error=r"not usable, because package zone intel-rapl:0 \(package-0\).*energy_uj",
    ),
    Case(
        "zeus-raplfile-init-no-max-range",
        "zeus test_rapl.py::test_rapl_file_class_exceptions (max_energy)",
        (Z("intel-rapl:0", "package-0", 5, None),),
        "control",
        open_error=r"not usable, because package zone intel-rapl:0 \(package-0\).*max_energy_range_uj",
    ),
    Case(
        "zeus-cpu-with-dram",
        "zeus test_rapl.py::test_rapl_cpu_class (package 1000 mJ, dram 500 mJ)",
        (Z("intel-rapl:0", "package-0", 7_000_000), Z("intel-rapl:0:0", "dram", 3_000_000)),
        "control",
        ({"intel-rapl:0": 8_000_000, "intel-rapl:0:0": 3_500_000},),
        {"package-0": 1_000_000, "dram-0": 500_000},
        1_500_000,
    ),
    Case(
        "zeus-subpackage-init-error",
        "zeus test_rapl.py::test_rapl_cpu_class_exceptions (dram fails)",
        (Z("intel-rapl:0", "package-0", 7_000_000), Z("intel-rapl:0:0", "dram", None)),
        "control",
        ({"intel-rapl:0": 8_000_000},),
        {"package-0": 1_000_000},
        1_000_000,
        notes=("intel-rapl:0:0 (dram of intel-rapl:0): skipped",),
    ),
    Case(
        "zeus-rapl-cpus-two-packages",
        "zeus test_rapl.py::test_rapl_cpus_class (intel-rapl:0, :1)",
        (Z("intel-rapl:0", "package-0", 1), Z("intel-rapl:1", "package-1", 2)),
        "sysfs",
        ({"intel-rapl:0": 2_000_001, "intel-rapl:1": 3_000_002},),
        {"package-0": 2_000_000, "package-1": 3_000_000},
        5_000_000,
    ),
    Case(
        "zeus-rapl-not-available",
        "zeus test_rapl.py::test_rapl_cpus_class_init_error",
        (),
        "control",
        open_error=r"no powercap zones",
    ),
    Case(
        "zeus-socket-names-not-zone-order",
        "zeus test_socket_detection.py (the zone's name gives the package)",
        (
            Z("intel-rapl:0", "package-1", 10),
            Z("intel-rapl:0:0", "dram", 20),
            Z("intel-rapl:1", "package-0", 30),
            Z("intel-rapl:1:0", "dram", 40),
        ),
        "control",
        ({"intel-rapl:0": 1_000_010, "intel-rapl:0:0": 100_020, "intel-rapl:1": 2_000_030, "intel-rapl:1:0": 200_040},),
        {"package-1": 1_000_000, "dram-1": 100_000, "package-0": 2_000_000, "dram-0": 200_000},
        3_300_000,
    ),
    Case(
        "zeus-container-mount",
        "zeus rapl.py CONTAINER_RAPL_DIR /zeus_sys/class/powercap/intel-rapl",
        (Z("intel-rapl:0", "package-0", CC_PKG), Z("intel-rapl:0:0", "dram", 5)),
        "zeus-container",
        ({"intel-rapl:0": CC_PKG + 4_000_000, "intel-rapl:0:0": 1_000_005},),
        {"package-0": 4_000_000, "dram-0": 1_000_000},
        5_000_000,
        notes=("zones read through",),
    ),
    # --- zeusd: tests/cpu.rs, tests/helpers/mod.rs, src/devices/cpu/rapl.rs ---
    Case(
        "zeusd-only-cpu-wraparound",
        "zeusd tests/cpu.rs::test_only_cpu_measuremnt",
        (small("intel-rapl:0", "package-0", 10000, 1_000_000), small("intel-rapl:0:0", "dram", 0, 1_000_000)),
        "control",
        seq("intel-rapl:0", ZEUSD_SEQUENCE[1:]),
        {"package-0": 2 * 1_000_000 - 10000, "dram-0": 0},
        1_990_000,
        wraps={"package-0": 2, "dram-0": 0},
    ),
    Case(
        "zeusd-only-dram-wraparound",
        "zeusd tests/cpu.rs::test_only_dram_measuremnt",
        (small("intel-rapl:0", "package-0", 500, 1_000_000), small("intel-rapl:0:0", "dram", 10000, 1_000_000)),
        "control",
        seq("intel-rapl:0:0", ZEUSD_SEQUENCE[1:]),
        {"package-0": 0, "dram-0": 1_990_000},
        1_990_000,
        wraps={"package-0": 0, "dram-0": 2},
    ),
    Case(
        "zeusd-both-wraparound",
        "zeusd tests/cpu.rs::test_both_measuremnt",
        (small("intel-rapl:0", "package-0", 10000, 1_000_000), small("intel-rapl:0:0", "dram", 10000, 1_000_000)),
        "control",
        together(seq("intel-rapl:0", ZEUSD_SEQUENCE[1:]), seq("intel-rapl:0:0", ZEUSD_SEQUENCE[1:])),
        {"package-0": 1_990_000, "dram-0": 1_990_000},
        3_980_000,
    ),
    Case(
        "zeusd-power-poller-increments",
        "zeusd tests/helpers PowerTestCpu (+10000 / +5000 uJ per poll)",
        (small("intel-rapl:0", "package-0", 0, 1_000_000), small("intel-rapl:0:0", "dram", 0, 1_000_000)),
        "control",
        tuple({"intel-rapl:0": 10000 * k, "intel-rapl:0:0": 5000 * k} for k in range(1, 11)),
        {"package-0": 100_000, "dram-0": 50_000},
        150_000,
    ),
    Case(
        "zeusd-cpu-read-failure-mid-window",
        "zeusd tests/cpu.rs (PollCountingCpu fail_cpu_read_number=1)",
        (small("intel-rapl:0", "package-0", 0, 1_000_000),),
        "control",
        ({"intel-rapl:0": 10000}, {"intel-rapl:0": "EIO"}),
        window_error=r"RAPL: package-0 \(intel-rapl:0\) is no longer readable: cannot read an integer",
    ),
    Case(
        "zeusd-first-dram-read-fails",
        "zeusd tests/cpu.rs (PollCountingCpu fail_first_dram_read)",
        (small("intel-rapl:0", "package-0", 0, 1_000_000), Z("intel-rapl:0:0", "dram", "")),
        "control",
        tuple({"intel-rapl:0": 10000 * k} for k in range(1, 4)),
        {"package-0": 30000},
        30000,
        notes=("intel-rapl:0:0 (dram of intel-rapl:0): skipped",),
    ),
    Case(
        "zeusd-die-zones-mirror-the-socket",
        "zeusd rapl.rs tests (zone named package-0-die-1)",
        (Z("intel-rapl:0", "package-0-die-0", 4242), Z("intel-rapl:1", "package-0-die-1", 4242)),
        "control",
        ({"intel-rapl:0": 2_004_242, "intel-rapl:1": 2_004_242},),
        {"package-0": 2_000_000},
        2_000_000,
        notes=("intel-rapl:1 (package-0-die-1) mirrors intel-rapl:0",),
    ),
    # --- CodeCarbon: tests/test_cpu.py, tests/test_rapl_*.py (dram/psys options), tests/test_energy.py ---
    Case(
        "codecarbon-package-and-psys",
        "codecarbon test_cpu.py::TestIntelRAPL (test_data/rapl)",
        (Z("intel-rapl:0", "package-0", CC_PKG), Z("intel-rapl:1", "psys", CC_PSYS)),
        "flat",
        ({"intel-rapl:0": CC_PKG + 3_000_000, "intel-rapl:1": CC_PSYS + 5_000_000},),
        {"package-0": 3_000_000, "psys": 5_000_000},
        3_000_000,
    ),
    Case(
        "codecarbon-test-data-broken-sub-zones",
        "codecarbon tests/test_data/rapl (0:0 no name, 0:2 dram no range)",
        (
            Z("intel-rapl:0", "package-0", CC_PKG),
            Z("intel-rapl:0:0", None, 11, None),
            Z("intel-rapl:0:1", "uncore", 22, None),
            Z("intel-rapl:0:2", "dram", 33, None),
            Z("intel-rapl:1", "psys", CC_PSYS),
        ),
        "flat",
        ({"intel-rapl:0": CC_PKG + 1_000_000, "intel-rapl:0:2": 500_033, "intel-rapl:1": CC_PSYS + 2_000_000},),
        {"package-0": 1_000_000, "psys": 2_000_000},
        1_000_000,
        notes=("intel-rapl:0:0: skipped, its name cannot be read", "intel-rapl:0:2 (dram of intel-rapl:0): skipped"),
    ),
    Case(
        "codecarbon-idle-counters-are-frozen",
        "codecarbon test_cpu.py::test_intel_rapl (no change: 0.0 kWh)",
        (Z("intel-rapl:0", "package-0", CC_PKG), Z("intel-rapl:1", "psys", CC_PSYS)),
        "flat",
        idle_s=0.06,
        window_error=r"counters of package-0 did not move",
    ),
    Case(
        "codecarbon-top-level-dram-beside-package",
        "codecarbon test_rapl_include_dram (dram at intel-rapl:1)",
        (Z("intel-rapl:0", "package-0", CC_PKG), Z("intel-rapl:1", "dram", 11_111_111_111)),
        "nested",
        ({"intel-rapl:0": CC_PKG + 100_000, "intel-rapl:1": 11_111_136_111},),
        {"package-0": 100_000},
        100_000,
        notes=("intel-rapl:1 (dram): unknown top-level zone, not read",),
    ),
    Case(
        "codecarbon-psys-only-fallback",
        "codecarbon test_rapl_prefer_psys_with_no_package_domains",
        (Z("intel-rapl:0", "psys", 99_999_999_999),),
        "nested",
        ({"intel-rapl:0": 100_006_999_999},),
        {"psys": 7_000_000},
        7_000_000,
        notes=("no package zone: intel-rapl:0 (psys) is the total",),
    ),
    Case(
        "codecarbon-psys-package-dram-together",
        "codecarbon test_rapl_both_parameters_together",
        (
            Z("intel-rapl:0", "package-0", CC_PKG),
            Z("intel-rapl:1", "dram", 11_111_111_111),
            Z("intel-rapl:2", "psys", 99_999_999_999),
        ),
        "nested",
        ({"intel-rapl:0": CC_PKG + 2_000_000, "intel-rapl:1": 11_112_111_111, "intel-rapl:2": 100_003_999_999},),
        {"package-0": 2_000_000, "psys": 4_000_000},
        2_000_000,
    ),
    Case(
        "codecarbon-psys-with-dram-no-package",
        "codecarbon test_rapl_psys_does_not_read_dram",
        (Z("intel-rapl:1", "psys", 1_000_000), Z("intel-rapl:2", "dram", 1_000_000)),
        "nested",
        ({"intel-rapl:1": 3_000_000, "intel-rapl:2": 2_000_000},),
        {"psys": 2_000_000},
        2_000_000,
        notes=("intel-rapl:2 (dram): unknown top-level zone, not read",),
    ),
    Case(
        "codecarbon-core-only",
        "codecarbon test_rapl_non_power_domain_keeps_its_own_name",
        (Z("intel-rapl:0", "core", 1_000_000),),
        "nested",
        open_error=r"no package, dram or psys zone",
    ),
    Case(
        "codecarbon-core-and-dram-only",
        "codecarbon test_rapl_fallback_respects_include_dram",
        (Z("intel-rapl:0", "core", 1_000_000), Z("intel-rapl:1", "dram", 1_000_000)),
        "nested",
        open_error=r"no package, dram or psys zone",
    ),
    Case(
        "codecarbon-negative-delta-is-a-wrap",
        "codecarbon test_energy.py::test_negative_delta (100 -> 10)",
        (small("intel-rapl:0", "package-0", 100, 1_000_000),),
        "flat",
        seq("intel-rapl:0", [10]),
        {"package-0": 1_000_000 - 100 + 10},
        wraps={"package-0": 1},
    ),
    Case(
        "codecarbon-xeon-nested-dram-1-socket",
        "codecarbon test_rapl_reads_nested_dram_zones_once_per_socket[1]",
        (Z("intel-rapl:0", "package-0", 1_000_000), Z("intel-rapl:0:0", "dram", 500_000)),
        "xeon-links",
        ({"intel-rapl:0": 1_100_000, "intel-rapl:0:0": 525_000},),
        {"package-0": 100_000, "dram-0": 25_000},
        125_000,
    ),
    Case(
        "codecarbon-xeon-nested-dram-2-sockets",
        "codecarbon test_rapl_reads_nested_dram_zones_once_per_socket[2]",
        (
            Z("intel-rapl:0", "package-0", 1_000_000),
            Z("intel-rapl:0:0", "dram", 500_000),
            Z("intel-rapl:1", "package-1", 1_000_000),
            Z("intel-rapl:1:0", "dram", 500_000),
        ),
        "xeon-links-control",
        ({"intel-rapl:0": 1_100_000, "intel-rapl:0:0": 525_000, "intel-rapl:1": 1_200_000, "intel-rapl:1:0": 550_000},),
        {"package-0": 100_000, "dram-0": 25_000, "package-1": 200_000, "dram-1": 50_000},
        375_000,
    ),
    # --- pyJoules: tests/utils/rapl_fs.py fixtures, tests/unit/device/rapl_device/test_RaplDevice.py ---
    Case(
        "pyjoules-pkg-one-socket",
        "pyjoules rapl_fs.py::fs_pkg_one_socket",
        (Z("intel-rapl:0", "package-0", 12345),),
        "nested",
        ({"intel-rapl:0": 1_012_345},),
        {"package-0": 1_000_000},
        1_000_000,
    ),
    Case(
        "pyjoules-pkg-dram-one-socket",
        "pyjoules rapl_fs.py::fs_pkg_dram_one_socket",
        (Z("intel-rapl:0", "package-0", 12345), Z("intel-rapl:0:0", "dram", 6789)),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:0:0": 16789},),
        {"package-0": 1_000_000, "dram-0": 10_000},
        1_010_000,
    ),
    Case(
        "pyjoules-pkg-psys-one-socket",
        "pyjoules rapl_fs.py::fs_pkg_psys_one_socket",
        (Z("intel-rapl:0", "package-0", 12345), Z("intel-rapl:1", "psys", 54321)),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:1": 3_054_321},),
        {"package-0": 1_000_000, "psys": 3_000_000},
        1_000_000,
    ),
    Case(
        "pyjoules-pkg-dram-core-one-socket",
        "pyjoules rapl_fs.py::fs_pkg_dram_core_one_socket",
        (Z("intel-rapl:0", "package-0", 12345), Z("intel-rapl:0:0", "dram", 6789), Z("intel-rapl:0:1", "core", 1)),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:0:0": 16789, "intel-rapl:0:1": 900_001},),
        {"package-0": 1_000_000, "dram-0": 10_000},
        1_010_000,
    ),
    Case(
        "pyjoules-pkg-dram-uncore-one-socket",
        "pyjoules rapl_fs.py::fs_pkg_dram_uncore_one_socket",
        (Z("intel-rapl:0", "package-0", 12345), Z("intel-rapl:0:0", "dram", 6789), Z("intel-rapl:0:1", "uncore", 1)),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:0:0": 16789, "intel-rapl:0:1": 300_001},),
        {"package-0": 1_000_000, "dram-0": 10_000},
        1_010_000,
    ),
    Case(
        "pyjoules-pkg-two-sockets",
        "pyjoules rapl_fs.py::fs_pkg_two_socket",
        (Z("intel-rapl:0", "package-0", 12345), Z("intel-rapl:1", "package-1", 54321)),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:1": 2_054_321},),
        {"package-0": 1_000_000, "package-1": 2_000_000},
        3_000_000,
    ),
    Case(
        "pyjoules-pkg-dram-two-sockets",
        "pyjoules rapl_fs.py::fs_pkg_dram_two_socket",
        (
            Z("intel-rapl:0", "package-0", 12345),
            Z("intel-rapl:0:0", "dram", 6789),
            Z("intel-rapl:1", "package-1", 54321),
            Z("intel-rapl:1:0", "dram", 9876),
        ),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:0:0": 16789, "intel-rapl:1": 2_054_321, "intel-rapl:1:0": 29876},),
        {"package-0": 1_000_000, "dram-0": 10_000, "package-1": 2_000_000, "dram-1": 20_000},
        3_030_000,
    ),
    Case(
        "pyjoules-pkg-psys-two-sockets",
        "pyjoules rapl_fs.py::fs_pkg_psys_two_socket (psys at intel-rapl:2)",
        (Z("intel-rapl:0", "package-0", 12345), Z("intel-rapl:1", "package-1", 54321), Z("intel-rapl:2", "psys", 7)),
        "nested",
        ({"intel-rapl:0": 1_012_345, "intel-rapl:1": 2_054_321, "intel-rapl:2": 9_000_007},),
        {"package-0": 1_000_000, "package-1": 2_000_000, "psys": 9_000_000},
        3_000_000,
    ),
    Case(
        "pyjoules-empty-fs",
        "pyjoules rapl_fs.py::empty_fs (NoSuchDeviceError)",
        (),
        "nested",
        open_error=r"no powercap zones",
    ),
    Case(
        "pyjoules-float-energy-values",
        "pyjoules rapl_fs.py (energy_uj holds random.random())",
        (Z("intel-rapl:0", "package-0", "0.8444218515250481"),),
        "nested",
        open_error=r"(?s)package zone intel-rapl:0 \(package-0\).*cannot read an integer from .*energy_uj",
    ),
    Case(
        "pyjoules-reset-values-equal-sockets",
        "pyjoules rapl_fs.py::RaplFS.reset_values (one value everywhere)",
        (Z("intel-rapl:0", "package-0", 5_000_000), Z("intel-rapl:1", "package-1", 5_000_000)),
        "nested",
        (
            {"intel-rapl:0": 6_000_000, "intel-rapl:1": 6_000_000},
            {"intel-rapl:0": 8_000_000, "intel-rapl:1": 8_000_000},
        ),
        {"package-0": 3_000_000, "package-1": 3_000_000},
        6_000_000,
    ),
    Case(
        "pyjoules-socket-id-gap",
        "pyjoules RaplDevice._get_socket_id_list (stops at the first missing id)",
        (Z("intel-rapl:0", "package-0", 1), Z("intel-rapl:2", "package-1", 1)),
        "nested",
        ({"intel-rapl:0": 1_000_001, "intel-rapl:2": 1_500_001},),
        {"package-0": 1_000_000, "package-1": 1_500_000},
        2_500_000,
    ),
    Case(
        "pyjoules-single-wrap",
        "pyjoules 0.5.1 (no wrap handling; our adapter's test)",
        (Z("intel-rapl:0", "package-0", R - 1_000_000),),
        "nested",
        seq("intel-rapl:0", [2_000_000]),
        {"package-0": 3_000_000},
        wraps={"package-0": 1},
    ),
]


def write(path: Path, value: object) -> None:
    """Atomic like sysfs: a reader never sees a half-written value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def build(base: Path, case: Case) -> tuple[Path, dict[str, Path]]:
    """The powercap tree of ``case`` under ``base``: the meter's root and each zone's directory."""
    holder_rel, root_rel, links_rel = LAYOUTS[case.layout]
    holder = base / holder_rel
    dirs: dict[str, Path] = {}
    for z in case.zones:
        parent = holder if z.zid.count(":") == 1 else dirs[z.zid.rpartition(":")[0]]
        d = dirs[z.zid] = parent / z.zid
        d.mkdir(parents=True)
        for attr, value in (
            ("name", z.name),
            ("energy_uj", z.energy),
            ("max_energy_range_uj", z.max_range),
            ("constraint_0_max_power_uw", z.max_power_uw),
        ):
            if value is not None:
                write(d / attr, value)
    if links_rel is not None and case.zones:
        links = base / links_rel
        links.mkdir(parents=True, exist_ok=True)
        for zid, d in dirs.items():
            (links / zid).symlink_to(d)
        if not (links / "intel-rapl").exists():
            (links / "intel-rapl").symlink_to(holder)
    return base / root_rel, dirs


def run_window(meter: RaplMeter, dirs: dict[str, Path], case: Case) -> WindowEnergy:
    """One window over the case's ticks, each written like a counter update and then polled."""
    token = meter.start()
    for tick in case.ticks:
        for zid, value in tick.items():
            write(dirs[zid] / "energy_uj", value)
        meter.poll()
    time.sleep(case.idle_s)
    return meter.stop(token)


def test_the_replay_covers_the_floor():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.source.split()[0] for c in CASES} == {"zeus", "zeusd", "codecarbon", "pyjoules"}
    assert {c.layout for c in CASES} == set(LAYOUTS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_replay(tmp_path, case):
    root, dirs = build(tmp_path, case)
    if case.open_error:
        with pytest.raises(MeterUnavailable, match=case.open_error):
            RaplMeter(root)
        return
    with RaplMeter(root) as meter:
        if case.window_error:
            with pytest.raises(MeterError, match=case.window_error):
                run_window(meter, dirs, case)
            return
        window = run_window(meter, dirs, case)
        wraps, notes = meter.wraps, meter.notes
    assert {d: round(j * 1e6) for d, j in window.joules.items()} == case.joules_uj
    if case.total_uj is not None:
        assert round(window.total_j * 1e6) == case.total_uj
    if case.wraps is not None:
        assert wraps == case.wraps
    for text in case.notes:
        assert any(text in n for n in notes), (text, notes)
