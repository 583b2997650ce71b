"""On a real NVIDIA GPU: NVML meter + measurement method + attribution on an MLP chain.

Skipped without a GPU. Depth-k runs a 784-2000xk ReLU chain on a batch; ``light`` runs the
same chain with compaction (50/30/15/5 % of the batch leave after layers 1..4), so the
predicted light energy sum_k p_k E(k) can be checked against the measured one.
Also runnable as a script (``python tests/meters/test_nvml_hardware.py [out.json]``).
"""

from __future__ import annotations

import json
import sys

import pytest

from ffenergy.analysis.attribution import ModeWindow, attribute
from ffenergy.measure import MethodConfig, Workload, measure
from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.nvml import NvmlMeter

BATCH = 10_000
WIDTHS = (784, 2000, 2000, 2000, 2000)
EXITS = {1: 0.50, 2: 0.30, 3: 0.15, 4: 0.05}


def macs(depth: int) -> int:
    return sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(depth))


def run(out_path: str | None = None) -> dict:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    try:
        meter = NvmlMeter(0)
    except MeterUnavailable as exc:
        pytest.skip(str(exc))
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    ws = [torch.randn(a, b, device=dev, generator=gen) / a**0.5 for a, b in zip(WIDTHS, WIDTHS[1:])]
    x = torch.randn(BATCH, WIDTHS[0], device=dev, generator=gen)
    keep = [BATCH]  # samples still running before layer k+1 in light mode
    for k in (1, 2, 3):
        keep.append(round(keep[-1] - EXITS[k] * BATCH))

    def depth(k: int) -> Workload:
        def run_once() -> tuple[int, int]:
            h = x
            for w in ws[:k]:
                h = torch.relu(h @ w)
            return BATCH, BATCH * macs(k)

        return Workload(run_once, torch.cuda.synchronize)

    def light() -> tuple[int, int]:
        h, total = x, 0
        for w, n in zip(ws, keep):
            h = torch.relu(h[:n] @ w)
            total += n * w.shape[0] * w.shape[1]
        return BATCH, total

    workloads = {f"depth-{k}": depth(k) for k in range(1, 5)}
    workloads["light"] = Workload(light, torch.cuda.synchronize)
    with meter:
        info = meter.info
        windows = measure(meter, workloads, MethodConfig(repeats=5, min_window_s=2.0, warmup_s=1.0))
    domain = "total"
    mode_windows = [
        ModeWindow(w.key or "idle", w.n_inferences, w.duration_s, w.joules[domain], w.net_joules[domain])
        for w in windows
    ]
    att = attribute(
        mode_windows,
        {f"depth-{k}": macs(k) for k in range(1, 5)},
        EXITS,
        target="cuda",
        meter="nvml",
        procedure="chain",
    )
    idle = [w.idle_power_w[domain] for w in windows if w.kind == "idle"]
    result = {
        "meter": {"name": info.name, "details": info.details, "update_period_s": info.update_period_s},
        "idle_power_w": idle,
        "attribution": att.to_json(),
        "windows": [
            {
                "mode": w.key,
                "repeat": w.repeat,
                "n": w.n_inferences,
                "s": w.duration_s,
                "gross_j": w.joules[domain],
                "net_j": w.net_joules[domain],
            }
            for w in windows
        ],
    }
    if out_path:
        with open(out_path, "w") as fh:
            json.dump(result, fh, indent=1)
    print(json.dumps({"idle_power_w": idle, "attribution": att.to_json()}, indent=1))
    return result


@pytest.mark.hardware
def test_nvml_gpu_attribution():
    result = run()
    att = result["attribution"]
    assert "energy counter" in result["meter"]["details"]["method"]
    assert all(20 < p < 1500 for p in result["idle_power_w"])
    assert all(w["s"] >= 2.0 for w in result["windows"])
    e = [att["depth_energy_j"][str(k)] for k in range(1, 5)]
    assert all(a < b for a, b in zip(e, e[1:])) and e[0] > 0
    assert att["r2"] > 0.95
    assert min(result["idle_power_w"]) * 0.8 < att["static_power_w"] < max(result["idle_power_w"]) * 1.2
    assert abs(att["prediction_error"]) < 0.25


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else None)
