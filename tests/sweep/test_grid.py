"""Sweep files expand into validated points; benches are named from the registries; no Ray outside the sweep."""

import subprocess
import sys
from pathlib import Path

import pytest

from ffenergy.config import parse_config
from ffenergy.sweep.bench import SHARED, point_resources, ray_start_flags
from ffenergy.sweep.grid import SweepError, load_sweep

TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


def _sweep(tmp_path: Path, body: str) -> Path:
    (tmp_path / "base.yaml").write_text(TINY.read_text())
    path = tmp_path / "grid.yaml"
    path.write_text("base: base.yaml\n" + body)
    return path


def test_the_grid_is_a_cartesian_product_of_dotted_keys(tmp_path):
    sweep = load_sweep(
        _sweep(
            tmp_path, "grid:\n  inference.alpha: [0.5, 1.0]\n  targets: [[cpu], [mcu-sim]]\n  model.hidden: [[8, 8]]\n"
        )
    )
    assert sweep.name == "grid" and sweep.retries == 2
    assert sweep.keys == ["inference.alpha", "targets", "model.hidden"]
    assert [p.id for p in sweep.points] == ["p000", "p001", "p002", "p003"]
    assert [(p.values["inference.alpha"], p.values["targets"]) for p in sweep.points] == [
        (0.5, ["cpu"]),
        (0.5, ["mcu-sim"]),
        (1.0, ["cpu"]),
        (1.0, ["mcu-sim"]),
    ]
    cfg = sweep.points[3].experiment_config()
    assert (cfg.inference.alpha, cfg.targets, cfg.model.hidden) == (1.0, ["mcu-sim"], [8, 8])
    assert cfg.name == "tiny-p003" and cfg.model.epochs == 1  # the base config's other values are kept
    assert sweep.points[0].config["targets"] == ["cpu"]  # points do not share mutable values


def test_every_point_is_validated_before_anything_runs_and_the_error_names_point_and_field(tmp_path):
    with pytest.raises(SweepError, match=r"point p001 \(inference\.alpha=-1\): inference\.alpha: invalid value"):
        load_sweep(_sweep(tmp_path, "grid:\n  inference.alpha: [1.0, -1]\n"))
    with pytest.raises(SweepError, match=r"point p000 .*model\.hiddn: unknown key"):
        load_sweep(_sweep(tmp_path, "grid:\n  model.hiddn: [[8]]\n"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("grid: {seed: 1}\n", r"grid\.seed: expected a non-empty list"),
        ("grid: {}\n", "grid: give a mapping"),
        ("retries: -1\ngrid: {seed: [1]}\n", "retries: expected an integer >= 0"),
        ("grids: {seed: [1]}\n", "grids: unknown key"),
        ("grid: {seed.x: [1]}\n", r"seed is 0 in the base config, not a section"),
    ],
)
def test_sweep_file_errors_name_the_key(tmp_path, body, message):
    with pytest.raises(SweepError, match=message):
        load_sweep(_sweep(tmp_path, body))


def test_a_point_asks_for_its_benches_named_from_the_registries():
    host = parse_config({"targets": ["cpu", "mcu-qemu"], "meter": "rapl"})
    assert point_resources(host) == {"bench:cpu": SHARED, "bench:mcu-qemu": SHARED, "meter:rapl": SHARED}
    board = parse_config({"targets": ["mcu"], "meter": "rapl"})  # no host target: the host meter is not needed
    assert point_resources(board) == {"bench:mcu": 1.0}  # a real board is one device: a point takes all of it
    assert point_resources(parse_config({"targets": ["cuda"], "meter": "auto"})) == {"bench:cuda": SHARED}
    assert (
        ray_start_flags({"meter:rapl": 1.0, "bench:cpu": 1.0})
        == """--resources='{"bench:cpu": 1.0, "meter:rapl": 1.0}'"""
    )


def test_help_config_loading_and_bench_import_no_ray():
    code = (
        "import sys, contextlib, io\n"
        "from ffenergy.cli import main\n"
        "from ffenergy.config import load_config\n"
        "import ffenergy.sweep.grid, ffenergy.sweep.bench\n"
        f"load_config({str(TINY)!r})\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
