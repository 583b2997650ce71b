"""The result contract's writers."""

from __future__ import annotations

import json
import math

import pytest

from ffenergy.contract import write_json


def test_result_json_is_valid_json_even_with_undefined_numbers(tmp_path):
    write_json(tmp_path / "a.json", {"r2": math.nan, "mu": [1.0, math.inf], "nested": {"x": -math.inf}, "n": 3})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "r2": None,
        "mu": [1.0, None],
        "nested": {"x": None},
        "n": 3,
    }
