"""Writes realistic synthetic result directories (the DESIGN.md section 5 contract) for the plot tests
and benchmarks: a host CPU target with a measured RAPL meter and, optionally, a simulated MCU with an
INA226 logger (per-sample energies and a current trace)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ffenergy.contract import (
    SAMPLES_COLUMNS,
    SUMMARY_COLUMNS,
    WINDOWS_COLUMNS,
    CsvAppender,
    write_json,
)

C = 10
PROCEDURES = ("mp", "mp-pruned", "op")
EXIT_P = {"mp": [0.74, 0.13, 0.08, 0.05], "mp-pruned": [0.74, 0.13, 0.08, 0.05], "op": [0.86, 0.07, 0.04, 0.03]}
LAYER_ACC = {
    "mp": [0.962, 0.968, 0.970, 0.9699],
    "mp-pruned": [0.962, 0.967, 0.969, 0.969],
    "op": [0.972, 0.975, 0.976, 0.9766],
}


def layer_macs(procedure: str, dims: list[int]) -> np.ndarray:
    """MACs of exiting at depth k (k = 1..L), DESIGN.md section 2."""
    layers = np.array([dims[i] * dims[i + 1] for i in range(len(dims) - 1)], dtype=float)
    if procedure == "mp":
        return C * np.cumsum(layers)
    if procedure == "mp-pruned":
        return C * layers[0] + np.concatenate([[0.0], 2 * np.cumsum(layers[1:])])
    heads = C * np.cumsum(np.cumsum(dims[1:]))
    return np.cumsum(layers) + heads


def _targets(mcu: bool, energy: bool) -> list[dict]:
    out = [
        {
            "name": "host-cpu",
            "meter": "rapl" if energy else "none",
            "provenance": "measured" if energy else "",
            "dims": [784, 1000, 1000, 1000, 1000],
            "jpm": 2.1e-10,
            "static_j": 4.0e-4,
            "per_sample": False,
        }
    ]
    if mcu:
        out.append(
            {
                "name": "mcu-sim",
                "meter": "ina226-sim",
                "provenance": "simulated",
                "dims": [196, 64, 64, 64, 64],
                "jpm": 4.2e-9,
                "static_j": 1.5e-4,
                "per_sample": True,
            }
        )
    return out


def write_synthetic_run(
    root: Path, run_id: str, *, n_samples: int = 1000, mcu: bool = True, energy: bool = True, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    run = Path(root) / run_id
    run.mkdir(parents=True)
    targets = _targets(mcu, energy)
    meters = [
        {
            "name": t["meter"],
            "provenance": t["provenance"],
            "update_period_s": 0.001,
            "details": {"ground_truth": {"joules_per_mac": t["jpm"]}} if t["per_sample"] else {},
        }
        for t in targets
        if t["provenance"]
    ]
    write_json(
        run / "manifest.json",
        {
            "run_id": run_id,
            "config_hash": "3f2a9c",
            "seed": seed,
            "config": {"name": "mnist-lightff", "data": {"dataset": "mnist"}},
            "meters": meters,
            "host": {"cpu": "Intel(R) Xeon(R) Gold 6338", "cores": 2, "gpu": None, "driver": None},
            "versions": {"ffenergy": "0.1.0", "python": "3.11.2", "torch": "2.13.0", "git": "171a4ad"},
            "started": "2026-11-28T06:00:00Z",
            "ended": "2026-11-28T06:20:00Z",
            "stages": {"train": "done", "calibrate": "done", "measure": "done", "attribute": "done"},
        },
    )
    summary, windows, samples, fits, sweep = [], [], [], [], []
    for t in targets:
        for proc in PROCEDURES:
            macs_k = layer_macs(proc, t["dims"])
            modes = {"full": np.full(4, 0.0), "light": np.array(EXIT_P[proc])}
            for k in range(4):
                modes[f"depth-{k + 1}"] = np.eye(4)[k]
            modes["full"] = np.eye(4)[3]
            mode_energy = {}
            for mode, p in modes.items():
                exits = rng.choice(4, size=n_samples, p=p) + 1
                acc = (
                    np.array(LAYER_ACC[proc])[exits - 1]
                    if mode == "light"
                    else np.full(n_samples, LAYER_ACC[proc][exits[0] - 1])
                )
                correct = rng.random(n_samples) < acc
                macs = macs_k[exits - 1]
                e_true = t["jpm"] * macs + t["static_j"]
                e_sample = e_true * (1 + 0.03 * rng.standard_normal(n_samples)) if t["per_sample"] else None
                for i in range(n_samples):
                    samples.append(
                        {
                            "target": t["name"],
                            "procedure": proc,
                            "mode": mode,
                            "sample": i,
                            "label": i % C,
                            "pred": i % C if correct[i] else (i + 1) % C,
                            "exit_layer": int(exits[i]),
                            "macs": int(macs[i]),
                            "correct": bool(correct[i]),
                            "energy_j": None if e_sample is None else float(e_sample[i]),
                        }
                    )
                e_mean = float(e_true.mean())
                reps = e_mean * (1 + 0.02 * rng.standard_normal(5))
                for r, e in enumerate(reps):
                    n_inf = 2000
                    if t["provenance"]:
                        windows.append(
                            {
                                "target": t["name"],
                                "meter": t["meter"],
                                "domain": "package-0",
                                "procedure": proc,
                                "mode": mode,
                                "repeat": r,
                                "n_inferences": n_inf,
                                "duration_s": 2.5,
                                "energy_j": e * n_inf + 3.0 * 2.5,
                                "idle_power_w": 3.0,
                                "net_energy_j": e * n_inf,
                            }
                        )
                mode_energy[mode] = (float(reps.mean()), float(1.96 * reps.std(ddof=1) / np.sqrt(5)))
                summary.append(
                    {
                        "dataset": "mnist",
                        "target": t["name"],
                        "meter": t["meter"],
                        "provenance": t["provenance"],
                        "procedure": proc,
                        "mode": mode,
                        "accuracy": float(correct.mean()),
                        "macro_f1": float(correct.mean()) - 0.002,
                        "mean_layers": float(exits.mean()),
                        "macs_per_inference": float(macs.mean()),
                        "mac_reduction": float(macs_k[-1] / macs.mean()),
                        "energy_j_per_inference": mode_energy[mode][0] if t["provenance"] else None,
                        "energy_ci95_j": mode_energy[mode][1] if t["provenance"] else None,
                        "energy_reduction": None,
                        "n_samples": n_samples,
                        "n_repeats": 5,
                    }
                )
            full_e = mode_energy["full"][0]
            for row in summary[-len(modes) :]:
                if t["provenance"]:
                    row["energy_reduction"] = full_e / row["energy_j_per_inference"]
            if t["provenance"]:
                xs = np.array(macs_k)
                ys = np.array([mode_energy[f"depth-{k}"][0] for k in range(1, 5)])
                slope, icpt = np.polyfit(xs, ys, 1)
                r2 = 1 - np.sum((ys - (slope * xs + icpt)) ** 2) / np.sum((ys - ys.mean()) ** 2)
                pred = float(np.dot(EXIT_P[proc], ys))
                fits.append(
                    {
                        "target": t["name"],
                        "meter": t["meter"],
                        "procedure": proc,
                        "joules_per_mac": float(slope),
                        "static_power_w": 0.9,
                        "intercept_j_per_inference": float(icpt),
                        "r2": float(r2),
                        "n_points": 4,
                        "predicted_light_j": pred,
                        "measured_light_j": mode_energy["light"][0],
                        "prediction_error": mode_energy["light"][0] / pred - 1,
                    }
                )
            for stat in ("max", "gap") if proc != "op" else ("max",):
                for alpha in np.arange(0.0, 3.01, 0.25):
                    p1 = 0.35 + 0.6 * (1 - np.exp(-alpha / (0.9 if stat == "max" else 1.2)))
                    rest = np.array(EXIT_P[proc][1:]) / sum(EXIT_P[proc][1:]) * (1 - p1)
                    p = np.concatenate([[p1], rest])
                    acc = float(np.dot(p, LAYER_ACC[proc]) - 0.004 * alpha**1.5 * (1.2 if stat == "max" else 0.8))
                    macs = float(np.dot(p, macs_k))
                    sweep.append(
                        {
                            "target": t["name"],
                            "procedure": proc,
                            "statistic": stat,
                            "alpha": float(alpha),
                            "accuracy": acc,
                            "macro_f1": acc - 0.002,
                            "mean_layers": float(np.dot(p, [1, 2, 3, 4])),
                            "macs_per_inference": macs,
                            "mac_reduction": float(macs_k[-1] / macs),
                            "exit_fractions": ";".join(f"{v:.4f}" for v in p),
                            "energy_j_per_inference": None,  # as the runner writes it: plots predict it
                        }
                    )
    with CsvAppender(run / "samples.csv", SAMPLES_COLUMNS) as w:
        w.write_many(samples)
    with CsvAppender(run / "windows.csv", WINDOWS_COLUMNS) as w:
        w.write_many(windows)
    with CsvAppender(run / "summary.csv", SUMMARY_COLUMNS) as w:
        w.write_many(summary)
    if energy:
        write_json(run / "attribution.json", {"fits": fits})
    _write_csv(run / "sweep.csv", sweep)
    if mcu:
        _write_trace(run / "trace.csv", rng)
    return run


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if v is None else v for k, v in row.items()})


def _write_trace(path: Path, rng: np.random.Generator, rate_hz: float = 1000.0, duration_s: float = 12.0) -> None:
    t = np.arange(0, duration_s, 1 / rate_hz)
    phase = (t - 0.5) % 1.1
    trigger = (t > 0.5) & (phase < 0.45)
    current = np.where(trigger, 0.0265, 0.0061) + 0.0006 * rng.standard_normal(t.size)
    voltage = 3.3 - 0.02 * trigger + 0.002 * rng.standard_normal(t.size)
    with open(path, "w") as fh:
        fh.write("t_s,current_a,voltage_v,trigger\n")
        for row in zip(t, current, voltage, trigger.astype(int)):
            fh.write("{:.4f},{:.6g},{:.5g},{:d}\n".format(*row))
