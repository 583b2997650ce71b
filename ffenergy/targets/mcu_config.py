"""How to reach an MCU target's DUT and meter (``mcu.options`` of the config), validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffenergy.meters.registry import mcu_meter_choices
from ffenergy.sim.model import EnergyModel
from ffenergy.sim.profiles import PROFILES, profile
from ffenergy.targets.registry import TARGETS


@dataclass(frozen=True)
class McuConfig:
    """How to reach the DUT and its meter. Fields unused by a target are ignored."""

    target: str = "mcu-sim"
    firmware: str | None = None  # mcu-sim: host executable; mcu-qemu: ELF (ffenergy.firmware.launch.build_firmware)
    dut_port: str | None = None  # mcu: the board's serial port
    dut_baud: int = 115200
    dut_timeout_s: float = 5.0
    meter: str = "ina226"  # mcu: ina226 | ppk2 | lpm01a | joulescope (the simulated targets use the INA226 simulator)
    meter_port: str | None = None  # mcu: the logger's port; PPK2: None = first found; joulescope: serial number
    meter_baud: int | None = None  # INA226: None = the logger's default
    meter_reopen_retries: int = 10  # INA226: reopen tries after the port vanishes
    meter_reopen_interval_s: float = 0.5
    ppk2_mode: str = "source"
    ppk2_voltage_mv: int = 3300
    ppk2_trigger_channel: int = 0
    sim: EnergyModel = field(default_factory=EnergyModel)
    sim_profile: str | None = None  # the board profile ``sim`` was built from (sim.profiles), if any
    sim_scale: float = 1.0  # its calibration scale (1: the datasheet-anchored profile as it is)

    @classmethod
    def from_dict(cls, target: str, options: dict[str, Any]) -> McuConfig:
        """From YAML-style options (``sim`` may be a dict of EnergyModel fields); unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)} - {"target", "sim_profile", "sim_scale"}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(f"unknown MCU option(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
        opts = dict(options)
        if isinstance(opts.get("sim"), dict):
            sim = dict(opts["sim"])
            sim_fields = {f.name for f in dataclasses.fields(EnergyModel)}
            bad = sorted(set(sim) - sim_fields - {"profile", "scale"})
            if bad:
                raise ValueError(
                    f"unknown sim option(s) {', '.join(bad)}: use profile ({', '.join(PROFILES)}), scale, or"
                    f" {', '.join(sorted(sim_fields))}"
                )
            name, scale = sim.pop("profile", None), float(sim.pop("scale", 1.0))
            if name is None and scale != 1.0:
                raise ValueError("sim.scale calibrates a board profile: give sim.profile too")
            opts["sim"] = profile(name).model(scale, **sim) if name else EnergyModel(**sim)
            opts["sim_profile"], opts["sim_scale"] = name, scale
        config = cls(target=target, **opts)
        config.validate()
        return config

    def validate(self) -> None:
        mcu_targets = [e.name for e in TARGETS if e.fact("mcu")]
        if self.target not in mcu_targets:
            raise ValueError(f"target {self.target!r}: use one of {', '.join(mcu_targets)}")
        if self.target == "mcu":
            if not self.dut_port:
                raise ValueError("target mcu needs dut_port: the board's serial port, e.g. /dev/ttyACM0")
            if self.meter not in mcu_meter_choices():
                raise ValueError(f"meter {self.meter!r}: use one of {', '.join(mcu_meter_choices())}")
            if self.meter == "ina226" and not self.meter_port:
                raise ValueError("meter ina226 needs meter_port: the logger's serial port, e.g. /dev/ttyUSB0")
        elif not self.firmware or not Path(self.firmware).is_file():
            kind = "host executable" if self.target == "mcu-sim" else "ELF"
            raise ValueError(
                f"target {self.target} needs firmware: the built {kind} ({self.firmware!r} not found);"
                " build it with ffenergy.firmware.launch.build_firmware"
            )

    def meter_options(self, meter: str | None = None) -> dict[str, Any]:
        """Constructor options of ``meter`` (default: the configured one) from these fields."""
        name = meter or self.meter
        if name == "ppk2":
            return {
                "port": self.meter_port,
                "mode": self.ppk2_mode,
                "voltage_mv": self.ppk2_voltage_mv,
                "trigger_channel": self.ppk2_trigger_channel,
            }
        if name == "joulescope":  # found on USB by its library; meter_port names one by serial number
            return {"device": self.meter_port}
        options: dict[str, Any] = {
            "port": self.meter_port,
            "reopen_retries": self.meter_reopen_retries,
            "reopen_interval_s": self.meter_reopen_interval_s,
        }
        if self.meter_baud is not None:
            options["baudrate"] = self.meter_baud
        return options
