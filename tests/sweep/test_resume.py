"""What a resume runs again: the points without a done row whose run directory is there (no Ray needed)."""

import json
from pathlib import Path

from ffenergy.cli import main
from ffenergy.contract import SWEEP_INDEX_COLUMNS, CsvAppender
from ffenergy.sweep.command import INDEX, SWEEP_JSON, load_sweep_dir, start_sweep
from ffenergy.sweep.grid import load_sweep

TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


def _sweep_file(tmp_path: Path, seeds: list[int]) -> Path:
    (tmp_path / "base.yaml").write_text(TINY.read_text())
    path = tmp_path / f"grid{len(seeds)}.yaml"
    path.write_text(f"base: base.yaml\ngrid:\n  seed: {json.dumps(seeds)}\n")
    return path


def test_done_means_a_done_last_row_and_its_run_directory(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path, [0, 1, 2, 3]))
    sweep_dir = start_sweep(sweep, tmp_path / "out")
    for name in ("r0", "r1", "r3"):
        (sweep_dir / "runs" / name).mkdir(parents=True)
        (sweep_dir / "runs" / name / "manifest.json").write_text("{}")
    rows = [
        ("p000", "done", "runs/r0"),
        ("p001", "failed", ""),  # failed: run again
        ("p002", "done", "runs/r2"),  # its run directory is gone: run again
        ("p003", "failed", ""),
        ("p003", "done", "runs/r3"),  # the last row of a point counts
    ]
    with CsvAppender(sweep_dir / INDEX, ["point", "seed", *SWEEP_INDEX_COLUMNS]) as index:
        for point, status, run_dir in rows:
            index.write({"point": point, "seed": 0, "status": status, "attempts": 1, "run_dir": run_dir})
    loaded, done = load_sweep_dir(sweep_dir)
    assert loaded.points == sweep.points and loaded.keys == ["seed"]
    assert done == {"p000", "p003"}


def test_a_resume_refuses_a_sweep_file_with_other_points(tmp_path, capsys):
    sweep_dir = start_sweep(load_sweep(_sweep_file(tmp_path, [0, 1])), tmp_path / "out")
    assert (sweep_dir / SWEEP_JSON).is_file()
    other = _sweep_file(tmp_path, [0, 1, 2])
    assert main(["sweep", str(other), "--resume", str(sweep_dir), "--no-progress"]) == 2
    assert "no longer expands to that sweep's points" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "no sweep.json there" in capsys.readouterr().err
