"""Measure any callable with ffenergy's method: the public measurement API.

``ffenergy run`` measures its own learners; this measures yours. The method is the one of
docs/DESIGN.md section 3 and ``ffenergy.measure`` (this module only drives it): the callable is
warmed up, repeated until a window lasts at least ``max(min_window_s, 20 counter update periods)``,
measured ``repeats`` times in a seeded random order among the callables of one session, between
idle windows of matched length; CUDA is synchronised at both edges of every window when the work
runs there. The answer is gross and net (idle subtracted) joules per inference with 95% CIs, the
idle drift across rounds, and where the numbers come from (meter, provenance, versions, host).

One callable::

    from ffenergy.profiler import profile

    result = profile(lambda: model(batch), inferences=len(batch), meter="rapl")
    print(result.net_j_per_inference, "+-", result.net_ci95_j)

Several, interleaved in random order, and appended to a result directory's ``windows.csv`` and
``manifest.json`` (``ffenergy.analysis.load.load_frames`` reads them back)::

    with Profiler(meter="nvml", out="results/my-model") as session:
        found = session.compare({"small": run_small, "large": run_large}, inferences=256)

``fn`` runs one batch of ``inferences`` inferences; its return value is ignored. ``macs`` is the
work one call does: the simulated meter prices it (``joules_per_mac``), real meters ignore it and
it is reported per inference. Stable API: :func:`profile`, :class:`Profiler` (``profile``,
``compare``), :class:`Profile`; docs/DESIGN.md section 1.4.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ffenergy.analysis.stats import idle_drift, summarise
from ffenergy.config import MeasurementConfig
from ffenergy.contract import WINDOWS_COLUMNS, CsvAppender, read_rows
from ffenergy.measure import TOTAL, MethodConfig, WindowResult, Workload, measure, next_idle_index, window_rows
from ffenergy.meters.auto import make_meter
from ffenergy.meters.base import Meter

log = logging.getLogger("ffenergy.profiler")

DEFAULT_MODE = "full"


@dataclass(frozen=True)
class Profile:
    """What one callable costs per inference, and how that was measured.

    ``net_*`` subtracts the idle power of the round's opening idle window (what the work adds);
    ``gross_*`` does not (what the device drew). ``*_ci95_j`` are the half-widths of 95% Student-t
    intervals over the ``n_repeats`` windows. ``idle_drift_max`` is the largest relative change
    of idle power between consecutive idle windows (None without idle windows); ``drift_ok`` is
    False when it passed ``max_idle_drift``, and the net figures then carry up to that error.
    """

    name: str
    mode: str
    target: str
    meter: str
    provenance: str  # the meter's: measured, estimated or simulated
    n_repeats: int
    inferences_per_window: float
    window_s: float  # the shortest window the method allows on this meter
    mean_window_s: float
    macs_per_inference: float
    gross_j_per_inference: float
    gross_ci95_j: float
    net_j_per_inference: float
    net_ci95_j: float
    idle_power_w: float | None  # mean over the session's idle windows
    idle_drift_max: float | None
    drift_ok: bool
    windows: tuple[WindowResult, ...] = field(repr=False)  # this callable's work windows and the session's idle ones
    record: dict[str, Any] = field(repr=False, default_factory=dict)  # meter, method, sync, versions, host


def _cuda_sync() -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` when this process has started CUDA (the work may be queued there)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        sync: Callable[[], None] = torch.cuda.synchronize
        return sync
    return None


class Profiler:
    """A measurement session on one meter: opened on enter, closed on exit.

    ``meter`` is a registered name (``ffenergy meters`` lists them, plug-ins included; ``auto``
    picks the best readable one) with ``meter_options``, or a :class:`~ffenergy.meters.base.Meter`
    you own (it is not closed). ``method`` defaults to ``ffenergy run``'s (a config's default
    ``measurement`` section). ``sync`` is called at both edges of every window; by default it is
    ``torch.cuda.synchronize`` when CUDA has been initialised in this process, else nothing.
    ``target`` labels the device in the result files (default ``cuda`` when syncing CUDA, else
    ``cpu``). With ``out``, every window is appended to ``out/windows.csv`` as it closes and the
    session is recorded in ``out/manifest.json``.
    """

    def __init__(
        self,
        meter: str | Meter = "auto",
        meter_options: Mapping[str, Any] | None = None,
        method: MethodConfig | None = None,
        max_idle_drift: float | None = None,
        sync: Callable[[], None] | None = None,
        target: str | None = None,
        out: str | Path | None = None,
        progress: bool = False,
    ):
        defaults = MeasurementConfig()
        self.method = method if method is not None else defaults.method()
        self.max_idle_drift = defaults.max_idle_drift if max_idle_drift is None else max_idle_drift
        if not self.max_idle_drift > 0:
            raise ValueError(f"max_idle_drift must be a relative change > 0, e.g. 0.05, got {self.max_idle_drift!r}")
        self._meter_spec = meter
        self._meter_options = dict(meter_options or {})
        self._meter: Meter | None = None
        self._owns_meter = isinstance(meter, str)
        self._sync = sync
        self._target = target
        self.out = Path(out) if out is not None else None
        self.progress = progress

    def __enter__(self) -> Profiler:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> Meter:
        """The session's meter, built on first use."""
        if self._meter is None:
            spec = self._meter_spec
            self._meter = make_meter(spec, **self._meter_options) if isinstance(spec, str) else spec
        return self._meter

    def close(self) -> None:
        if self._meter is not None and self._owns_meter:
            self._meter.close()
        self._meter = None

    def profile(
        self,
        fn: Callable[[], object],
        name: str = "workload",
        inferences: int = 1,
        macs: int = 0,
        mode: str = DEFAULT_MODE,
    ) -> Profile:
        """Measure ``fn`` alone (one call = one batch of ``inferences`` inferences of ``macs`` MACs)."""
        return self.compare({name: fn}, inferences, macs, mode)[name]

    def compare(
        self,
        fns: Mapping[str, Callable[[], object]],
        inferences: int | Mapping[str, int] = 1,
        macs: int | Mapping[str, int] = 0,
        mode: str = DEFAULT_MODE,
    ) -> dict[str, Profile]:
        """Measure several callables in one session, their windows in a seeded random order per round.

        ``inferences`` and ``macs`` are one per call for all, or a mapping by name.
        """
        meter = self.open()
        info = meter.info
        started = _now()
        sync = self._sync or _cuda_sync()
        target = self._target or ("cuda" if sync is not None and self._sync is None else "cpu")
        workloads: dict[Hashable, Workload] = {
            (name, mode): Workload(_counted(fn, _per(inferences, name), _per(macs, name)), sync or _no_sync)
            for name, fn in fns.items()
        }
        existing = self._check_out(target, info.name, workloads)
        appender = CsvAppender(self.out / "windows.csv", WINDOWS_COLUMNS) if self.out is not None else None
        log.info(
            "profiling %s on meter %s (%s): %d repeats of windows >= %.3g s",
            ", ".join(fns),
            info.name,
            info.provenance,
            self.method.repeats,
            self.method.window_s(info.update_period_s),
        )
        try:
            windows = measure(
                meter,
                workloads,
                self.method,
                on_window=None
                if appender is None
                else lambda w: appender.write_many(window_rows(w, target, info.name)),
                first_idle_index=next_idle_index(existing, target, info.name),
                progress=self.progress,
            )
        finally:
            if appender is not None:
                appender.close()
        record = {**self._record(meter, sync, target), "started": started}
        if self.out is not None:
            _record_session(self.out, record, sorted(fns), mode)
        return self._profiles(windows, target, record, mode)

    def _check_out(self, target: str, meter: str, workloads: Mapping[Any, Workload]) -> list[dict[str, str]]:
        """The windows already in ``out``; a (name, mode) measured there before is refused, not mixed."""
        if self.out is None:
            return []
        self.out.mkdir(parents=True, exist_ok=True)
        existing = read_rows(self.out / "windows.csv")
        clash = sorted({(r["procedure"], r["mode"]) for r in existing if (r["target"], r["meter"]) == (target, meter)})
        again = [f"{name}/{mode}" for name, mode in clash if (name, mode) in workloads]
        if again:
            raise ValueError(
                f"{self.out}: {', '.join(again)} already measured on {target}/{meter}; "
                "give another name (or mode) or another out directory"
            )
        return existing

    def _record(self, meter: Meter, sync: Callable[[], None] | None, target: str) -> dict[str, Any]:
        from ffenergy.experiment.manifest import host_info, versions

        info = meter.info
        return {
            "target": target,
            "meter": {
                "name": info.name,
                "provenance": info.provenance,
                "domains": list(info.domains),
                "update_period_s": info.update_period_s,
                "details": info.details,
            },
            "method": {**vars(self.method), "window_s": self.method.window_s(info.update_period_s)},
            "max_idle_drift": self.max_idle_drift,
            "sync": "custom" if self._sync else "cuda" if sync is not None else "none",
            "versions": versions(),
            "host": host_info(),
            "finished": _now(),
        }

    def _profiles(
        self, windows: list[WindowResult], target: str, record: dict[str, Any], mode: str
    ) -> dict[str, Profile]:
        info = record["meter"]
        idle = [w for w in windows if w.kind == "idle"]
        drift = idle_drift([(w.repeat, w.idle_power_w[TOTAL]) for w in idle], self.max_idle_drift)
        if drift.moved:
            log.warning(
                "idle power drifted by more than %.0f%% (%s); the net energies carry up to that error",
                100 * self.max_idle_drift,
                ", ".join(drift.moved),
            )
        idle_w = sum(w.idle_power_w[TOTAL] for w in idle) / len(idle) if idle else None
        found: dict[str, Profile] = {}
        for key, s in summarise(windows, TOTAL).items():
            work = [w for w in windows if w.key == key]
            name = work[0].key[0]  # type: ignore[index]  # keys are (name, mode)
            found[name] = Profile(
                name=name,
                mode=mode,
                target=target,
                meter=info["name"],
                provenance=info["provenance"],
                n_repeats=s.n_repeats,
                inferences_per_window=sum(w.n_inferences for w in work) / len(work),
                window_s=record["method"]["window_s"],
                mean_window_s=s.mean_duration_s,
                macs_per_inference=s.macs_per_inference,
                gross_j_per_inference=s.gross_j_per_inference,
                gross_ci95_j=s.gross_ci95_j,
                net_j_per_inference=s.net_j_per_inference,
                net_ci95_j=s.net_ci95_j,
                idle_power_w=idle_w,
                idle_drift_max=drift.max_abs,
                drift_ok=drift.ok,
                windows=(*work, *idle),
                record=record,
            )
        return found


def _now() -> str:
    from ffenergy.experiment.manifest import now_iso

    return now_iso()


def _no_sync() -> None:
    return None


def _per(value: int | Mapping[str, int], name: str) -> int:
    return value[name] if isinstance(value, Mapping) else value


def _counted(fn: Callable[[], object], inferences: int, macs: int) -> Callable[[], tuple[int, int]]:
    """``fn`` as a ``Workload.run_once``: one call, then its declared counts."""
    if inferences <= 0 or macs < 0:
        raise ValueError(f"inferences must be > 0 and macs >= 0 per call, got {inferences} and {macs}")

    def run_once() -> tuple[int, int]:
        fn()
        return inferences, macs

    return run_once


def _record_session(out: Path, record: dict[str, Any], names: list[str], mode: str) -> None:
    """Add the session to ``out/manifest.json`` (created as a result directory's manifest if absent)."""
    from ffenergy.experiment.manifest import Manifest

    path = out / "manifest.json"
    if path.is_file():
        manifest = Manifest.load(path)
    else:
        config = {"name": "profile", "data": {"dataset": ""}}
        manifest = Manifest.create(path, out.name, config, "", record["method"]["seed"])
        manifest.data["stages"] = {"measure": "done"}
    meter = {"target": record["target"], **record["meter"]}
    meters = [m for m in manifest.data["meters"] if (m["target"], m["name"]) != (meter["target"], meter["name"])]
    sessions = manifest.data.get("profiles", [])
    manifest.update(
        meters=[*meters, meter],
        profiles=[*sessions, {"names": names, "mode": mode, **{k: v for k, v in record.items() if k != "meter"}}],
        finished=record["finished"],
    )


def profile(
    fn: Callable[[], object],
    name: str = "workload",
    inferences: int = 1,
    macs: int = 0,
    meter: str | Meter = "auto",
    meter_options: Mapping[str, Any] | None = None,
    method: MethodConfig | None = None,
    max_idle_drift: float | None = None,
    sync: Callable[[], None] | None = None,
    target: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> Profile:
    """Measure ``fn`` with ffenergy's method on ``meter``: ``Profiler(...).profile(fn, ...)`` in one call."""
    with Profiler(meter, meter_options, method, max_idle_drift, sync, target, out, progress) as session:
        return session.profile(fn, name, inferences, macs)
