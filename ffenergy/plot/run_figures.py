"""Draw every figure of one run (or of a comparison), save them and write report.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ffenergy.analysis.load import RunData
from ffenergy.analysis.report import SavedFigure, comparison_report, run_report
from ffenergy.plot import attribution, compare, exits, reduction, trace, tradeoff
from ffenergy.plot.style import Drawn, Skipped, save

RUN_FIGURES = (tradeoff.draw, exits.draw, attribution.draw, reduction.draw, trace.draw)


@dataclass
class Plotted:
    """What plotting one run (or a comparison) produced."""

    figures: list[SavedFigure] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    report: Path | None = None

    @property
    def notes(self) -> list[str]:
        return [f"{s.what}: {s.reason}" for s in self.skipped]


def _save_all(items: list[Drawn | Skipped], directory: Path, fmt: str, into: Plotted) -> None:
    for item in items:
        if isinstance(item, Skipped):
            into.skipped.append(item)
        else:
            into.figures.append(SavedFigure(save(item, directory, fmt), item.caption))


def plot_run(run: RunData, fmt: str) -> Plotted:
    """Figures into ``<run>/figures/`` and ``<run>/report.md``; no report when there is nothing to show."""
    out = Plotted()
    for draw in RUN_FIGURES:
        _save_all(draw(run), run.path / "figures", fmt, out)
    if out.figures or run.summary:
        out.report = run.path / "report.md"
        out.report.write_text(run_report(run, out.figures, out.notes))
    return out


def plot_comparison(runs: list[RunData], directory: Path, fmt: str) -> Plotted:
    """The across-runs figure and ``<directory>/report.md``."""
    out = Plotted()
    _save_all(compare.draw(runs), directory, fmt, out)
    directory.mkdir(parents=True, exist_ok=True)
    out.report = directory / "report.md"
    out.report.write_text(comparison_report(runs, out.figures, directory, out.notes))
    return out
