"""One measurement method, one config: every setting of the window method is a ``measurement`` key."""

from __future__ import annotations

import time

import pytest

from ffenergy.config import ConfigError, parse_config
from ffenergy.experiment.runner import config_changes
from ffenergy.measure import MethodConfig, call_with_timeout
from ffenergy.meters.base import MeterError


def test_every_method_setting_is_a_measurement_key_with_the_method_defaults():
    cfg = parse_config({"measurement": {"idle": False, "meter_timeout_s": 5, "update_periods_per_window": 30}})
    assert isinstance(cfg.measurement, MethodConfig)
    assert (cfg.measurement.idle, cfg.measurement.meter_timeout_s, cfg.measurement.update_periods_per_window) == (
        False,
        5.0,
        30.0,
    )
    assert parse_config({}).measurement.warmup_s == MethodConfig().warmup_s == 0.5


@pytest.mark.parametrize(
    "key, value", [("meter_timeout_s", 0), ("update_periods_per_window", -1), ("calibration_fraction", 0)]
)
def test_a_bad_method_setting_is_a_config_error_naming_its_key(key, value):
    with pytest.raises(ConfigError, match=rf"^measurement\.{key}: invalid value; use a positive number"):
        parse_config({"measurement": {key: value}})


def test_a_hung_meter_names_the_key_that_raises_its_timeout():
    with pytest.raises(MeterError, match=r"raise measurement\.meter_timeout_s in the config"):
        call_with_timeout(lambda: time.sleep(1), 0.01, "meter.start()")


@pytest.mark.parametrize("network_id, procedure", [("pepita", "pepita"), ("bp-exits", "bp-exits")])
def test_a_learner_option_typo_fails_when_the_config_loads(network_id, procedure):
    raw = {"inference": {"procedures": [procedure]}, "model": {"options": {network_id: {"bogus_key": 1}}}}
    with pytest.raises(ConfigError, match=rf"model\.options\.{network_id}\.bogus_key: unknown key"):
        parse_config(raw)
    with pytest.raises(ConfigError, match=rf"model\.options\.{network_id}\.lr: invalid value"):
        parse_config({**raw, "model": {"options": {network_id: {"lr": -1.0}}}})


def test_a_key_added_later_is_no_change_to_a_run_that_had_its_default():
    new = parse_config({}).to_dict()
    old = {**new, "measurement": {k: v for k, v in new["measurement"].items() if k != "idle"}}
    assert config_changes(old, new) == []
    changed = parse_config({"measurement": {"idle": False}}).to_dict()
    assert config_changes(old, changed) == ["measurement.idle"]
