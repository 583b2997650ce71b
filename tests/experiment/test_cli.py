"""The command line: light commands stay light, choices come from the registries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ffenergy.cli import build_parser
from ffenergy.learners import LEARNERS
from ffenergy.meters.registry import METERS


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["meters"], ["targets"]])
def test_help_meters_and_targets_import_neither_torch_nor_matplotlib(argv):
    code = (
        "import sys\nfrom ffenergy.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_choices_are_the_registries(capsys):
    LEARNERS.register("toy-cli", "tests.nowhere:Toy", "a registered name the CLI must offer")
    METERS.register("toy-meter", "tests.nowhere:Meter", "a host meter", provenance="measured", host=True)
    try:
        args = build_parser().parse_args(["export", "run-dir", "--procedure", "toy-cli"])
        assert args.procedure == "toy-cli"
        assert build_parser().parse_args(["run", "x.yaml", "--meter", "toy-meter"]).meter == "toy-meter"
    finally:
        LEARNERS.unregister("toy-cli")
        METERS.unregister("toy-meter")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "run-dir", "--procedure", "toy-cli"])
    assert "invalid choice: 'toy-cli'" in capsys.readouterr().err


def test_summary_table_says_when_light_is_depth_1():
    from ffenergy.experiment.table import format_summary

    def row(procedure: str, mode: str, layers: float) -> dict:
        return {
            "target": "cpu",
            "meter": "none",
            "provenance": "",
            "procedure": procedure,
            "mode": mode,
            "accuracy": 0.9,
            "macro_f1": 0.9,
            "mean_layers": layers,
            "macs_per_inference": 1e6,
            "mac_reduction": 1.0,
            "energy_j_per_inference": None,
            "energy_ci95_j": None,
            "energy_reduction": None,
        }

    table = format_summary([row("mp", "full", 3), row("mp", "light", 1.0), row("op", "light", 1.2)])
    assert "note: mp light on cpu = depth-1" in table and "op light" not in table


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    from ffenergy.experiment.run_dir import new_run_dir

    dirs = [new_run_dir(tmp_path, "tiny") for _ in range(3)]
    assert len({d.name for d in dirs}) == 3 and all(d.is_dir() and d.name.startswith("tiny-") for d in dirs)


def test_an_expected_failure_is_one_line_with_its_own_exit_code(tmp_path, capsys):
    from ffenergy.cli import main

    config = tmp_path / "missing-data.yaml"
    config.write_text("data: {dataset: mnist, source: local, path: no-such-dir}\nmeter: none\n")
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert "data: " in err and "no-such-dir" in err and "Traceback" not in err
    assert main(["-v", "run", str(config), "--out", str(tmp_path / "results"), "--no-progress"]) == 3
    assert "Traceback" in capsys.readouterr().err  # --verbose shows where it came from


def test_an_unwritable_results_path_is_one_line_with_the_file_exit_code(tmp_path, capsys):
    from ffenergy.cli import main

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the results folder should go")
    config = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"
    assert main(["run", str(config), "--out", str(blocker / "results"), "--meter", "none", "--no-progress"]) == 6
    err = capsys.readouterr().err
    assert "file: " in err and "not-a-dir" in err and "Traceback" not in err


def test_a_run_that_measured_no_energy_says_so_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    from ffenergy.cli import main

    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    config = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--meter", "none", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no energy was measured: the config's meter is none" in out and "--meter simulated" in out


def test_targets_say_what_a_real_board_needs():
    from ffenergy.targets.registry import target_status

    usable, reason = target_status("mcu")
    assert not usable and "mcu.options.dut_port" in reason and "meter_port" in reason


def test_a_run_on_a_rebuilt_dataset_copy_ends_with_its_caveat(tmp_path, monkeypatch, capsys):
    import dataclasses

    from ffenergy.cli import main
    from ffenergy.experiment import runner

    loaded = runner.load_experiment_data
    monkeypatch.setattr(runner, "load_experiment_data", lambda cfg: dataclasses.replace(loaded(cfg), caveat="rebuilt"))
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    config = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"
    assert main(["run", str(config), "--out", str(tmp_path / "results"), "--meter", "none", "--no-progress"]) == 0
    assert "\ndata caveat: rebuilt\n" in capsys.readouterr().out
