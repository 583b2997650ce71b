"""Serial-MCU targets: a DUT plus a triggered external meter, opened from one small config.

- ``mcu``: a real board on ``dut_port`` and a real meter (INA226 logger or PPK2); energy ``measured``.
- ``mcu-sim``: the firmware's host build on a pty and the simulated INA226 logger; ``simulated``.
- ``mcu-qemu``: the Cortex-M build in QEMU and the simulated INA226 logger; ``simulated``.

The simulated targets wire trigger events into the simulator through a FIFO, so the same meter
driver, windowing and stage code run as with hardware. On ``mcu-sim`` they come from the firmware
(priced by the MACs it reports); on ``mcu-qemu`` from the instruction-count plugin inside QEMU
(priced by the instructions the CPU executed), whose log also gives samples.csv its counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffenergy.children import end_stale
from ffenergy.contract import ENERGY_MODEL_INSTRUCTIONS, ENERGY_MODEL_MACS
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.insn import InsnLog, plugin_args
from ffenergy.firmware.launch import HostDut, QemuDut
from ffenergy.meters.auto import make_meter
from ffenergy.meters.triggered import TriggeredMeter
from ffenergy.sim.meter import SimMeterProcess, spawn_sim_meter
from ffenergy.sim.profiles import PROFILES
from ffenergy.targets.mcu_config import McuConfig


@dataclass
class McuSession:
    """An open DUT and meter; ``launcher`` (simulated targets) can ``restart()`` the DUT, i.e. reset it.
    ``insn_log``: the executed-instruction counts of each window, where the target can count them."""

    config: McuConfig
    dut: Dut
    meter: TriggeredMeter
    launcher: HostDut | QemuDut | None = None
    sim_meter: SimMeterProcess | None = None
    insn_log: InsnLog | None = None

    @property
    def energy_model(self) -> str | None:
        """How the simulated meter prices a window (``contract.ENERGY_MODEL_*``); None: a real meter."""
        if self.sim_meter is None:
            return None
        return ENERGY_MODEL_INSTRUCTIONS if self.insn_log is not None else ENERGY_MODEL_MACS

    @property
    def provenance(self) -> str:
        return self.meter.info.provenance

    def manifest(self) -> dict[str, Any]:
        """What the run manifest records: target, DUT info, meter (with simulated ground truth)."""
        info = self.meter.info
        meter = {
            "name": info.name,
            "provenance": info.provenance,
            "update_period_s": info.update_period_s,
            **info.details,
        }
        if self.sim_meter is not None:
            meter["ground_truth"] = self.sim_meter.ground_truth
            meter["energy_model"] = self.energy_model
            if self.config.sim_profile:
                meter["profile"] = PROFILES[self.config.sim_profile].record(self.config.sim_scale)
        return {"target": self.config.target, "dut": dataclasses.asdict(self.dut.info_), "meter": meter}


@contextlib.contextmanager
def open_mcu(config: McuConfig, workdir: str | Path | None = None):
    """Open the DUT and meter of ``config``; everything started is stopped on exit."""
    config.validate()
    with contextlib.ExitStack() as stack:
        if config.target == "mcu":
            assert config.dut_port is not None  # validate() insists on it
            dut = stack.enter_context(Dut(config.dut_port, timeout_s=config.dut_timeout_s, baudrate=config.dut_baud))
            meter = _triggered_meter(config.meter, config.meter_options())
            stack.enter_context(meter)
            yield McuSession(config, dut, meter)
            return
        work = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ffmcu-")))
        work.mkdir(parents=True, exist_ok=True)
        end_stale(work.resolve())  # a logger or DUT an earlier, killed process of this run left holding the ports
        sim = stack.enter_context(spawn_sim_meter(work / "meter.tty", work / "trigger.fifo", config.sim))
        assert config.firmware is not None  # validate() insists on it
        launcher: HostDut | QemuDut
        insn_log = None
        if config.target == "mcu-sim":
            launcher = HostDut(config.firmware, trigger=sim.trigger)
        else:  # the plugin is the trigger probe; the firmware's own trigger UART is discarded
            log_path = work / "insn.log"
            launcher = QemuDut(config.firmware, extra=plugin_args(config.firmware, sim.trigger, log_path))
            insn_log = InsnLog(log_path)
        stack.enter_context(launcher)
        dut = stack.enter_context(Dut(launcher.port, timeout_s=config.dut_timeout_s))
        options = {**config.meter_options("ina226"), "port": str(sim.port)}
        meter = _triggered_meter("ina226", options)
        stack.enter_context(meter)
        yield McuSession(config, dut, meter, launcher, sim, insn_log)


def _triggered_meter(name: str, options: dict[str, Any]) -> TriggeredMeter:
    """A serial meter from the meter registry; the MCU stage needs its trigger-window interface."""
    meter = make_meter(name, **options)
    if not isinstance(meter, TriggeredMeter):
        meter.close()
        raise ValueError(f"meter {name!r} has no trigger channel; use one of ina226, ppk2")
    return meter
