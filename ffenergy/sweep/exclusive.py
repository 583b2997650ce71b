"""One measurement at a time per Ray node: an exclusive lock file named after the node.

Points may train side by side on a node, but only one of them measures (the ``measure`` and
``hil`` stages) at a time, so no window sees another point's load. The lock is ``flock`` on a
file in the node's temporary folder: the kernel releases it when its holder exits, so a point
killed mid-measurement never leaves its node locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def lock_path(node_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"ffenergy-measure-{node_id}.lock"


@contextlib.contextmanager
def measuring(node_id: str) -> Iterator[None]:
    """Hold the node's measurement lock for the body (waits while another point measures)."""
    with open(lock_path(node_id), "a") as fh:
        start = time.monotonic()
        fcntl.flock(fh, fcntl.LOCK_EX)
        waited = time.monotonic() - start
        if waited > 1:
            log.info("waited %.0f s for another point's measurement on this node", waited)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
