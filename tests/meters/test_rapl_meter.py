"""RAPL meter on real powercap trees written under temp dirs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ffenergy.meters import rapl
from ffenergy.meters.auto import available_meters
from ffenergy.meters.base import MeterError, MeterUnavailable
from ffenergy.meters.rapl import RaplMeter, discover_zones

R = 10_000_000_000  # max_energy_range_uj: 10 kJ, wraps in >= 10 s at the assumed 1000 W


def write(path: Path, value: object) -> None:
    """Atomic like sysfs: a reader never sees a half-written value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def zone(parent: Path, zid: str, name: str, energy_uj: int, max_range: int = R) -> Path:
    d = parent / zid
    d.mkdir(parents=True)
    write(d / "name", name)
    write(d / "energy_uj", energy_uj)
    write(d / "max_energy_range_uj", max_range)
    return d


def intel_tree(root: Path) -> dict[str, Path]:
    """Sysfs-like: zones live under devices/, class/powercap holds flat symlinks to all of them."""
    dev = root / "devices"
    pkg = zone(dev, "intel-rapl:0", "package-0", 5_000_000)
    core = zone(pkg, "intel-rapl:0:0", "core", 1_000_000)
    dram = zone(pkg, "intel-rapl:0:1", "dram", 2_000_000)
    psys = zone(dev, "intel-rapl:1", "psys", 9_000_000)
    cls = root / "class"
    cls.mkdir()
    for p in (pkg, core, dram, psys):
        (cls / p.name).symlink_to(p)
    return {"package-0": pkg, "core": core, "dram-0": dram, "psys": psys}


def test_domains_psys_separate_core_not_read(tmp_path):
    z = intel_tree(tmp_path)
    with RaplMeter(tmp_path / "class", poll_period_s=0.01) as meter:
        assert set(meter.info.domains) == {"package-0", "dram-0", "psys"}
        assert meter.info.provenance == "measured"
        token = meter.start()
        write(z["package-0"] / "energy_uj", 5_000_000 + 3_000_000)
        write(z["core"] / "energy_uj", 1_000_000 + 2_500_000)
        write(z["dram-0"] / "energy_uj", 2_000_000 + 500_000)
        write(z["psys"] / "energy_uj", 9_000_000 + 4_000_000)
        w = meter.stop(token)
    assert w.joules == pytest.approx({"package-0": 3.0, "dram-0": 0.5, "psys": 4.0})
    assert w.total_j == pytest.approx(3.5)  # psys contains the package: not added


def _true_to_raw(true_uj: int) -> int:
    return true_uj % R


@pytest.mark.parametrize("n_wraps", [2, 3])
def test_wraps_counted_by_the_background_poller(tmp_path, n_wraps):
    start_true = R - 1_000_000
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", _true_to_raw(start_true))
    with RaplMeter(tmp_path, poll_period_s=0.005) as meter:
        token = meter.start()
        true = start_true
        for _ in range(2 * n_wraps):  # each step < R, two steps per wrap
            true += R // 2 + 123_457
            write(pkg / "energy_uj", _true_to_raw(true))
            time.sleep(0.06)
        w = meter.stop(token)
        assert meter.wraps["package-0"] == (true // R) - (start_true // R)
    assert (true // R) - (start_true // R) >= n_wraps
    assert w.joules["package-0"] == pytest.approx((true - start_true) / 1e6)


def test_three_wraps_with_explicit_polls(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", R - 10)
    meter = RaplMeter(tmp_path, poll_period_s=4.0)
    try:
        token = meter.start()
        true = R - 10
        for step in (R - 1, 2, R - 5, R // 3, R // 2):
            true += step
            write(pkg / "energy_uj", true % R)
            meter.poll()
        w = meter.stop(token)
    finally:
        meter.close()
    assert meter.wraps["package-0"] == 3
    assert w.joules["package-0"] == pytest.approx((true - (R - 10)) / 1e6)


def test_amd_multi_die_mirrors_are_counted_once(tmp_path):
    dies = [zone(tmp_path, f"intel-rapl:{i}", f"package-0-die-{i}", 7_777_777) for i in range(2)]
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.domains == ("package-0",)
        assert any("mirrors" in n for n in meter.notes)
        token = meter.start()
        for d in dies:
            write(d / "energy_uj", 7_777_777 + 68_000_000)
        w = meter.stop(token)
    assert w.total_j == pytest.approx(68.0)


def test_distinct_die_counters_are_both_counted(tmp_path):
    dies = [zone(tmp_path, f"intel-rapl:{i}", f"package-0-die-{i}", e) for i, e in enumerate((1_000_000_000, 5))]
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert set(meter.info.domains) == {"package-0-die-0", "package-0-die-1"}
        token = meter.start()
        write(dies[0] / "energy_uj", 1_000_000_000 + 1_000_000)
        write(dies[1] / "energy_uj", 5 + 2_000_000)
        assert meter.stop(token).total_j == pytest.approx(3.0)


@pytest.mark.parametrize("make", [lambda p: p / "absent", lambda p: p])
def test_no_powercap_is_unavailable(tmp_path, make):
    with pytest.raises(MeterUnavailable, match="no powercap zones"):
        RaplMeter(make(tmp_path))


def test_poll_period_too_slow_for_wrap_is_refused(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 0, max_range=1_000_000)  # 1 J: wraps in 1 ms at 1000 W
    with pytest.raises(ValueError, match="under half the fastest counter wrap"):
        RaplMeter(tmp_path, poll_period_s=0.1)
    zones, _ = discover_zones(tmp_path)
    assert zones[0].wrap_time_s == pytest.approx(0.001)


NOBODY = 65534


def _error_as_nobody(root: Path) -> str:
    """The MeterUnavailable message of RaplMeter(root), opened without root rights."""

    def attempt() -> str:
        try:
            RaplMeter(root).close()
        except MeterUnavailable as exc:
            return str(exc)
        return "NO ERROR"

    return _as_nobody(attempt)


def refusal_as_nobody(unreadable: str) -> str:
    """The message RaplMeter gives a user who may read a one-zone tree but not its file ``unreadable``."""
    base = Path(tempfile.mkdtemp(prefix="ffenergy-rapl-"))
    try:
        base.chmod(0o755)
        zone(base, "intel-rapl:0", "package-0", 123)
        for p in base.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o444)
        (base / "intel-rapl:0" / unreadable).chmod(0o000)
        return _error_as_nobody(base)
    finally:
        shutil.rmtree(base)


def test_permission_denied_names_the_fixes():
    msg = refusal_as_nobody("energy_uj")
    assert "permission denied reading" in msg, msg
    for fix in ("run as root", "chmod a+r", "udev", "sysfs.conf", "groupadd"):
        assert fix in msg


def _nested(root: Path) -> Path:
    """The control type directory a container sees when it bind-mounts only ``powercap/intel-rapl``."""
    base = root / "intel-rapl"
    base.mkdir()
    return base


def test_psys_only_host_measures_platform_energy_as_the_total(tmp_path):
    psys = zone(tmp_path, "intel-rapl:0", "psys", 9_000_000)
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        token = meter.start()
        write(psys / "energy_uj", 9_000_000 + 4_000_000)
        w = meter.stop(token)
        info = meter.info
    assert w.total_j == pytest.approx(4.0) and w.not_in_total == ()  # was 0 J, "measured"
    assert info.domains == ("psys",)
    assert info.details["zones"]["psys"]["in_total"] and info.details["not_in_total"] == []
    assert "platform energy (psys)" in info.details["total"] and "not CPU-package" in info.details["total"]
    assert any("no package zone" in n for n in meter.notes)


def test_psys_is_not_the_total_beside_a_package(tmp_path):
    intel_tree(tmp_path)
    with RaplMeter(tmp_path / "class", poll_period_s=0.01) as meter:
        assert meter.info.details["zones"]["psys"]["in_total"] is False
        assert meter.info.details["total"] == "CPU packages + DRAM"


@pytest.mark.parametrize("breakage", ["no name file", "empty name"])
def test_top_level_zone_without_a_name_refuses_and_says_why(tmp_path, breakage):
    zone(tmp_path, "intel-rapl:0", "package-0", 5)
    broken = zone(tmp_path, "intel-rapl:1", "package-1", 5)
    if breakage == "no name file":
        (broken / "name").unlink()
    else:
        write(broken / "name", "")
    with pytest.raises(MeterUnavailable, match=r"not usable, because the name of top-level zone intel-rapl:1"):
        RaplMeter(tmp_path)
    status = {s.name: s for s in available_meters({"rapl": {"root": tmp_path}})}["rapl"]  # what `ffenergy meters` shows
    assert not status.usable and status.reason.startswith("RAPL: not usable, because")


def test_sub_zone_without_a_name_is_skipped_with_a_note(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    (zone(pkg, "intel-rapl:0:0", "core", 1) / "name").unlink()
    dram = zone(pkg, "intel-rapl:0:1", "dram", 2_000_000)
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.domains == ("package-0", "dram-0")
        notes = meter.info.details["notes"]
        assert any(n.startswith("intel-rapl:0:0: skipped, its name cannot be read") for n in notes)
        token = meter.start()
        write(pkg / "energy_uj", 5_000_000 + 1_000_000)
        write(dram / "energy_uj", 2_000_000 + 250_000)
        assert meter.stop(token).total_j == pytest.approx(1.25)


def test_same_named_top_level_zones_keep_their_own_counters(tmp_path):
    """Keyed by name, zone B's counter was compared with zone A's: a phantom wrap on every poll."""
    a = zone(tmp_path, "intel-rapl:0", "package-0", 9_000_000_000)
    b = zone(tmp_path, "intel-rapl:1", "package-0", 1_000_000)
    meter = RaplMeter(tmp_path, poll_period_s=4.0)
    try:
        token = meter.start()
        for step in range(1, 4):
            write(a / "energy_uj", 9_000_000_000 + step * 1_000_000)
            write(b / "energy_uj", 1_000_000 + step * 2_000_000)
            meter.poll()
        w = meter.stop(token)
        assert sum(meter.wraps.values()) == 0
    finally:
        meter.close()
    assert meter.info.domains == ("package-0@intel-rapl:0", "package-0@intel-rapl:1")
    assert w.joules == pytest.approx({"package-0@intel-rapl:0": 3.0, "package-0@intel-rapl:1": 6.0})
    assert w.total_j == pytest.approx(9.0)


def test_mirror_detection_survives_counter_updates_between_reads(tmp_path, monkeypatch):
    """The counter updates (+0.2 J, one 1 ms tick at 200 W) right after each of the first three
    reads of die 0, so die 1 reads ahead: one comparison took the two mirrors for two dies."""
    dies = [zone(tmp_path, f"intel-rapl:{i}", f"package-0-die-{i}", 7_777_777) for i in range(2)]
    real_read = rapl._read_int
    counter = {"value": 7_777_777, "bumps": 3}

    def read_then_tick(path: Path) -> int:
        value = real_read(path)
        if path == dies[0] / "energy_uj" and counter["bumps"]:
            counter["bumps"] -= 1
            counter["value"] += 200_000
            for d in dies:
                write(d / "energy_uj", counter["value"])
        return value

    monkeypatch.setattr(rapl, "_read_int", read_then_tick)
    meter = RaplMeter(tmp_path, poll_period_s=0.01)
    monkeypatch.setattr(rapl, "_read_int", real_read)
    with meter:
        assert meter.info.domains == ("package-0",)
        token = meter.start()
        for d in dies:
            write(d / "energy_uj", counter["value"] + 5_000_000)
        assert meter.stop(token).total_j == pytest.approx(5.0)
    assert counter["bumps"] == 0  # the updates did land during discovery


def test_close_but_distinct_die_counters_are_not_taken_for_mirrors(tmp_path):
    dies = [zone(tmp_path, f"intel-rapl:{i}", f"package-0-die-{i}", e) for i, e in enumerate((7_777_777, 7_777_700))]
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.domains == ("package-0-die-0", "package-0-die-1")
        token = meter.start()
        write(dies[0] / "energy_uj", 7_777_777 + 1_000_000)
        write(dies[1] / "energy_uj", 7_777_700 + 1_000_000)
        assert meter.stop(token).total_j == pytest.approx(2.0)


def test_zones_reached_only_through_the_control_type_directory(tmp_path):
    pkg = zone(_nested(tmp_path), "intel-rapl:0", "package-0", 5_000_000)
    dram = zone(pkg, "intel-rapl:0:0", "dram", 2_000_000)
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.domains == ("package-0", "dram-0")
        assert any(f"zones read through {tmp_path / 'intel-rapl'}/" in n for n in meter.notes)
        token = meter.start()
        write(pkg / "energy_uj", 5_000_000 + 2_000_000)
        write(dram / "energy_uj", 2_000_000 + 1_000_000)
        assert meter.stop(token).total_j == pytest.approx(3.0)


def test_dangling_flat_links_give_way_to_the_nested_tree(tmp_path):
    """A container that mounts /sys/class/powercap but not /sys/devices: the flat links dangle."""
    pkg = zone(_nested(tmp_path), "intel-rapl:0", "package-0", 5_000_000)
    (tmp_path / "intel-rapl:0").symlink_to("../../devices/virtual/powercap/intel-rapl/intel-rapl:0")
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        assert meter.info.details["zones"]["package-0"]["path"] == str(pkg)
        assert any("no usable flat intel-rapl:N entries" in n for n in meter.notes)


def test_dangling_links_alone_refuse_with_the_mount_fix(tmp_path):
    (tmp_path / "intel-rapl:0").symlink_to("../../devices/virtual/powercap/intel-rapl/intel-rapl:0")
    with pytest.raises(MeterUnavailable, match=r"(?s)not usable.*intel-rapl:0.*which is not mounted here"):
        RaplMeter(tmp_path)


@pytest.mark.parametrize("breakage", ["energy_uj", "max_energy_range_uj", "garbage"])
def test_unreadable_psys_is_skipped_when_the_package_is_readable(tmp_path, breakage):
    z = intel_tree(tmp_path)
    if breakage == "garbage":
        write(z["psys"] / "energy_uj", "N/A")
    else:
        (z["psys"] / breakage).unlink()
    with RaplMeter(tmp_path / "class", poll_period_s=0.01) as meter:
        assert meter.info.domains == ("package-0", "dram-0")
        assert any(n.startswith("intel-rapl:1 (psys): skipped") for n in meter.info.details["notes"])
        token = meter.start()
        write(z["package-0"] / "energy_uj", 5_000_000 + 1_000_000)
        assert meter.stop(token).total_j == pytest.approx(1.0)


def test_unreadable_psys_as_the_only_zone_refuses(tmp_path):
    (zone(tmp_path, "intel-rapl:0", "psys", 5) / "energy_uj").unlink()
    with pytest.raises(MeterUnavailable, match=r"not usable, because intel-rapl:0 \(psys\), the only energy zone"):
        RaplMeter(tmp_path)


@pytest.mark.parametrize("breakage", ["energy_uj", "max_energy_range_uj", "garbage", "zero range"])
def test_broken_dram_is_skipped_with_a_note_in_the_details(tmp_path, breakage):
    z = intel_tree(tmp_path)
    if breakage == "garbage":
        write(z["dram-0"] / "energy_uj", "")
    elif breakage == "zero range":
        write(z["dram-0"] / "max_energy_range_uj", 0)
    else:
        (z["dram-0"] / breakage).unlink()
    with RaplMeter(tmp_path / "class", poll_period_s=0.01) as meter:
        info = meter.info
        assert info.domains == ("package-0", "psys") and info.details["total"] == "CPU packages"
        assert any(n.startswith("intel-rapl:0:1 (dram of intel-rapl:0): skipped") for n in info.details["notes"])
        token = meter.start()
        write(z["package-0"] / "energy_uj", 5_000_000 + 1_000_000)
        assert meter.stop(token).total_j == pytest.approx(1.0)


def test_broken_package_refuses_the_meter(tmp_path):
    z = intel_tree(tmp_path)
    (z["package-0"] / "energy_uj").unlink()
    with pytest.raises(MeterUnavailable, match=r"not usable, because package zone intel-rapl:0 \(package-0\)"):
        RaplMeter(tmp_path / "class")


def test_frozen_counters_are_an_error_not_zero_joules(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    with RaplMeter(tmp_path, poll_period_s=0.01) as meter:
        token = meter.start()
        time.sleep(0.06)  # over FROZEN_AFTER_S: dozens of RAPL updates
        with pytest.raises(MeterError, match="did not move"):
            meter.stop(token)


def _as_nobody(fn: Callable[[], str]) -> str:
    """``fn()`` in a forked child that dropped root (so chmod 000 really denies), or here when not root."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(w, fn().encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        out = fh.read()
    os.waitpid(pid, 0)
    return out


def test_permission_denied_on_psys_only_skips_psys():
    base = Path(tempfile.mkdtemp(prefix="ffenergy-rapl-"))
    try:
        base.chmod(0o755)
        zone(base, "intel-rapl:0", "package-0", 123)
        zone(base, "intel-rapl:1", "psys", 456)
        for p in base.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o444)
        (base / "intel-rapl:1" / "energy_uj").chmod(0o000)

        def opened() -> str:
            try:
                with RaplMeter(base) as meter:
                    return "|".join([",".join(meter.info.domains), *meter.notes])
            except MeterError as exc:
                return f"REFUSED {exc}"

        out = _as_nobody(opened)
        assert out.startswith("package-0|"), out
        assert "intel-rapl:1 (psys): skipped, permission denied reading" in out
    finally:
        shutil.rmtree(base)
