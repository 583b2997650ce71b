"""Run directories: one per run, named after the config and its start time, never shared."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path


def new_run_dir(out_root: Path, name: str) -> Path:
    """``out_root/<name>-<YYYYmmdd-HHMMSS>``, created; runs started in the same second get -2, -3, ..."""
    out_root.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        run_dir = out_root / (stem if n == 1 else f"{stem}-{n}")
        try:
            run_dir.mkdir()  # atomic: two processes never get the same directory
            return run_dir
        except FileExistsError:
            continue
    raise AssertionError("unreachable")
