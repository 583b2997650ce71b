"""Overhead of the RAPL wrap poller on a CPU-bound workload (target: <= 1% of window time).

Runs the same pure-Python loop (it holds the GIL, the worst case for a Python poller thread)
without and with a polling RaplMeter open, alternating, and prints the time ratio per poll
period. Uses /sys/class/powercap when readable, else a powercap tree written to a temp dir
(same file reads). The minimum over rounds is compared (robust to other load on the machine);
the direct cost of one poll is printed too. Usage:
python benchmarks/meter_overhead.py [--seconds 0.3] [--rounds 15]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ffenergy.meters.base import MeterError
from ffenergy.meters.rapl import DEFAULT_ROOT, RaplMeter


def cpu_loop(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def timed(n: int) -> tuple[float, float, float]:
    """Wall time, this thread's CPU time, and the whole process's CPU time of one loop."""
    w0, t0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    cpu_loop(n)
    return time.perf_counter() - w0, time.thread_time() - t0, time.process_time() - p0


def poll_cost(meter: RaplMeter, n: int = 2000) -> float:
    """Seconds one poll of every counter takes, measured directly."""
    t0 = time.perf_counter()
    for _ in range(n):
        meter.poll()
    return (time.perf_counter() - t0) / n


def fake_tree(root: Path) -> Path:
    for i, name in enumerate(("package-0", "package-1")):
        z = root / f"intel-rapl:{i}"
        z.mkdir()
        (z / "name").write_text(f"{name}\n")
        (z / "energy_uj").write_text(f"{1000 + i}000000\n")
        (z / "max_energy_range_uj").write_text("262143328850\n")
        d = z / f"intel-rapl:{i}:0"
        d.mkdir()
        (d / "name").write_text("dram\n")
        (d / "energy_uj").write_text("5000000\n")
        (d / "max_energy_range_uj").write_text("65712999613\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.3, help="length of one timed loop")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    n = 100_000
    while timed(n)[1] < args.seconds / 4:
        n *= 2
    n = int(n * args.seconds / timed(n)[1])

    with tempfile.TemporaryDirectory() as tmp:
        root = DEFAULT_ROOT
        try:
            RaplMeter(root).close()
        except MeterError:
            root = fake_tree(Path(tmp))
        print(f"powercap root: {root}; loop of ~{args.seconds:g} s CPU, {args.rounds} rounds alternating without/with")
        print("poller CPU = process CPU - loop thread CPU while the meter is open, as a share of window wall time;")
        print("loop ratio = min loop thread CPU with / without (the workload's own slowdown)\n")
        print(f"{'poll period':>14} {'poller CPU':>11} {'loop ratio':>11} {'wall ratio':>11} {'one poll':>9}")
        for period in (None, 0.1, 0.01, 0.001):
            without, with_poller = [], []
            meter = RaplMeter(root, poll_period_s=period)
            try:
                for _ in range(args.rounds):
                    without.append(timed(n))
                    token = meter.start()
                    with_poller.append(timed(n))
                    meter.stop(token)
                poll_s = poll_cost(meter)
            finally:
                meter.close()
            poller_cpu = sum(p - t for _, t, p in with_poller) / sum(w for w, _, _ in with_poller)
            loop_ratio = min(t for _, t, _ in with_poller) / min(t for _, t, _ in without)
            wall_ratio = min(w for w, _, _ in with_poller) / min(w for w, _, _ in without)
            label = f"{meter.poll_period_s:g} s" + (" (default)" if period is None else "")
            verdict = "ok" if poller_cpu <= 0.01 else "OVER 1%"
            print(
                f"{label:>14} {100 * poller_cpu:>10.3f}% {loop_ratio:>11.4f} {wall_ratio:>11.4f} "
                f"{poll_s * 1e6:>6.0f} us  {verdict}"
            )


if __name__ == "__main__":
    main()
