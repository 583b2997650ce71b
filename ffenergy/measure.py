"""The measurement method (DESIGN.md section 3): windows, repeats, idle baseline.

It knows meters and opaque workloads, never models. For every key (the runner uses
``(procedure, mode)``) it warms the workload up, calibrates how many ``run_once`` calls fill
a window of at least ``max(min_window_s, update_periods_per_window * meter update period)``,
then runs ``repeats`` rounds. Each round measures an idle window (sleep, no work) and then
one window per key in a seeded random order; a last idle window closes the run so drift can
be checked. A work window's idle power is that of the idle window opening its round. Idle
windows last as long as the mean work window so far (the planned length before any).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from tqdm import tqdm

from ffenergy.meters.base import Meter, MeterError, WindowEnergy

Key = Hashable
TOTAL = "total"
IDLE = "idle"  # the procedure and mode of idle windows in windows.csv
T = TypeVar("T")


def _no_sync() -> None:
    return None


@dataclass
class Workload:
    """One thing to measure: ``run_once`` runs one batch and returns ``(n_inferences, macs)``."""

    run_once: Callable[[], tuple[int, int]]
    sync: Callable[[], None] = _no_sync  # e.g. torch.cuda.synchronize; called at both window edges


MAX_WINDOW_S = 3600.0  # a window longer than an hour is a typo (each mode takes at least `repeats` of them)


@dataclass(frozen=True)
class MethodConfig:
    """How windows are sized and repeated: the one definition of the method, its defaults and their
    checks. A run's ``measurement`` section (``config.MeasurementConfig``) is this plus run settings,
    so every field can be set from YAML; errors name that key."""

    repeats: int = 5  # windows per mode
    min_window_s: float = 2.0  # and at least update_periods_per_window meter update periods
    update_periods_per_window: float = 20.0
    warmup_s: float = 0.5
    calibration_fraction: float = 0.25  # calibrate the calls per window on this fraction of a window
    idle: bool = True  # idle windows of matched length before and after each round
    seed: int = 0  # the random order of modes
    meter_timeout_s: float = 60.0  # a meter's start() or stop() taking longer is a hung meter

    def __post_init__(self) -> None:
        if self.repeats < 5:
            raise ValueError("measurement.repeats: invalid value; use an integer >= 5 (repeats give the 95% CI)")
        for name in ("min_window_s", "update_periods_per_window", "calibration_fraction", "meter_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"measurement.{name}: invalid value; use a positive number")
        if self.warmup_s < 0:
            raise ValueError("measurement.warmup_s: invalid value; use a number of seconds >= 0 (0: no warm-up)")
        if self.min_window_s > MAX_WINDOW_S:
            raise ValueError(f"measurement.min_window_s: invalid value; use seconds in (0, {MAX_WINDOW_S:g}]")

    def window_s(self, update_period_s: float) -> float:
        """Shortest window allowed for a meter with this counter update period."""
        return max(self.min_window_s, self.update_periods_per_window * update_period_s)


@dataclass(frozen=True)
class WindowResult:
    """One measured window. ``joules`` and ``idle_power_w`` are per domain plus ``"total"``.

    Idle windows have ``kind == "idle"``, ``key is None`` and ``repeat`` = their index;
    their ``idle_power_w`` is their own power, so their net energy is zero.
    """

    key: Key | None
    repeat: int
    kind: Literal["work", "idle"]
    n_inferences: int
    macs: int
    duration_s: float
    joules: dict[str, float]
    idle_power_w: dict[str, float]

    @property
    def net_joules(self) -> dict[str, float]:
        return {d: j - self.idle_power_w.get(d, 0.0) * self.duration_s for d, j in self.joules.items()}

    def domain_rows(self) -> list[dict[str, Any]]:
        """One ``windows.csv``-shaped row per domain (the caller adds target/meter/procedure/mode)."""
        net = self.net_joules
        return [
            {
                "domain": d,
                "repeat": self.repeat,
                "n_inferences": self.n_inferences,
                "duration_s": self.duration_s,
                "energy_j": j,
                "idle_power_w": self.idle_power_w.get(d, 0.0),
                "net_energy_j": net[d],
            }
            for d, j in self.joules.items()
        ]


def window_rows(window: WindowResult, target: str, meter: str) -> list[dict[str, Any]]:
    """``windows.csv`` rows of a window whose key is ``(procedure, mode)`` (idle windows: ``idle``, ``idle``)."""
    procedure, mode = (IDLE, IDLE) if window.key is None else cast(tuple[str, str], window.key)
    return [
        {"target": target, "meter": meter, "procedure": procedure, "mode": mode, **row} for row in window.domain_rows()
    ]


def next_idle_index(rows: Iterable[Mapping[str, str]], target: str, meter: str) -> int:
    """The index the next idle window of (target, meter) takes after the ``windows.csv`` rows on disk."""
    return sum(
        1 for r in rows if (r["target"], r["meter"], r["procedure"], r["domain"]) == (target, meter, IDLE, TOTAL)
    )


def _with_total(energy: WindowEnergy) -> dict[str, float]:
    if TOTAL in energy.joules:
        raise MeterError(f"meter reported a domain named {TOTAL!r}, which the method reserves for the sum")
    return {**energy.joules, TOTAL: energy.total_j}


def call_with_timeout(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run ``fn`` in a daemon thread; raise :class:`MeterError` if it does not return in time."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"ffenergy-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise MeterError(
            f"{what} did not return within {timeout_s:g} s: the meter hangs "
            "(check its connection/driver, or raise measurement.meter_timeout_s in the config)"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def _call(workload: Workload, key: Key) -> tuple[int, int]:
    result = workload.run_once()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"workload {key!r}: run_once must return (n_inferences, macs), got {result!r}")
    n, macs = int(result[0]), int(result[1])
    if n <= 0 or macs < 0:
        raise ValueError(
            f"workload {key!r}: run_once returned n_inferences={n}, macs={macs}; need n_inferences > 0 and macs >= 0"
        )
    return n, macs


def calls_per_window(workload: Workload, key: Key, window_s: float, method: MethodConfig) -> int:
    """Warm up, then return how many ``run_once`` calls fill ``window_s``."""
    t_end = time.perf_counter() + method.warmup_s
    _call(workload, key)
    while time.perf_counter() < t_end:
        _call(workload, key)
    workload.sync()
    calls, t0 = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - t0 < method.calibration_fraction * window_s:
        _call(workload, key)
        calls += 1
    workload.sync()
    per_call = (time.perf_counter() - t0) / calls
    return max(1, math.ceil(window_s / per_call)) if per_call > 0 else calls


@dataclass
class _Run:
    meter: Meter
    method: MethodConfig
    window_s: float
    on_window: Callable[[WindowResult], None] | None
    results: list[WindowResult] = field(default_factory=list)
    work_s: list[float] = field(default_factory=list)

    def _open(self) -> Any:
        return call_with_timeout(self.meter.start, self.method.meter_timeout_s, f"{self.meter.info.name}.start()")

    def _close(self, token: Any, macs: int) -> WindowEnergy:
        return call_with_timeout(
            lambda: self.meter.stop(token, macs), self.method.meter_timeout_s, f"{self.meter.info.name}.stop()"
        )

    def _emit(self, result: WindowResult) -> None:
        self.results.append(result)
        if self.on_window is not None:
            self.on_window(result)

    def idle(self, index: int) -> dict[str, float]:
        token = self._open()
        time.sleep(sum(self.work_s) / len(self.work_s) if self.work_s else self.window_s)
        energy = self._close(token, 0)
        joules = _with_total(energy)
        power = {d: j / energy.duration_s for d, j in joules.items()}
        self._emit(WindowResult(None, index, "idle", 0, 0, energy.duration_s, joules, power))
        return power

    def work(self, key: Key, repeat: int, workload: Workload, n_calls: int, idle_w: dict[str, float]) -> None:
        """Run the calibrated calls, then small top-ups until the synced window is long enough.

        The length is checked after a device sync: on an asynchronous device (CUDA) the host
        runs ahead of the work by a whole launch queue.
        """
        n_inf = macs = 0
        chunk = n_calls
        workload.sync()
        token = self._open()
        t0 = time.perf_counter()
        while True:
            for _ in range(chunk):
                n, m = _call(workload, key)
                n_inf, macs = n_inf + n, macs + m
            workload.sync()
            if time.perf_counter() - t0 >= self.window_s:
                break
            chunk = max(1, n_calls // 20)
        energy = self._close(token, macs)
        self.work_s.append(energy.duration_s)
        self._emit(WindowResult(key, repeat, "work", n_inf, macs, energy.duration_s, _with_total(energy), idle_w))


def measure(
    meter: Meter,
    workloads: Mapping[Key, Workload],
    method: MethodConfig = MethodConfig(),
    done: Collection[tuple[Key, int]] = (),
    on_window: Callable[[WindowResult], None] | None = None,
    first_idle_index: int = 0,
    progress: bool = False,
) -> list[WindowResult]:
    """Measure every workload ``method.repeats`` times; return all windows (idle ones included).

    ``done`` holds ``(key, repeat)`` pairs already on disk (a resumed run skips them);
    ``on_window`` is called after every window so the caller can persist it at once.
    ``first_idle_index`` numbers the idle windows on from those a resumed run already has;
    ``progress`` shows a bar of windows done (work and idle) with its ETA.
    Without idle windows (``method.idle=False``) idle power is taken as zero: net == gross.
    """
    if not workloads:
        raise ValueError("measure: no workloads given")
    done = set(done)
    run = _Run(meter, method, method.window_s(meter.info.update_period_s), on_window)
    todo = [[k for k in workloads if (k, r) not in done] for r in range(method.repeats)]
    if not any(todo):
        return []
    n_calls = {
        k: calls_per_window(workloads[k], k, run.window_s, method) for k in workloads if any(k in t for t in todo)
    }
    rng = random.Random(method.seed)
    idle_w: dict[str, float] = {}
    idle_index = first_idle_index
    rounds = [r for r in todo if r]
    total = sum(map(len, rounds)) + (len(rounds) + 1 if method.idle else 0)
    with tqdm(total=total, desc="measuring", unit="window", disable=not progress) as bar:
        for repeat, keys in enumerate(todo):
            order = list(keys)
            rng.shuffle(order)
            if not order:
                continue
            if method.idle:
                idle_w = run.idle(idle_index)
                idle_index += 1
                bar.update()
            for key in order:
                run.work(key, repeat, workloads[key], n_calls[key], idle_w)
                bar.update()
        if method.idle:
            run.idle(idle_index)
            bar.update()
    return run.results
