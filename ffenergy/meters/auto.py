"""Build a meter by name, list what works here and why not, pick the best.

``auto`` tries, best first: ``nvml`` (only when a GPU is the target), ``rapl``, then the
``codecarbon`` estimate. It never falls back to the simulator, which is only used by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ffenergy.meters.base import Meter, MeterError, MeterUnavailable
from ffenergy.meters.registry import METERS

AUTO_ORDER_GPU = ("nvml", "rapl", "codecarbon")
AUTO_ORDER_CPU = ("rapl", "codecarbon")


@dataclass(frozen=True)
class MeterStatus:
    """One line of ``ffenergy meters``."""

    name: str
    provenance: str
    usable: bool
    reason: str


def _meter_class(name: str) -> type[Meter]:
    try:
        return METERS.get(name)
    except ImportError as exc:
        raise MeterUnavailable(f"{name}: cannot import {METERS.entry(name).target}: {exc}") from exc


def make_meter(name: str, **options: Any) -> Meter:
    """Build the meter called ``name`` (``auto`` picks one; see :func:`auto_meter`)."""
    if name == "auto":
        return auto_meter(**options)[0]
    if name not in METERS:
        raise ValueError(f"unknown meter {name!r}; choose one of: auto, {', '.join(METERS.names())}")
    check_meter_options(name, options)
    return _meter_class(name)(**options)


def check_meter_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ValueError when ``options`` are not keyword arguments the meter ``name`` takes."""
    cls = _meter_class(name)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        params = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise ValueError(f"meter {name!r}: bad options {sorted(options)} ({exc}); it takes {params}") from exc


def _probe(name: str, options: Mapping[str, Any]) -> tuple[Meter | None, MeterStatus]:
    entry = METERS.entry(name)
    provenance = entry.fact("provenance", "?")  # a plug-in may not say
    if entry.fact("needs_port") and not options:
        try:  # a meter that can say where to look names its candidate ports
            candidates = getattr(_meter_class(name), "port_candidates", None)
            where = f" ({candidates()})" if callable(candidates) else ""
        except (MeterError, ImportError, OSError):
            where = ""
        return None, MeterStatus(name, provenance, False, f"not probed: {entry.summary}; give its port option{where}")
    try:
        meter = make_meter(name, **options)
    except (MeterError, ValueError) as exc:
        return None, MeterStatus(name, provenance, False, str(exc).splitlines()[0])
    info = meter.info
    return meter, MeterStatus(name, info.provenance, True, f"{entry.summary}; domains {', '.join(info.domains)}")


def available_meters(options: Mapping[str, Mapping[str, Any]] | None = None) -> list[MeterStatus]:
    """Every known meter: usable here or not, and why. ``options`` maps meter name -> its options."""
    statuses = []
    for name in METERS.names():
        meter, status = _probe(name, (options or {}).get(name, {}))
        if meter is not None:
            meter.close()
        statuses.append(status)
    return statuses


def auto_meter(
    gpu: int | None = None, options: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Meter, list[MeterStatus]]:
    """The best usable meter (``nvml`` first when ``gpu`` is a GPU index) and why each was or was not taken."""
    options = dict(options or {})
    if gpu is not None:
        options["nvml"] = {"index": gpu, **options.get("nvml", {})}
    chosen: Meter | None = None
    table = []
    for name in AUTO_ORDER_GPU if gpu is not None else AUTO_ORDER_CPU:
        if chosen is not None:
            table.append(
                MeterStatus(name, METERS.entry(name).fact("provenance"), False, "not tried: a better meter was usable")
            )
            continue
        chosen, status = _probe(name, options.get(name, {}))
        table.append(
            MeterStatus(name, status.provenance, status.usable, ("chosen by auto: " if chosen else "") + status.reason)
        )
    if chosen is None:
        lines = "\n".join(f"  {s.name}: {s.reason}" for s in table)
        raise MeterUnavailable(
            f"meter auto: no usable meter on this machine:\n{lines}\n"
            "Fix one of the above, or run with --meter simulated (labelled simulated)."
        )
    return chosen, table
