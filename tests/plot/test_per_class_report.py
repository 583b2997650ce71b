"""Per-class sensitivity (and two-class specificity) in report.md, from per_class.csv."""

from __future__ import annotations

from pathlib import Path

import pytest

from ffenergy.analysis.metrics import class_recalls
from ffenergy.plot.command import plot_command
from tests.plot.plot_synthetic import write_synthetic_run

PER_CLASS = """target,procedure,mode,class,n_samples,sensitivity
cpu,mp,full,non-seizure,1840,0.99
cpu,mp,full,seizure,460,0.95
cpu,mp,depth-1,non-seizure,1840,0.5
cpu,mp,depth-1,seizure,460,0.5
cpu,mp,light,non-seizure,1840,0.985
cpu,mp,light,seizure,460,
"""


def rows(text: str) -> list[dict[str, str]]:
    header, *lines = text.strip().splitlines()
    return [dict(zip(header.split(","), line.split(","))) for line in lines]


def test_class_recalls_keeps_full_and_light_and_gives_specificity() -> None:
    full, light = class_recalls(rows(PER_CLASS))
    assert (full.mode, light.mode) == ("full", "light")  # depth-1 left out
    assert full.sensitivity == {"non-seizure": 0.99, "seizure": 0.95}
    assert full.specificity("seizure") == 0.99 and full.specificity("non-seizure") == 0.95
    assert light.sensitivity["seizure"] is None  # a class absent from the test split
    three = class_recalls(rows(PER_CLASS.replace("cpu,mp,light,seizure,460,", "cpu,mp,light,other,1,0.5")))
    assert three[1].specificity("seizure") is None


def test_report_shows_per_class_sensitivity_and_specificity(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path, "run", mcu=False, energy=False)
    (run / "per_class.csv").write_text(PER_CLASS)
    assert plot_command([run], "png", jobs=1) == 0
    report = (run / "report.md").read_text()
    assert (
        "| target | procedure | mode | non-seizure sensitivity | seizure sensitivity | seizure specificity |" in report
    )
    assert "| cpu | mp | full | 99.00% | 95.00% | 99.00% |" in report
    assert "| cpu | mp | light | 98.50% | — | 98.50% |" in report


@pytest.mark.parametrize("content", ["", "target,procedure,mode,class,n_samples,sensitivity\n"])
def test_report_without_per_class_rows_has_no_section(tmp_path: Path, content: str) -> None:
    run = write_synthetic_run(tmp_path, "run", mcu=False, energy=False)
    (run / "per_class.csv").write_text(content)
    assert plot_command([run], "png", jobs=1) == 0
    assert "Per-class sensitivity" not in (run / "report.md").read_text()
