"""The whole run on a seconds-long config with the simulated meter, then resume and cache hits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ffenergy.experiment.measure_stage as measure_stage
import ffenergy.experiment.runner as runner_mod
from ffenergy.cli import main
from ffenergy.contract import SAMPLES_COLUMNS, SUMMARY_COLUMNS, WINDOWS_COLUMNS, read_rows
from ffenergy.learners.ff.learner import FFMultiPass
from tests.firmware.fw_helpers import require_qemu

pytestmark = pytest.mark.slow  # whole runs of ffenergy: seconds each

TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("FFENERGY_CACHE", str(root / "cache"))
    assert main(["run", str(TINY), "--out", str(root / "results"), "--no-progress"]) == 0
    (run_dir,) = (root / "results").iterdir()
    yield root, run_dir, mp
    mp.undo()


def _header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def test_result_files_follow_the_contract(first_run):
    _, run_dir, _ = first_run
    assert _header(run_dir / "samples.csv") == SAMPLES_COLUMNS
    assert _header(run_dir / "windows.csv") == WINDOWS_COLUMNS
    assert _header(run_dir / "summary.csv") == SUMMARY_COLUMNS
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"] == {
        "data": "done",
        "model": "done",
        "calibrate": "done",
        "evaluate": "done",
        "measure": "done",
        "hil": "skipped: no MCU target",
        "summary": "done",
    }
    assert manifest["meters"][0]["provenance"] == "simulated"
    assert "joules_per_mac" in json.dumps(manifest["meters"][0]["details"])  # ground truth recorded
    for key in ("config_hash", "versions", "host", "seed", "started", "finished"):
        assert manifest[key] is not None

    samples = read_rows(run_dir / "samples.csv")
    modes = {(r["procedure"], r["mode"]) for r in samples}
    assert modes == {
        (p, m) for p in ("mp", "mp-pruned", "op") for m in ("full", "light", "depth-1", "depth-2", "depth-3")
    }
    assert len(samples) == 15 * 2000  # every test digit of the embedded split, every mode

    summary = {(r["procedure"], r["mode"]): r for r in read_rows(run_dir / "summary.csv")}
    assert float(summary[("mp", "full")]["mac_reduction"]) == 1.0
    assert float(summary[("mp-pruned", "full")]["mac_reduction"]) > 1.0  # relative to unpruned MP
    for proc in ("mp", "mp-pruned", "op"):  # mac_reduction: the paper's (naive) count on both sides
        for mode in ("light", "depth-1", "full"):
            row, full = summary[(proc, mode)], summary[("mp" if proc != "op" else "op", "full")]
            naive = float(row["macs_per_inference_naive"])
            assert float(row["mac_reduction"]) == pytest.approx(float(full["macs_per_inference_naive"]) / naive)
            # factorised MP layer 1 runs fewer MACs than the paper counts; OP runs what it counts
            assert (float(row["macs_per_inference"]) < naive) == (proc != "op")
    for row in summary.values():
        assert row["provenance"] == "simulated" and int(row["n_repeats"]) == 5
        assert float(row["energy_j_per_inference"]) > 0
        expected_co2 = float(row["energy_j_per_inference"]) * 1000 / 3.6e6 * 475  # tiny.yaml's 475 g/kWh
        assert float(row["co2_g_per_1000_inferences"]) == pytest.approx(expected_co2, rel=1e-6)
    fits = json.loads((run_dir / "attribution.json").read_text())["fits"]
    assert {f["procedure"] for f in fits} == {"mp", "mp-pruned", "op"}
    sweep = read_rows(run_dir / "sweep.csv")
    assert {float(r["alpha"]) for r in sweep} >= {0.0, 1.0, 3.0}


def test_second_run_uses_the_cached_model_and_labels_do_not_change_exits(first_run, monkeypatch):
    root, run_dir, _ = first_run

    def no_training(*args, **kwargs):
        raise AssertionError("training ran although the model is cached")

    monkeypatch.setattr(FFMultiPass, "fit", no_training)  # one FF network serves every procedure
    real_load = runner_mod.load_experiment_data

    def permuted_test_labels(*args, **kwargs):
        data = real_load(*args, **kwargs)
        data.y_test = np.random.default_rng(5).permutation(data.y_test)
        return data

    monkeypatch.setattr(runner_mod, "load_experiment_data", permuted_test_labels)
    out = root / "second"
    assert main(["run", str(TINY), "--out", str(out), "--meter", "none", "--no-progress"]) == 0
    (second,) = out.iterdir()
    key = lambda r: (r["procedure"], r["mode"], r["sample"])
    a = {key(r): (r["exit_layer"], r["pred"]) for r in read_rows(run_dir / "samples.csv")}
    b = {key(r): (r["exit_layer"], r["pred"]) for r in read_rows(second / "samples.csv")}
    assert a == b
    assert json.loads((second / "manifest.json").read_text())["model"]["networks"]["ff"]["cache"] == "hit"


def test_resume_completes_only_what_is_missing(first_run, monkeypatch):
    _root, run_dir, _ = first_run
    # simulate a run killed during measurement: drop the last windows and the summary
    windows = (run_dir / "windows.csv").read_text().splitlines(keepends=True)
    kept = windows[: len(windows) // 2]
    (run_dir / "windows.csv").write_text("".join(kept) + kept[-1][:10])  # and a torn last line
    (run_dir / "summary.csv").unlink()
    before = read_rows(run_dir / "windows.csv")
    calls = []
    real_measure = measure_stage.measure

    def counting_measure(meter, workloads, method, done=(), **kwargs):
        calls.append(len(done))
        return real_measure(meter, workloads, method, done=done, **kwargs)

    monkeypatch.setattr(measure_stage, "measure", counting_measure)
    assert main(["run", str(TINY), "--resume", str(run_dir), "--no-progress"]) == 0
    after = read_rows(run_dir / "windows.csv")
    assert after[: len(before)] == before  # nothing measured twice, nothing lost
    assert calls and calls[0] > 0
    work = {
        (r["procedure"], r["mode"], r["repeat"]) for r in after if r["procedure"] != "idle" and r["domain"] == "total"
    }
    assert len(work) == 15 * 5
    keys = [(r["procedure"], r["mode"], r["repeat"], r["domain"]) for r in after]
    assert len(keys) == len(set(keys)), "every window's key stays unique after a resume (idle ones too)"
    assert len(read_rows(run_dir / "summary.csv")) == 15


def test_idle_drift_is_checked_in_every_run(first_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "drifting.yaml"
    config.write_text(TINY.read_text().replace("noise: 0.001}", "noise: 0.001, static_drift_w_per_s: 2.0}"))
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "results").iterdir()
    drift = {float(r["idle_drift_max"]) for r in read_rows(run_dir / "summary.csv")}
    assert len(drift) == 1 and drift.pop() > 0.05
    assert "idle power drifted by more than 5%" in capsys.readouterr().err
    steady = {float(r["idle_drift_max"]) for r in read_rows(first_run[1] / "summary.csv")}
    assert max(steady) < 0.05  # the steady meter of the first run: no warning-sized drift


def test_resume_names_what_differs_and_takes_only_harmless_changes(first_run, tmp_path, capsys):
    _, run_dir, _ = first_run
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("seed: 0", "seed: 1").replace("epochs: 1", "epochs: 2"))
    assert main(["run", str(other), "--resume", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "differs from the one that run used in model.epochs, seed" in err and "--resume" in err
    greener = tmp_path / "greener.yaml"  # another grid intensity cannot change a measured joule
    greener.write_text(TINY.read_text().replace("grid_intensity_g_per_kwh: 475", "grid_intensity_g_per_kwh: 50"))
    windows = read_rows(run_dir / "windows.csv")
    assert main(["run", str(greener), "--resume", str(run_dir), "--no-progress"]) == 0
    assert read_rows(run_dir / "windows.csv") == windows  # nothing measured again
    row = read_rows(run_dir / "summary.csv")[0]
    assert float(row["co2_g_per_1000_inferences"]) == pytest.approx(
        float(row["energy_j_per_inference"]) * 1000 / 3.6e6 * 50, rel=1e-6
    )
    assert json.loads((run_dir / "manifest.json").read_text())["config"]["carbon"]["grid_intensity_g_per_kwh"] == 50


def test_ctrl_c_keeps_finished_windows_and_names_the_run_to_resume(first_run):
    root, _, _ = first_run
    out = root / "interrupted"
    env = dict(os.environ, FFENERGY_CACHE=str(root / "cache"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ffenergy",
            "run",
            str(TINY),
            "--meter",
            "simulated",
            "--out",
            str(out),
            "--no-progress",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some windows are on disk
        runs = list(out.glob("*/windows.csv"))
        if runs and len(read_rows(runs[0])) >= 4:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text
    (run_dir,) = out.iterdir()
    assert f"--resume {run_dir}" in text
    assert json.loads((run_dir / "manifest.json").read_text())["stages"]["measure"] == "interrupted"
    assert len(read_rows(run_dir / "windows.csv")) >= 4
    # the exact command the message prints (after "continue with") completes the run
    command = text.split("continue with")[1].split()
    assert command[:3] == ["ffenergy", "run", "--resume"]
    done = subprocess.run(
        [sys.executable, "-m", "ffenergy", *command[1:], "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert len(read_rows(run_dir / "summary.csv")) == 15


def test_mcu_sim_run_resumes_without_measuring_twice(first_run, tmp_path):
    """The host build of the firmware on a pty, measured by the simulated INA226 logger; a resume
    of a finished run must neither drop the MCU rows nor measure them again."""
    root, _, _ = first_run
    config = tmp_path / "mcu.yaml"
    config.write_text(
        TINY.read_text().replace("targets: [cpu]", "targets: [mcu-sim]")
        + "mcu: {max_samples: 4, repeats: 2, modes: [full, light, depth-1]}\n"
    )
    env_cache = str(root / "cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("FFENERGY_CACHE", env_cache)
    try:
        out = tmp_path / "runs"
        assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
        (run_dir,) = out.iterdir()
        samples, windows = read_rows(run_dir / "samples.csv"), read_rows(run_dir / "windows.csv")
        assert len(samples) == len(windows) == 3 * 4 * 3  # procedures x samples x modes
        assert all(float(r["energy_j"]) > 0 for r in samples)
        manifest = (run_dir / "manifest.json").read_text()
        assert str(run_dir) not in manifest  # the meter's pty in the session folder is relative to the run
        assert '"port": "hil/mcu-sim-' in manifest
        no_faults = {"dut_resets": 0, "meter_restarts": 0}  # recorded by the runner, zero when none were injected
        faults = json.loads(manifest)["targets"]["mcu-sim"]["hil_faults"]
        assert faults == dict.fromkeys(("mp", "mp-pruned", "op"), no_faults)
        assert main(["run", str(config), "--resume", str(run_dir), "--no-progress"]) == 0
        assert read_rows(run_dir / "samples.csv") == samples
        assert read_rows(run_dir / "windows.csv") == windows
    finally:
        mp.undo()


@pytest.mark.qemu
def test_mcu_qemu_run_prices_instructions_and_reports_what_early_exit_saves(first_run, tmp_path):
    """The Cortex-M build in QEMU: samples.csv counts instructions, the manifest names the energy
    model, attribution.json gives light's energy vs MAC reduction, the exit check's cost, and
    per-sample energies that match the simulator's price of the counted instructions."""
    require_qemu()
    root, _, _ = first_run
    config = tmp_path / "qemu.yaml"
    config.write_text(
        TINY.read_text().replace("targets: [cpu]", "targets: [mcu-qemu]")
        + "mcu: {dtype: int8, max_samples: 3, repeats: 2, modes: [full, light, depth-1, depth-2, depth-3]}\n"
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("FFENERGY_CACHE", str(root / "cache"))
    try:
        out = tmp_path / "runs"
        assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    finally:
        mp.undo()
    (run_dir,) = out.iterdir()
    samples = read_rows(run_dir / "samples.csv")
    assert samples and all(float(r["instructions"]) > float(r["macs"]) for r in samples)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["targets"]["mcu-qemu"]["meter"]["energy_model"] == "instructions-qemu-plugin"
    fits = {f["procedure"]: f for f in json.loads((run_dir / "attribution.json").read_text())["fits"]}
    assert set(fits) == {"mp", "mp-pruned", "op"}
    for fit in fits.values():
        assert fit["light_mac_reduction"] >= 1.0 and fit["light_energy_reduction"] > 0
        assert fit["light_energy_vs_mac_reduction"] == pytest.approx(
            fit["light_energy_reduction"] / fit["light_mac_reduction"]
        )
        assert fit["energy_model"] == "instructions-qemu-plugin"
        assert fit["per_sample"]["sample_energy_error"]["max_abs"] < 0.05
        modes = fit["early_exit"]["modes"]
        assert modes["full"]["instructions_per_mac"] > 1 and modes["full"]["pj_per_mac"] > 0
        check = fit["early_exit"]["exit_check"]
        assert check is None or check["instructions_per_check"] > 0


def _mcu_config(tmp_path: Path, max_samples: int) -> Path:
    config = tmp_path / "mcu.yaml"
    config.write_text(
        TINY.read_text().replace("targets: [cpu]", "targets: [mcu-sim]")
        + f"mcu: {{max_samples: {max_samples}, repeats: 2, modes: [full, light, depth-1]}}\n"
    )
    return config


def _keys(rows: list[dict]) -> list[tuple]:
    return sorted(
        (r["target"], r["procedure"], r["mode"], r["sample"], r["pred"], r["exit_layer"], r["macs"]) for r in rows
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_run_stopped_in_the_mcu_stage_leaves_no_process_and_resumes(first_run, tmp_path, sig):
    """The simulated logger and the DUT die with the run, however it is stopped, and the resume completes
    with the rows an uninterrupted run has."""
    from ffenergy.children import stale_children

    root, _, _ = first_run
    config = _mcu_config(tmp_path, max_samples=6)
    env = dict(os.environ, FFENERGY_CACHE=str(root / "cache"))
    command = [sys.executable, "-m", "ffenergy", "run", str(config), "--no-progress", "--out"]
    proc = subprocess.Popen(
        [*command, str(tmp_path / "cut")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # until the MCU stage has measured a few windows
        found = list((tmp_path / "cut").glob("*/windows.csv"))
        if found and len(read_rows(found[0])) >= 3:
            break
        time.sleep(0.1)
    (run_dir,) = (tmp_path / "cut").iterdir()
    assert stale_children(run_dir.resolve()), "the MCU stage should be running its logger and DUT now"
    proc.send_signal(sig)
    text, _ = proc.communicate(timeout=60)
    time.sleep(5)
    assert stale_children(run_dir.resolve()) == [], f"processes of the run outlived it:\n{text}"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and f"--resume {run_dir}" in text
        assert manifest["stages"]["hil"] == "interrupted"
    done = subprocess.run(
        [sys.executable, "-m", "ffenergy", "run", "--resume", str(run_dir), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    whole = subprocess.run([*command, str(tmp_path / "whole")], env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    (whole_dir,) = (tmp_path / "whole").iterdir()
    assert _keys(read_rows(run_dir / "samples.csv")) == _keys(read_rows(whole_dir / "samples.csv"))
    windows = [
        (w["target"], w["procedure"], w["mode"], w["repeat"], w["domain"]) for w in read_rows(run_dir / "windows.csv")
    ]
    assert len(windows) == len(set(windows)) == len(read_rows(whole_dir / "windows.csv"))


def test_two_cold_runs_sharing_one_model_cache_both_finish(tmp_path):
    env = dict(os.environ, FFENERGY_CACHE=str(tmp_path / "fresh-cache"))
    command = [sys.executable, "-m", "ffenergy", "run", str(TINY), "--no-progress", "--meter", "none"]
    procs = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"out{k}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not list((tmp_path / "fresh-cache").rglob("*.tmp"))


def test_reduction_figure_puts_energy_on_the_mac_line_when_the_meter_prices_macs_as_run(first_run):
    """The simulated meter prices the MACs that ran, so every mode's energy reduction equals its as-run MAC
    reduction (within noise): the figure's x axis must be that count, not the paper's."""
    from ffenergy.analysis.load import load_run
    from ffenergy.plot.reduction import mac_basis

    _, run_dir, _ = first_run
    run = load_run(run_dir)
    assert mac_basis(run)[0] == "mac_reduction_as_run" and "as run" in mac_basis(run)[1]
    points = [r for r in run.summary if r.mode != "full" and r.energy_reduction and r.mac_reduction_as_run]
    assert len(points) >= 6
    for r in points:
        assert r.energy_reduction == pytest.approx(r.mac_reduction_as_run, rel=0.05), (r.procedure, r.mode)
    assert any(abs(r.mac_reduction / r.mac_reduction_as_run - 1) > 0.05 for r in points)  # the paper's count is off
