"""RAPL meter on real powercap trees written under temp dirs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from ffenergy.meters.base import MeterUnavailable
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


def _error_as(uid: int | None, root: Path) -> str:
    """The MeterUnavailable message of RaplMeter(root), opened as ``uid`` (a forked child) or as we are."""
    def attempt() -> str:
        try:
            RaplMeter(root).close()
        except MeterUnavailable as exc:
            return str(exc)
        return "NO ERROR"
    if uid is None:
        return attempt()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, so chmod 000 really denies the read
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            os.write(w, attempt().encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        msg = fh.read()
    os.waitpid(pid, 0)
    return msg


def test_permission_denied_names_the_fixes():
    base = Path(tempfile.mkdtemp(prefix="ffenergy-rapl-"))
    try:
        base.chmod(0o755)
        zone(base, "intel-rapl:0", "package-0", 123)
        for p in base.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o444)
        (base / "intel-rapl:0" / "energy_uj").chmod(0o000)
        msg = _error_as(NOBODY if os.geteuid() == 0 else None, base)
        assert "permission denied reading" in msg, msg
        for fix in ("run as root", "chmod a+r", "udev", "sysfs.conf", "groupadd"):
            assert fix in msg
    finally:
        shutil.rmtree(base)
