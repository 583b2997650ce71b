"""Copy a finished run into results/examples/ for committing, leaving out files too large for git,
the trained weights (``model.pt``) and the MCU targets' working folder (``hil/``: exported model,
firmware build, meter session).

    python tools/commit_example.py results/<run-id> results/examples/<name> [--max-mb 2]
    python tools/commit_example.py --mark results/examples/<name>   # an example copied by hand

Run ``ffenergy plot`` on the run *before* copying it: the copy keeps the report and figures drawn
from the whole run, and its ``example.json`` (ffenergy.contract.EXAMPLE_FILE) lists what was left
out, so ``ffenergy plot`` never redraws the example from the trimmed files.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from ffenergy.contract import EXAMPLE_FILE, EXPECTED_FILES

log = logging.getLogger("commit_example")
NEVER_COMMITTED = ("model.pt", "hil")  # weights and the MCU working folder: not results
NOTE = "committed example: files listed in 'trimmed' were left out for size; report.md and figures/ come from the whole run"


def copy_example(run_dir: Path, dest: Path, max_bytes: int) -> list[str]:
    """Copy ``run_dir`` to ``dest`` without its top-level files over ``max_bytes``; the names left out."""
    if not (run_dir / "manifest.json").is_file():
        raise SystemExit(f"{run_dir}: no manifest.json, so not a run directory")
    if dest.exists():
        raise SystemExit(f"{dest} exists; remove it first (an example is replaced whole)")
    trimmed = sorted(
        p.name
        for p in run_dir.iterdir()
        if p.is_file() and p.stat().st_size > max_bytes and p.name not in NEVER_COMMITTED
    )
    left_out = [*trimmed, *NEVER_COMMITTED]
    shutil.copytree(
        run_dir, dest, ignore=lambda d, names: [n for n in names if n in left_out] if Path(d) == run_dir else []
    )
    return trimmed


def mark(dest: Path, trimmed: list[str]) -> None:
    versions = json.loads((dest / "manifest.json").read_text()).get("versions", {})
    record = {
        "trimmed": trimmed,
        "note": NOTE,
        "made_by": {"ffenergy": versions.get("ffenergy"), "git_commit": versions.get("git_commit")},
    }
    (dest / EXAMPLE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    log.info("%s: marked as a committed example (trimmed: %s)", dest, ", ".join(trimmed) or "nothing")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, nargs="?", help="the finished run (already plotted)")
    ap.add_argument("dest", type=Path, nargs="?", help="results/examples/<name>")
    ap.add_argument("--max-mb", type=float, default=2.0, help="leave out files larger than this (default 2 MB)")
    ap.add_argument("--mark", type=Path, help="mark an example already in place (what is missing was trimmed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.mark:
        present = {p.name for p in args.mark.iterdir()}
        mark(args.mark, [name for name in EXPECTED_FILES if name not in present])
        return 0
    if args.run_dir is None or args.dest is None:
        ap.error("give RUN_DIR and DEST, or --mark DIR")
    mark(args.dest, copy_example(args.run_dir, args.dest, int(args.max_mb * 1e6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
