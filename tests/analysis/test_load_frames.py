"""load_frames: result files of one or many runs as pandas DataFrames with the contract's columns."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from ffenergy.analysis.load import RunLoadError, load_frames, load_run
from ffenergy.contract import FIT_KEYS, SAMPLES_COLUMNS, SUMMARY_COLUMNS, WINDOWS_COLUMNS, read_rows
from tests.plot.plot_synthetic import write_synthetic_run


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    write_synthetic_run(tmp_path / "lab", "run-a", n_samples=50, seed=1)
    write_synthetic_run(tmp_path / "lab", "run-b", n_samples=40, mcu=False, seed=2)
    return tmp_path / "lab"


def test_every_file_of_every_run_is_one_frame_with_the_contract_columns(two_runs):
    frames = load_frames(two_runs)
    assert frames.runs["run_id"].tolist() == ["run-a", "run-b"]
    assert frames.runs["dataset"].tolist() == ["mnist", "mnist"]
    assert list(frames.summary.columns) == ["run_id", *SUMMARY_COLUMNS]
    assert list(frames.samples.columns) == ["run_id", *SAMPLES_COLUMNS]
    assert list(frames.windows.columns) == ["run_id", *WINDOWS_COLUMNS]
    assert set(FIT_KEYS) <= set(frames.fits.columns)
    for run_id in ("run-a", "run-b"):
        run = load_run(two_runs / run_id)
        summary = frames.summary[frames.summary["run_id"] == run_id]
        assert len(summary) == len(run.summary)
        for row, typed in zip(summary.itertuples(), run.summary):
            assert (row.target, row.procedure, row.mode) == (typed.target, typed.procedure, typed.mode)
            expected = math.nan if typed.energy_j_per_inference is None else typed.energy_j_per_inference
            assert row.energy_j_per_inference == pytest.approx(expected, nan_ok=True)
            assert row.accuracy == typed.accuracy
        samples = frames.samples[frames.samples["run_id"] == run_id]
        assert samples["exit_layer"].tolist() == run.samples.exit_layer.tolist()
        assert len(frames.windows[frames.windows["run_id"] == run_id]) == len(
            read_rows(two_runs / run_id / "windows.csv")
        )
        assert len(frames.fits[frames.fits["run_id"] == run_id]) == len(run.fits)
    assert frames.summary["target"].map(type).eq(str).all() and frames.summary["macs_per_inference"].dtype == float


def test_two_paths_concatenate_and_a_column_an_older_run_lacks_is_nan(two_runs):
    summary = two_runs / "run-b" / "summary.csv"
    rows = read_rows(summary)
    kept = [c for c in SUMMARY_COLUMNS if c != "idle_drift_max"]
    summary.write_text(",".join(kept) + "\n" + "".join(",".join(r[c] for c in kept) + "\n" for r in rows))
    frames = load_frames(two_runs / "run-a", two_runs / "run-b")
    older = frames.summary[frames.summary["run_id"] == "run-b"]
    assert len(older) == len(rows) and older["idle_drift_max"].isna().all()


def test_a_bad_value_names_its_file_and_line(two_runs):
    path = two_runs / "run-a" / "windows.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[WINDOWS_COLUMNS.index("energy_j")] = "lots"
    path.write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    with pytest.raises(RunLoadError, match=r"windows.csv: line 3, column 'energy_j': 'lots' is not a number"):
        load_frames(two_runs)
    with pytest.raises(RunLoadError, match="no run directory"):
        load_frames(two_runs / "run-a" / "figures-nowhere")


def test_without_pandas_it_says_which_extra_to_install(two_runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'ffenergy\[frames\]'"):
        load_frames(two_runs)
