"""Risk and budget exit policies through ``ffenergy run``: calibration.json records them, and a
calibration set too small to certify anything gives light = full with a message, not an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ffenergy.analysis.load import load_run
from ffenergy.cli import main
from ffenergy.contract import read_rows

pytestmark = pytest.mark.slow  # whole runs of ffenergy: seconds each

TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


def _run(tmp_path: Path, policy: dict, name: str) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(name=name, meter="none")
    cfg["inference"] = {**cfg["inference"], "procedures": ["mp", "op"], "policy": policy}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "results").glob(f"{name}-*")
    return run_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("policy")
    mp.setenv("FFENERGY_CACHE", str(root / "cache"))
    yield root
    mp.undo()


def test_too_small_to_certify_runs_with_no_early_exit(cache, capsys):
    # 1,400 validation samples, 10% certify: 140 < the 460 that zero losses need at eps 0.005, delta 0.1
    run_dir = _run(cache, {"kind": "risk", "epsilon": 0.005, "delta": 0.1, "fit_fraction": 0.9}, "small")
    calib = json.loads((run_dir / "calibration.json").read_text())
    for proc in ("mp", "op"):
        policy = calib[proc]["policy"]
        assert policy["chosen_index"] == 0 and policy["n_certify"] == 140
        assert "no early exit" in policy["message"] and "460" in policy["message"]
        assert all(t is None for t in calib[proc]["thresholds"])
    assert "warning: op: no early exit" in capsys.readouterr().err
    rows = read_rows(run_dir / "samples.csv")
    light = {(r["procedure"], r["sample"]): r for r in rows if r["mode"] == "light"}
    full = {(r["procedure"], r["sample"]): r for r in rows if r["mode"] == "full"}
    assert light.keys() == full.keys()
    assert all(light[k]["pred"] == full[k]["pred"] and light[k]["exit_layer"] == "3" for k in light)


def test_risk_and_budget_policies_are_recorded(cache):
    run_dir = _run(cache, {"kind": "risk", "epsilon": 0.05, "delta": 0.1}, "risk")
    calib = json.loads((run_dir / "calibration.json").read_text())["op"]
    policy = calib["policy"]
    assert policy["kind"] == "risk" and policy["n_certify"] + policy["n_fit"] == 1400
    assert policy["chosen_index"] > 0 and policy["message"] is None
    assert all(p <= 0.1 for p in policy["p_values"][: policy["chosen_index"]])
    assert 0 <= calib["test"]["disagreement"] <= 1 and calib["test"]["mac_reduction"] >= 1
    assert load_run(run_dir).policies["op"] == "risk disagreement ≤ 0.05 w.p. ≥ 0.9"  # the figure's light label

    budget = 0.5 * json.loads((run_dir / "calibration.json").read_text())["op"]["test"]["macs_per_inference"]
    run_dir = _run(cache, {"kind": "budget", "macs_per_inference": budget}, "budget")
    calib = json.loads((run_dir / "calibration.json").read_text())["op"]
    assert calib["policy"]["kind"] == "budget"
    if calib["policy"]["met"]:
        assert calib["policy"]["validation_macs_per_inference"] <= budget
    summary = [r for r in read_rows(run_dir / "summary.csv") if (r["procedure"], r["mode"]) == ("op", "light")]
    assert load_run(run_dir).policies["op"].startswith("budget ")
    assert float(summary[0]["macs_per_inference"]) == pytest.approx(calib["test"]["macs_per_inference"])
