"""Attribution, written by the summary stage: attribution.json, one fit per (target, meter, procedure) of
energy against MACs across the depth-k modes, with the light energy it predicts; MCU targets add their
per-sample fits."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ffenergy.analysis.attribution import attribute, exit_distribution, windows_from_rows
from ffenergy.analysis.mcu_savings import early_exit_savings, light_reductions
from ffenergy.analysis.per_sample import per_sample_attribution
from ffenergy.experiment.summary_stage import Summary
from ffenergy.learners.base import Learner
from ffenergy.targets.registry import TARGETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttributionInput:
    """What attribution.json is computed from."""

    samples: list[dict[str, str]]
    windows: list[dict[str, str]]
    summary: Summary
    learners: Mapping[str, Learner]
    reference: Mapping[str, str]  # per procedure: the procedure whose full mode is its baseline
    mcu_meters: Mapping[str, dict[str, Any]]  # per MCU target: its meter's manifest entry


def attribution(inp: AttributionInput) -> list[dict[str, Any]]:
    """The fits of every (target, meter, procedure) with work windows; a key that cannot be fitted is logged."""
    light = {(r.target, r.meter, r.procedure): r for r in inp.summary.rows if r.mode == "light"}
    keys = sorted({(w["target"], w["meter"], w["procedure"]) for w in inp.windows if w["procedure"] != "idle"})
    fits = []
    for target, meter, procedure in keys:
        try:
            entry = _fit(inp, target, meter, procedure)
        except ValueError as exc:
            log.info("attribution %s/%s/%s skipped: %s", target, meter, procedure, exc)
            continue
        entry.update(light_reductions(light.get((target, meter, procedure))))
        if TARGETS.entry(target).fact("mcu") and procedure in inp.learners:
            entry.update(_mcu_entries(inp, target, procedure))
        fits.append(entry)
    return fits


def _fit(inp: AttributionInput, target: str, meter: str, procedure: str) -> dict[str, Any]:
    mode_windows = windows_from_rows(
        inp.windows, target=target, meter=meter, procedure=procedure, domain=inp.summary.domains[(target, meter)]
    )
    stats = inp.summary.stats
    macs = {mode: s.macs_per_inference for (t, p, mode), s in stats.items() if (t, p) == (target, procedure)}
    exits = [
        int(r["exit_layer"])
        for r in inp.samples
        if (r["target"], r["procedure"], r["mode"]) == (target, procedure, "light")
    ]
    fit = attribute(
        mode_windows,
        macs,
        exit_distribution(exits) if exits else None,
        target=target,
        meter=meter,
        procedure=procedure,
    )
    return fit.to_json()


def _mcu_entries(inp: AttributionInput, target: str, procedure: str) -> dict[str, Any]:
    meter_manifest = inp.mcu_meters.get(target, {})
    return {
        "energy_model": meter_manifest.get("energy_model"),
        "per_sample": per_sample_attribution(
            inp.samples, target, procedure, inp.learners[procedure].layer_macs(), meter_manifest
        ),
        "early_exit": early_exit_savings(
            inp.samples, target, procedure, inp.reference.get(procedure, procedure), meter_manifest
        ),
    }
