"""The summary stage: summary.csv from samples.csv and windows.csv, one row per (target, meter,
procedure, mode), with energy reductions against each procedure's reference full mode."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ffenergy.analysis.metrics import ModeStats, mode_stats
from ffenergy.analysis.stats import EnergySummary, summarise_rows
from ffenergy.analysis.stats import idle_drift as stats_idle_drift
from ffenergy.contract import SummaryRow
from ffenergy.meters.codecarbon_meter import CarbonIntensity, grams_co2_per_1000_inferences

log = logging.getLogger(__name__)

Pair = tuple[str, str]  # (target, meter)
Group = tuple[str, str, str]  # (target, procedure, mode)


@dataclass(frozen=True)
class SummaryInput:
    """What summary.csv is computed from: the run's rows and facts from its manifest and learners."""

    dataset: str
    samples: list[dict[str, str]]
    windows: list[dict[str, str]]
    provenance: Mapping[Pair, str]  # of each (target, meter), from the manifest
    naive_cost: Mapping[str, np.ndarray]  # per procedure: the paper's MACs of an exit at layer k
    reference: Mapping[str, str]  # per procedure: the procedure whose full mode is its baseline
    intensity: CarbonIntensity | None
    max_idle_drift: float


@dataclass(frozen=True)
class Summary:
    """The summary stage's output: the rows, and what the attribution stage reuses."""

    rows: list[SummaryRow]
    domains: dict[Pair, str]  # the domain standing for each (target, meter)
    stats: dict[Group, ModeStats]


def summarise(inp: SummaryInput) -> Summary:
    """Every (target, procedure, mode) of samples.csv, once per meter of its target (``none`` without)."""
    domains = summary_domains(inp.windows)
    energy: dict[tuple[str, ...], EnergySummary] = {}
    for (target, meter), domain in domains.items():
        energy.update(summarise_rows([w for w in inp.windows if (w["target"], w["meter"]) == (target, meter)], domain))
    stats = {(s.target, s.procedure, s.mode): s for s in mode_stats(inp.samples, inp.naive_cost)}
    meters_of: dict[str, set[str]] = defaultdict(set)
    for target, meter, _, _ in energy:
        meters_of[target].add(meter)
    drift = {pair: idle_drift(pair, domain, inp.windows, inp.max_idle_drift) for pair, domain in domains.items()}
    rows = []
    for (target, procedure, mode), s in stats.items():
        full = stats[(target, _baseline(inp.reference, stats, target, procedure), "full")]
        for meter in sorted(meters_of[target]) or ["none"]:
            e = energy.get((target, meter, procedure, mode))
            e_full = energy.get((target, meter, full.procedure, "full"))
            rows.append(_row(inp, s, full, meter, e, e_full, drift.get((target, meter))))
    return Summary(rows, domains, stats)


def _baseline(reference: Mapping[str, str], stats: Mapping[Group, ModeStats], target: str, procedure: str) -> str:
    """The procedure whose full mode a procedure's reductions compare with: its reference where that ran."""
    baseline = reference.get(procedure, procedure)
    return baseline if (target, baseline, "full") in stats else procedure


def _row(
    inp: SummaryInput,
    s: ModeStats,
    full: ModeStats,
    meter: str,
    e: EnergySummary | None,
    e_full: EnergySummary | None,
    drift: float | None,
) -> SummaryRow:
    return SummaryRow(
        dataset=inp.dataset,
        target=s.target,
        meter=meter,
        provenance=inp.provenance.get((s.target, meter), ""),
        procedure=s.procedure,
        mode=s.mode,
        accuracy=s.accuracy,
        macro_f1=s.macro_f1,
        mean_layers=s.mean_layers,
        macs_per_inference=s.macs_per_inference,
        macs_per_inference_naive=s.macs_per_inference_naive,
        # the paper's count on both sides, like-for-like with its reductions
        mac_reduction=full.macs_per_inference_naive / s.macs_per_inference_naive,
        mac_reduction_as_run=full.macs_per_inference / s.macs_per_inference,
        energy_j_per_inference=e.net_j_per_inference if e else None,
        energy_ci95_j=e.net_ci95_j if e else None,
        energy_reduction=e_full.net_j_per_inference / e.net_j_per_inference
        if e and e_full and e.net_j_per_inference != 0  # a flat power log nets exactly zero
        else None,
        n_samples=s.n_samples,
        n_repeats=e.n_repeats if e else 0,
        co2_g_per_1000_inferences=grams_co2_per_1000_inferences(e.net_j_per_inference, inp.intensity)
        if e and inp.intensity
        else None,
        idle_drift_max=drift if e else None,
        gross_energy_j_per_inference=e.gross_j_per_inference if e else None,
        gross_energy_ci95_j=e.gross_ci95_j if e else None,
    )


def summary_domains(windows: list[dict[str, str]]) -> dict[Pair, str]:
    """The domain that stands for each (target, meter): ``total`` when the meter sums several
    domains, else its only domain (e.g. ``dut`` for an external meter on a microcontroller)."""
    found: dict[Pair, set[str]] = defaultdict(set)
    for w in windows:
        found[(w["target"], w["meter"])].add(w["domain"])
    return {key: "total" if "total" in doms or len(doms) != 1 else next(iter(doms)) for key, doms in found.items()}


def idle_drift(pair: Pair, domain: str, windows: list[dict[str, str]], limit: float) -> float | None:
    """The largest relative change of idle power between consecutive idle windows of (target, meter);
    a warning names the windows where it exceeds ``limit`` (``measurement.max_idle_drift``)."""
    drift = stats_idle_drift(
        [
            (int(w["repeat"]), float(w["energy_j"]) / float(w["duration_s"]))
            for w in windows
            if (w["target"], w["meter"], w["procedure"], w["domain"]) == (*pair, "idle", domain)
        ],
        limit,
    )
    if drift.moved:
        log.warning(
            "%s/%s: idle power drifted by more than %.0f%% (%s); the net energies measured between "
            "those idle windows carry up to that error",
            *pair,
            100 * limit,
            ", ".join(drift.moved),
        )
    return drift.max_abs
