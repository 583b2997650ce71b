"""Fixtures for the HIL tests."""

import pytest

from tests.hil.hilkit import FakeLogger


@pytest.fixture
def fake_logger():
    made = []

    def make(payload: bytes) -> FakeLogger:
        made.append(FakeLogger(payload))
        return made[-1]

    yield make
    for f in made:
        f.close()
