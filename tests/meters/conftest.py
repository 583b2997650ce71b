"""Fixtures of the meter tests (the fakes live in ``tests.meters.fakes``)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from tests.meters.fakes import make_fake_nvml


@pytest.fixture
def fake_nvml() -> Callable[..., SimpleNamespace]:
    return make_fake_nvml
