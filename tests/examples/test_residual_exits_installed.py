"""The example package installed the way a user installs it: ``pip install`` from its folder into a
fresh virtual environment beside ffenergy, then ``ffenergy run`` on a config naming its learner and
its meter (fed by the package's stand-in bench logger) and ``ffenergy plot`` on the result.

No network: the fresh venv has no pip of its own and reaches this venv's site-packages (torch,
numpy, pip, setuptools) through a ``.pth`` file; the ffenergy checkout and the example are
installed into it with ``--no-deps --no-build-isolation``, each from a copy under the test's temp
dir, so the builds leave nothing (``build/``, ``*.egg-info``) in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml

from ffenergy.contract import read_rows
from tests.examples.conftest import EXAMPLE

pytestmark = pytest.mark.slow  # a venv, two pip installs, a run and a plot: about a minute

ROOT = Path(__file__).resolve().parents[2]


def _venv(path: Path) -> Path:
    """A fresh venv whose interpreter also sees this one's site-packages (after its own)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    parent = sysconfig.get_paths()["purelib"]
    (Path(own.stdout.strip()) / "zz_parent_site.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def _sources(to: Path) -> list[Path]:
    """Copies of what pip builds: the ffenergy package (its pyproject, README and code) and the example folder."""
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(ROOT / "ffenergy", to / "ffenergy" / "ffenergy", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, to / "ffenergy" / name)
    shutil.copytree(EXAMPLE, to / "example", ignore=skip)
    return [to / "ffenergy", to / "example"]


def test_the_installed_example_runs_end_to_end_and_plots(tmp_path):
    python = _venv(tmp_path / "venv")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *_sources(tmp_path / "src")],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    ffenergy = tmp_path / "venv" / "bin" / "ffenergy"
    env = {**os.environ, "FFENERGY_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ""}
    meters = subprocess.run([ffenergy, "meters"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    row = next(line for line in meters.stdout.splitlines() if line.startswith("csvlog"))
    assert "ffenergy-residual-exits 0.1.0" in row and "no log file" in row

    config = yaml.safe_load((EXAMPLE / "experiment.yaml").read_text())
    config["model"].update(hidden=[32, 32], epochs=1)  # the tutorial's run, smaller
    config["measurement"]["min_window_s"] = 0.2
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    bench = subprocess.Popen([python, "-m", "ffenergy_residual_exits.bench", "bench-power.csv"], cwd=tmp_path, env=env)
    try:
        while not (tmp_path / "bench-power.csv").is_file():
            time.sleep(0.05)
        run = subprocess.run(
            [ffenergy, "run", "run.yaml", "--out", "results", "--no-progress"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        bench.terminate()
        bench.wait(timeout=10)
    assert run.returncode == 0, run.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    summary = {r["mode"]: r for r in read_rows(run_dir / "summary.csv")}
    assert set(summary) == {"full", "light", "depth-1", "depth-2"}
    assert {(r["procedure"], r["meter"], r["provenance"]) for r in summary.values()} == {
        ("residual-exits", "csvlog", "measured")
    }
    stage = 784 * 32 + 32 * 32 + 32 * 10, 32 * 32 + 32 * 32 + 32 * 10
    assert float(summary["depth-1"]["macs_per_inference"]) == stage[0]
    assert float(summary["full"]["macs_per_inference"]) == sum(stage)
    assert all(r["n_repeats"] == "5" and r["energy_j_per_inference"] != "" for r in summary.values())
    windows = read_rows(run_dir / "windows.csv")
    assert {r["meter"] for r in windows} == {"csvlog"} and {r["domain"] for r in windows} == {"bench", "total"}

    plot = subprocess.run(
        [ffenergy, "plot", str(run_dir)], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert plot.returncode == 0, plot.stderr
    assert (run_dir / "report.md").is_file() and any((run_dir / "figures").glob("tradeoff_cpu_csvlog.*"))
    assert "residual-exits" in (run_dir / "report.md").read_text()
