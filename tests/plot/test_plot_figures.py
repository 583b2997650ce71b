"""The numbers behind the figures: Pareto front, predicted sweep energy, trigger windows, provenance marks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ffenergy.analysis.load import RunLoadError, load_run
from ffenergy.plot import attribution, costs, reduction, trace, tradeoff
from ffenergy.plot.style import Drawn
from tests.plot.plot_synthetic import EXIT_P, write_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    return load_run(write_synthetic_run(tmp_path_factory.mktemp("r"), "run", n_samples=100, seed=4))


def test_pareto_front_keeps_only_undominated_points() -> None:
    cost = np.array([1.0, 2.0, 3.0, 2.5, 4.0, np.nan])
    acc = np.array([90.0, 95.0, 94.0, 96.0, 96.0, 99.0])
    assert tradeoff.pareto_front(cost, acc).tolist() == [0, 1, 3]


def test_sweep_energy_is_predicted_from_depth_k(run) -> None:
    host = next(r for r in run.sweep if r.target == "host-cpu" and r.procedure == "op")
    energy, source = costs.sweep_energy(run, "host-cpu", "rapl", host)
    depth = [costs.summary_energy(run, "host-cpu", "rapl", "op", f"depth-{k}") for k in range(1, 5)]
    assert source == costs.PREDICTED
    assert energy == pytest.approx(sum(p * e for p, e in zip(host.exit_fractions, depth)))


def test_trigger_windows_find_every_high_run() -> None:
    trig = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert trace.trigger_windows(trig) == [(0, 2), (4, 5), (6, 9)]


def test_every_energy_figure_carries_its_provenance(run) -> None:
    drawn = [d for mod in (tradeoff, attribution, reduction, trace) for d in mod.draw(run) if isinstance(d, Drawn)]
    assert len(drawn) == 6
    for d in drawn:
        marks = [t.get_text() for t in d.figure.texts]
        expected = "simulated" if "mcu" in d.stem or d.stem == "trace" else "measured"
        assert any(expected in m for m in marks), (d.stem, marks)
    predicted = next(d for d in drawn if d.stem == "tradeoff_host-cpu_rapl")
    assert "measured + predicted" in [t.get_text() for t in predicted.figure.texts]
    labels = predicted.figure.axes[0].get_legend_handles_labels()[1]
    assert "op (max), predicted" in labels


def test_exit_fractions_that_do_not_sum_to_one_are_rejected(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, "run", n_samples=10, mcu=False)
    text = (
        (path / "sweep.csv")
        .read_text()
        .replace(
            ";".join(f"{v:.4f}" for v in [0.35] + [p / sum(EXIT_P["mp"][1:]) * 0.65 for p in EXIT_P["mp"][1:]]),
            "0.5;0.1;0.1;0.1",
            1,
        )
    )
    (path / "sweep.csv").write_text(text)
    with pytest.raises(RunLoadError, match=r"sweep.csv: line 2, column 'exit_fractions': '0.5;0.1;0.1;0.1' must be"):
        load_run(path)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, "run", n_samples=10, mcu=False)
    text = (path / "samples.csv").read_text().replace("exit_layer", "layer", 1)
    (path / "samples.csv").write_text(text)
    with pytest.raises(RunLoadError, match="samples.csv: column.s. exit_layer missing from the header"):
        load_run(path)


def test_a_sweep_computed_once_on_the_host_applies_to_every_target(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, "run", n_samples=10)
    lines = (path / "sweep.csv").read_text().splitlines()
    generic = [lines[0]] + [ln.replace("host-cpu,", "host,", 1) for ln in lines[1:] if ln.startswith("host-cpu,")]
    (path / "sweep.csv").write_text("\n".join(generic) + "\n")
    run = load_run(path)
    assert costs.sweep_rows(run, "mcu-sim") == costs.sweep_rows(run, "host-cpu") == run.sweep
    stems = {d.stem for d in tradeoff.draw(run) if isinstance(d, Drawn)}
    assert stems == {"tradeoff_host-cpu_rapl", "tradeoff_mcu-sim_ina226-sim"}


def test_net_energies_at_or_below_zero_are_flagged_not_plotted_as_savings(run) -> None:
    from dataclasses import replace

    from ffenergy.analysis.report import run_report
    from ffenergy.plot.style import Skipped
    from ffenergy.units import format_energy

    broken = replace(
        run,
        summary=[
            replace(r, energy_j_per_inference=-abs(r.energy_j_per_inference))
            if r.energy_j_per_inference is not None
            else r
            for r in run.summary
        ],
    )
    assert reduction.draw(broken) == [
        Skipped(
            "MAC vs energy reduction",
            "every energy ratio involves a net energy <= 0 (idle subtraction exceeds the signal)",
        )
    ]
    figure = next(d for d in attribution.draw(broken) if isinstance(d, Drawn)).figure
    assert any("net energy ≤ 0" in t.get_text() for t in figure.texts)
    assert "**Warning:** some net energies are ≤ 0" in run_report(broken, [], [])
    assert "**Warning:**" not in run_report(run, [], [])
    drifting = replace(
        run,
        summary=[replace(r, idle_drift_max=0.08 if r.target == run.summary[0].target else 0.01) for r in run.summary],
    )
    assert run_report(drifting, [], []).count("**Idle drift:**") == 1 and "up to 8.0%" in run_report(drifting, [], [])
    assert "Idle drift" not in run_report(run, [], [])
    assert format_energy(2.5e-4, 1.52e-4) == "250 ± 150 µJ"


def test_the_naive_mac_column_is_read_where_written_and_nan_in_older_runs(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, "run", n_samples=10, mcu=False)  # written without the column
    old = load_run(path)
    assert all(np.isnan(r.macs_per_inference_naive) for r in [*old.summary, *old.sweep])
    for name in ("summary.csv", "sweep.csv"):
        lines = (path / name).read_text().splitlines()
        naive = [lines[0] + ",macs_per_inference_naive"] + [f"{ln},{1e6 + i}" for i, ln in enumerate(lines[1:])]
        (path / name).write_text("\n".join(naive) + "\n")
    new = load_run(path)
    assert [r.macs_per_inference_naive for r in new.summary] == [1e6 + i for i in range(len(new.summary))]
    assert [r.macs_per_inference_naive for r in new.sweep] == [1e6 + i for i in range(len(new.sweep))]


def test_the_light_marker_is_the_exit_policys_operating_point(run) -> None:
    policy = "risk disagreement ≤ 0.005 w.p. ≥ 0.9"
    drawn = tradeoff.draw(dataclasses.replace(run, policies={"op": policy}))
    fig = next(d for d in drawn if isinstance(d, Drawn) and d.stem == "tradeoff_host-cpu_rapl").figure
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    for proc, label in (("op", f"op light ({policy})"), ("mp", "mp light (this run's α)")):
        (light,) = [r for r in run.summary if (r.target, r.procedure, r.mode) == ("host-cpu", proc, "light")]
        assert lines[label].get_ydata()[0] == pytest.approx(100 * light.accuracy)
