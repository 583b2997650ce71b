"""Benches as Ray custom resources: what a point needs, and what a machine offers.

Names come from the registries: ``bench:<target>`` for each target of a point (``bench:cpu``,
``bench:mcu-qemu``, ...) and ``meter:<meter>`` for the config's host meter when it names one
(``auto`` and ``none`` ask for no meter). Every resource has capacity 1 on the node that offers
it. A real board (an MCU target that is not simulated) is one physical device: a point takes
all of it. Host devices, host meters and simulated benches are shared: a point takes a sliver,
so several points may train at once; their measurement windows never overlap on a node anyway
(:mod:`ffenergy.sweep.exclusive`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ffenergy.config import ExperimentConfig
from ffenergy.meters.registry import METERS
from ffenergy.targets.registry import TARGETS, host_targets, target_status

SHARED = 0.01  # the share of a host or simulated bench one point takes (up to 100 points at once)


def target_resource(target: str) -> str:
    return f"bench:{target}"


def meter_resource(meter: str) -> str:
    return f"meter:{meter}"


def point_resources(cfg: ExperimentConfig) -> dict[str, float]:
    """The custom resources a point's run needs on the node that runs it."""
    needs = {}
    for target in cfg.targets:
        entry = TARGETS.entry(target)
        needs[target_resource(target)] = 1.0 if entry.fact("mcu") and not entry.fact("simulated") else SHARED
    if host_targets(cfg.targets) and cfg.meter not in ("auto", "none"):
        needs[meter_resource(cfg.meter)] = SHARED
    return needs


@dataclass(frozen=True)
class Offer:
    """One resource this machine can offer, or why not."""

    resource: str
    usable: bool
    reason: str


def machine_offers() -> list[Offer]:
    """Every target and host meter of the registries as a resource, usable here or not (and why)."""
    from ffenergy.meters.auto import available_meters

    offers = [Offer(target_resource(name), *target_status(name)) for name in TARGETS.names()]
    offers += [
        Offer(meter_resource(s.name), s.usable, s.reason)
        for s in available_meters()
        if METERS.entry(s.name).fact("host")
    ]
    return offers


def machine_resources(offers: list[Offer]) -> dict[str, float]:
    return {o.resource: 1.0 for o in offers if o.usable}


def ray_start_flags(resources: dict[str, float]) -> str:
    """The ``--resources`` flag of ``ray start`` offering ``resources``."""
    return f"--resources='{json.dumps(resources, sort_keys=True)}'"
