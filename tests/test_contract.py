"""The result contract: its writers, and its row types as the one definition of every column."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from ffenergy.analysis.report import _summary_table
from ffenergy.contract import (
    INSN_CLASS_COLUMNS,
    SAMPLES_COLUMNS,
    SUMMARY_COLUMNS,
    CsvAppender,
    Shown,
    SummaryRow,
    column,
    read_rows,
    write_json,
)
from ffenergy.rows import TableError, columns, read_table


def test_result_json_is_valid_json_even_with_undefined_numbers(tmp_path):
    write_json(tmp_path / "a.json", {"r2": math.nan, "mu": [1.0, math.inf], "nested": {"x": -math.inf}, "n": 3})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "r2": None,
        "mu": [1.0, None],
        "nested": {"x": None},
        "n": 3,
    }


def test_an_older_samples_file_gains_the_new_columns_on_append(tmp_path):
    old = SAMPLES_COLUMNS[: SAMPLES_COLUMNS.index("energy_j") + 1]
    path = tmp_path / "samples.csv"
    with CsvAppender(path, old) as w:
        w.write(dict.fromkeys(old, 1))
    with CsvAppender(path, SAMPLES_COLUMNS) as w:
        w.write({**dict.fromkeys(old, 2), "instructions": 7.5})
    rows = read_rows(path)
    assert list(rows[0]) == SAMPLES_COLUMNS
    assert (rows[0]["energy_j"], rows[0]["instructions"], rows[1]["instructions"]) == ("1", "", "7.5")
    with pytest.raises(ValueError, match="not .*new run directory"):
        CsvAppender(path, ["other", "columns"])


def test_a_row_with_an_unknown_key_is_refused_not_dropped(tmp_path):
    with (
        CsvAppender(tmp_path / "summary.csv", SUMMARY_COLUMNS) as w,
        pytest.raises(ValueError, match="no column acuracy"),
    ):
        w.write({"target": "cpu", "acuracy": 0.9})
    assert read_rows(tmp_path / "summary.csv") == []


def _summary(**extra) -> dict:
    return {"target": "cpu", "meter": "rapl", "procedure": "mp", "mode": "full", "mean_layers": 4.0, **extra}


def test_summary_cells_are_read_back_by_their_field_types(tmp_path):
    path = tmp_path / "summary.csv"
    with CsvAppender(path, SUMMARY_COLUMNS) as w:
        w.write(_summary(accuracy=0.5, macs_per_inference=1e6, n_samples=100, energy_j_per_inference=2e-6))
    (row,) = read_table(path, SummaryRow)
    assert (row.accuracy, row.n_samples, row.energy_j_per_inference) == (0.5, 100, 2e-6)
    assert isinstance(row.n_samples, int)
    assert row.energy_ci95_j is None and row.idle_drift_max is None  # optional: empty is None
    assert math.isnan(row.macs_per_inference_naive)  # its default: NaN in runs before ffenergy 0.2
    with CsvAppender(path, SUMMARY_COLUMNS) as w:
        w.write(_summary(macs_per_inference=1e6))  # no accuracy: allowed only where the caller says so
    with pytest.raises(TableError, match="line 3, column 'accuracy': '' is not a number"):
        read_table(path, SummaryRow)
    assert math.isnan(read_table(path, SummaryRow, may_be_empty=("accuracy",))[1].accuracy)


def test_an_older_summary_reads_the_later_columns_as_their_defaults(tmp_path):
    path = tmp_path / "summary.csv"
    old = SUMMARY_COLUMNS[: SUMMARY_COLUMNS.index("idle_drift_max")]
    with CsvAppender(path, [c for c in old if c != "macs_per_inference_naive"]) as w:
        w.write(_summary(accuracy=0.5, macs_per_inference=10))
    (row,) = read_table(path, SummaryRow)
    assert row.gross_energy_j_per_inference is None and math.isnan(row.macs_per_inference_naive)
    with CsvAppender(tmp_path / "bad.csv", ["target", "meter"]) as w:
        w.write({"target": "cpu", "meter": "rapl"})
    with pytest.raises(TableError, match="procedure, mode, accuracy, mean_layers, macs_per_inference missing"):
        read_table(tmp_path / "bad.csv", SummaryRow)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _WithExtra(SummaryRow):
    """A summary row with one more column, as a later ffenergy would add it: one field."""

    joules_per_token: float | None = column(None, Shown("J/token", ".3g"))


def test_adding_a_column_is_one_field_written_read_back_and_reported(tmp_path):
    path = tmp_path / "summary.csv"
    row = _WithExtra(
        target="cpu", meter="rapl", procedure="mp", mode="full", accuracy=0.5, mean_layers=4.0,
        macs_per_inference=10.0, macs_per_inference_naive=20.0, joules_per_token=0.125,
    )  # fmt: skip
    with CsvAppender(path, columns(_WithExtra)) as w:
        w.write(row)
    assert read_rows(path)[0]["joules_per_token"] == "0.125"
    (back,) = read_table(path, _WithExtra)
    assert back == row
    table = _summary_table([back])
    assert table[0].endswith("| J/token |") and table[2].endswith("| 0.125 |")


def test_the_instruction_class_columns_are_sample_row_fields():
    assert INSN_CLASS_COLUMNS == SAMPLES_COLUMNS[-len(INSN_CLASS_COLUMNS) :]
