"""The ``ffenergy`` command line: run, plot, import, sweep, bench, export, meters, targets.

Building the parser imports only the registries, so ``ffenergy --help``, ``ffenergy meters`` and
``ffenergy targets`` load neither torch nor matplotlib; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Any

from ffenergy import __version__
from ffenergy.registry import PluginError, Registry

log = logging.getLogger("ffenergy")


def _cmd_run(args: argparse.Namespace) -> int:
    from ffenergy.config import ConfigError, load_config, resumed_config
    from ffenergy.contract import RunBusy
    from ffenergy.data.base import DataError
    from ffenergy.experiment.manifest import Manifest
    from ffenergy.experiment.runner import RunError, RunInterrupted, RunOptions, run_experiment
    from ffenergy.experiment.table import format_summary
    from ffenergy.firmware.dut import DutError
    from ffenergy.firmware.launch import ToolchainMissing
    from ffenergy.meters.base import MeterError
    from ffenergy.targets.host import TargetUnavailable

    # expected failures: one line naming the cause and the fix, an exit code per kind
    failures: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int, str], ...] = (
        (ConfigError, 2, "config"),
        (DataError, 3, "data"),
        (MeterError, 4, "meter"),
        ((TargetUnavailable, ToolchainMissing, DutError), 5, "target"),
        (OSError, 6, "file"),
        (PluginError, 2, "plug-in"),
        ((RunError, RunBusy), 1, "run"),
    )

    overrides = {k: v for k, v in (("meter", args.meter), ("targets", args.target)) if v is not None}
    if args.config is None and args.resume is None:
        log.error("run: give a CONFIG (e.g. experiments/mnist.yaml), or --resume RUN_DIR to continue a run")
        return 2
    try:
        cfg = load_config(args.config, overrides) if args.config else resumed_config(args.resume, overrides)
    except ConfigError as exc:
        log.error("%s: %s", args.config or args.resume, exc)
        return 2
    opts = RunOptions(out_root=args.out, resume=args.resume, progress=not args.no_progress)
    stopped_by: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: _stop_like_ctrl_c("SIGTERM", stopped_by))
    try:
        run_dir, rows = run_experiment(cfg, opts)
    except RunInterrupted as stop:
        log.error(
            "interrupted%s: everything finished so far is on disk; continue with\n  ffenergy run --resume %s",
            f" by {stopped_by[0]}" if stopped_by else "",
            stop.run_dir,
        )
        return 143 if stopped_by else 130
    except Exception as exc:
        for kinds, code, what in failures:
            if isinstance(exc, kinds):
                log.error(
                    "%s: %s%s",
                    what,
                    exc,
                    "" if args.verbose else "  (--verbose shows the traceback)",
                    exc_info=args.verbose,
                )
                return code
        raise
    print()
    print(format_summary(rows))
    if not any(r.get("energy_j_per_inference") is not None for r in rows):
        why = "the config's meter is none" if cfg.meter == "none" else "no meter was usable (see above)"
        print(
            f"\nno energy was measured: {why}. `ffenergy meters` says which meters work here and how to fix the "
            "others; `--meter simulated` exercises the whole pipeline (labelled simulated)."
        )
    caveat = Manifest.load(run_dir / "manifest.json").data.get("dataset", {}).get("caveat")
    if caveat:
        print(f"\ndata caveat: {caveat}")
    print(f"\nresults in {run_dir}  (figures: ffenergy plot {run_dir})")
    return 0


def _stop_like_ctrl_c(name: str, stopped_by: list[str]) -> None:
    """SIGTERM (timeout, systemd, docker stop) ends a run as Ctrl-C does: everything kept, the resume line."""
    stopped_by.append(name)
    raise KeyboardInterrupt


def _cmd_plot(args: argparse.Namespace) -> int:
    from ffenergy.plot.command import plot_command

    return plot_command(args.results, args.fmt, args.jobs)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns, the last one as wide as it needs."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip())


def _refused_rows(registry: Registry, width: int) -> list[list[str]]:
    """A row per plug-in the registry refused: its name, where from, not usable, and why."""
    return [[name, *[""] * (width - 4), "plug-in", "no", why] for name, why in registry.refused().items()]


def _cmd_meters(args: argparse.Namespace) -> int:
    from ffenergy.meters.auto import available_meters
    from ffenergy.meters.registry import METERS

    rows = [
        [s.name, s.provenance, METERS.entry(s.name).origin, "yes" if s.usable else "no", s.reason]
        for s in available_meters()
    ]
    _print_table(["meter", "provenance", "from", "usable", "reason"], rows + _refused_rows(METERS, 5))
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from ffenergy.targets.registry import TARGETS, target_status

    rows = [[name, TARGETS.entry(name).origin, *_usable(target_status(name))] for name in TARGETS.names()]
    _print_table(["target", "from", "usable", "reason"], rows + _refused_rows(TARGETS, 4))
    return 0


def _usable(status: tuple[bool, str]) -> list[str]:
    return ["yes" if status[0] else "no", status[1]]


def _cmd_sweep(args: argparse.Namespace) -> int:
    try:
        from ffenergy.sweep.command import sweep_command
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        log.error("sweep: Ray is not installed; install it with  pip install 'ffenergy[sweep]'")
        return 2
    return sweep_command(args.sweep, args.address, args.resume, args.out, progress=not args.no_progress)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ffenergy.sweep.bench import machine_offers, machine_resources, ray_start_flags

    offers = machine_offers()
    width = max(len(o.resource) for o in offers)
    print(f"{'resource'.ljust(width)}  usable  reason")
    for o in offers:
        print(f"{o.resource.ljust(width)}  {'yes' if o.usable else 'no':<6}  {o.reason}")
    flags = ray_start_flags(machine_resources(offers))
    print(f"\nhead node:    ray start --head --port=6379 {flags}")
    print(f"worker node:  ray start --address=HEAD_IP:6379 {flags}")
    print(
        'a real board (target mcu) is never detected: once it and its meter are wired, add "bench:mcu": 1 '
        "to --resources (docs/sweeps.md)"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ffenergy.experiment.export_run import ExportError, export_run

    try:
        export_run(args.run_dir, args.procedure, args.dtype, args.board, args.out)
    except ExportError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ffenergy.experiment.import_run import import_recording, summary_line
    from ffenergy.recordings.formats import ReadOptions
    from ffenergy.recordings.recording import RecordingError

    options = ReadOptions(
        voltage_v=args.voltage_v,
        board=args.board,
        workload=args.workload,
        sample_rate_hz=args.sample_rate_hz,
        trigger=args.trigger,
        inferences=args.inferences,
    )
    worst, lines = 0, []
    for path in args.paths:
        try:
            imported = import_recording(
                path, args.out, fmt=args.fmt, options=options, idle_span_s=args.idle_span_s, trace=not args.no_trace
            )
        except RecordingError as exc:
            log.error("data: %s", exc, exc_info=args.verbose)
            worst = max(worst, 3)
            continue
        except OSError as exc:
            log.error("file: %s: %s", getattr(exc, "filename", None) or path, exc, exc_info=args.verbose)
            worst = max(worst, 6)
            continue
        for warning in imported.warnings:
            log.warning("%s: %s", path, warning)
        lines.append(f"{summary_line(imported)}\n  -> {imported.run_dir}")
    if lines:
        print("\n".join(lines))
        print("\nfigures and report: ffenergy plot " + " ".join(str(p.rsplit("-> ", 1)[1]) for p in lines))
    return worst


def build_parser() -> argparse.ArgumentParser:
    from ffenergy.firmware.boards import BOARDS
    from ffenergy.learners import LEARNERS
    from ffenergy.meters.registry import host_meter_choices
    from ffenergy.plot import FORMATS
    from ffenergy.recordings.formats import FORMATS as RECORDING_FORMATS
    from ffenergy.targets.registry import TARGETS

    parser = argparse.ArgumentParser(
        prog="ffenergy", description="Measure what early-exit inference really saves in joules."
    )
    parser.add_argument("--version", action="version", version=f"ffenergy {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="also log debugging detail")
    loudness.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)  # -v / -q after the command too: ffenergy run X.yaml -v
    after = common.add_mutually_exclusive_group()
    after.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="also log debugging detail"
    )
    after.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="log warnings and errors only"
    )

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    run = add(
        "run",
        help="run an experiment end to end",
        description=(
            "Train (or load from cache) the learners' networks, calibrate early-exit thresholds, run full / light / "
            "depth-k inference on the targets, measure energy, and write results/<run-id>/."
        ),
    )
    run.add_argument(
        "config",
        type=Path,
        nargs="?",
        help="experiment YAML, e.g. experiments/mnist.yaml (optional with --resume: the run's own config is used)",
    )
    run.add_argument("--out", type=Path, default=Path("results"), help="parent folder of run directories")
    run.add_argument("--meter", choices=host_meter_choices(), help="override the config's meter")
    run.add_argument(
        "--target", action="append", choices=TARGETS.names(), help="override the config's targets (repeatable)"
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="complete an interrupted run; with a CONFIG, "
        "changes that cannot alter finished measurements (ports, meter options, carbon) are taken",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    plot = add("plot", help="figures and report.md from result directories")
    plot.add_argument(
        "results",
        nargs="+",
        type=Path,
        metavar="RESULTS",
        help="run directories (results/<run-id>) or folders holding runs",
    )
    plot.add_argument("--format", dest="fmt", choices=FORMATS, default="png", help="figure format (default png)")
    plot.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="worker processes (default: one per core, at most 2)"
    )
    plot.set_defaults(func=_cmd_plot)

    imp = add(
        "import",
        help="turn real meters' recordings into run directories",
        description=(
            "Read recordings of real meters on real boards (an EnergyRunner session folder, an EnergyRunner 3.x "
            "results.json, a Joulescope .jls, a PPK2 CSV export, an ffenergy trace.csv), integrate every trigger "
            "window (gross and net energy, with the +-1-sample edge band), compare with the figures the source "
            "published, and write one run directory per recording (provenance measured) for ffenergy plot."
        ),
    )
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="recordings (files or session folders)")
    imp.add_argument("--out", type=Path, default=Path("results"), help="parent folder of the run directories")
    imp.add_argument("--format", dest="fmt", choices=RECORDING_FORMATS.names(), help="the format (default: detected)")
    imp.add_argument("--board", help="the board recorded (default: from the folder name where it says)")
    imp.add_argument("--workload", help="what ran (default: the recording's model name, else its file name)")
    imp.add_argument("--voltage-v", type=float, help="supply voltage (PPK2 CSV has none; overrides the file's)")
    imp.add_argument("--sample-rate-hz", type=float, help="sample rate where the format does not store it")
    imp.add_argument("--trigger", help="trigger channel: a JLS signal (default gpi[0]) or a PPK2 input (default D0)")
    imp.add_argument("--inferences", type=int, help="inferences per window, where the recording does not say")
    imp.add_argument(
        "--idle-span-s", type=float, default=0.05, help="idle level from trigger-low samples this close to a window"
    )
    imp.add_argument("--no-trace", action="store_true", help="do not write trace.csv (the power trace for the figure)")
    imp.set_defaults(func=_cmd_import)

    meters = add("meters", help="which energy meters work here, and why not")
    meters.set_defaults(func=_cmd_meters)

    targets = add("targets", help="which inference targets work here, and why not")
    targets.set_defaults(func=_cmd_targets)

    sweep = add(
        "sweep",
        help="run a grid of configs as ordinary runs on a Ray cluster",
        description=(
            "Expand a sweep file (a base config and a grid of dotted config keys), validate every point, and run "
            "each as one ordinary run on the Ray node that has its benches; results, whatever node ran them, land "
            "in one sweep directory with a sweep.csv index. Needs the [sweep] extra (Ray). See docs/sweeps.md."
        ),
    )
    sweep.add_argument("sweep", type=Path, nargs="?", help="sweep YAML (optional with --resume)")
    sweep.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="a running Ray cluster (auto: the one `ray start` made on this machine); default: start a local one",
    )
    sweep.add_argument(
        "--resume", type=Path, metavar="SWEEP_DIR", help="run only the points of SWEEP_DIR that are missing or failed"
    )
    sweep.add_argument("--out", type=Path, default=Path("results"), help="parent folder of sweep directories")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_cmd_sweep)

    bench = add("bench", help="the Ray resources (benches) this machine offers, as ray start flags")
    bench.set_defaults(func=_cmd_bench)

    export = add("export", help="export a trained run's model for the microcontroller firmware")
    export.add_argument("run_dir", type=Path, help="a run directory made by ffenergy run")
    export.add_argument("--procedure", choices=LEARNERS.names(), default="mp")
    export.add_argument("--dtype", choices=["f32", "int8"], default="f32")
    export.add_argument(
        "--board", choices=BOARDS.names(), default="qemu-mps2-an386", help="refuse models that do not fit this board"
    )
    export.add_argument("--out", type=Path, help="output folder (default RUN_DIR/export-<procedure>-<dtype>)")
    export.set_defaults(func=_cmd_export)
    return parser


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Messages of the ``ffenergy`` loggers on stderr, without tearing progress bars."""
    from ffenergy.progress import ProgressSafeHandler

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("ffenergy")
    root.handlers[:] = [ProgressSafeHandler()]
    root.setLevel(level)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    return int(args.func(args))
