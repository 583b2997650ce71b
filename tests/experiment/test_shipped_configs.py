from pathlib import Path

import pytest

from ffenergy.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"mnist.yaml", "tiny.yaml", "mnist-mcu.yaml", "mitbih.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
