"""Bad recordings: one clear line naming the file and the fault, exit code 3 or 6, and no half-written run."""

from __future__ import annotations

import numpy as np
import pytest

from ffenergy.cli import main
from ffenergy.experiment.import_run import import_recording
from tests.recordings.sessions import write_session

TIMES = [0.01, 0.2, 0.7, 0.9, 1.4]  # an opening edge, then two windows of 500 samples at 1 kHz
FLAT = np.full(2000, 40.0)  # 40 µJ per 1 ms sample: 40 mW


def _run_import(tmp_path, path, capsys, *extra: str) -> tuple[int, list[str], str]:
    """Exit code, the run directories left, and the error lines of ``ffenergy import PATH``."""
    out = tmp_path / "out"
    code = main(["import", str(path), "--out", str(out), *extra])
    runs = [p.name for p in out.iterdir()] if out.exists() else []
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return code, runs, "\n".join(errors)


def test_a_good_session_imports_and_its_energy_is_exact(tmp_path):
    imp = import_recording(
        write_session(tmp_path / "s", FLAT, TIMES, published_uj=[20000.0, 20000.0]), tmp_path / "out"
    )
    assert imp.checks[0].gross_j == pytest.approx(40e-6 * 500)
    assert [c.verdict for c in imp.checks] == ["within 0.1 %", "within 0.1 %"]
    assert imp.recording.voltage_v == 3.0 and imp.recording.meter == "lpm01a" and imp.recording.workload == "kws01"
    assert imp.windows.idle_power_w == pytest.approx([0.04, 0.04])  # the level next to the windows
    assert imp.windows.net_j == pytest.approx([0.0, 0.0], abs=1e-12)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: d.joinpath("trace1-energy.bin").write_bytes(d.joinpath("trace1-energy.bin").read_bytes()[:-2]),
            "truncated",
        ),
        (
            lambda d: d.joinpath("trace1-energy.bin").write_bytes(
                b"\x00" + d.joinpath("trace1-energy.bin").read_bytes()[1:]
            ),
            "not 0xF1",
        ),
        (lambda d: d.joinpath("trace1-timestamps.json").write_text("[0.01, 0.2, 0.7, 0.9, 2.5]"), "beyond the trace"),
        (lambda d: d.joinpath("trace1-timestamps.json").write_text("[0.01, 0.9, 0.7]"), "increasing"),
        (lambda d: d.joinpath("log.txt").unlink(), "log.txt: missing"),
    ],
)
def test_damaged_sessions_fail_with_one_line_and_exit_3(tmp_path, capsys, damage, message):
    folder = write_session(tmp_path / "s", FLAT, TIMES)
    damage(folder)
    code, runs, errors = _run_import(tmp_path, folder, capsys)
    assert code == 3 and runs == []
    assert len(errors.splitlines()) == 1 and message in errors and str(folder) in errors


def test_nan_samples_and_a_zero_sample_rate_are_refused(tmp_path, capsys):
    samples = FLAT.copy()
    samples[1234] = np.nan
    code, runs, errors = _run_import(tmp_path, write_session(tmp_path / "nan", samples, TIMES), capsys)
    assert code == 3 and runs == [] and "NaN or infinite (the first at sample 1234" in errors
    code, runs, errors = _run_import(tmp_path, write_session(tmp_path / "rate", FLAT, TIMES, rate_hz=0.0), capsys)
    assert code == 3 and runs == [] and "sample rate 0.0 Hz" in errors


def test_a_folder_without_the_files_says_what_it_expected(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, runs, errors = _run_import(tmp_path, tmp_path / "empty", capsys)
    assert code == 3 and runs == [] and "not a recording ffenergy reads" in errors and "energyrunner" in errors


def test_an_unwritable_output_is_a_file_system_error_with_exit_6(tmp_path, capsys):
    folder = write_session(tmp_path / "s", FLAT, TIMES)
    (tmp_path / "taken").write_text("a file where the results folder should be")
    code = main(["import", str(folder), "--out", str(tmp_path / "taken")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 6 and len(errors) == 1 and errors[0].startswith("error: file:") and "taken" in errors[0]


def test_published_figures_that_disagree_warn_and_the_samples_win(tmp_path, capsys):
    folder = write_session(tmp_path / "s", FLAT, TIMES, published_uj=[20000.0, 25000.0])
    code = main(["import", str(folder), "--out", str(tmp_path / "out")])
    assert code == 0
    assert "disagrees with the samples in 1 of 2 windows" in capsys.readouterr().err
    (run,) = (tmp_path / "out").iterdir()
    assert "differs" in (run / "recording.json").read_text()


def test_an_interrupted_import_leaves_no_run(tmp_path, monkeypatch):
    import ffenergy.experiment.import_run as import_run

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(import_run, "write_trace", fail)
    with pytest.raises(OSError):
        import_recording(write_session(tmp_path / "s", FLAT, TIMES), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
