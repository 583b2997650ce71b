"""The example package's modules, importable from its folder (the slow test installs it instead)."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "residual-exits"
if str(EXAMPLE) not in sys.path:
    sys.path.append(str(EXAMPLE))
