"""The real EnergyRunner sessions of ../shared/data/energyrunner, and small synthetic sessions in the same format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.data.conftest import shared_data_dir

SESSIONS_DIR = shared_data_dir() / "energyrunner"
SESSIONS = sorted(p.name for p in SESSIONS_DIR.glob("*") if (p / "trace1-energy.bin").is_file())


def write_session(
    folder: Path,
    energy_uj: np.ndarray,
    times_s: list[float],
    *,
    rate_hz: float = 1000.0,
    inferences: int = 10,
    voltage_mv: int = 3000,
    published_uj: list[float] | None = None,
) -> Path:
    """An EnergyRunner session folder in the published format (header byte, float32 rate and µJ samples)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = np.concatenate([[rate_hz], energy_uj]).astype("<f4").tobytes()
    (folder / "trace1-energy.bin").write_bytes(b"\xf1" + body)
    (folder / "trace1-timestamps.json").write_text(json.dumps(times_s))
    n_windows = (len(times_s) - 1) // 2
    log = [
        "00001.000 parser: m-bm-cfg-name[ulp-ml]-key[model]-val[kws01]",
        f"00001.000 parser: m-bm-cfg-name[ulp-ml]-key[iterInfer]-val[{inferences}]",
        "00002.000 emon: m-regfile-fn[trace1-energy.bin]-type[emon]-name[lpm01a]",
        f"00002.000 emon: m-voltage-mv[{voltage_mv}]",
    ] + [f"0000{3 + k}.000 io: [dut]: m-infer-start-{inferences}" for k in range(n_windows)]
    (folder / "log.txt").write_text("\n".join(log) + "\n")
    if published_uj is not None:
        lines = [f"ulp-ml:   Energy       :   {e:.3f} uJ" for e in published_uj]
        median = float(np.median(np.asarray(published_uj) / inferences))
        lines.append(f"ulp-ml: Median energy cost is {median:.3f} uJ/inf.")
        (folder / "results.txt").write_text("\n".join(lines) + "\n")
    return folder
