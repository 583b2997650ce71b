"""Suite-wide hygiene: no test writes to the user's cache, and none leaks logging set-up into another."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Model, data and firmware caches under a temporary directory unless a test sets its own (a
    ``FFENERGY_MODEL_CACHE`` in the caller's environment would send the models elsewhere: it is dropped)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FFENERGY_CACHE", str(tmp_path_factory.mktemp("ffenergy-cache")))
        mp.delenv("FFENERGY_MODEL_CACHE", raising=False)
        yield


@pytest.fixture(autouse=True)
def _restore_ffenergy_logger() -> None:
    """``ffenergy.cli.main`` gives the ``ffenergy`` logger its own handler; caplog needs it back as it was."""
    logger = logging.getLogger("ffenergy")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
