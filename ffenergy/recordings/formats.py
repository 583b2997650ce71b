"""The recording-format registry: one reader module per format, each with ``detect(path) -> bool``
and ``read(path, options) -> Recording`` (imported lazily: some need optional packages).
Fact: ``extra``, the pip extra a reader needs (None: none)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ffenergy.registry import Registry

if TYPE_CHECKING:  # the CLI lists the formats without importing numpy
    from ffenergy.recordings.recording import Recording

FORMATS: Registry[ModuleType] = Registry("recording format")
FORMATS.register(
    "energyrunner",
    "ffenergy.recordings.energyrunner",
    "EEMBC EnergyRunner session folder: trace1-energy.bin, trace1-timestamps.json, log.txt (+ results.txt)",
)
FORMATS.register(
    "energyrunner3",
    "ffenergy.recordings.energyrunner3",
    "EnergyRunner 3.x results.json: energy per sample and exact window sample indices",
)
FORMATS.register(
    "jls", "ffenergy.recordings.jls", "Joulescope .jls v2 file (power or current x voltage, a GPI trigger)", extra="jls"
)
FORMATS.register("ppk2-csv", "ffenergy.recordings.ppk2_csv", "Nordic Power Profiler (PPK2) CSV export")
FORMATS.register(
    "ffenergy-trace", "ffenergy.recordings.trace", "ffenergy's trace.csv (the INA226 / PPK2 drivers' raw stream)"
)


@dataclass(frozen=True)
class ReadOptions:
    """What a user may have to tell a reader that its files do not say."""

    voltage_v: float | None = None  # supply voltage (PPK2 CSV has none; overrides the file's elsewhere)
    board: str | None = None  # the board recorded (else the reader's guess, e.g. from the folder name)
    workload: str | None = None  # what ran (else the reader's, e.g. the EnergyRunner model name)
    sample_rate_hz: float | None = None  # for formats that do not store it (EnergyRunner 3.x: 1 kHz)
    trigger: str | None = None  # the trigger channel: a JLS signal name ("gpi[0]"), a PPK2 logic input ("D0")
    inferences: int | None = None  # inferences per window, for formats that do not record it


def detect(path: Path) -> str:
    """The name of the format of ``path``; a clear error when no reader recognises it."""
    from ffenergy.recordings.recording import RecordingError

    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such file or folder")
    for entry in FORMATS:
        if FORMATS.get(entry.name).detect(path):
            return entry.name
    raise RecordingError(
        f"{path}: not a recording ffenergy reads; expected one of: "
        + "; ".join(f"{e.name} ({e.summary})" for e in FORMATS)
    )


def read_recording(path: Path, fmt: str | None = None, options: ReadOptions | None = None) -> Recording:
    """Read ``path`` with the reader of ``fmt`` (detected when None) and check the result."""
    path = Path(path)
    name = fmt or detect(path)
    options = options or ReadOptions()
    recording: Recording = FORMATS.get(name).read(path, options)
    if options.inferences is not None:
        recording = recording.with_inferences(options.inferences)
    recording.check(str(path))
    return recording
