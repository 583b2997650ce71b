"""report.md's "Early exit on the microcontroller" section, from attribution.json's early_exit."""

from __future__ import annotations

import json
from pathlib import Path

from ffenergy.analysis.load import load_run
from ffenergy.analysis.report import run_report
from tests.plot.plot_synthetic import write_synthetic_run


def _mode(uj: float, macs: float, insn: float, base: tuple[float, float]) -> dict[str, float]:
    return {
        "uj_per_inference": uj,
        "pj_per_mac": uj / macs * 1e6,
        "instructions_per_inference": insn,
        "instructions_per_mac": insn / macs,
        "energy_reduction": base[0] / uj,
        "mac_reduction": base[1] / macs,
        "instruction_reduction": None,
    }


def _with_early_exit(run: Path) -> None:
    path = run / "attribution.json"
    raw = json.loads(path.read_text())
    fit = next(f for f in raw["fits"] if f["target"].startswith("mcu"))
    base = (200.0, 100_000.0)
    fit["early_exit"] = {
        "baseline": fit["procedure"],
        "modes": {  # written in no particular order
            "light": _mode(80.0, 50_000.0, 120_000.0, base),
            "depth-2": _mode(150.0, 80_000.0, 160_000.0, base),
            "full": _mode(200.0, 100_000.0, 200_000.0, base),
            "depth-1": _mode(60.0, 40_000.0, 90_000.0, base),
        },
        "exit_check": {
            "energy_uj_per_check": 0.21,
            "priced_energy_uj_per_check": 0.204,
            "instructions_per_check": 626.0,
            "n_pairs": 60,
        },
    }
    path.write_text(json.dumps(raw))


def test_the_section_lists_modes_in_depth_order_with_energy_over_mac_reduction(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path, "run-mcu")
    _with_early_exit(run)
    report = run_report(load_run(run), [], [])
    section = report.split("## Early exit on the microcontroller", 1)[1].split("## Figures", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| mcu")]
    assert [r[2] for r in rows] == ["full", "depth-1", "depth-2", "light"]
    light = rows[-1]
    # energy 200/80 = 2.5x, MACs 100k/50k = 2x: energy falls 1.25x faster than MACs
    assert light[3:7] == ["80", "2.500×", "2.000×", "1.250"]
    assert light[7:10] == ["120,000", "2.40", "1600 |"]
    assert "626 instructions per exit check, 0.204 µJ priced" in section and "0.21 µJ" in section


def test_no_section_without_mcu_early_exit_entries(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path, "run-mcu")
    assert "## Early exit on the microcontroller" not in run_report(load_run(run), [], [])
