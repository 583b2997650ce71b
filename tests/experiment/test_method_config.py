"""The window method's refusals word for word and at their boundaries, and the window length rule."""

from __future__ import annotations

import pytest

from ffenergy.measure import MAX_WINDOW_S, MethodConfig


def test_the_method_refuses_what_it_cannot_measure_with_messages_naming_the_key():
    with pytest.raises(ValueError) as err:
        MethodConfig(repeats=4)
    assert str(err.value) == "measurement.repeats: invalid value; use an integer >= 5 (repeats give the 95% CI)"
    with pytest.raises(ValueError) as err:
        MethodConfig(warmup_s=-0.1)
    assert str(err.value) == "measurement.warmup_s: invalid value; use a number of seconds >= 0 (0: no warm-up)"
    assert MethodConfig(warmup_s=0.0).warmup_s == 0.0 and MethodConfig(repeats=5).repeats == 5
    assert MethodConfig(min_window_s=MAX_WINDOW_S).min_window_s == MAX_WINDOW_S  # an hour is allowed
    with pytest.raises(ValueError) as err:
        MethodConfig(min_window_s=MAX_WINDOW_S + 1)
    assert str(err.value) == "measurement.min_window_s: invalid value; use seconds in (0, 3600]"


def test_the_window_is_the_longer_of_the_minimum_and_the_meter_periods():
    method = MethodConfig(min_window_s=2.0, update_periods_per_window=20.0)
    assert method.window_s(0.05) == 2.0 and method.window_s(0.1) == 2.0 and method.window_s(0.2) == 4.0
