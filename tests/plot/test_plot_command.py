"""ffenergy plot end to end on synthetic result directories: files, PNG validity, messages, exit codes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from matplotlib.image import imread

from ffenergy.plot.command import plot_command
from tests.plot.plot_synthetic import write_synthetic_run

RUN_A_FIGURES = {
    "tradeoff_host-cpu_rapl",
    "tradeoff_mcu-sim_ina226-sim",
    "exits_host-cpu",
    "exits_mcu-sim",
    "attribution_host-cpu_rapl",
    "attribution_mcu-sim_ina226-sim",
    "reduction",
    "trace",
}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_real_figure(path: Path) -> None:
    width, height = png_size(path)
    assert 500 <= width <= 2500 and 300 <= height <= 2500, (path, width, height)
    assert path.stat().st_size > 15_000, path
    pixels = imread(path)[..., :3]
    assert pixels.std() > 0.05, f"{path} looks blank"
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.01, f"{path} has almost no dark ink"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_synthetic_run(root, "run-a", n_samples=150, seed=1)
    write_synthetic_run(root, "run-b", n_samples=150, mcu=False, seed=2)
    write_synthetic_run(root, "run-macs", n_samples=150, mcu=False, energy=False, seed=3)
    (root / "empty").mkdir()
    bad = root / "run-bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"run_id": "run-bad", "config": {')
    return root


@pytest.fixture(scope="module")
def plotted(results: Path) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = plot_command([results], "png", jobs=2)  # forked workers; the other tests plot in-process
    return code, err.getvalue()


def test_every_figure_of_a_full_run_is_a_real_png(results: Path, plotted: tuple[int, str]) -> None:
    figures = {p.stem: p for p in (results / "run-a" / "figures").glob("*.png")}
    assert set(figures) == RUN_A_FIGURES
    for path in figures.values():
        assert_real_figure(path)


def test_report_inlines_every_figure_with_a_relative_link(results: Path, plotted: tuple[int, str]) -> None:
    report = (results / "run-a" / "report.md").read_text()
    for stem in RUN_A_FIGURES:
        assert f"](figures/{stem}.png)" in report
    assert "| host-cpu | rapl | measured | op | light |" in report
    assert "ina226-sim | simulated" in report and "Intel(R) Xeon(R) Gold 6338" in report and "torch 2.13.0" in report


def test_a_run_without_a_meter_is_plotted_in_macs(results: Path, plotted: tuple[int, str]) -> None:
    stems = {p.stem for p in (results / "run-macs" / "figures").glob("*.png")}
    assert stems == {"tradeoff_host-cpu_macs", "exits_host-cpu"}
    report = (results / "run-macs" / "report.md").read_text()
    assert "MACs only" in report and "no energy measured for this target" in report


def test_parent_folder_gets_a_comparison_and_one_message_per_bad_directory(
    results: Path, plotted: tuple[int, str]
) -> None:
    code, err = plotted
    assert code == 0
    assert_real_figure(results / "comparison" / "energy_per_inference.png")
    comparison = (results / "comparison" / "report.md").read_text()
    assert "[run-a](../run-a/report.md)" in comparison and "run-bad" not in comparison
    assert err.count("run-bad") == 1 and "invalid JSON at line 1" in err
    assert err.count("/empty:") == 1 and "no manifest.json" in err
    assert not (results / "run-bad" / "figures").exists()


def test_nothing_plottable_exits_non_zero_with_a_message(results: Path, capsys: pytest.CaptureFixture) -> None:
    assert plot_command([results / "empty", results / "run-bad", results / "missing"], "png") == 1
    err = capsys.readouterr().err
    assert "empty: no run found" in err and "run-bad/manifest.json: invalid JSON" in err
    assert "missing: no such directory" in err


def test_bad_number_in_a_csv_names_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write_synthetic_run(tmp_path, "run", n_samples=20, mcu=False)
    lines = (run / "summary.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[6] = "n/a"  # accuracy
    lines[3] = ",".join(fields)
    (run / "summary.csv").write_text("\n".join(lines) + "\n")
    assert plot_command([run], "png") == 1
    err = capsys.readouterr().err
    assert "summary.csv: line 4, column 'accuracy': 'n/a' is not a number" in err


def test_partial_run_is_plotted_from_what_is_there(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write_synthetic_run(tmp_path, "run", n_samples=40, mcu=False)
    (run / "summary.csv").unlink()
    (run / "attribution.json").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["measure"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with open(run / "samples.csv", "a") as fh:
        fh.write("host-cpu,op,light,999,3,3,1,79")  # torn last line of an interrupted run
    assert plot_command([run], "png") == 0
    assert "partial run" in capsys.readouterr().err
    stems = {p.stem for p in (run / "figures").glob("*.png")}
    assert stems == {"tradeoff_host-cpu_macs", "exits_host-cpu"}
    assert (
        "**Partial run.** unfinished stages: measure=interrupted (its process is gone); missing files: summary.csv, attribution.json"
        in (run / "report.md").read_text()
    )


def test_svg_format(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path, "run", n_samples=20, mcu=False, energy=False)
    assert plot_command([run], "svg") == 0
    svg = run / "figures" / "exits_host-cpu.svg"
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    assert "](figures/exits_host-cpu.svg)" in (run / "report.md").read_text()
    assert plot_command([run], "gif") == 2


def test_a_run_that_only_started_has_nothing_to_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write_synthetic_run(tmp_path, "run", n_samples=10, mcu=False)
    for name in ("samples.csv", "summary.csv", "windows.csv", "sweep.csv", "attribution.json"):
        (run / name).unlink()
    assert plot_command([run], "png") == 1
    err = capsys.readouterr().err
    assert "nothing to plot (missing summary.csv, samples.csv, sweep.csv, attribution.json)" in err
    assert not (run / "report.md").exists()


def test_runs_named_one_by_one_get_a_comparison_beside_their_common_parent(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    first = write_synthetic_run(tmp_path / "lab-a", "run-1", n_samples=10, mcu=False)
    second = write_synthetic_run(tmp_path / "lab-b", "run-2", n_samples=10, mcu=False, seed=5)
    (second / "trace.csv").write_bytes(b"t_s,current_a,voltage_v,trigger\n\xff\xfe,1,1,1\n")
    assert plot_command([first, second], "png", jobs=1) == 0  # the corrupted run is reported, the other plotted
    assert "run-2/trace.csv: not UTF-8 text" in capsys.readouterr().err
    assert (first / "report.md").exists() and not (second / "report.md").exists()
    assert not (tmp_path / "comparison").exists()  # one plotted run: nothing to compare
    (second / "trace.csv").unlink()
    assert plot_command([first, second], "png", jobs=1) == 0
    assert_real_figure(tmp_path / "comparison" / "energy_per_inference.png")


def _committed_example(root: Path, name: str) -> tuple[Path, dict[Path, bytes]]:
    """A plotted run copied as results/examples/<name> by tools/commit_example.py, samples.csv trimmed."""
    from tools.commit_example import copy_example, mark

    run = write_synthetic_run(root / "made", name, n_samples=60, mcu=False, energy=False, seed=4)
    assert plot_command([run], "png") == 0
    dest = root / "results" / "examples" / name
    dest.parent.mkdir(parents=True)
    mark(dest, copy_example(run, dest, max_bytes=(run / "samples.csv").stat().st_size - 1))
    return dest, {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_a_committed_example_leaves_out_the_weights_and_the_mcu_working_folder(tmp_path: Path) -> None:
    from tools.commit_example import copy_example

    run = write_synthetic_run(tmp_path / "made", "mcu-run", n_samples=20, energy=False, seed=5)
    (run / "model.pt").write_bytes(b"weights")
    (run / "hil" / "mcu-qemu-mp").mkdir(parents=True)
    (run / "hil" / "mcu-qemu-mp" / "model.h").write_text("/* weights */")
    dest = tmp_path / "examples" / "mcu-run"
    assert copy_example(run, dest, max_bytes=1 << 30) == []
    assert not (dest / "model.pt").exists() and not (dest / "hil").exists()
    assert (dest / "samples.csv").read_bytes() == (run / "samples.csv").read_bytes()


def test_plotting_a_results_folder_leaves_its_committed_examples_as_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    example, before = _committed_example(tmp_path, "example-run")
    assert json.loads((example / "example.json").read_text())["trimmed"] == ["samples.csv"]
    fresh = write_synthetic_run(tmp_path / "results", "fresh-run", n_samples=40, mcu=False, energy=False)
    capsys.readouterr()
    assert plot_command([tmp_path / "results"], "png") == 0
    out = capsys.readouterr()
    assert {p: p.read_bytes() for p in example.rglob("*") if p.is_file()} == before  # not one byte rewritten
    assert "left out 1 committed example(s) (example-run)" in out.err and "partial run" not in out.err
    assert (fresh / "report.md").is_file() and "plotted 1 of 1" in out.out


def test_a_committed_example_named_by_its_directory_joins_a_comparison_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ffenergy.analysis.load import load_run

    example, before = _committed_example(tmp_path, "example-run")
    assert load_run(example).missing == []  # trimmed on purpose: not a partial run
    fresh = write_synthetic_run(tmp_path / "results", "fresh-run", n_samples=40, mcu=False, energy=False)
    assert plot_command([fresh, example], "png") == 0
    assert {p: p.read_bytes() for p in example.rglob("*") if p.is_file()} == before
    assert "kept as committed" in capsys.readouterr().err
    comparison = (tmp_path / "results" / "comparison" / "report.md").read_text()
    assert "example-run" in comparison and "fresh-run" in comparison
