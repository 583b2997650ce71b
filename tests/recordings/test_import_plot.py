"""Imported recordings through ``ffenergy plot``: their own report and trace figure, and a comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffenergy.analysis.load import load_run
from ffenergy.cli import main
from ffenergy.plot.command import comparison_dir
from tests.recordings.sessions import write_session

TIMES = [0.01, 0.2, 0.7, 0.9, 1.4]


def test_imported_runs_plot_with_gross_as_their_headline(tmp_path, capsys):
    rng = np.random.default_rng(5)
    for name, level in (("a", 40.0), ("b", 60.0)):
        energy = level + rng.random(2000)
        energy[200:700] += 20.0  # the windows draw more than the stretches between them
        energy[900:1400] += 20.0
        write_session(
            tmp_path / name, energy, TIMES, published_uj=[float(energy[200:700].sum()), float(energy[900:1400].sum())]
        )
    out = tmp_path / "out"
    assert main(["import", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--board", "nucleo-x"]) == 0
    assert main(["plot", str(out), "--jobs", "1"]) == 0
    runs = sorted(p for p in out.iterdir() if p.name.startswith("import-"))
    report = (runs[0] / "report.md").read_text()
    assert "**Headline: gross energy**" in report and "## Recording" in report and "within 0.1 %" in report
    assert (runs[0] / "figures" / "trace.png").is_file()
    run = load_run(runs[0])
    (row,) = run.summary
    assert run.headline_energy(row) == (row.gross_energy_j_per_inference, row.gross_energy_ci95_j)
    assert row.gross_energy_j_per_inference > row.energy_j_per_inference > 0
    assert (out / "comparison" / "energy_per_inference.png").is_file()


def test_a_comparison_of_runs_with_no_common_folder_is_written_here_not_at_the_root(tmp_path, monkeypatch):
    class _Run:
        def __init__(self, path: str):
            self.path = Path(path)

    monkeypatch.chdir(tmp_path)
    runs = [_Run("/tmp/x/run-1"), _Run("/work/y/run-2")]
    assert comparison_dir([Path("/tmp/x/run-1"), Path("/work/y/run-2")], runs) == tmp_path / "comparison"
