"""The INA226 logger sketch: compiles for the ATmega328P, boots in simavr, and (with a modelled INA226
on the simulated I2C bus and a scripted trigger) streams frames the host driver measures exactly.
The AVR tools are optional: these tests skip, naming the apt-get line, when they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tty
from pathlib import Path

import pytest

from ffenergy.meters.ina226 import Ina226Meter
from ffenergy.meters.triggered import Token

METER_DIR = Path(__file__).resolve().parents[2] / "hardware" / "meter"
CORE = Path("/usr/share/arduino/hardware/arduino/avr/cores/arduino")
APT = "apt-get install -y --no-install-recommends arduino-core-avr gcc-avr avr-libc simavr libsimavr-dev"


@pytest.fixture(scope="module")
def elf(tmp_path_factory):
    if not (shutil.which("avr-g++") and CORE.is_dir()):
        pytest.skip(f"the AVR toolchain or Arduino core is missing: {APT}")
    out = tmp_path_factory.mktemp("avr")
    proc = subprocess.run(["make", "-s", "-C", str(METER_DIR), f"OUT={out}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    return out / "ina226_logger.elf"


def test_sketch_fits_an_uno(elf):
    sizes = subprocess.run(["avr-size", str(elf)], capture_output=True, text=True, check=True).stdout.split()
    text, data, bss = (int(v) for v in sizes[6:9])
    assert text + data <= 32256 and data + bss <= 2048 - 512  # leave RAM for the stack


def test_sketch_boots_and_reports_a_missing_ina226(elf):
    if not shutil.which("simavr"):
        pytest.skip(f"simavr is missing: {APT}")
    proc = subprocess.run(
        ["timeout", "1", "simavr", "-m", "atmega328p", "-f", "16000000", str(elf)], capture_output=True, text=True
    )
    out = proc.stdout + proc.stderr
    assert "#FFM1 device=ina226-logger source=hardware fw=1.0.0 error=no-INA226-answering-at-0x40" in out


def test_sketch_streams_what_the_driver_measures_with_a_modelled_ina226(elf):
    if not Path("/usr/include/simavr/sim_avr.h").is_file():
        pytest.skip(f"libsimavr-dev is missing: {APT}")
    proc = subprocess.run(
        ["make", "-s", "-C", str(METER_DIR), f"OUT={elf.parent}", "simavr-model"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    master, slave = os.openpty()
    tty.setraw(slave)
    # idle 2 mA, active 10 mA at 3.3 V; trigger high 120 ms of every 300 ms; 1.5 s of AVR time
    sim = subprocess.Popen(
        [str(elf.parent / "ina226_sim"), str(elf), "2", "10", "3.3", "300", "120", "1.5"],
        stdin=master,
        stdout=master,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Ina226Meter(os.ttyname(slave), info_timeout_s=10) as meter:
            assert meter.info.provenance == "measured" and meter.header["period_us"] == "1120"
            first = meter.next_window(Token(0, 0), timeout_s=20)
            second = meter.next_window(Token(first.end_index, 0), timeout_s=20)
            for w in (first, second):
                assert w.duration_s == pytest.approx(0.120, abs=2 * 1.12e-3)
                assert w.idle_power_w == pytest.approx(3.3 * 2e-3)
                assert w.net_j == pytest.approx(3.3 * 8e-3 * w.duration_s)
            assert second.start_s - first.start_s == pytest.approx(0.300, abs=2 * 1.12e-3)
            assert (meter.stats.crc_errors, meter.stats.lost_samples, meter.stats.garbage_bytes) == (0, 0, 0)
    finally:
        sim.kill()
        sim.wait()
        os.close(master)
        os.close(slave)
