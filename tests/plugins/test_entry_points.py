"""Plug-ins by entry point: every registry lists the entry points of its group, imports their objects
only when used, and refuses a broken plug-in with one line naming its package."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ffenergy.meters.registry import METERS
from ffenergy.registry import PluginError, Registry, UnknownName
from tests.plugins.fake_dist import write_dist

SPEC = """
from ffenergy.registry import Plugin

good = Plugin("benchmeter_impl:BenchMeter", "a bench's own meter", {"provenance": "measured", "host": True})
wrong = Plugin("benchmeter_impl:NotAMeter", "names a function, not a Meter")
unimportable = Plugin("benchmeter_missing:Meter", "names a module that is not there")
gpu1 = Plugin("ffenergy.targets.host:HostTarget", "the second GPU", {"device": "cuda:1"})
nowhere = Plugin("ffenergy.targets.host:HostTarget", "says neither a device nor a board")
"""
IMPL = '''
from ffenergy.meters.simulated import SimulatedMeter


class BenchMeter(SimulatedMeter):
    """A bench meter (a simulated one in disguise)."""


def NotAMeter():
    return None
'''
GROUP = {
    "good": "benchmeter_plugins:good",
    "wrong": "benchmeter_plugins:wrong",
    "unimportable": "benchmeter_plugins:unimportable",
    "broken": "benchmeter_broken:spec",
    "simulated": "benchmeter_plugins:good",
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    write_dist(
        site,
        "benchmeter",
        "1.2",
        {
            "ffenergy.meters": GROUP,
            "ffenergy.learners": {"not-a-learner": "benchmeter_plugins:wrong"},
            "ffenergy.targets": {"second-gpu": "benchmeter_plugins:gpu1", "nowhere": "benchmeter_plugins:nowhere"},
        },
        {
            "benchmeter_plugins": SPEC,
            "benchmeter_impl": IMPL,
            "benchmeter_broken": "raise RuntimeError('the vendor library is missing')\n",
        },
    )
    write_dist(site, "othermeter", "0.1", {"ffenergy.meters": {"good": "benchmeter_plugins:good"}}, {})
    monkeypatch.syspath_prepend(str(site))
    for module in ("benchmeter_plugins", "benchmeter_impl", "benchmeter_broken"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return site


def _meters() -> Registry:
    """A registry like METERS (same group and check), scanned afresh."""
    fresh: Registry = Registry("meter", "ffenergy.meters", METERS.check)
    fresh.register("simulated", "ffenergy.meters.simulated:SimulatedMeter", provenance="simulated", host=True)
    return fresh


def test_plugins_are_listed_with_their_package_and_imported_only_when_used(site, caplog):
    meters = _meters()
    with caplog.at_level(logging.WARNING, "ffenergy.registry"):
        names = meters.names()
    assert names == ["simulated", "good", "wrong", "unimportable"]
    assert "benchmeter_impl" not in sys.modules  # the listing imported the light spec module only
    good = meters.entry("good")
    assert (good.origin, good.summary, good.fact("host"), good.fact("provenance")) == (
        "benchmeter 1.2",
        "a bench's own meter",
        True,
        "measured",
    )
    assert meters.entry("simulated").origin == "built-in"
    assert meters.get("good").__name__ == "BenchMeter" and "benchmeter_impl" in sys.modules


def test_a_broken_plugin_is_one_line_naming_its_package_and_the_rest_works(site, caplog):
    meters = _meters()
    with caplog.at_level(logging.WARNING, "ffenergy.registry"):
        meters.names()
    refused = meters.refused()
    assert set(refused) == {"broken", "simulated", "good"}
    assert refused["broken"] == (
        "plug-in meter 'broken' from benchmeter 1.2 refused: cannot load benchmeter_broken:spec: "
        "RuntimeError: the vendor library is missing"
    )
    assert "from benchmeter 1.2 refused: the name is taken by a built-in one" in refused["simulated"]
    assert "from othermeter 0.1 refused: the name is taken by the one from benchmeter 1.2" in refused["good"]
    assert [r.getMessage() for r in caplog.records] == list(refused.values())  # one line each, once
    assert all("\n" not in line for line in refused.values())
    with pytest.raises(
        PluginError, match=r"plug-in meter 'wrong' from benchmeter 1.2: .*NotAMeter.* is not a subclass"
    ):
        meters.get("wrong")
    with pytest.raises(
        PluginError,
        match="plug-in meter 'unimportable' from benchmeter 1.2: cannot import benchmeter_missing:Meter: ModuleNotFoundError",
    ):
        meters.get("unimportable")
    with pytest.raises(
        UnknownName, match=r"unknown meter 'broken' \(plug-in meter 'broken' from benchmeter 1.2 refused"
    ):
        meters.get("broken")
    assert meters.get("simulated").__name__ == "SimulatedMeter"


def _cli(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[2])])}
    return subprocess.run(
        [sys.executable, "-m", "ffenergy", *argv], env=env, capture_output=True, text=True, timeout=120
    )


def test_every_command_keeps_working_beside_broken_plugins(site):
    meters = _cli(site, "meters")
    assert meters.returncode == 0, meters.stderr
    lines = meters.stdout.splitlines()[1:]
    rows = {line.split()[0]: line for line in reversed(lines)}  # the first row of a name wins
    assert rows["good"].split()[:5] == ["good", "simulated", "benchmeter", "1.2", "yes"]  # what the built meter says
    assert any("plug-in meter 'good' from othermeter 0.1 refused" in line for line in lines)
    assert rows["simulated"].split()[:4] == ["simulated", "simulated", "built-in", "yes"]
    assert (
        "no" in rows["wrong"].split()
        and "from benchmeter 1.2" in rows["wrong"]
        and "is not a subclass" in rows["wrong"]
    )
    assert "plug-in meter 'broken' from benchmeter 1.2 refused: cannot load" in rows["broken"]
    warnings = [line for line in meters.stderr.splitlines() if line.strip()]
    assert len(warnings) == 3 and all("refused" in line and "Traceback" not in line for line in warnings)
    targets = _cli(site, "targets")
    rows = {line.split()[0]: line.split() for line in targets.stdout.splitlines()[1:]}
    assert rows["second-gpu"][1:4] == ["benchmeter", "1.2", "no"] and rows["cpu"][1:3] == ["built-in", "yes"]
    assert rows["nowhere"][1:4] == ["benchmeter", "1.2", "no"] and "a target runs on cpu or cuda" in " ".join(
        rows["nowhere"]
    )
    for argv in (["targets"], ["--help"], ["run", "--help"]):
        done = _cli(site, *argv)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert "good" in _cli(site, "run", "--help").stdout  # a host meter plug-in is a --meter choice


def test_a_run_naming_a_broken_plugin_stops_with_one_line_naming_the_package(site, tmp_path):
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml").read_text())
    config["inference"]["procedures"] = ["not-a-learner"]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(config))
    done = _cli(site, "run", str(tmp_path / "broken.yaml"), "--out", str(tmp_path / "results"), "--no-progress")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "not-a-learner" in line]
    assert line.startswith("error: plug-in: plug-in learner 'not-a-learner' from benchmeter 1.2: ")
    assert "is not a subclass of ffenergy.learners.base.Learner" in line


def _registries() -> list[tuple[Registry, str, object]]:
    """Every registry, its entry-point group and one object of its kind."""
    import ffenergy.data.mnist as mnist
    from ffenergy.data.registry import DATASETS
    from ffenergy.firmware.boards import BOARDS
    from ffenergy.learners import LEARNERS
    from ffenergy.learners.backprop import BackpropMultiExit
    from ffenergy.meters.simulated import SimulatedMeter
    from ffenergy.targets.registry import TARGETS

    return [
        (METERS, "ffenergy.meters", SimulatedMeter),
        (LEARNERS, "ffenergy.learners", BackpropMultiExit),
        (BOARDS, "ffenergy.boards", BOARDS.get("host")),
        (DATASETS, "ffenergy.datasets", mnist),
        (TARGETS, "ffenergy.targets", None),  # targets are facts: no object to check
    ]


def test_every_registry_reads_its_group_and_checks_the_kind_of_a_plugin_object():
    for registry, group, good in _registries():
        assert registry.group == group
        if registry.check is None:
            assert good is None
            continue
        registry.check(good)
        for wrong in (len, "a string", object()):
            with pytest.raises(TypeError, match="is not"):
                registry.check(wrong)
