"""What RAPL discovery leaves out, and says: sub-zones by name, the log level of a skipped zone, the fixes
a refusal carries. A bug here reads a zone twice, drops one silently, or sends the user to the wrong fix."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ffenergy.meters import rapl
from ffenergy.meters.base import MeterError, MeterUnavailable
from ffenergy.meters.rapl import RaplMeter, discover_zones
from tests.meters.test_rapl_meter import intel_tree, refusal_as_nobody, write, zone


def test_core_and_uncore_are_left_out_silently_and_other_sub_zones_with_a_note(tmp_path, caplog):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    zone(pkg, "intel-rapl:0:0", "core", 1)
    zone(pkg, "intel-rapl:0:1", "uncore", 2)
    zone(pkg, "intel-rapl:0:2", "pp9", 3)  # not a dram: never summed, whatever its parent
    zone(pkg, "intel-rapl:0:3", "dram", 4)
    psys = zone(tmp_path, "intel-rapl:1", "psys", 5)
    zone(psys, "intel-rapl:1:0", "dram", 6)  # a dram whose parent is no counted package
    with caplog.at_level(logging.INFO, logger="ffenergy.meters.rapl"):
        zones, notes = discover_zones(tmp_path)
    assert [(z.domain, z.path.name, z.name, z.in_total) for z in zones] == [
        ("package-0", "intel-rapl:0", "package-0", True),
        ("dram-0", "intel-rapl:0:3", "dram", True),
        ("psys", "intel-rapl:1", "psys", False),
    ]
    assert notes == [
        "intel-rapl:0:2 (pp9): not read",
        "intel-rapl:1:0 (dram): not read, its parent intel-rapl:1 is not counted",
    ]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", f"RAPL: {n}") for n in notes]


def test_a_skipped_zone_is_a_warning(tmp_path, caplog):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    (zone(pkg, "intel-rapl:0:0", "dram", 1) / "name").unlink()
    (zone(pkg, "intel-rapl:0:1", "dram", 1) / "energy_uj").unlink()
    with caplog.at_level(logging.INFO, logger="ffenergy.meters.rapl"):
        zones, notes = discover_zones(tmp_path)
    assert [z.domain for z in zones] == ["package-0"]
    assert len(notes) == 2
    assert notes[0].startswith("intel-rapl:0:0: skipped, its name cannot be read (")
    assert notes[0].endswith("); if it is intel-rapl:0's dram, dram energy is missing from the total")
    assert notes[1].startswith("intel-rapl:0:1 (dram of intel-rapl:0): skipped, cannot read ")
    assert notes[1].endswith("; the total holds that package without its dram")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("WARNING", f"RAPL: {n}") for n in notes]


def test_a_broken_zone_refusal_carries_the_driver_fix_and_no_mount_hint_for_a_mounted_link(tmp_path):
    z = intel_tree(tmp_path)  # class/intel-rapl:0 is a symlink to a mounted zone directory
    (z["package-0"] / "energy_uj").unlink()
    with pytest.raises(MeterUnavailable) as err:
        RaplMeter(tmp_path / "class")
    msg = str(err.value)
    assert msg.endswith(f"\n{rapl.BROKEN_FIX}")
    assert "not mounted here" not in msg


def test_a_dangling_link_names_its_target_and_the_mount_fix(tmp_path):
    target = "../../devices/virtual/powercap/intel-rapl/intel-rapl:0"
    (tmp_path / "intel-rapl:0").symlink_to(target)
    with pytest.raises(MeterUnavailable) as err:
        RaplMeter(tmp_path)
    assert (
        f"; {tmp_path / 'intel-rapl:0'} links to {target}, which is not mounted here (mount "
        "/sys/devices/virtual/powercap too, or pass root= the directory that holds intel-rapl:N)"
    ) in str(err.value)


def test_a_permission_refusal_carries_its_own_fixes_only():
    msg = refusal_as_nobody("name")
    assert "permission denied reading" in msg and rapl.PERMISSION_FIX in msg, msg
    assert rapl.BROKEN_FIX not in msg


def test_the_total_label_names_what_is_summed(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.details["total"] == "CPU packages"
    zone(pkg, "intel-rapl:0:0", "dram", 7)
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.details["total"] == "CPU packages + DRAM"
        token = meter.start()
        write(pkg / "energy_uj", 5_000_000 + 2_000_000)
        assert meter.stop(token).joules == pytest.approx({"package-0": 2.0, "dram-0": 0.0})


def _small(root, zid: str, name: str, range_uj: int, max_power_uw: int | None = None):
    d = zone(root, zid, name, 1_000, max_range=range_uj)
    if max_power_uw is not None:
        write(d / "constraint_0_max_power_uw", max_power_uw)
    return d


@pytest.mark.parametrize(
    "range_uj, max_power_uw, poll_s",
    [
        (10_000_000, 50_000_000, 0.02),  # 10 J at 50 W: wraps in 0.2 s, polled every 0.02 s
        (10_000_000, 500_000, 1.0),  # a 0.5 W limit counts as 1 W: 10 s to wrap, polled every second
        (20_000_000_000, None, 1.0),  # 20 kJ at the assumed 1000 W: 20 s, but never polled slower than 1 s
    ],
)
def test_the_default_poll_period_is_a_tenth_of_the_fastest_wrap_at_most_a_second(
    tmp_path, range_uj, max_power_uw, poll_s
):
    _small(tmp_path, "intel-rapl:0", "package-0", range_uj, max_power_uw)
    with RaplMeter(tmp_path) as meter:
        assert meter.poll_period_s == pytest.approx(poll_s)


def test_a_poll_period_must_be_positive_and_under_half_the_fastest_wrap(tmp_path):
    _small(tmp_path, "intel-rapl:0", "package-0", 10_000_000, 1_000_000)  # 10 J at 1 W: 10 s
    for bad in (0.0, 5.0, 6.0):
        with pytest.raises(ValueError, match=r"must be > 0 and under half the fastest counter wrap \(10 s\)"):
            RaplMeter(tmp_path, poll_period_s=bad)
    with RaplMeter(tmp_path, poll_period_s=4.9) as meter:
        assert meter.poll_period_s == 4.9


def test_zones_are_ordered_by_number_not_by_name(tmp_path):
    """intel-rapl:10 sorts before intel-rapl:2 as text; the sub-zones (drams) follow their zone numbers."""
    for top, socket in ((2, 1), (10, 0), (11, 2)):
        pkg = zone(tmp_path, f"intel-rapl:{top}", f"package-{socket}", 5)
        zone(pkg, f"intel-rapl:{top}:0", "dram", 6)
    zones, _ = discover_zones(tmp_path)
    assert [z.domain for z in zones] == ["package-0", "package-1", "package-2", "dram-1", "dram-0", "dram-2"]


def test_a_single_die_zone_keeps_its_name_and_a_range_of_one_is_a_range(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0-die-1", 5, max_range=1)
    zones, notes = discover_zones(tmp_path)
    assert [(z.domain, z.max_range_uj) for z in zones] == [("package-0-die-1", 1)] and notes == []


def test_flat_and_nested_zones_together_need_no_note(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 5)
    zone(tmp_path / "intel-rapl", "intel-rapl:1", "psys", 5)
    zones, notes = discover_zones(tmp_path)
    assert [z.domain for z in zones] == ["package-0", "psys"] and notes == []


def test_two_psys_zones_and_no_package_refuse(tmp_path):
    zone(tmp_path, "intel-rapl:0", "psys", 5)
    zone(tmp_path, "intel-rapl:1", "psys", 6)
    with pytest.raises(MeterUnavailable) as err:
        RaplMeter(tmp_path)
    assert str(err.value) == (
        "RAPL: not usable, because there is no package zone and 2 psys zones (intel-rapl:0, intel-rapl:1): "
        "which one is the platform total is unknown. Use 'codecarbon' for a labelled estimate."
    )


def test_a_window_lasts_what_it_lasted_and_a_closed_meter_refuses(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    meter = RaplMeter(tmp_path, poll_period_s=0.01)
    try:
        token = meter.start()
        write(pkg / "energy_uj", 6_000_000)
        w = meter.stop(token)
        assert 0 <= w.duration_s < 1.0 and w.total_j == pytest.approx(1.0)
    finally:
        meter.close()
    with pytest.raises(MeterError, match="^RAPL meter is closed$"):
        meter.start()


def test_a_failed_poller_is_reported_by_the_next_window(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    with RaplMeter(tmp_path, poll_period_s=0.005) as meter:
        (pkg / "energy_uj").unlink()
        time.sleep(0.1)  # the poller trips over the missing counter
        with pytest.raises(
            MeterError, match=r"^RAPL poller failed: RAPL: package-0 \(intel-rapl:0\) is no longer readable"
        ):
            meter.start()


def test_zones_sharing_a_name_are_reported_by_zone_id_with_a_note(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 5)
    zone(tmp_path, "intel-rapl:1", "psys", 6)
    zone(tmp_path, "intel-rapl:2", "psys", 7)
    zones, notes = discover_zones(tmp_path)
    assert [z.domain for z in zones] == ["package-0", "psys@intel-rapl:1", "psys@intel-rapl:2"]
    assert notes == [
        "intel-rapl:1: another zone is also named 'psys'; reported as psys@intel-rapl:1",
        "intel-rapl:2: another zone is also named 'psys'; reported as psys@intel-rapl:2",
    ]


def test_an_unreadable_psys_beside_a_package_is_a_warning(tmp_path, caplog):
    zone(tmp_path, "intel-rapl:0", "package-0", 5)
    (zone(tmp_path, "intel-rapl:1", "psys", 6) / "energy_uj").unlink()
    with caplog.at_level(logging.INFO, logger="ffenergy.meters.rapl"):
        zones, notes = discover_zones(tmp_path)
    assert [z.domain for z in zones] == ["package-0"] and len(notes) == 1
    assert notes[0].startswith("intel-rapl:1 (psys): skipped, cannot read ")
    assert notes[0].endswith("; psys is not in the total, the packages are measured without it")
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_the_poll_period_is_exactly_a_tenth_of_the_wrap_and_the_poller_is_a_named_daemon(tmp_path):
    _small(tmp_path, "intel-rapl:0", "package-0", 10_000_000, 50_000_000)
    with RaplMeter(tmp_path) as meter:
        assert meter.poll_period_s == 10.0 / 50.0 / 10
        pollers = [t for t in threading.enumerate() if t.name == "ffenergy-rapl-poller"]
        assert pollers and all(t.daemon for t in pollers)
