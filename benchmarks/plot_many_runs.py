"""Time `ffenergy plot` on a folder of 20 synthetic runs (target: <= 30 s on 2 cores).

Each run has a measured host CPU target and a simulated MCU target with per-sample energies and a
12 s current trace, three procedures, the full mode set and an alpha sweep; the comparison folder
is written too. Generating the runs is not timed.

    .venv/bin/python benchmarks/plot_many_runs.py [--runs 20] [--samples 1000] [--jobs N]

CPU time includes the worker processes; on a shared machine wall time also measures the neighbours.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: its tests package

from ffenergy.plot.command import default_jobs, plot_command
from tests.plot.plot_synthetic import write_synthetic_run

BUDGET_S = 30.0


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children (the plot workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000, help="test samples per (target, procedure, mode)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: ffenergy plot's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.runs):
            write_synthetic_run(root, f"run-{i:02d}", n_samples=args.samples, seed=i)
        start, cpu_start = time.perf_counter(), _cpu_s()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            code = plot_command([root], "png", args.jobs)
        elapsed, cpu = time.perf_counter() - start, _cpu_s() - cpu_start
        n_figures = len(list(root.rglob("*.png")))
    jobs = args.jobs or default_jobs()
    print(
        f"jobs={jobs}: plotted {args.runs} runs ({n_figures} figures, {args.samples} samples per mode) in {elapsed:.1f} s "
        f"(CPU time {cpu:.1f} s, workers included; {elapsed / args.runs:.2f} s/run; budget {BUDGET_S:.0f} s for 20 runs) exit code {code}"
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
