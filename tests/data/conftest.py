"""Fixtures for the dataset-loader tests: the shared offline data folder, found without absolute paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``$FFENERGY_SHARED_DATA`` if set, else ``../shared/data`` next to the repository."""
    env = os.environ.get("FFENERGY_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def mitdb_dir() -> Path:
    path = shared_data_dir() / "mitdb"
    if not (path / "100.hea").exists():
        pytest.skip(f"shared MIT-BIH data not found at {path} (set FFENERGY_SHARED_DATA)")
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every TCP connection fail at once, as on a machine without internet."""
    import socket

    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
