"""Signs that abs() would hide: idle drift up is positive and down negative, and a drift either way
past the limit is reported with its sign."""

from __future__ import annotations

import logging

import pytest

from ffenergy.analysis.stats import round_drifts
from ffenergy.experiment.summary_stage import idle_drift


def test_round_drifts_are_signed_relative_changes():
    assert round_drifts([2.0, 2.2, 1.1]) == pytest.approx([0.1, -0.5])


def _idle(repeat: int, power_w: float) -> dict[str, str]:
    return {
        "target": "cpu",
        "meter": "rapl",
        "procedure": "idle",
        "domain": "total",
        "repeat": str(repeat),
        "energy_j": str(power_w * 2.0),
        "duration_s": "2.0",
    }


@pytest.mark.parametrize("later_w, shown", [(0.8, "-20.0%"), (1.2, "+20.0%")])
def test_idle_drift_either_way_is_its_size_and_the_warning_keeps_its_sign(caplog, later_w, shown):
    windows = [_idle(1, later_w), _idle(0, 1.0)]  # out of order on disk: sorted by repeat
    with caplog.at_level(logging.WARNING):
        assert idle_drift(("cpu", "rapl"), "total", windows, limit=0.05) == pytest.approx(0.2)
    assert f"idle 0->1: {shown}" in caplog.text
    caplog.clear()
    assert idle_drift(("cpu", "rapl"), "total", windows, limit=0.5) == pytest.approx(0.2)
    assert caplog.text == ""
