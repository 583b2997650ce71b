"""Fixtures for the firmware / HIL tests."""

from __future__ import annotations

import pytest

from ffenergy.firmware.export import deploy, export_model
from ffenergy.firmware.launch import build_firmware


@pytest.fixture(scope="session")
def firmware_factory(tmp_path_factory):
    """build(net, policy, dtype, board, calib_x) -> (deployed model, executable path), cached per call."""
    cache: dict[tuple, tuple] = {}

    def build(net, policy, dtype="f32", board="host", calib_x=None, key=None):
        k = (key, dtype, board)
        if key is None or k not in cache:
            out = tmp_path_factory.mktemp("fw")
            export_model(net, policy, out, dtype, board, calib_x=calib_x)
            cache[k] = (deploy(net, policy, dtype, calib_x), build_firmware(out, board))
        return cache[k]

    return build
