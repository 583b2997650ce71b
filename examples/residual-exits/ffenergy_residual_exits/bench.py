"""A stand-in for a bench's power logger, so the tutorial runs without hardware.

``python -m ffenergy_residual_exits.bench LOG`` appends ``t_s,power_w`` rows to LOG at ``--rate-hz``
until stopped. The power is modelled, not measured: ``idle_w`` plus ``busy_w`` times the share of
this host's CPU time that was busy since the previous row (from /proc/stat). A real bench writes
the same file from its meter.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="the CSV file to append to (created with its header)")
    parser.add_argument("--rate-hz", type=float, default=100.0)
    parser.add_argument("--idle-w", type=float, default=5.0)
    parser.add_argument("--busy-w", type=float, default=30.0)
    args = parser.parse_args(argv)
    with open(args.log, "a", buffering=1) as out:  # line-buffered: every row reaches the file at once
        if out.tell() == 0:
            out.write("t_s,power_w\n")
        busy0, total0 = cpu_times()
        while True:
            time.sleep(1.0 / args.rate_hz)
            busy, total = cpu_times()
            share = (busy - busy0) / (total - total0) if total > total0 else 0.0
            busy0, total0 = busy, total
            out.write(f"{time.time():.6f},{args.idle_w + args.busy_w * share:.4f}\n")


if __name__ == "__main__":
    main()
