"""How fast recordings come in: ``integrate_windows`` samples per second on one core, and the time to
import a 10-minute 1 kHz session end to end (read, integrate, compare, write the run directory).

Floors (issue "Real recordings in"): integration >= 2 M samples/s, so a Joulescope JS220's 1 Msps
stream is integrated faster than it arrives; a 10-minute 1 kHz session imported in under 2 s.

    python -m benchmarks.recording_import [--samples 10000000] [--rounds 5]   # from the repository root

The session is synthetic (an EnergyRunner folder written by the test kit: 600,000 samples, 5 windows of
~100 s); the integration runs over a 1 Msps-like stream with a window every 0.5 s (numpy's cumulative sum: one core).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ffenergy.experiment.import_run import import_recording
from ffenergy.meters.trigger_windows import integrate_windows
from tests.recordings.sessions import write_session

log = logging.getLogger("benchmarks.recording_import")


def integration_rate(n: int, rounds: int) -> float:
    rng = np.random.default_rng(0)
    power = 0.02 + 0.001 * rng.standard_normal(n)
    starts = np.arange(100_000, n - 400_000, 500_000)
    edges = np.stack([starts, starts + 250_000], axis=1)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        integrate_windows(power, edges, 1e6)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def import_time(rounds: int) -> float:
    rng = np.random.default_rng(1)
    energy_uj = 30.0 + 5.0 * rng.random(600_000)  # 10 minutes at 1 kHz, µJ per sample
    times_s = [0.02] + [t for k in range(5) for t in (5.0 + 115.0 * k, 105.0 + 115.0 * k)]
    with tempfile.TemporaryDirectory() as tmp:
        session = write_session(Path(tmp) / "session", energy_uj, times_s, inferences=1000)
        durations = []
        for k in range(rounds):
            t0 = time.perf_counter()
            import_recording(session, Path(tmp) / f"out{k}")
            durations.append(time.perf_counter() - t0)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000_000, help="samples in the integration benchmark")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rate = integration_rate(args.samples, args.rounds)
    log.info(
        "integrate_windows: %.3g samples/s on one core (floor 2e6; a JS220 streams 1e6): %.1fx the floor",
        rate,
        rate / 2e6,
    )
    seconds = import_time(args.rounds)
    log.info("import of a 10-minute 1 kHz session: %.2f s (median of %d; floor 2 s)", seconds, args.rounds)


if __name__ == "__main__":
    main()
