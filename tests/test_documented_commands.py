"""Every shell command the README and hardware/ docs show is checked against the tool.

Each command line of a fenced block without a language tag is classified; a kind of command
this file does not know fails the test, so a new documented command needs a check here.
Commands that are quick and need no hardware run for real (``ffenergy meters``, ``targets``,
``plot``, ``--source-dir``, the logger's ``make``); the others are parsed by the real argument
parsers, their configs loaded and their boards, extras, make targets and packages looked up.
Installing and the main job itself are what the clean-clone check of .ci/run executes.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ffenergy.cli import build_parser
from ffenergy.config import load_config
from ffenergy.firmware.boards import buildable_boards

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "hardware/README.md", "hardware/meter/README.md", "hardware/firmware/README.md"]
FFENERGY = re.compile(r"^(?:\.venv/bin/)?(?:ffenergy|python3? -m ffenergy|\.venv/bin/python -m ffenergy)(?= |$)")
PLACEHOLDER = re.compile(r"\[|\.\.\.|\b[A-Z][A-Z_]{2,}\b")  # a synopsis: [options], RUN_DIR, RESULTS...


def documented_commands(doc: str) -> list[str]:
    """The commands of ``doc``'s untagged fenced blocks (comments dropped, ``&&`` chains split)."""
    commands: list[str] = []
    fence: str | None = None  # the opening fence line while inside a block
    for line in (ROOT / doc).read_text().splitlines():
        if line.startswith("```"):
            fence = line.strip() if fence is None else None
            continue
        if fence == "```" and line.strip() and "─" not in line:  # untagged blocks; skip the diagrams
            commands += [part.strip() for part in re.split(r"\s+#\s", line)[0].split("&&")]
    return [c for c in commands if c]


def all_commands() -> list[tuple[str, str]]:
    return [(doc, cmd) for doc in DOCS for cmd in documented_commands(doc)]


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subs.choices[name]


def _check_synopsis(parser: argparse.ArgumentParser, words: list[str]) -> None:
    """Each --flag of a usage line exists; an enumerated value list (a|b|c) is what the parser allows."""
    options = {s: a for a in parser._actions for s in a.option_strings}
    for i, word in enumerate(words):
        flag = word.strip("[]")
        if not flag.startswith("-"):
            continue
        flag = flag.split("|")[0] if flag.count("-") == 1 else flag  # -v|-q
        assert flag in options, f"{flag} is not an option of {parser.prog}"
        value = words[i + 1].strip("[]") if i + 1 < len(words) else ""
        if "|" in value and options[flag].choices is not None:
            assert set(value.split("|")) <= set(options[flag].choices), f"{flag} {value} vs {options[flag].choices}"


def _check_ffenergy(argv: list[str], tmp_path: Path) -> None:
    line = " ".join(argv)
    if PLACEHOLDER.search(line):
        words = list(argv)
        while words and words[0].startswith("["):  # the global options of "ffenergy [-v|-q] run ..."
            words = words[1:]
        _check_synopsis(_subparser(words[0]) if words else build_parser(), words[1:])
        return
    args = build_parser().parse_args(argv)  # exits (fails the test) on a flag or choice it does not know
    if args.command == "run":
        load_config(ROOT / args.config)
    elif args.command in ("meters", "targets", "bench"):
        assert _ffenergy([args.command], tmp_path).returncode == 0
    elif args.command == "plot":
        from tests.plot.plot_synthetic import write_synthetic_run

        for path in args.results:
            write_synthetic_run(tmp_path / path, "a-run", n_samples=30, mcu=False, energy=False)
        done = _ffenergy(argv, tmp_path)
        assert done.returncode == 0 and (tmp_path / args.results[0] / "a-run" / "report.md").is_file(), done.stderr
    else:
        raise AssertionError(f"no check for `ffenergy {args.command}` yet; add one to {Path(__file__).name}")


def _ffenergy(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ffenergy", *argv], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _check_launch(words: list[str]) -> None:
    if "--source-dir" in words:
        done = subprocess.run(
            [sys.executable, "-m", "ffenergy.firmware.launch", "--source-dir"], capture_output=True, text=True
        )
        assert done.returncode == 0 and (Path(done.stdout.strip()) / "Makefile").is_file(), done.stderr
    if "--board" in words:
        board = words[words.index("--board") + 1]
        assert PLACEHOLDER.search(board) or board in buildable_boards(), f"--board {board}: not a buildable board"


def _check_make(words: list[str]) -> None:
    directory = words[words.index("-C") + 1]
    assigns = dict(w.split("=", 1) for w in words if "=" in w)
    targets = [w for w in words[1:] if "=" not in w and w != "-C" and w != directory]
    if directory == "$FW":  # the firmware Makefile: BOARD must be one it builds
        assert assigns.get("BOARD") in buildable_boards(), f"BOARD={assigns.get('BOARD')} is not buildable"
        return
    makefile = (ROOT / directory / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"make target {target} not in {directory}"
    if not targets and shutil.which("avr-gcc") and Path("/usr/share/arduino/hardware/arduino/avr").is_dir():
        out = ROOT / directory / "build"
        done = subprocess.run(["make", "-C", str(ROOT / directory)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert (out / "ina226_logger.hex").is_file()


def _check_pip(words: list[str]) -> None:
    extras_defined = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for word in words:
        if word.startswith("."):
            extras = re.findall(r"\[([^\]]*)\]", word)
            asked = {e.strip() for group in extras for e in group.split(",")}
            assert asked <= extras_defined, f"pip install {word}: no extra {asked - extras_defined}"


def _check_apt(words: list[str]) -> None:
    """The packages the docs tell a user to install are ones CI installs (so CI checks what they do)."""
    if "install" not in words:
        return
    ci = (ROOT / ".ci" / "run").read_text()
    for package in [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]:
        assert re.search(rf"\b{re.escape(package)}\b", ci), f"apt package {package} is not installed by .ci/run"


def _check_python_module(words: list[str]) -> None:
    module = words[2]
    assert module == "ffenergy.sim.meter", f"no check for python -m {module} yet"
    from ffenergy.sim import meter

    parser_flags = set(re.findall(r"add_argument\(\s*f?\"(--[a-z-]+)", Path(meter.__file__).read_text()))
    parser_flags |= {"--" + f.replace("_", "-") for f in meter.EnergyModel.__dataclass_fields__}
    for word in words[3:]:
        flag = word.strip("[]")
        if flag.startswith("--"):
            assert flag in parser_flags, f"python -m ffenergy.sim.meter has no {flag}"


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "command"), all_commands(), ids=[f"{d}: {c}"[:90] for d, c in all_commands()])
def test_a_documented_command_works(doc: str, command: str, tmp_path: Path) -> None:
    words = shlex.split(command)
    if FFENERGY.match(command):
        _check_ffenergy(words[1:] if words[0].endswith("ffenergy") else words[words.index("ffenergy") + 1 :], tmp_path)
    elif words[0].endswith("ffenergy.firmware.launch") or words[:3] == ["python", "-m", "ffenergy.firmware.launch"]:
        _check_launch(words)
    elif words[0] == "make":
        _check_make(words)
    elif words[0].endswith("pip") and words[1] == "install":
        _check_pip(words)
    elif words[0] == "apt-get":
        _check_apt(words)
    elif words[:2] == ["python", "-m"] and words[2].startswith("ffenergy."):
        _check_python_module(words)
    elif words[:3] == ["python3", "-m", "venv"] or words[0] in (".venv/bin/pytest", "apt-get") or "=$(" in command:
        pass  # making the environment, the test suite itself, a shell variable: run by .ci/run on a clean clone
    else:
        raise AssertionError(f"{doc}: no check for `{command}`; add one to {Path(__file__).name}")


def test_the_docs_show_the_commands_this_file_checks() -> None:
    commands = [c for _, c in all_commands()]
    assert any("run experiments/mnist.yaml" in c for c in commands)  # the main job
    assert any(re.search(r"ffenergy plot results/$", c) for c in commands)
    assert sum(c.startswith("make -C") for c in commands) >= 4
