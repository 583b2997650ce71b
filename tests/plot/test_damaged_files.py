"""Result files cut short are refused, a torn last line is flagged: never plotted as if whole."""

from __future__ import annotations

import json

import numpy as np

from ffenergy.cli import main
from ffenergy.contract import ROW_COUNTS_KEY
from ffenergy.experiment.import_run import import_recording
from tests.recordings.sessions import write_session


def _run(tmp_path):
    energy = np.full(2000, 40.0)
    energy[200:700] += 20.0
    energy[900:1400] += 20.0
    return import_recording(write_session(tmp_path / "s", energy, [0.01, 0.2, 0.7, 0.9, 1.4]), tmp_path / "out").run_dir


def test_the_manifest_records_the_rows_each_file_holds(tmp_path):
    run_dir = _run(tmp_path)
    rows = json.loads((run_dir / "manifest.json").read_text())[ROW_COUNTS_KEY]
    assert rows == {"summary.csv": 1, "samples.csv": 0, "sweep.csv": 0, "windows.csv": 2}


def _plot(run_dir, capsys) -> tuple[int, str]:
    code = main(["plot", str(run_dir), "--jobs", "1"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_file_cut_short_is_refused(tmp_path, capsys):
    run_dir = _run(tmp_path)
    windows = run_dir / "windows.csv"
    whole = windows.read_text()
    windows.write_text(whole[: whole.rindex("\n", 0, len(whole) - 1) + 1])  # the last row lost
    code, out = _plot(run_dir, capsys)
    assert code != 0 and "windows.csv: 1 rows, but the run wrote 2: the file was cut short" in out
    windows.write_text(whole[:-10])  # the last row torn mid-line: one complete row left
    code, out = _plot(run_dir, capsys)
    assert code != 0 and "cut short" in out and not (run_dir / "report.md").exists()


def test_a_torn_last_line_of_an_unfinished_run_is_flagged_in_the_output_and_the_report(tmp_path, capsys):
    run_dir = _run(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    del manifest[ROW_COUNTS_KEY]  # as a run interrupted before its summary stage
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    windows = run_dir / "windows.csv"
    windows.write_text(windows.read_text()[:-10])
    code, out = _plot(run_dir, capsys)
    assert code == 0 and "windows.csv ends in a torn line" in out
    assert "**Damaged file:** windows.csv ends in a torn line" in (run_dir / "report.md").read_text()
