"""report.md for one run and for a comparison of runs: tables, inlined figures, provenance.

Plain GitHub-flavoured Markdown with relative links, so it renders on GitHub next to its figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ffenergy.analysis.learners import LearnerRow, equal_accuracy_table, learner_rows
from ffenergy.analysis.load import RunData, SummaryRow
from ffenergy.analysis.metrics import class_recalls
from ffenergy.contract import RECORDING_FILE, EarlyExitCosts, HilFaults, Shown, read_rows
from ffenergy.units import format_energy

INLINE_FORMATS = (".png", ".svg")  # GitHub shows these inline; PDFs are linked
DRIFT_WARNING = 0.05  # the default measurement.max_idle_drift


@dataclass(frozen=True)
class SavedFigure:
    path: Path
    caption: str


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None or value != value else f"{value:{spec}}{suffix}"  # None or NaN


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _figure_lines(figures: list[SavedFigure], base: Path) -> list[str]:
    lines = []
    for fig in figures:
        link = Path(os.path.relpath(fig.path, base)).as_posix()
        lines += [f"**{fig.caption}**", ""]
        lines += [
            f"![{fig.path.stem}]({link})" if fig.path.suffix in INLINE_FORMATS else f"[{fig.path.name}]({link})",
            "",
        ]
    return lines


def _shown_fields(row_type: type) -> list[dataclasses.Field]:
    """The summary row's fields that report.md shows (those with ``Shown`` metadata), in column order."""
    return [f for f in dataclasses.fields(row_type) if "shown" in f.metadata]


def _shown_cell(row: SummaryRow, f: dataclasses.Field) -> str:
    shown: Shown = f.metadata["shown"]
    value = getattr(row, f.name)
    if shown.ci is not None:
        return format_energy(value, getattr(row, shown.ci))
    if isinstance(value, str):
        return value or shown.empty
    return _num(value, shown.spec, shown.suffix)


def _summary_table(rows: list[SummaryRow]) -> list[str]:
    """The summary table, a column per shown field of the rows' type (contract.SummaryRow)."""
    fields = _shown_fields(type(rows[0]))
    return _table([f.metadata["shown"].heading for f in fields], [[_shown_cell(r, f) for f in fields] for r in rows])


_HEADLINES = {
    "net": "**Headline: net energy** (idle power × window time subtracted): what the inference itself costs, and so "
    "what early exit saves; energy reductions are net. Gross (everything the meter saw) is what MLPerf Tiny publishes.",
    "gross": "**Headline: gross energy** (everything the meter saw in the window), as MLPerf Tiny publishes it: the "
    "recording has no idle stretch (between windows the board loads inputs and reports results), so net energy "
    "subtracts a busy level, not idle power.",
}


def run_report(run: RunData, figures: list[SavedFigure], notes: list[str]) -> str:
    m = run.manifest
    lines = [
        f"# {m.config_name}: run `{m.run_id}`",
        "",
        f"Dataset **{m.dataset}**. Written by `ffenergy plot` from the result files in this directory.",
        "",
    ]
    if m.data_caveat:
        lines += [f"> **Data caveat:** {m.data_caveat}", ""]
    lines += _partial_lines(run)
    lines += [f"> **Damaged file:** {flag}." for flag in run.damaged] + ([""] if run.damaged else [])
    lines += ["## Summary", ""] + _summary_lines(run)
    lines += _recording_lines(run.path / RECORDING_FILE)
    lines += _per_class_lines(run.path / "per_class.csv")
    lines += _equal_accuracy_section(learner_rows(run), label_run=False)
    lines += ["## Attribution", ""] + _attribution_lines(run)
    lines += _early_exit_lines(run.early_exit)
    lines += ["## Figures", ""] + _figure_lines(figures, run.path)
    if notes:
        lines += ["Not plotted:", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Provenance", ""] + _provenance_lines(run)
    return "\n".join(lines)


def _partial_lines(run: RunData) -> list[str]:
    unfinished = run.unfinished_stages()
    if not unfinished and not run.missing:
        return []
    parts = ([f"unfinished stages: {', '.join(unfinished)}"] if unfinished else []) + (
        [f"missing files: {', '.join(run.missing)}"] if run.missing else []
    )
    return ["> **Partial run.** " + "; ".join(parts) + ".", ""]


def _summary_lines(run: RunData) -> list[str]:
    """The summary table with its warnings (idle drift, net energies ≤ 0) and notes (headline, depth-1)."""
    if not run.summary:
        return ["No summary.csv: nothing was summarised yet.", ""]
    drifted = dict.fromkeys(
        (r.target, r.meter, r.idle_drift_max)
        for r in run.summary
        if r.idle_drift_max is not None and r.idle_drift_max > DRIFT_WARNING
    )
    lines = [
        f"> **Idle drift:** on {target} / {meter} idle power moved by up to {drift:.1%} between consecutive "
        "idle windows; net energies carry up to that error (see the run's log for the windows)."
        for target, meter, drift in drifted
    ] + ([""] if drifted else [])
    if any(r.energy_j_per_inference is not None and r.energy_j_per_inference <= 0 for r in run.summary):
        lines += [
            "> **Warning:** some net energies are ≤ 0: the idle subtraction exceeds the measured energy "
            "(windows too short for the meter's resolution, or idle drift). Those rows are not real costs; "
            "re-measure with longer windows.",
            "",
        ]
    lines += _summary_table(run.summary)
    lines += ["", "Reductions are full ÷ mode (> 1 means savings). Energy is per inference.", ""]
    lines += [_HEADLINES[run.energy_headline], ""]
    depth_1 = dict.fromkeys((r.procedure, r.target) for r in run.summary if r.mode == "light" and r.mean_layers == 1.0)
    lines += [
        f"> **{procedure} light on {target} is depth-1:** every test sample exited at layer 1, so it is no "
        "adaptive exit (its thresholds let everything out at the first layer)."
        for procedure, target in depth_1
    ]
    return lines + ([""] if depth_1 else [])


def _attribution_lines(run: RunData) -> list[str]:
    if not run.fits:
        return ["No attribution.json (no energy meter, or the summary stage has not run).", ""]
    header = [
        "target",
        "meter",
        "procedure",
        "nJ/MAC",
        "intercept/inference",
        "static power",
        "R²",
        "points",
        "light predicted",
        "light measured",
        "error",
    ]
    rows = [
        [
            f.target,
            f.meter,
            f.procedure,
            f"{f.joules_per_mac * 1e9:.4g}",
            format_energy(f.intercept_j_per_inference),
            _num(f.static_power_w, ".3g", " W"),
            _num(f.r2, ".4f"),
            _num(f.n_points, "d"),
            format_energy(f.predicted_light_j),
            format_energy(f.measured_light_j),
            _num(None if f.prediction_error is None else f.prediction_error * 100, "+.1f", "%"),
        ]
        for f in run.fits
    ]
    return _table(header, rows) + [
        "",
        "Fit: energy per inference = J/MAC × MACs + intercept over the depth-k modes; light predicted "
        "= Σ_k p_k·E(depth-k) from the observed exit distribution.",
        "",
    ]


def _provenance_lines(run: RunData) -> list[str]:
    m = run.manifest
    meters = [
        [
            mr.name,
            mr.provenance,
            _num(mr.update_period_s, ".3g", " s"),
            json.dumps(mr.details, sort_keys=True) if mr.details else "",
        ]
        for mr in m.meters
    ]
    return _table(["meter", "provenance", "update period", "details"], meters or [["(none)", "MACs only", "", ""]]) + [
        "",
        "Host: " + ", ".join(f"{k} {v}" for k, v in m.host.items() if v not in (None, "")),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m.versions.items()),
        "",
        "Stages: " + ", ".join(f"{k} {v}" for k, v in m.stages.items()),
        "",
        *_fault_lines(m.hil_faults),
    ]


def _fault_lines(faults: dict[str, dict[str, HilFaults]]) -> list[str]:
    """The DUT resets and meter restarts each MCU target's stage rode through (each window measured again)."""
    if not faults:
        return []
    rides = [
        f"{target}/{procedure} {f.dut_resets} DUT resets, {f.meter_restarts} meter restarts"
        for target, procedures in faults.items()
        for procedure, f in procedures.items()
    ]
    return ["Faults ridden through (each window measured again): " + "; ".join(rides) + ".", ""]


def _recording_lines(path: Path) -> list[str]:
    """An imported recording's source and its windows beside the figures the source published."""
    if not path.is_file():
        return []
    rec = json.loads(path.read_text())
    checks = rec.get("checks", {})
    uj = lambda j: "—" if j is None else f"{j * 1e6:,.3f} µJ"  # the precision the published figures have
    lines = [
        "## Recording",
        "",
        f"Imported from the **{rec.get('format')}** recording of **{rec.get('board')}** on a **{rec.get('meter')}** meter: "
        f"{rec.get('n_samples')} samples at {rec.get('sample_rate_hz')} Hz, {rec.get('voltage_v')} V; window edges known "
        f"to ±{rec.get('edge_uncertainty_samples')} sample(s). Files: "
        + ", ".join(f"`{f['path']}` (sha256 {f['sha256'][:12]}…)" for f in rec.get("files", [])),
        "",
    ]
    rows = [
        [
            str(c["window"]),
            uj(c["gross_j"]),
            f"{uj(c['edge_band_j'][0])} – {uj(c['edge_band_j'][1])}",
            uj(c["published_j"]),
            _num(None if c["relative_difference"] is None else c["relative_difference"] * 100, "+.4f", "%"),
            c["verdict"],
        ]
        for c in checks.get("windows", [])
    ]
    lines += _table(["window", "gross energy", "edge band (±1 sample)", "published", "difference", "verdict"], rows)
    median, published = checks.get("median_j_per_inference"), checks.get("published_median_j_per_inference")
    lines += [
        "",
        f"Median gross energy per inference: {uj(median)} (published: {uj(published)}): "
        f"{checks.get('median_verdict')}.",
        "",
    ]
    lines += [f"> **Warning:** {w}" for w in checks.get("warnings", [])]
    return lines + ([""] if checks.get("warnings") else [])


def _mode_order(mode: str) -> tuple[int, int]:
    """full first, then depth-1, depth-2, ..., then light."""
    if mode.startswith("depth-") and mode[6:].isdigit():
        return (1, int(mode[6:]))
    return (0, 0) if mode == "full" else (2, 0)


def _early_exit_lines(entries: list[EarlyExitCosts]) -> list[str]:
    """What early exit saves on each MCU target: per mode costs and the exit check's own cost."""
    if not entries:
        return []
    header = [
        "target",
        "procedure",
        "mode",
        "µJ/inference",
        "energy red.",
        "MAC red.",
        "energy ÷ MAC red.",
        "instructions/inference",
        "instructions/MAC",
        "pJ/MAC",
    ]
    rows = []
    for e in entries:
        for m in sorted(e.modes, key=lambda m: _mode_order(m.mode)):
            ratio = m.energy_reduction / m.mac_reduction if m.energy_reduction and m.mac_reduction else None
            rows.append(
                [
                    e.target,
                    e.procedure,
                    m.mode,
                    _num(m.uj_per_inference, ".4g"),
                    _num(m.energy_reduction, ".3f", "×"),
                    _num(m.mac_reduction, ".3f", "×"),
                    _num(ratio, ".3f"),
                    _num(m.instructions_per_inference, ",.0f"),
                    _num(m.instructions_per_mac, ".2f"),
                    _num(m.pj_per_mac, ".0f"),
                ]
            )
    checks = [
        f"- {e.target} {e.procedure}: {_num(e.check_instructions, '.0f')} instructions per exit check, "
        f"{_num(e.check_priced_uj, '.3g', ' µJ')} priced from the simulator's joules per instruction class "
        f"(the measured difference of light and depth-k windows: {_num(e.check_measured_uj, '.3g', ' µJ')})."
        for e in entries
        if e.check_instructions is not None
    ]
    return [
        "## Early exit on the microcontroller",
        "",
        *_table(header, rows),
        "",
        "Reductions are against the baseline procedure's full mode (full ÷ mode). energy ÷ MAC red. above 1: "
        "energy falls faster than MACs; below 1: what early exit costs besides MACs (the exit checks, "
        "normalisation, heads) eats into the saving. MACs as run (MP's factorised layer 1). For scale, "
        "MLPerf Tiny's published whole-chip figures for its v1.3 anomaly-detection model are about 610 pJ/MAC "
        "on an STM32L4R5 (Cortex-M4) and 120 on an STM32U385 (not measured here).",
        "",
        *checks,
        *([""] if checks else []),
    ]


def _per_class_lines(path: Path) -> list[str]:
    """The per-class sensitivity of the full and light modes (per_class.csv), with the
    specificity of the last class when there are two (e.g. seizure vs non-seizure)."""
    recalls = class_recalls(read_rows(path))
    if not recalls:
        return []
    names = list(recalls[0].sensitivity)
    binary = len(names) == 2
    header = ["target", "procedure", "mode"] + [f"{n} sensitivity" for n in names]
    header += [f"{names[1]} specificity"] if binary else []
    rows = [
        [r.target, r.procedure, r.mode]
        + [_num(None if v is None else v * 100, ".2f", "%") for v in r.sensitivity.values()]
        + ([_num(None if (sp := r.specificity(names[1])) is None else sp * 100, ".2f", "%")] if binary else [])
        for r in recalls
    ]
    return ["## Per-class sensitivity", "", *_table(header, rows), ""]


def comparison_report(runs: list[RunData], figures: list[SavedFigure], base: Path, notes: list[str]) -> str:
    lines = [f"# Comparison of {len(runs)} runs", "", "## Runs", ""]
    lines += _table(
        ["run", "config", "dataset", "meters", "stages"],
        [
            [
                f"[{r.run_id}]({Path(os.path.relpath(r.path / 'report.md', base)).as_posix()})",
                r.manifest.config_name,
                r.dataset,
                ", ".join(f"{m.name} ({m.provenance})" for m in r.manifest.meters) or "none (MACs)",
                ", ".join(r.unfinished_stages()) or "all done",
            ]
            for r in runs
        ],
    )
    lines += [""] + [
        f"> **Data caveat** ({r.run_id}): {r.manifest.data_caveat}" for r in runs if r.manifest.data_caveat
    ]
    lines += ["", "## Full vs light", ""] + _full_vs_light_lines(runs)
    lines += [""] + _equal_accuracy_section([row for run in runs for row in learner_rows(run)], label_run=True)
    lines += ["## Figures", ""] + _figure_lines(figures, base)
    if notes:
        lines += ["Not plotted:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _full_vs_light_lines(runs: list[RunData]) -> list[str]:
    """Full and light of every (run, target, meter, procedure) that has both."""
    rows = []
    for run in runs:
        by_key = {(r.target, r.meter, r.procedure, r.mode): r for r in run.summary}
        for (target, meter, proc, mode), light in by_key.items():
            full = by_key.get((target, meter, proc, "full"))
            if mode != "light" or full is None:
                continue
            rows.append(
                [
                    run.run_id,
                    target,
                    meter or "—",
                    light.provenance or "MACs only",
                    proc,
                    _num(full.accuracy * 100, ".2f", "%"),
                    _num(light.accuracy * 100, ".2f", "%"),
                    format_energy(full.energy_j_per_inference),
                    format_energy(light.energy_j_per_inference),
                    _num(light.energy_reduction, ".2f", "×"),
                    _num(light.mac_reduction, ".2f", "×"),
                ]
            )
    return (
        _table(
            [
                "run",
                "target",
                "meter",
                "provenance",
                "procedure",
                "accuracy full",
                "accuracy light",
                "energy full",
                "energy light",
                "energy reduction",
                "MAC reduction (paper's count)",
            ],
            rows,
        )
        if rows
        else ["No run has both full and light rows in summary.csv."]
    )


def _equal_accuracy_section(rows: list[LearnerRow], label_run: bool) -> list[str]:
    """The procedures at equal accuracy (two or more of them), as analysis.learners reads it off."""
    if len(rows) < 2:
        return []
    header, cells = equal_accuracy_table(rows, label_run)
    return (
        ["## Procedures at equal accuracy", ""]
        + _table(header, cells)
        + [
            "",
            "Full and light as in the summary (light at the α chosen on validation). Each `MACs at ≥` column is "
            "the fewest MACs per inference with which a procedure reaches that accuracy: the least-cost point "
            "of its full network and its α sweep (sweep.csv, the test split; picking α on the test split is an "
            "oracle choice, so these columns are each procedure's best case). `-`: no point reaches it.",
            "",
        ]
    )
