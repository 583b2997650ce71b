"""A meter over the power log a bench writes: a CSV file, a header row, then ``t_s,power_w`` rows
appended as the bench samples (``t_s`` on this host's wall clock, ``time.time()``; any other
columns are ignored).

A window's energy is the integral of power over it (trapezoids between the logged samples, the
edges interpolated), so the meter waits, up to ``wait_s``, for the log to reach the window's end.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffenergy.meters.base import Meter, MeterError, MeterInfo, MeterUnavailable, WindowEnergy

DOMAIN = "bench"


def energy_between(t: np.ndarray, p: np.ndarray, t0: float, t1: float) -> float:
    """Joules of the power samples ``p`` (W) at times ``t`` (s, increasing) between ``t0`` and ``t1``."""
    inside = (t > t0) & (t < t1)
    edges = np.concatenate([[t0], t[inside], [t1]])
    return float(np.trapezoid(np.interp(edges, t, p), edges))


@dataclass
class LogTail:
    """The rows of a growing CSV log, read incrementally (a torn last line waits for the next read)."""

    path: Path
    time_column: str
    power_column: str
    t: list[float] = field(default_factory=list)
    p: list[float] = field(default_factory=list)
    _offset: int = 0
    _columns: tuple[int, int] | None = None

    def read(self) -> None:
        with open(self.path, newline="") as fh:
            fh.seek(self._offset)
            text = fh.read()
        complete = text[: text.rfind("\n") + 1]
        self._offset += len(complete.encode())
        for row in csv.reader(complete.splitlines()):
            if self._columns is None:
                self._columns = self._find(row)
            elif row:
                self.t.append(float(row[self._columns[0]]))
                self.p.append(float(row[self._columns[1]]))

    def _find(self, header: list[str]) -> tuple[int, int]:
        missing = [c for c in (self.time_column, self.power_column) if c not in header]
        if missing:
            raise MeterUnavailable(f"csvlog: {self.path} has no column {', '.join(missing)} (header: {header})")
        return header.index(self.time_column), header.index(self.power_column)

    def drop_before(self, t0: float) -> None:
        """Forget rows before the last one at or before ``t0`` (a window starting at ``t0`` needs it)."""
        keep = max(0, int(np.searchsorted(self.t, t0, side="right")) - 1)
        del self.t[:keep], self.p[:keep]


class CsvLogMeter(Meter):
    """Energy from a bench's CSV power log (provenance: measured)."""

    def __init__(
        self,
        path: str | None = None,
        time_column: str = "t_s",
        power_column: str = "power_w",
        update_period_s: float = 0.01,
        wait_s: float = 2.0,
    ):
        if path is None:
            raise MeterUnavailable("csvlog: no log file; set meter_options: {csvlog: {path: <the bench's CSV log>}}")
        if not Path(path).is_file():
            raise MeterUnavailable(f"csvlog: {path} does not exist; start the bench's logger first")
        self.update_period_s = update_period_s
        self.wait_s = wait_s
        self.log = LogTail(Path(path).resolve(), time_column, power_column)
        self.log.read()

    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="csvlog",
            provenance="measured",
            domains=(DOMAIN,),
            update_period_s=self.update_period_s,
            details={"path": str(self.log.path), "columns": [self.log.time_column, self.log.power_column]},
        )

    def start(self) -> float:
        t0 = time.time()
        self.log.read()
        self.log.drop_before(t0)
        return t0

    def stop(self, token: float, work_macs: int = 0) -> WindowEnergy:
        t1 = time.time()
        deadline = time.monotonic() + self.wait_s
        while True:
            self.log.read()
            if self.log.t and self.log.t[0] <= token and self.log.t[-1] >= t1:
                break
            if time.monotonic() > deadline:
                span = f"{self.log.t[0]:.3f}..{self.log.t[-1]:.3f}" if self.log.t else "no rows"
                raise MeterError(
                    f"csvlog: {self.log.path} does not cover the window {token:.3f}..{t1:.3f} s ({span}) "
                    f"after waiting {self.wait_s:g} s; is the bench still logging?"
                )
            time.sleep(self.update_period_s)
        joules = energy_between(np.array(self.log.t), np.array(self.log.p), token, t1)
        return WindowEnergy(joules={DOMAIN: joules}, duration_s=t1 - token)
