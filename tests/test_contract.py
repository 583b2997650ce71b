"""The result contract's writers."""

from __future__ import annotations

import json
import math

import pytest

from ffenergy.contract import SAMPLES_COLUMNS, CsvAppender, read_rows, write_json


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
