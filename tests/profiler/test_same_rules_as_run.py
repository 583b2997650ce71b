"""``ffenergy run`` and the measurement API size, repeat and bracket windows by the same rules and
agree on the energy of one workload: the runner's own (op, full) batch, measured both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import ffenergy.experiment.measure_stage as measure_stage
from ffenergy.cli import main
from ffenergy.config import load_config
from ffenergy.contract import read_rows
from ffenergy.profiler import profile

pytestmark = pytest.mark.slow  # one tiny ffenergy run

TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"
SIMULATED = {"joules_per_mac": 2e-9, "static_power_w": 0.05, "update_period_s": 0.01, "noise": 0.0}


def test_profile_and_ffenergy_run_measure_one_workload_alike(tmp_path, monkeypatch):
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    config = yaml.safe_load(TINY.read_text())
    config["model"] = {"hidden": [32, 16], "epochs": 1}
    config["inference"]["procedures"] = ["op"]
    config["meter_options"] = {"simulated": SIMULATED}  # 20 updates of 10 ms: windows >= 0.2 s, not min_window_s
    path = tmp_path / "tiny-op.yaml"
    path.write_text(yaml.safe_dump(config))
    seen = {}
    original = measure_stage.measure

    def spy(meter, workloads, method, **kwargs):
        seen.update(method=method, workload=workloads[("op", "full")])
        return original(meter, workloads, method, **kwargs)

    monkeypatch.setattr(measure_stage, "measure", spy)
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "results").iterdir()
    method = load_config(path).measurement.method()
    assert seen["method"] == method

    workload = seen["workload"]
    n, macs = workload.run_once()
    found = profile(
        workload.run_once,
        "op",
        inferences=n,
        macs=macs,
        meter="simulated",
        meter_options=SIMULATED,
        method=method,
        out=tmp_path / "api",
    )
    summary = next(r for r in read_rows(run_dir / "summary.csv") if r["mode"] == "full")
    assert found.net_j_per_inference == pytest.approx(float(summary["energy_j_per_inference"]), rel=0.01)
    assert found.net_j_per_inference == pytest.approx(2e-9 * float(summary["macs_per_inference"]), rel=0.01)

    for rows in (read_rows(run_dir / "windows.csv"), read_rows(tmp_path / "api" / "windows.csv")):
        total = [r for r in rows if r["domain"] == "total"]
        work = [r for r in total if (r["procedure"], r["mode"]) == ("op", "full")]
        idle = [r for r in total if r["procedure"] == "idle"]
        assert len(work) == 5 and len(idle) == 5 + 1
        assert all(float(r["duration_s"]) >= 0.2 for r in work)  # >= 20 counter updates
        assert [r["repeat"] for r in idle] == [str(i) for i in range(6)]
        assert all(float(r["duration_s"]) > 0.15 for r in idle)  # matched to the work windows, not min_window_s
