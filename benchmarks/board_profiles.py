"""Board profiles of the simulated MCU meter against real recordings of the same boards.

For each profile with recordings (``sim.profiles``: Nucleo-L4R5ZI, Nucleo-U575ZI-Q): run the int8
MNIST network of experiments/mnist-mcu.yaml on ``mcu-qemu`` priced with that profile, take the mean
power in its inference windows (gross energy ÷ duration over every window), and put it beside the
mean power in the inference windows of the real MLPerf Tiny sessions of that board (LPM01A, in
``shared/data/energyrunner``). The ratio measured ÷ simulated is the calibration scale
(``sim.profiles.calibration_scale``); a profile more than 25 % off needs it.

    python -m benchmarks.board_profiles [--sessions DIR] [--max-samples 20] [--out DIR]   # from the repository root

The workloads differ (an FF MLP here, MLPerf's CNNs and autoencoder there): what is compared is the
board's power while inferring, which the int8 kernels of both hold near the run-mode level.
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
from pathlib import Path

import numpy as np
import yaml

from ffenergy.config import load_config
from ffenergy.experiment.runner import RunOptions, run_experiment
from ffenergy.meters.trigger_windows import integrate_windows
from ffenergy.recordings.formats import read_recording
from ffenergy.sim.profiles import PROFILES, calibration_scale
from tests.data.conftest import shared_data_dir

log = logging.getLogger("benchmarks.board_profiles")
CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "mnist-mcu.yaml"
TOLERANCE = 0.25


def measured_window_power(sessions: list[Path]) -> tuple[float, float, float]:
    """Mean, min and max over sessions of the mean power in their inference windows (W)."""
    powers = []
    for session in sessions:
        rec = read_recording(session)
        w = integrate_windows(rec.samples, rec.edges, rec.sample_rate_hz, quantity=rec.quantity)
        powers.append(float(w.gross_j.sum() / w.duration_s.sum()))
    return float(np.mean(powers)), min(powers), max(powers)


def simulated_window_power(profile: str, max_samples: int, out: Path) -> float:
    """Mean power in the inference windows of the int8 MNIST network on mcu-qemu priced by ``profile``."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["name"] = f"mnist-mcu-{profile}"
    raw["mcu"]["max_samples"] = max_samples
    raw["mcu"].setdefault("options", {})["sim"] = {"profile": profile}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(raw, fh)
    run_dir, _ = run_experiment(load_config(fh.name), RunOptions(out_root=out, progress=False))
    rows = [r for r in csv.DictReader(open(run_dir / "windows.csv")) if int(r["n_inferences"]) > 0]
    return sum(float(r["energy_j"]) for r in rows) / sum(float(r["duration_s"]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=Path, default=shared_data_dir() / "energyrunner")
    parser.add_argument("--max-samples", type=int, default=20, help="test samples the MCU run infers")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ffenergy-board-profiles")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(
        "| profile | datasheet anchor | simulated mW | measured mW (sessions: mean, range) | measured ÷ simulated | verdict |"
    )
    print("|---|---|---|---|---|---|")
    for name, prof in PROFILES.items():
        key = name.replace("nucleo-", "nucleo-")
        sessions = sorted(p for p in args.sessions.glob(f"v1.2-*-{key}-*") if p.is_dir())
        if not sessions:
            continue
        mean, lo, hi = measured_window_power(sessions)
        simulated = simulated_window_power(name, args.max_samples, args.out)
        scale = calibration_scale(mean, simulated)
        inside = lo / (1 + TOLERANCE) <= simulated <= hi * (1 + TOLERANCE)
        verdict = "within 25 %" if inside else f"off: calibrate (sim.scale: {scale:.3g})"
        print(
            f"| {name} | {prof.run_ua_per_mhz:.3g} µA/MHz at {prof.supply_v} V, {prof.f_clk_hz / 1e6:.0f} MHz |"
            f" {simulated * 1e3:.1f} | {mean * 1e3:.1f} ({lo * 1e3:.1f}–{hi * 1e3:.1f}, {len(sessions)} sessions) |"
            f" {scale:.3f} | {verdict} |"
        )


if __name__ == "__main__":
    main()
