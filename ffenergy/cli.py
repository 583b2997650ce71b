"""The ``ffenergy`` command line: run, plot, export, meters, targets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ffenergy import __version__


def _cmd_run(args: argparse.Namespace) -> int:
    from ffenergy.config import ConfigError, load_config
    from ffenergy.experiment.runner import RunError, RunInterrupted, RunOptions, run_experiment
    from ffenergy.experiment.table import format_summary

    overrides = {k: v for k, v in (("meter", args.meter), ("targets", args.target)) if v is not None}
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2
    opts = RunOptions(out_root=args.out, resume=args.resume, progress=not args.no_progress)
    try:
        run_dir, rows = run_experiment(cfg, opts)
    except RunInterrupted as stop:
        print("\ninterrupted: everything finished so far is on disk; continue with\n"
              f"  ffenergy run {args.config} --resume {stop.run_dir}", file=sys.stderr)
        return 130
    except (RunError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_summary(rows))
    print(f"\nresults in {run_dir}  (figures: ffenergy plot {run_dir})")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from ffenergy.plot.command import plot_command

    return plot_command(args.results, args.fmt, args.jobs)


def _cmd_meters(args: argparse.Namespace) -> int:
    from ffenergy.meters.auto import available_meters

    statuses = available_meters()
    width = max(len(s.name) for s in statuses)
    print(f"{'meter'.ljust(width)}  {'provenance':<10}  usable  reason")
    for s in statuses:
        print(f"{s.name.ljust(width)}  {s.provenance:<10}  {'yes' if s.usable else 'no':<6}  {s.reason}")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from ffenergy.targets.catalogue import target_statuses

    for name, usable, reason in target_statuses():
        print(f"{name:<9} {'yes' if usable else 'no':<4} {reason}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ffenergy.experiment.export_run import export_run

    return export_run(args.run_dir, args.procedure, args.dtype, args.board, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ffenergy", description="Measure what early-exit Forward-Forward inference saves in joules.")
    parser.add_argument("--version", action="version", version=f"ffenergy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment end to end", description=(
        "Train (or load from cache) an FF network, calibrate early-exit thresholds, run full / light / "
        "depth-k inference on the targets, measure energy, and write results/<run-id>/."))
    run.add_argument("config", type=Path, help="experiment YAML, e.g. experiments/mnist.yaml")
    run.add_argument("--out", type=Path, default=Path("results"), help="parent folder of run directories")
    run.add_argument("--meter", help="override the config's meter (auto, none, rapl, nvml, pyjoules, codecarbon, simulated)")
    run.add_argument("--target", action="append", help="override the config's targets (repeatable)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="complete an interrupted run")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    from ffenergy.plot.command import add_arguments as add_plot_arguments

    plot = sub.add_parser("plot", help="figures and report.md from result directories")
    add_plot_arguments(plot)
    plot.set_defaults(func=_cmd_plot)

    meters = sub.add_parser("meters", help="which energy meters work here, and why not")
    meters.set_defaults(func=_cmd_meters)

    targets = sub.add_parser("targets", help="which inference targets work here, and why not")
    targets.set_defaults(func=_cmd_targets)

    export = sub.add_parser("export", help="export a trained run's model for the microcontroller firmware")
    export.add_argument("run_dir", type=Path, help="a run directory made by ffenergy run")
    export.add_argument("--procedure", choices=["mp", "mp-pruned", "op"], default="mp")
    export.add_argument("--dtype", choices=["fp32", "int8"], default="fp32")
    export.add_argument("--board", default="qemu-mps2-an386", help="refuse models that do not fit this board")
    export.add_argument("--out", type=Path, help="output folder (default RUN_DIR/export-<procedure>-<dtype>)")
    export.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
