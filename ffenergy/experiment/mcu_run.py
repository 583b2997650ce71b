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

import numpy as np

from ffenergy.config import McuSection
from ffenergy.contract import SAMPLES_COLUMNS, WINDOWS_COLUMNS, CsvAppender, HilFaults
from ffenergy.data.base import Dataset
from ffenergy.experiment.mcu_stage import McuStageResult, drop_torn_rows, run_mcu_stage
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
) -> HilFaults:
    """Export and build the firmware for ``job``, open DUT + meter (``on_session`` records the open session),
    measure the missing rows; returns the DUT resets and meter restarts this call rode through."""
    arrays = job.arrays
    target = TARGETS.entry(job.target)
    board = target.fact("board") if target.fact("simulated") else section.board
    calib_x = data.x_val[:512] if section.dtype == "int8" else None
    if board != section.board:  # an emulated board: also hold the model to the size of the real one
        _check_real_board(job, section, calib_x)
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
        x, y = data.x_test[:n], data.y_test[:n]
        result = _measure_rows(session, job, x, y, modes, section.repeats, run_dir, progress)
    return HilFaults(result.dut_resets, result.meter_restarts)


def _measure_rows(
    session: McuSession,
    job: McuJob,
    x: np.ndarray,
    y: np.ndarray,
    modes: list[str],
    repeats: int,
    run_dir: Path,
    progress: bool,
) -> McuStageResult:
    """The rows of ``job`` that ``run_dir`` lacks (torn ones measured again), appended to its CSVs."""
    log.info(
        "%s/%s: %d samples x %d modes, %d inferences per window", job.target, job.procedure, len(x), len(modes), repeats
    )
    dropped = drop_torn_rows(run_dir, job.target)
    if dropped:
        log.warning("%s: %d rows of a window the last run was killed in are measured again", job.target, dropped)
    with (
        CsvAppender(run_dir / "samples.csv", SAMPLES_COLUMNS) as samples,
        CsvAppender(run_dir / "windows.csv", WINDOWS_COLUMNS) as windows,
    ):
        return run_mcu_stage(
            session.dut,
            session.meter,
            x,
            y,
            modes,
            repeats,
            samples,
            windows,
            job.target,
            trace_path=run_dir / "trace.csv",
            procedure=job.procedure,
            progress=progress,
            insn_log=session.insn_log,
        )


def _check_real_board(job: McuJob, section: McuSection, calib_x: np.ndarray | None) -> None:
    """Refuse (check_fit) a model that would not fit the configured real board; log its flash and RAM."""
    deployed = deploy(job.arrays, job.policy, section.dtype, calib_x, True, job.procedure)
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


def _check_firmware(info: Info, dims: list[int], job: McuJob, export_dir: Path) -> None:
    if list(info.dims) != list(dims[1:]) or info.n_in != dims[0]:
        raise FirmwareMismatch(
            f"{job.target}: the board runs a {info.n_in}-{'-'.join(map(str, info.dims))} model "
            f"({info.model_name!r}), this run exported {'-'.join(map(str, dims))}; flash the export in "
            f"{export_dir} (see hardware/README.md) and run again with --resume"
        )
