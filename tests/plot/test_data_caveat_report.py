"""A data caveat in the manifest (a rebuilt dataset copy) heads report.md and the comparison."""

from __future__ import annotations

import json
from pathlib import Path

from ffenergy.plot.command import plot_command
from tests.plot.plot_synthetic import write_synthetic_run

CAVEAT = "not the original CIFAR-10: pixels are exact for 6,102 of 60,000 images"


def with_caveat(run: Path, caveat: str) -> Path:
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.setdefault("dataset", {})["caveat"] = caveat
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_the_caveat_heads_the_run_report_and_the_comparison(tmp_path: Path) -> None:
    run = with_caveat(write_synthetic_run(tmp_path, "a", mcu=False, energy=False), CAVEAT)
    other = write_synthetic_run(tmp_path, "b", mcu=False, energy=False)
    assert plot_command([run], "png", jobs=1) == 0
    head = (run / "report.md").read_text().split("## Summary")[0]
    assert f"> **Data caveat:** {CAVEAT}" in head
    assert plot_command([other], "png", jobs=1) == 0
    assert "Data caveat" not in (other / "report.md").read_text()
    assert plot_command([run, other], "png", jobs=1) == 0
    comparison = (tmp_path / "comparison" / "report.md").read_text()
    assert comparison.count("Data caveat") == 1 and CAVEAT in comparison
