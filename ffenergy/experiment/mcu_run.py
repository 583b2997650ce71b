"""The hardware-in-the-loop stage of a run: export, build, flash-check and measure on MCU targets.

``mcu-sim`` builds the firmware for the host, ``mcu-qemu`` cross-builds it for a Cortex-M4F in
QEMU; both are measured by the simulated INA226 logger. ``mcu`` is a real board the user
flashed with the exported model (``hardware/README.md``) and a real meter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffenergy.analysis.mcu_savings import exit_check_cost, mode_figures
from ffenergy.config import McuSection
from ffenergy.contract import INSN_CLASS_COLUMNS, SAMPLES_COLUMNS, WINDOWS_COLUMNS, CsvAppender, read_rows
from ffenergy.data.base import Dataset
from ffenergy.experiment.mcu_stage import drop_torn_rows, fit_energy_vs_exit, run_mcu_stage
from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.firmware.export import check_fit, deploy, export_model
from ffenergy.firmware.launch import build_firmware
from ffenergy.firmware.protocol import Info
from ffenergy.targets.mcu import McuSession, open_mcu
from ffenergy.targets.mcu_config import McuConfig
from ffenergy.targets.registry import TARGETS
from ffenergy.vocabulary import all_modes

log = logging.getLogger(__name__)


class FirmwareMismatch(RuntimeError):
    """The board runs another model than the one this run exported."""


@dataclass
class McuJob:
    """One (target, procedure) to deploy: which exit rule, exported where."""

    target: str
    procedure: str
    arrays: NetworkArrays  # the learner's firmware hand-off
    policy: ExitPolicy
    export_dir: Path


def run_mcu_job(
    job: McuJob,
    data: Dataset,
    section: McuSection,
    run_dir: Path,
    on_session: Callable[[McuSession], None],
    progress: bool = False,
) -> None:
    """Export and build the firmware for ``job``, open DUT + meter, measure the missing rows."""
    arrays = job.arrays
    target = TARGETS.entry(job.target)
    board = target.fact("board") if target.fact("simulated") else section.board
    calib_x = data.x_val[:512] if section.dtype == "int8" else None
    if board != section.board:  # an emulated board: also hold the model to the size of the real one
        deployed = deploy(arrays, job.policy, section.dtype, calib_x, True, job.procedure)
        real = check_fit(deployed, section.board)
        log.info(
            "%s %s fits %s: flash %s / %s B, RAM %s / %s B (estimated)",
            job.procedure,
            section.dtype,
            section.board,
            f"{deployed.flash_bytes():,}",
            f"{real.flash_bytes:,}",
            f"{deployed.ram_bytes():,}",
            f"{real.ram_bytes:,}",
        )
    report = export_model(arrays, job.policy, job.export_dir, section.dtype, board, calib_x=calib_x, name=job.procedure)
    options = dict(section.options)
    if target.fact("simulated"):
        options["firmware"] = str(build_firmware(job.export_dir, board))
    config = McuConfig.from_dict(job.target, options)
    n = min(section.max_samples, len(data.y_test))
    modes = section.modes or all_modes(arrays.n_layers)
    with open_mcu(config, job.export_dir / "session") as session:
        _check_firmware(session.dut.info_, arrays.dims, job, report.out_dir)
        on_session(session)
        log.info(
            "%s/%s: %d samples x %d modes, %d inferences per window",
            job.target,
            job.procedure,
            n,
            len(modes),
            section.repeats,
        )
        dropped = drop_torn_rows(run_dir, job.target)
        if dropped:
            log.warning("%s: %d rows of a window the last run was killed in are measured again", job.target, dropped)
        with (
            CsvAppender(run_dir / "samples.csv", SAMPLES_COLUMNS) as samples,
            CsvAppender(run_dir / "windows.csv", WINDOWS_COLUMNS) as windows,
        ):
            run_mcu_stage(
                session.dut,
                session.meter,
                data.x_test[:n],
                data.y_test[:n],
                modes,
                section.repeats,
                samples,
                windows,
                job.target,
                trace_path=run_dir / "trace.csv",
                procedure=job.procedure,
                progress=progress,
                insn_log=session.insn_log,
            )


def light_reductions(light: dict[str, Any] | None) -> dict[str, float | None]:
    """attribution.json's light-mode savings from its summary row: energy reduction, MAC reduction
    and their ratio (> 1: energy falls faster than MACs; < 1: early exit's overhead eats into it)."""
    e = light.get("energy_reduction") if light else None
    m = light.get("mac_reduction") if light else None
    return {
        "light_energy_reduction": e,
        "light_mac_reduction": m,
        "light_energy_vs_mac_reduction": e / m if e is not None and m else None,
    }


def early_exit_savings(
    samples: list[dict[str, str]], target: str, procedure: str, baseline: str, meter: dict[str, Any]
) -> dict[str, Any]:
    """Per mode figures and the exit check's cost (``analysis.mcu_savings``) of an MCU target; an
    instruction-priced simulated meter's ground truth also prices the check."""
    rows = [r for r in samples if (r["target"], r["procedure"]) == (target, procedure)]
    base = [r for r in samples if (r["target"], r["procedure"]) == (target, baseline)] or rows
    truth = meter.get("ground_truth") or {}
    per_class = (
        {c: truth[f"net_joules_per_{c.removeprefix('insn_')}"] for c in INSN_CLASS_COLUMNS}
        if meter.get("energy_model") == "instructions-qemu-plugin"
        else None
    )
    return {"baseline": baseline, "modes": mode_figures(rows, base), "exit_check": exit_check_cost(rows, per_class)}


def per_sample_attribution(
    run_dir: Path, target: str, procedure: str, layer_macs: np.ndarray, meter: dict[str, Any]
) -> dict[str, Any] | None:
    """Per-inference energy vs exit layer over an MCU target's samples, and the energy each layer
    adds; with a simulated meter, the same from the simulator's ground truth: the MACs of each
    layer priced per MAC (energy model ``macs``), or each sample's counted instructions priced per
    class (``instructions-qemu-plugin``, which also gives each sample's error)."""
    rows = [
        r
        for r in read_rows(run_dir / "samples.csv")
        if (r["target"], r["procedure"]) == (target, procedure) and r["energy_j"] not in ("", None)
    ]
    if len({r["exit_layer"] for r in rows}) < 2:
        return None
    exits = np.array([int(r["exit_layer"]) for r in rows])
    energy = np.array([float(r["energy_j"]) for r in rows])
    fit = fit_energy_vs_exit(exits, energy)
    layer_energy = _layer_energy(exits, energy)
    out: dict[str, Any] = {
        "slope_j_per_layer": fit.slope_j_per_layer,
        "intercept_j": fit.intercept_j,
        "r2": fit.r2,
        "n": fit.n,
        "mean_energy_j_at_exit": {str(k): float(energy[exits == k].mean()) for k in sorted(set(exits.tolist()))},
        "layer_energy_j": layer_energy,
    }
    truth_params = meter.get("ground_truth") or {}
    model = meter.get("energy_model")
    if model == "macs" and "net_joules_per_mac" in truth_params:
        truth = {str(k + 1): float(m) * truth_params["net_joules_per_mac"] for k, m in enumerate(layer_macs)}
    elif model == "instructions-qemu-plugin" and all(r[INSN_CLASS_COLUMNS[0]] for r in rows):
        per_class = [truth_params[f"net_joules_per_{c.removeprefix('insn_')}"] for c in INSN_CLASS_COLUMNS]
        counts = np.array([[float(r[c]) for c in INSN_CLASS_COLUMNS] for r in rows])
        sample_truth = counts @ np.array(per_class)
        errors = energy / sample_truth - 1
        out["sample_energy_error"] = {"median": float(np.median(errors)), "max_abs": float(np.abs(errors).max())}
        truth = _layer_energy(exits, sample_truth)
    else:
        return out
    out["ground_truth_layer_energy_j"] = truth
    out["layer_energy_error"] = {k: v / truth[k] - 1 for k, v in layer_energy.items() if k in truth}
    return out


def _layer_energy(exits: np.ndarray, energy: np.ndarray) -> dict[str, float]:
    """The energy each layer adds: mean energy at exit k minus at exit k - 1."""
    mean_at = {k: float(energy[exits == k].mean()) for k in sorted(set(exits.tolist()))}
    return {str(k): mean_at[k] - mean_at.get(k - 1, 0.0) for k in mean_at if k == 1 or k - 1 in mean_at}


def _check_firmware(info: Info, dims: list[int], job: McuJob, export_dir: Path) -> None:
    if list(info.dims) != list(dims[1:]) or info.n_in != dims[0]:
        raise FirmwareMismatch(
            f"{job.target}: the board runs a {info.n_in}-{'-'.join(map(str, info.dims))} model "
            f"({info.model_name!r}), this run exported {'-'.join(map(str, dims))}; flash the export in "
            f"{export_dir} (see hardware/README.md) and run again with --resume"
        )
