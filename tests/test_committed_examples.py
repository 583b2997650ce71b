"""Committed examples say which ffenergy made them, and one older than the result schema says what it lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffenergy.analysis.load import load_run
from ffenergy.contract import EXAMPLE_FILE, SCHEMA_SINCE

EXAMPLES = sorted(
    p.parent for p in (Path(__file__).resolve().parents[1] / "results" / "examples").glob("*/manifest.json")
)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_example_older_than_the_schema_carries_a_note(example):
    record = json.loads((example / EXAMPLE_FILE).read_text())
    made_by = json.loads((example / "manifest.json").read_text())["versions"]["ffenergy"]
    if _version(made_by) < _version(SCHEMA_SINCE):
        note = record.get("schema_note", "")
        assert note, (
            f"{example.name}: made by ffenergy {made_by}, before the {SCHEMA_SINCE} schema, with no schema_note"
        )
    load_run(example)  # and it still reads
