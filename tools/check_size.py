"""The size floors of the quality gate: no function over 60 lines or above cyclomatic complexity 15
(radon) in ``ffenergy/experiment``, ``ffenergy/analysis`` and ``ffenergy/plot``, and the runner under
300 lines. Prints each offender and exits 1 when there is one.

    python tools/check_size.py
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class

log = logging.getLogger("check_size")

PACKAGES = ("ffenergy/experiment", "ffenergy/analysis", "ffenergy/plot")
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15
MAX_MODULE_LINES = {"ffenergy/experiment/runner.py": 300}


@dataclass(frozen=True)
class Offence:
    where: str
    what: str


def function_offences(path: Path, root: Path) -> list[Offence]:
    """Functions and methods of one file over the line or complexity limit."""
    offences = []
    for block in cc_visit(path.read_text()):
        if isinstance(block, Class):  # its methods are blocks of their own
            continue
        where = f"{path.relative_to(root)}:{block.lineno} {block.fullname}"
        lines = block.endline - block.lineno + 1
        if lines > MAX_FUNCTION_LINES:
            offences.append(Offence(where, f"{lines} lines (limit {MAX_FUNCTION_LINES})"))
        if block.complexity > MAX_COMPLEXITY:
            offences.append(Offence(where, f"complexity {block.complexity} (limit {MAX_COMPLEXITY})"))
    return offences


def offences(root: Path) -> list[Offence]:
    """Every offence in the tree under ``root``."""
    found = [
        o
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        for o in function_offences(path, root)
    ]
    for module, limit in MAX_MODULE_LINES.items():
        lines = len((root / module).read_text().splitlines())
        if lines >= limit:
            found.append(Offence(module, f"{lines} lines (limit: under {limit})"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the repository root")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    found = offences(args.root)
    for offence in found:
        log.error("%s: %s", offence.where, offence.what)
    if not found:
        log.info("size floors hold in %s", ", ".join(PACKAGES))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
