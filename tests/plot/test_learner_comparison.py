"""Procedures side by side at equal accuracy: the MACs each needs, read off its α sweep."""

from __future__ import annotations

from pathlib import Path

from ffenergy.analysis.learners import equal_accuracy_table, learner_rows
from ffenergy.analysis.load import RunData, RunManifest
from ffenergy.contract import SummaryRow, SweepRow
from ffenergy.plot.command import plot_command
from tests.plot.plot_synthetic import write_synthetic_run


def _summary(procedure: str, mode: str, accuracy: float, macs: float, target: str = "cpu") -> SummaryRow:
    return SummaryRow(
        dataset="toy",
        target=target,
        procedure=procedure,
        mode=mode,
        accuracy=accuracy,
        mean_layers=1.0,
        macs_per_inference=macs,
    )


def _sweep(procedure: str, alpha: float, accuracy: float, macs: float) -> SweepRow:
    return SweepRow(
        target="host",
        procedure=procedure,
        statistic="gap",
        alpha=alpha,
        accuracy=accuracy,
        mean_layers=1.0,
        macs_per_inference=macs,
        exit_fractions=(1.0,),
    )


def _run() -> RunData:
    manifest = RunManifest("toy-run", "toy", "toy", "", (), {}, {}, {}, {})
    summary = [
        _summary("a", "full", 0.95, 1000),
        _summary("a", "light", 0.94, 400),
        _summary("a", "full", 0.50, 1),  # another target: not the first that ran a
        _summary("b", "full", 0.96, 3000),
        _summary("b", "light", 0.93, 900),
        _summary("c", "full", 0.90, 50),  # no light row: not compared
    ]
    summary[2] = _summary("a", "full", 0.50, 1, target="mcu-qemu")
    sweep = [
        _sweep("a", 0.0, 0.90, 200),
        _sweep("a", 1.0, 0.94, 400),
        _sweep("a", 2.0, 0.949, 600),
        _sweep("b", 0.0, 0.93, 900),
        _sweep("b", 1.0, 0.945, 1500),
    ]
    return RunData(Path("."), manifest, summary=summary, sweep=sweep)


def test_macs_at_an_accuracy_are_the_cheapest_point_that_reaches_it():
    a, b = learner_rows(_run())
    assert [r.procedure for r in (a, b)] == ["a", "b"]
    assert a.macs_at_accuracy(0.94) == 400  # reached exactly counts
    assert a.macs_at_accuracy(0.945) == 600  # the cheapest point at or above, not interpolated
    assert a.macs_at_accuracy(0.95) == 1000  # only the full network gets there
    assert a.macs_at_accuracy(0.951) is None
    assert b.macs_at_accuracy(0.94) == 1500
    assert a.full_accuracy == 0.95  # from the first target that ran it, not the mcu-qemu row


def test_the_table_gives_every_procedure_at_every_procedures_light_accuracy():
    header, cells = equal_accuracy_table(learner_rows(_run()), label_run=False)
    assert header[-2:] == ["MACs at ≥ 94.00% (a light)", "MACs at ≥ 93.00% (b light)"]
    assert cells[0][0] == "a" and cells[0][-2:] == ["400", "400"]  # its 200-MAC point is below 93%
    assert cells[1][0] == "b" and cells[1][-2:] == ["1,500", "900"]


def test_a_comparison_of_runs_draws_accuracy_vs_macs_and_tabulates_equal_accuracy(tmp_path: Path):
    runs = [write_synthetic_run(tmp_path, name, n_samples=40, mcu=False, seed=i) for i, name in enumerate("xy")]
    assert plot_command(runs, "png") == 0
    assert (tmp_path / "comparison" / "accuracy_vs_macs.png").stat().st_size > 10_000
    report = (tmp_path / "comparison" / "report.md").read_text()
    assert "## Procedures at equal accuracy" in report and "accuracy_vs_macs.png" in report
    table = report.split("## Procedures at equal accuracy")[1]
    assert all(f"| {run} " in table for run in ("x", "y"))  # rows name their run
