"""Helpers for the HIL tests: trigger events and a scripted logger on a real pty."""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path


class FakeLogger:
    """A pty whose master side answers the host's info request with scripted bytes."""

    def __init__(self, payload: bytes):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.payload = payload
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while select.select([self.master], [], [], 5)[0]:
            if b"i" in os.read(self.master, 64):
                os.write(self.master, self.payload)
                return

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def shared_data_dir() -> Path:
    """``$FFENERGY_SHARED_DATA`` if set, else ``../shared/data`` next to the repository (as tests/data does)."""
    env = os.environ.get("FFENERGY_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
