"""Run mutmut on some modules and write their mutation scores as a markdown table (docs/testing.md).

    python tools/mutation_run.py                          # every module of [tool.mutmut] only_mutate
    python tools/mutation_run.py ffenergy/measure.py --max-children 2
    python tools/mutation_run.py --rerun not-caught       # re-test what survived, after adding tests
    python tools/mutation_run.py --table-only --output mutants/scores.md

mutmut (``pip install mutmut``, 3.x) reads its settings from ``[tool.mutmut]`` in pyproject.toml: the
modules it may mutate and the fast test files it runs against them. It copies the package to
``mutants/`` and keeps each mutant's result there, so a second run only tests mutants it has no
result for. ``--rerun not-caught`` re-tests the mutants neither killed nor timed out (survivors and
those no test reached): when tests are only added, a caught mutant stays caught. The table counts, per module, the mutants
killed, timed out (a mutant that hangs the tests counts as caught), survived, with no test reaching
them, and others (suspicious, segfault, skipped); the score is (killed + timeout) / total.
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

log = logging.getLogger("mutation_run")
ROOT = Path(__file__).resolve().parent.parent
CAUGHT = ("killed", "timeout")
COLUMNS = ("killed", "timeout", "survived", "no tests")
_RESULT = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


def configured_modules(pyproject: Path) -> list[str]:
    """The module paths of ``[tool.mutmut] only_mutate``."""
    with pyproject.open("rb") as f:
        return list(tomllib.load(f).get("tool", {}).get("mutmut", {}).get("only_mutate", []))


def module_of(path: str) -> str:
    """``ffenergy/learners/exits.py`` -> ``ffenergy.learners.exits`` (the prefix of its mutant names)."""
    return path.removesuffix(".py").replace("/", ".")


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mutmut", *args]
    log.info("running %s", " ".join(cmd))
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=False)


def results() -> dict[str, str]:
    """Every mutant's status from ``mutmut results --all true`` (name -> killed, survived, ...)."""
    out = mutmut("results", "--all", "true")
    if out.returncode != 0:
        raise SystemExit(f"mutmut results failed:\n{out.stdout}\n{out.stderr}")
    found = {}
    for line in out.stdout.splitlines():
        m = _RESULT.match(line)
        if m:
            found[m["name"]] = m["status"].strip()
    return found


def read_status(path: Path) -> dict[str, str]:
    """A ``--status-out`` file: mutant name -> status."""
    return dict(line.split("\t", 1) for line in path.read_text().splitlines() if line)


def merged(baseline: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """Caught in ``baseline`` stays caught (tests were only added). A mutant it did not catch takes the current
    status when this run caught it or reached it (survived); one this run reached with no test or did not
    check keeps the baseline's status (a re-test may run only the new test files)."""
    out = dict(baseline)
    for name, s in current.items():
        if baseline.get(name) not in CAUGHT and (s in CAUGHT or s == "survived"):
            out[name] = s
    return out


def mutant_module(name: str, modules: list[str]) -> str | None:
    """The module (of ``modules``, dotted) a mutant name such as ``ffenergy.measure.x_measure__mutmut_3`` is in."""
    return next((m for m in sorted(modules, key=len, reverse=True) if name.startswith(m + ".")), None)


def score_table(status: dict[str, str], modules: list[str]) -> tuple[str, dict[str, Counter[str]]]:
    """Markdown table of the mutants of ``modules`` (dotted), one row each and a total row."""
    counts: dict[str, Counter[str]] = {m: Counter() for m in modules}
    for name, s in status.items():
        module = mutant_module(name, modules)
        if module is not None:
            counts[module][s if s in COLUMNS else "other"] += 1
    lines = [
        "| module | killed | timeout | survived | no tests | other | total | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    overall: Counter[str] = Counter()
    for module in modules:
        overall.update(counts[module])
        lines.append(_row(f"`{module}`", counts[module]))
    lines.append(_row("**all**", overall))
    return "\n".join(lines) + "\n", counts


def _row(label: str, c: Counter[str]) -> str:
    total = sum(c.values())
    score = f"{100 * sum(c[k] for k in CAUGHT) / total:.1f} %" if total else "-"
    cells = [str(c[k]) for k in (*COLUMNS, "other")]
    return f"| {label} | {' | '.join(cells)} | {total} | {score} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: [tool.mutmut] only_mutate)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutmut workers (default 2)")
    parser.add_argument(
        "--rerun",
        choices=("none", "not-caught", "all"),
        default="none",
        help="re-test mutants that already have a result: none (default), those not caught, or all",
    )
    parser.add_argument("--table-only", action="store_true", help="write the table from the results in mutants/")
    parser.add_argument("--output", type=Path, help="write the table here as well as to stdout")
    parser.add_argument("--survivors", type=Path, help="write the names of the mutants not caught here")
    parser.add_argument("--status-out", type=Path, help="write every mutant's status here (name<TAB>status)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a --status-out file of an earlier run: its caught mutants count as caught, and a mutant this "
        "run has not checked keeps its status there (re-testing only the mutants not caught after adding tests)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")

    paths = args.modules or configured_modules(ROOT / "pyproject.toml")
    if not paths:
        parser.error("no modules given and none in [tool.mutmut] only_mutate")
    missing = [p for p in paths if not (ROOT / p).is_file()]
    if missing:
        parser.error(f"no such module: {', '.join(missing)}")
    modules = [module_of(p) for p in paths]

    if not args.table_only:
        # mutmut re-tests every mutant it is given by name; without names, only those with no result yet
        if args.rerun == "not-caught":
            known = read_status(args.baseline) if args.baseline else results()
            names = [n for n, s in known.items() if mutant_module(n, modules) and s not in CAUGHT]
            log.info("re-testing %d mutants not caught", len(names))
            if not names:
                log.warning("every mutant of these modules is killed; nothing to re-test")
        elif args.rerun == "none" and set(paths) == set(configured_modules(ROOT / "pyproject.toml")):
            names = []
        else:
            names = [f"{m}.*" for m in modules]
        if names or args.rerun != "not-caught":
            run = mutmut("run", "--max-children", str(args.max_children), *names)
            if run.returncode != 0:
                log.error("mutmut run exited %d:\n%s", run.returncode, run.stdout[-4000:] + run.stderr[-4000:])
                return run.returncode

    status = {n: s for n, s in results().items() if mutant_module(n, modules)}
    if args.baseline:
        status = merged(read_status(args.baseline), status)
    table, _ = score_table(status, modules)
    print(table, end="")
    if args.output:
        args.output.write_text(table)
    if args.survivors:
        lost = sorted(n for n, s in status.items() if s not in CAUGHT)
        args.survivors.write_text("".join(f"{n}\n" for n in lost))
    if args.status_out:
        args.status_out.write_text("".join(f"{n}\t{s}\n" for n, s in sorted(status.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
