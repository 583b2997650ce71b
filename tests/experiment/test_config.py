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
        ({"measurement": {"pool_survivors": "yes"}}, "measurement.pool_survivors", "expected bool"),
        ({"data": {"dataset": "mitbih", "source": "local", "options": {"beat_len": 1}}}, "data.options.beat_len", ""),
        ({"surprise": 1}, "surprise", "allowed keys here"),
        ({"measurement": {"warmup_s": -0.5}}, "measurement.warmup_s", ">= 0"),
        ({"data": {"source": "web"}}, "data.source", "embedded, local, download for mnist"),
        ({"data": {"dataset": "cifar10", "source": "embedded"}}, "data.source", "local, download for cifar10"),
        ({"data": {"source": "local"}}, "data.path", "local reads the mnist files"),
        ({"meter_options": {"rapl": {"poll_period": 1}}}, "meter_options.rapl", "it takes ['root', 'poll_period_s']"),
        ({"meter_options": {"ina226": {"port": "/dev/x"}}}, "meter_options.ina226", "one of nvml, rapl"),
        ({"meter_options": {"rapl": 0.1}}, "meter_options.rapl", "a mapping"),
        ({"carbon": {"grid_intensity_g_per_kwh": -1}}, "carbon.grid_intensity_g_per_kwh", ">= 0"),
        (
            {"carbon": {"grid_intensity_g_per_kwh": float("nan")}},
            "carbon.grid_intensity_g_per_kwh",
            "not a finite number",
        ),
        ({"carbon": {"country_iso_code": "FRA", "grid_intensity_g_per_kwh": 5}}, "carbon", "only one of"),
        ({"inference": {"policy": {"kind": "conformal"}}}, "inference.policy.kind", "grid, risk, budget"),
        ({"inference": {"policy": {"kind": "risk", "epsilon": 0}}}, "inference.policy.epsilon", "(0, 1)"),
        ({"inference": {"policy": {"kind": "risk", "delta": 1.5}}}, "inference.policy.delta", "(0, 1)"),
        ({"inference": {"policy": {"kind": "risk", "loss": "f1"}}}, "inference.policy.loss", "disagreement, accuracy"),
        ({"inference": {"policy": {"kind": "risk", "fit_fraction": 1}}}, "inference.policy.fit_fraction", "(0, 1)"),
        ({"inference": {"policy": {"alpha_range": [3, 1]}}}, "inference.policy.alpha_range", "first < last"),
        ({"inference": {"policy": {"kind": "budget"}}}, "inference.policy.macs_per_inference", "kind budget needs"),
        ({"inference": {"policy": {"kind": "budget", "macs_per_inference": -5}}}, "inference.policy.macs", "positive"),
        ({"inference": {"policy": {"kind": "risk", "macs_per_inference": 5}}}, "inference.policy.macs", "kind: budget"),
        ({"inference": {"policy": {"epsilon": "small"}}}, "inference.policy.epsilon", "expected float"),
    ],
)
def test_invalid_configs_name_the_field_and_the_fix(raw, field, hint):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert str(err.value).startswith(field), str(err.value)
    assert hint in str(err.value)


def test_valid_meter_options_and_carbon_pass():
    cfg = parse_config({"meter_options": {"rapl": {"poll_period_s": 0.05}}, "carbon": {"grid_intensity_g_per_kwh": 50}})
    assert cfg.meter_options == {"rapl": {"poll_period_s": 0.05}}


def test_an_unknown_country_is_refused_when_the_config_loads():
    pytest.importorskip("codecarbon")
    with pytest.raises(ConfigError, match=r"^carbon.country_iso_code: no grid data for country 'XYZ'"):
        parse_config({"carbon": {"country_iso_code": "XYZ"}})
    assert parse_config({"carbon": {"country_iso_code": "FRA"}}).carbon.country_iso_code == "FRA"


def test_a_country_without_codecarbon_names_the_install_or_the_alternative(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "codecarbon", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "codecarbon.input", None)
    with pytest.raises(ConfigError, match=r"^carbon.country_iso_code: .*CodeCarbon.*grid_intensity_g_per_kwh"):
        parse_config({"carbon": {"country_iso_code": "FRA"}})


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


def test_config_validation_reads_the_learner_and_target_registries():
    from ffenergy.learners import LEARNERS

    with pytest.raises(ConfigError, match=r"inference.procedures\[1\].*one of mp, mp-pruned, op"):
        parse_config({"inference": {"procedures": ["mp", "toy-config"]}})
    LEARNERS.register("toy-config", "tests.nowhere:Toy")
    try:
        assert parse_config({"inference": {"procedures": ["mp", "toy-config"]}}).inference.procedures[1] == "toy-config"
    finally:
        LEARNERS.unregister("toy-config")
    with pytest.raises(ConfigError, match=r"targets\[0\].*one of cpu, cuda, mcu-sim, mcu-qemu, mcu"):
        parse_config({"targets": ["gpu"]})


def test_loading_a_config_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom ffenergy.config import load_config\nload_config('experiments/mnist-mcu.yaml')\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'\n"
    )
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_empty_config_file_is_refused_with_a_pointer_to_the_examples(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=r"is empty; start from one of the configs in experiments/"):
        load_config(empty)
