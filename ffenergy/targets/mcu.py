"""Serial-MCU targets: a DUT plus a triggered external meter, opened from one small config.

- ``mcu``: a real board on ``dut_port`` and a real meter (INA226 logger or PPK2); energy ``measured``.
- ``mcu-sim``: the firmware's host build on a pty and the simulated INA226 logger; ``simulated``.
- ``mcu-qemu``: the Cortex-M build in QEMU and the simulated INA226 logger; ``simulated``.

The simulated targets wire the DUT's trigger events into the simulator through a FIFO, so the
same meter driver, windowing and stage code run as with hardware.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffenergy.meters.ina226 import DEFAULT_BAUD, Ina226Meter
from ffenergy.meters.ppk2 import Ppk2Meter
from ffenergy.meters.triggered import TriggeredMeter
from ffenergy.sim.meter import SimMeterProcess, spawn_sim_meter
from ffenergy.sim.model import EnergyModel
from ffenergy.targets.dut import Dut
from ffenergy.targets.launch import HostDut, QemuDut

MCU_TARGETS = ("mcu", "mcu-sim", "mcu-qemu")
METERS = ("ina226", "ppk2")


@dataclass(frozen=True)
class McuConfig:
    """How to reach the DUT and its meter. Fields unused by a target are ignored."""

    target: str = "mcu-sim"
    firmware: str | None = None  # mcu-sim: host executable; mcu-qemu: ELF (ffenergy.targets.launch.build_firmware)
    dut_port: str | None = None  # mcu: the board's serial port
    dut_baud: int = 115200
    dut_timeout_s: float = 5.0
    meter: str = "ina226"  # mcu: ina226 | ppk2 (the simulated targets always use the INA226 simulator)
    meter_port: str | None = None  # mcu: the logger's port; PPK2: None = first found
    meter_baud: int = DEFAULT_BAUD
    meter_reopen_retries: int = 10  # INA226: reopen tries after the port vanishes
    meter_reopen_interval_s: float = 0.5
    ppk2_mode: str = "source"
    ppk2_voltage_mv: int = 3300
    ppk2_trigger_channel: int = 0
    sim: EnergyModel = field(default_factory=EnergyModel)

    @classmethod
    def from_dict(cls, target: str, options: dict[str, Any]) -> "McuConfig":
        """From YAML-style options (``sim`` may be a dict of EnergyModel fields); unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)} - {"target"}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(f"unknown MCU option(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
        opts = dict(options)
        if isinstance(opts.get("sim"), dict):
            sim_fields = {f.name for f in dataclasses.fields(EnergyModel)}
            bad = sorted(set(opts["sim"]) - sim_fields)
            if bad:
                raise ValueError(f"unknown sim option(s) {', '.join(bad)}: use {', '.join(sorted(sim_fields))}")
            opts["sim"] = EnergyModel(**opts["sim"])
        config = cls(target=target, **opts)
        config.validate()
        return config

    def validate(self) -> None:
        if self.target not in MCU_TARGETS:
            raise ValueError(f"target {self.target!r}: use one of {', '.join(MCU_TARGETS)}")
        if self.target == "mcu":
            if not self.dut_port:
                raise ValueError("target mcu needs dut_port: the board's serial port, e.g. /dev/ttyACM0")
            if self.meter not in METERS:
                raise ValueError(f"meter {self.meter!r}: use one of {', '.join(METERS)}")
            if self.meter == "ina226" and not self.meter_port:
                raise ValueError("meter ina226 needs meter_port: the logger's serial port, e.g. /dev/ttyUSB0")
        elif not self.firmware or not Path(self.firmware).is_file():
            kind = "host executable" if self.target == "mcu-sim" else "ELF"
            raise ValueError(f"target {self.target} needs firmware: the built {kind} ({self.firmware!r} not found);"
                             " build it with ffenergy.targets.launch.build_firmware")


@dataclass
class McuSession:
    """An open DUT and meter; ``launcher`` (simulated targets) can ``restart()`` the DUT, i.e. reset it."""

    config: McuConfig
    dut: Dut
    meter: TriggeredMeter
    launcher: HostDut | QemuDut | None = None
    sim_meter: SimMeterProcess | None = None

    @property
    def provenance(self) -> str:
        return self.meter.info.provenance

    def manifest(self) -> dict[str, Any]:
        """What the run manifest records: target, DUT info, meter (with simulated ground truth)."""
        info = self.meter.info
        meter = {"name": info.name, "provenance": info.provenance, "update_period_s": info.update_period_s,
                 **info.details}
        if self.sim_meter is not None:
            meter["ground_truth"] = self.sim_meter.ground_truth
        return {"target": self.config.target, "dut": dataclasses.asdict(self.dut.info_), "meter": meter}


@contextlib.contextmanager
def open_mcu(config: McuConfig, workdir: str | Path | None = None):
    """Open the DUT and meter of ``config``; everything started is stopped on exit."""
    config.validate()
    with contextlib.ExitStack() as stack:
        if config.target == "mcu":
            dut = stack.enter_context(Dut(config.dut_port, timeout_s=config.dut_timeout_s, baudrate=config.dut_baud))
            meter: TriggeredMeter
            if config.meter == "ppk2":
                meter = Ppk2Meter(config.meter_port, mode=config.ppk2_mode, voltage_mv=config.ppk2_voltage_mv,
                                  trigger_channel=config.ppk2_trigger_channel)  # type: ignore[arg-type]
            else:
                meter = Ina226Meter(config.meter_port, config.meter_baud,  # type: ignore[arg-type]
                                    reopen_retries=config.meter_reopen_retries,
                                    reopen_interval_s=config.meter_reopen_interval_s)
            stack.enter_context(meter)
            yield McuSession(config, dut, meter)
            return
        work = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ffmcu-")))
        work.mkdir(parents=True, exist_ok=True)
        sim = stack.enter_context(spawn_sim_meter(work / "meter.tty", work / "trigger.fifo", config.sim))
        launcher = HostDut(config.firmware, trigger=sim.trigger) if config.target == "mcu-sim" \
            else QemuDut(config.firmware, trigger=sim.trigger)
        stack.enter_context(launcher)
        dut = stack.enter_context(Dut(launcher.port, timeout_s=config.dut_timeout_s))
        meter = stack.enter_context(Ina226Meter(str(sim.port), reopen_retries=config.meter_reopen_retries,
                                                reopen_interval_s=config.meter_reopen_interval_s))
        yield McuSession(config, dut, meter, launcher, sim)
