"""Inputs that used to slip through: each is one line with its exit code, and nothing is written outside --out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ffenergy.cli import main
from ffenergy.config import load_config
from ffenergy.contract import RunLock

TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


def _run(tmp_path: Path, capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit code and the error lines of ``ffenergy ARGV``; asserts nothing appeared outside tmp_path/out."""
    before = set(tmp_path.parent.iterdir())
    code = main(list(argv))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert set(tmp_path.parent.iterdir()) == before, "something was written next to the test folder"
    assert "Traceback" not in "\n".join(errors)
    return code, errors


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("  min_window_s: 0.1", "  min_window_s: .inf"), "measurement.min_window_s: inf is not a finite number"),
        (("  epochs: 1", "  epochs: 1\n  lr: .inf"), "model.lr: inf is not a finite number"),
        (("  epochs: 1", "  epochs: 1\n  lr: .nan"), "model.lr: nan is not a finite number"),
        (("hidden: [64, 64, 64]", "hidden: [1000000, 1000000]"), "model.hidden: invalid value"),
        (("name: tiny", "name: ../../escape"), "name: invalid value"),
        (("seed: 0", "seed: 0\nseed: 1"), "key 'seed' is given twice"),
        (("  min_window_s: 0.1", "  min_window_s: 100000"), "measurement.min_window_s: invalid value"),
    ],
)
def test_bad_config_values_are_one_line_with_exit_2(tmp_path, capsys, edit, message):
    text = TINY.read_text()
    assert edit[0] in text
    config = _config(tmp_path, text.replace(edit[0], edit[1]))
    code, errors = _run(tmp_path, capsys, "run", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert code == 2 and len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_unreadable_configs_and_run_paths_are_one_line(tmp_path, capsys):
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, errors = _run(tmp_path, capsys, "run", str(binary), "--out", str(tmp_path / "out"))
    assert code == 2 and "not UTF-8" in errors[0]
    code, errors = _run(tmp_path, capsys, "run", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2 and "is a folder" in errors[0]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    code, errors = _run(tmp_path, capsys, "run", "--resume", str(a_file))
    assert code == 2 and "no manifest.json there" in errors[0]
    code, errors = _run(tmp_path, capsys, "export", str(a_file))
    assert code == 1 and "is not a folder" in errors[0]


def test_a_real_board_without_ports_fails_before_any_work_with_exit_5(tmp_path, capsys):
    code, errors = _run(tmp_path, capsys, "run", str(TINY), "--target", "mcu", "--out", str(tmp_path / "out"))
    assert code == 5 and "needs dut_port" in errors[0] and "mcu.options" in errors[0]
    assert not (tmp_path / "out").exists()  # no run directory for a run that cannot start


def test_verbose_after_the_command_is_accepted(tmp_path, capsys):
    config = _config(tmp_path, TINY.read_text().replace("  min_window_s: 0.1", "  min_window_s: .inf"))
    assert main(["run", str(config), "--verbose"]) == 2
    assert main(["meters", "-q"]) == 0


def test_a_second_writer_of_a_run_is_refused_and_a_dead_writers_lock_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load_config(TINY).to_dict()
    (run_dir / "manifest.json").write_text(json.dumps({"config": config, "stages": {}}))
    with RunLock(run_dir):
        code, errors = _run(tmp_path, capsys, "run", "--resume", str(run_dir))
    assert code == 1 and f"{run_dir} is being written by pid {os.getpid()}" in errors[0]
    with RunLock(run_dir) as lock:
        from ffenergy.contract import lock_held

        assert lock_held(run_dir) and lock.previous == ""
    assert not lock_held(run_dir)
    (run_dir / ".lock").write_text("pid 999999 on a host that crashed")  # left by a killed process
    with RunLock(run_dir) as lock:
        assert lock.previous == "pid 999999 on a host that crashed"


def test_two_writers_one_proceeds(tmp_path):
    from ffenergy.contract import RunBusy

    with RunLock(tmp_path), pytest.raises(RunBusy, match=r"being written by pid \d+"):
        with RunLock(tmp_path):
            pass


@pytest.mark.slow
def test_a_full_disk_names_the_file_and_the_resume_command(tmp_path, capsys, monkeypatch):
    import errno

    from ffenergy import contract

    real = contract.CsvAppender.write_many

    def full_disk(self, rows):
        if self.path.name == "windows.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real(self, rows)

    monkeypatch.setattr(contract.CsvAppender, "write_many", full_disk)
    monkeypatch.setenv("FFENERGY_CACHE", str(tmp_path / "cache"))
    code, errors = _run(tmp_path, capsys, "run", str(TINY), "--out", str(tmp_path / "out"), "--no-progress")
    (run_dir,) = (tmp_path / "out").iterdir()
    assert code == 6 and len(errors) == 1
    assert f"{run_dir / 'windows.csv'}: No space left on device" in errors[0]
    assert f"ffenergy run --resume {run_dir}" in errors[0]
