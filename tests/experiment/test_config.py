from pathlib import Path

import pytest

from ffenergy.config import ConfigError, load_config, parse_config


def test_defaults_validate_and_hash_is_stable():
    a, b = parse_config({}), parse_config({})
    assert a.hash() == b.hash()
    assert parse_config({"seed": 1}).hash() != a.hash()


@pytest.mark.parametrize(
    "raw, field, hint",
    [
        ({"model": {"epochs": -1}}, "model.epochs", "positive integer"),
        ({"model": {"epochs": "ten"}}, "model.epochs", "expected int"),
        ({"model": {"hiden": [10]}}, "model.hiden", "allowed keys here: hidden"),
        ({"targets": ["gpu"]}, "targets[0]", "cpu, cuda, mcu"),
        ({"meter": "wattmeter"}, "meter", "nvml, rapl"),
        ({"inference": {"mp_statistic": "mean"}}, "inference.mp_statistic", "gap, max"),
        ({"inference": {"procedures": ["mp", "bp"]}}, "inference.procedures[1]", "mp-pruned"),
        ({"inference": {"prune_after": 9}}, "inference.prune_after", "between 1 and"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction", "(0, 1)"),
        ({"data": {"dataset": "imagenet"}}, "data.dataset", "mnist"),
        ({"measurement": {"repeats": 2}}, "measurement.repeats", ">= 5"),
        ({"data": {"dataset": "mitbih", "source": "local", "options": {"beat_len": 1}}}, "data.options.beat_len", ""),
        ({"surprise": 1}, "surprise", "allowed keys here"),
    ],
)
def test_invalid_configs_name_the_field_and_the_fix(raw, field, hint):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert str(err.value).startswith(field), str(err.value)
    assert hint in str(err.value)


def test_yaml_errors_and_relative_data_paths(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    good = tmp_path / "sub" / "c.yaml"
    good.parent.mkdir()
    good.write_text("data: {dataset: mnist, source: local, path: ../mnist}\n")
    cfg = load_config(good)
    assert cfg.data.path == "../mnist"  # recorded as written (no machine paths in manifests)
    assert Path(cfg.data_path()).resolve() == (tmp_path / "mnist").resolve()


def test_result_json_is_valid_json_even_with_undefined_numbers(tmp_path):
    import json
    import math

    from ffenergy.contract import write_json

    write_json(tmp_path / "a.json", {"r2": math.nan, "mu": [1.0, math.inf], "nested": {"x": -math.inf}, "n": 3})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "r2": None, "mu": [1.0, None], "nested": {"x": None}, "n": 3}
