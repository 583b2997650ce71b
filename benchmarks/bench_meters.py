"""Do the bench-meter drivers keep up? The LPM01A at its top rate (100 kHz, bin_hexa) through its emulator on a
pseudo-terminal, and the JS220 at 1 Msps through the emulated device at pyjoulescope_driver's API boundary.

Each stream is synthetic (25 mW +- noise, a 0.25 s window at 60 mW every 0.5 s, EnergyRunner's session format for
the LPM01A emulator) and runs as fast as the driver reads it, while a consumer walks every window as a run does.
Printed per meter: samples/s the driver processed (wall clock), this process's CPU time per second of stream at
the device's own rate as a share of one core (under 100 %: it keeps up; the LPM01A emulator runs in its own
process and is not counted, the emulated JS220 runs in this one and is), lost samples, and the largest
relative difference of a window's gross energy from ``integrate_windows`` on the same samples.

    python -m benchmarks.bench_meters [--seconds 10]     # from the repository root
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffenergy.meters.joulescope import JoulescopeMeter
from ffenergy.meters.lpm01a import Lpm01aMeter
from ffenergy.meters.trigger_windows import integrate_windows
from ffenergy.meters.triggered import TriggeredMeter
from ffenergy.recordings.formats import read_recording
from ffenergy.recordings.recording import Recording
from ffenergy.sim.joulescope import EmulatedJoulescopeDriver
from ffenergy.sim.lpm01a import spawn_emulator
from tests.recordings.sessions import write_session

log = logging.getLogger("benchmarks.bench_meters")
VOLTAGE_MV = 3000


@dataclass
class Result:
    meter: str
    rate_hz: float
    samples: int
    wall_s: float
    cpu_s: float
    lost: int
    max_rel: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s

    @property
    def core_share(self) -> float:
        """CPU seconds per second of stream at the device's rate: the share of one core it needs live."""
        return self.cpu_s / (self.samples / self.rate_hz)

    def line(self) -> str:
        verdict = "keeps up" if self.core_share < 1 else "does NOT keep up"
        return (
            f"{self.meter:>10} at {self.rate_hz / 1e3:g} kS/s: {self.samples_per_s / 1e6:.2f} M samples/s processed,"
            f" {100 * self.core_share:.0f} % of one core at the device's rate ({verdict}); lost samples {self.lost};"
            f" max window difference {self.max_rel:.1e}"
        )


def session(folder: Path, rate_hz: int, seconds: float) -> Path:
    """An EnergyRunner-format session: power in µJ per sample, a window every 0.5 s (an opening edge first)."""
    n = round(seconds * rate_hz)
    rng = np.random.default_rng(1)
    power_w = 0.025 + 0.001 * rng.standard_normal(n)
    times = [0.1] + [t for k in range(int(seconds * 2) - 1) for t in (0.25 + 0.5 * k, 0.5 + 0.5 * k)]
    for a, b in zip(times[1::2], times[2::2]):
        power_w[round(a * rate_hz) : round(b * rate_hz)] += 0.035
    return write_session(folder, power_w / rate_hz * 1e6, times, rate_hz=rate_hz, voltage_mv=VOLTAGE_MV)


def walk(meter: TriggeredMeter, n_windows: int) -> list[float]:
    """Every window's gross energy, in order, as a run collects them."""
    out = []
    token = meter.token_at(0)
    for _ in range(n_windows):
        w = meter.next_window(token, timeout_s=60)
        out.append(w.gross_j)
        token = meter.token_at(w.end_index)
    return out


def max_rel(rec: Recording, gross: list[float]) -> float:
    ref = integrate_windows(rec.samples, rec.edges, rec.sample_rate_hz, quantity=rec.quantity)
    return float(np.max(np.abs(np.asarray(gross) / ref.gross_j - 1)))


def bench_lpm01a(seconds: float, tmp: Path) -> Result:
    rate = 100_000
    path = session(tmp / "lpm01a-session", rate, seconds)
    rec = read_recording(path)
    with spawn_emulator(path, tmp / "lpm01a") as emu:
        with Lpm01aMeter(
            str(emu.port), voltage_mv=VOLTAGE_MV, sample_rate_hz=rate, data_format="bin_hexa", opening_events=1
        ) as meter:
            w0, c0 = time.perf_counter(), time.process_time()
            gross = walk(meter, rec.n_windows)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            samples, lost = meter.stats.samples, meter.stats.lost_samples
    return Result("lpm01a", rate, samples, wall, cpu, lost, max_rel(rec, gross))


def bench_joulescope(seconds: float, tmp: Path) -> Result:
    rate = 1_000_000
    rec = read_recording(session(tmp / "js220-session", rate, seconds))
    emulated = EmulatedJoulescopeDriver(rec)
    w0, c0 = time.perf_counter(), time.process_time()
    with JoulescopeMeter(sample_rate_hz=rate, driver_factory=lambda: emulated, history_s=4.0) as meter:
        gross = walk(meter, rec.n_windows)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        samples, lost = meter.stats.samples, meter.stats.dropped_samples
    return Result("joulescope", rate, samples, wall, cpu, lost, max_rel(rec, gross))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each stream at the device's rate")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        for bench in (bench_lpm01a, bench_joulescope):
            log.info(bench(args.seconds, Path(tmp)).line())


if __name__ == "__main__":
    main()
