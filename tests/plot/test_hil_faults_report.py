"""The faults an MCU stage rode through (manifest.json targets.<t>.hil_faults) in report.md's Provenance."""

from __future__ import annotations

import json
from pathlib import Path

from ffenergy.contract import HIL_FAULTS_KEY
from ffenergy.plot.command import plot_command
from tests.plot.plot_synthetic import write_synthetic_run


def test_provenance_lists_the_faults_ridden_through_and_older_runs_list_none(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path, "a", mcu=False, energy=False)
    manifest = json.loads((run / "manifest.json").read_text())
    faults = {"mp": {"dut_resets": 1, "meter_restarts": 2}, "op": {"dut_resets": 0, "meter_restarts": 0}}
    manifest.setdefault("targets", {})["mcu-sim"] = {HIL_FAULTS_KEY: faults}
    (run / "manifest.json").write_text(json.dumps(manifest))
    older = write_synthetic_run(tmp_path, "b", mcu=False, energy=False)
    assert plot_command([run], "png", jobs=1) == 0 and plot_command([older], "png", jobs=1) == 0
    provenance = (run / "report.md").read_text().split("## Provenance")[1]
    assert (
        "Faults ridden through (each window measured again): mcu-sim/mp 1 DUT resets, 2 meter restarts; "
        "mcu-sim/op 0 DUT resets, 0 meter restarts." in provenance
    )
    assert "Faults ridden through" not in (older / "report.md").read_text()
