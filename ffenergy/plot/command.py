"""``ffenergy plot RESULTS... [--format png|pdf|svg]``: figures and report.md from result directories.

Each RESULTS is a run directory or a folder of runs (every directory under it holding a
manifest.json). A directory that cannot be read gets one message and the others are still
plotted; the exit code is non-zero only when nothing could be plotted. Committed examples
(``example.json``, results/examples/) are never redrawn: a folder's examples are left out, and
one named by its directory joins the comparison as it is.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from ffenergy.analysis.load import RunData, RunLoadError, find_runs, load_run
from ffenergy.contract import EXAMPLE_FILE
from ffenergy.plot import FORMATS
from ffenergy.plot.run_figures import plot_comparison, plot_run

COMPARISON_DIR = "comparison"


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def discover(paths: list[Path]) -> tuple[list[Path], list[str], list[str]]:
    """Run directories named by ``paths`` (deduplicated, in order), one message per unusable path,
    and one note per folder whose committed examples were left out."""
    runs: list[Path] = []
    problems: list[str] = []
    notes: list[str] = []
    for path in map(Path, paths):
        if path.is_file() and path.name == "manifest.json":
            path = path.parent
        if not path.exists():
            problems.append(f"{path}: no such directory")
        elif not path.is_dir():
            problems.append(f"{path}: not a directory; pass a run directory (results/<run-id>) or a folder of runs")
        else:
            found, examples = _runs_under(path, notes)
            if not found:
                if not examples:
                    problems.append(
                        f"{path}: no run found (no manifest.json in it or below it); empty, or the run never "
                        "started -- pass results/<run-id> written by `ffenergy run`"
                    )
                continue
            runs += [r for r in found if r.resolve() not in {x.resolve() for x in runs}]
            if found != [path]:
                problems += _not_runs(path, found + examples)
    return runs, problems, notes


def _runs_under(path: Path, notes: list[str]) -> tuple[list[Path], list[Path]]:
    """The runs at or under a folder, less its committed examples (noted in ``notes``), and those examples."""
    found = find_runs(path)
    examples = [r for r in found if r != path and (r / EXAMPLE_FILE).is_file()]
    if examples:
        notes.append(
            f"{path}: left out {len(examples)} committed example(s) ({', '.join(r.name for r in examples)}),"
            " which are kept as committed; name one (e.g. ffenergy plot RUN_DIR "
            f"{examples[0]}) to compare with it"
        )
    return [r for r in found if r not in examples], examples


def _not_runs(path: Path, runs: list[Path]) -> list[str]:
    """A message for each folder in ``path`` that holds no run."""
    return [
        f"{child}: no manifest.json, so not a run (empty, or the run never started); skipped"
        for child in sorted(path.iterdir())
        if child.is_dir() and child.name != COMPARISON_DIR and not any(r == child or child in r.parents for r in runs)
    ]


def comparison_dir(paths: list[Path], runs: list[RunData]) -> Path:
    """``<parent>/comparison`` for a single folder of runs, else next to the runs' common parent."""
    if len(paths) == 1 and Path(paths[0]).is_dir() and not (Path(paths[0]) / "manifest.json").exists():
        return Path(paths[0]) / COMPARISON_DIR
    common = Path(os.path.commonpath([str(r.path.resolve().parent) for r in runs]))
    if common == Path(common.anchor):  # runs with nothing in common but the file-system root: here, not there
        return Path.cwd() / COMPARISON_DIR
    return common / COMPARISON_DIR


def _plot_one(job: tuple[Path, str]) -> tuple[RunData | None, list[str]]:
    """Load and plot one run directory: (the run, or None if nothing was plotted; messages)."""
    run_dir, fmt = job
    try:
        run = load_run(run_dir)
        if run.committed_example:
            run.samples, run.trace = None, None
            return run, [f"{run_dir}: a committed example; its report and figures are kept as committed"]
        result = plot_run(run, fmt)
    except RunLoadError as exc:
        return None, [f"skipped: {exc}"]
    except Exception as exc:  # a bug on odd data must not stop the other runs; it is reported, not hidden
        return None, [f"{run_dir}: plotting failed ({type(exc).__name__}: {exc}); please report it with this directory"]
    unfinished = ", ".join(run.unfinished_stages())
    if not result.figures:
        why = f"missing {', '.join(run.missing)}" if run.missing else "; ".join(result.notes)
        return None, [
            f"{run_dir}: nothing to plot ({why}{'; unfinished stages: ' + unfinished if unfinished else ''}); "
            "finish the run with `ffenergy run --resume` and plot again"
        ]
    messages = [f"{run_dir}: {flag}" for flag in run.damaged]
    if run.missing or unfinished:
        messages.append(
            f"{run_dir}: partial run (missing {', '.join(run.missing) or 'nothing'}; unfinished stages: "
            f"{unfinished or 'none'}): plotted what is there"
        )
    run.samples, run.trace = None, None  # the comparison needs summary and manifest only; keeps the reply small
    return run, messages


def default_jobs() -> int:
    """Worker processes: one per core, at most two (plots are small; more would crowd a shared machine)."""
    return min(2, os.cpu_count() or 1)


def _can_fork() -> bool:
    """Forking is safe only from a single-threaded process on a platform that has fork."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def plot_command(paths: list[Path], fmt: str, jobs: int | None = None) -> int:
    """Plot every run under ``paths``; return the exit code (0 if at least one run was plotted).

    With ``jobs`` > 1 runs are plotted by forked worker processes, started while this process has
    no other thread (else, and where fork does not exist, everything runs in this process).
    """
    if fmt not in FORMATS:
        _say(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return 2
    run_dirs, problems, notes = discover(paths)
    for message in problems + notes:
        _say(message)
    jobs = max(1, min(jobs or default_jobs(), len(run_dirs))) if _can_fork() else 1
    work = [(run_dir, fmt) for run_dir in run_dirs]
    plotted: list[RunData] = []
    results: Iterator[tuple[RunData | None, list[str]]]
    with contextlib.ExitStack() as stack:
        if jobs > 1:
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(jobs))
            results = pool.imap(_plot_one, work)
        else:
            results = map(_plot_one, work)
        for run, messages in tqdm(
            results, total=len(work), desc="plotting runs", unit="run", file=sys.stderr, disable=len(work) < 2
        ):
            for message in messages:
                _say(message)
            if run is not None:
                plotted.append(run)
    if len(plotted) >= 2:
        comparison = plot_comparison(plotted, comparison_dir(paths, plotted), fmt)
        print(f"comparison: {comparison.report}")
    total = len(run_dirs) + len(problems)
    print(
        f"plotted {len(plotted)} of {total} result director{'y' if total == 1 else 'ies'}"
        + "".join(f"\n  {run.path / 'report.md'}" for run in plotted)
    )
    return 0 if plotted else 1
