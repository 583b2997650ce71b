"""Build the firmware and run it as a DUT: host build on a pseudo-terminal, or QEMU mps2-an386.

The C sources ship inside the package (``firmware_source_dir()``, package data), so a plain
``pip install`` can build them; builds go to the per-user cache (``firmware_cache_dir()``), never
next to the sources. The launchers are context managers that always kill their process.
``check_against_reference`` ties export, build, launch, the DUT client and the numpy reference together.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ffenergy.children import spawn
from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.firmware.boards import BOARDS, buildable_boards
from ffenergy.firmware.deployed import DType
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.export import deploy, export_model
from ffenergy.firmware.reference import layer_scores, reference_predict
from ffenergy.registry import UnknownName
from ffenergy.vocabulary import all_modes


def firmware_source_dir() -> Path:
    """The firmware's C sources and Makefile (``make -C`` this directory), installed with the package."""
    path = Path(__file__).resolve().parent / "c"
    if not (path / "Makefile").is_file():
        raise FileNotFoundError(f"firmware sources not found in {path}: reinstall ffenergy (they ship as package data)")
    return path


def firmware_cache_dir() -> Path:
    """Where ``build_firmware`` puts its builds: ``$FFENERGY_CACHE/firmware``, else ``~/.cache/ffenergy/firmware``
    (the root of ``ffenergy.data.splits.cache_root``, not imported so that firmware does not depend on data)."""
    root = os.environ.get("FFENERGY_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "ffenergy") / "firmware"


def _sources_digest(src: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(f for f in src.rglob("*") if f.is_file() and "__pycache__" not in f.parts):
        h.update(f.relative_to(src).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def make_command(model_dir: str | Path, board: str = "host", out_dir: str | Path | None = None) -> str:
    """The shell command that builds ``model_dir`` for ``board`` by hand (for messages and docs)."""
    cmd = ["make", "-C", str(firmware_source_dir()), f"BOARD={board}", f"MODEL={Path(model_dir).resolve()}"]
    return shlex.join(cmd + ([f"OUT={Path(out_dir).resolve()}"] if out_dir else []))


class ToolchainMissing(RuntimeError):
    """A compiler or emulator the board needs is not installed."""


def require_tools(board: str) -> None:
    spec = BOARDS.get(board)
    if not spec.buildable:
        raise ToolchainMissing(
            f"board {board} is a memory budget only; build for one of {', '.join(buildable_boards())}"
        )
    missing = spec.missing_tools()
    if missing:
        raise ToolchainMissing(
            f"board {board} needs {', '.join(missing)}, not found on PATH: install with `{spec.install_hint(missing)}`"
        )


def build_firmware(model_dir: str | Path, board: str = "host", out_dir: str | Path | None = None) -> Path:
    """``make BOARD=board MODEL=model_dir``; returns the executable (host) or the ELF (MCU boards).

    Without ``out_dir`` the build goes to ``firmware_cache_dir()/<board>-<key>``, the key a hash of
    model.h and the firmware sources: an unchanged model is not rebuilt, and a finished build
    appears there whole (it is built in a temporary directory and renamed)."""
    require_tools(board)
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "model.h").is_file():
        raise FileNotFoundError(f"{model_dir}/model.h not found: run ffenergy.firmware.export.export_model first")
    src = firmware_source_dir()
    name = "ffdut" if board == "host" else "ffdut.elf"
    if out_dir:
        out = Path(out_dir).resolve()
        _make(src, board, model_dir, out)
        return out / name
    model_digest = hashlib.sha256((model_dir / "model.h").read_bytes()).hexdigest()
    key = hashlib.sha256(f"{board}\0{model_digest}\0{_sources_digest(src)}".encode()).hexdigest()[:16]
    out = firmware_cache_dir().resolve() / f"{board}-{key}"
    if not (out / name).is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            _make(src, board, model_dir, tmp)
            try:
                tmp.rename(out)
            except OSError:  # another process finished the same build first, or a stale partial one is there
                if not (out / name).is_file():
                    shutil.rmtree(out, ignore_errors=True)
                    tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out / name


def _make(src: Path, board: str, model_dir: Path, out: Path) -> None:
    proc = subprocess.run(
        ["make", "-s", "-C", str(src), f"BOARD={board}", f"MODEL={model_dir}", f"OUT={out}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"firmware build for {board} failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a stopped process must be able to die
        proc.kill()
        proc.wait(timeout=5)


class HostDut:
    """The host build on a pseudo-terminal; ``port`` is the tty path to give ``Dut``.

    The DUT holds the pty master, the parent keeps the slave open (else the DUT reads EIO) and
    the same master across ``restart()``, which kills the process and boots a fresh one (a reset).
    ``trigger``: None, a file/fifo path, or "pty" (then read events from ``trigger_fd``).
    """

    def __init__(self, exe: str | Path, trigger: str | Path | None = None):
        self.exe = str(exe)
        self.proc: subprocess.Popen | None = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # before the DUT writes: no echo, no line editing of its BOOT frame
        self.port = os.ttyname(self._slave)
        self.trigger_fd: int | None = None
        self._trigger_slave: int | None = None
        self.trigger_path: str | None = None
        if trigger == "pty":
            self.trigger_fd, self._trigger_slave = os.openpty()
            tty.setraw(self._trigger_slave)
            self.trigger_path = os.ttyname(self._trigger_slave)
        elif trigger is not None:
            self.trigger_path = str(trigger)

    def start(self) -> HostDut:
        args = [self.exe] + (["--trigger", self.trigger_path] if self.trigger_path else [])
        self.proc = spawn(args, stdin=self._master, stdout=self._master)  # stderr: ours
        return self

    def restart(self) -> None:
        _kill(self.proc)
        self.start()

    def stop(self) -> None:
        _kill(self.proc)
        for fd in (self._master, self._slave, self.trigger_fd, self._trigger_slave):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        self.trigger_fd = self._trigger_slave = None

    def __enter__(self) -> HostDut:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    """Whether a TCP socket listens on 127.0.0.1:port (Linux /proc/net/tcp, state 0A)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    want = f"0100007F:{port:04X}"
    return any(f[1] == want and f[3] == "0A" for f in (line.split() for line in lines))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuDut:
    """``qemu-system-arm -M mps2-an386`` running the ELF; UART0 = protocol on a TCP server that waits
    for the client (``port`` = ``socket://127.0.0.1:N``), UART1 = trigger events to ``trigger`` (a file or FIFO path)
    or discarded. ``icount`` makes SysTick ticks deterministic (1 instruction = 1 ns). ``extra``: more
    qemu-system-arm arguments (the instruction-count plugin, ``ffenergy.firmware.insn.plugin_args``)."""

    def __init__(
        self,
        elf: str | Path,
        trigger: str | Path | None = None,
        icount: bool = False,
        machine: str = "mps2-an386",
        extra: Sequence[str] = (),
    ):
        require_tools("qemu-mps2-an386")
        if not Path(elf).is_file():
            raise FileNotFoundError(
                f"firmware {elf} not found: build it with build_firmware(model_dir, 'qemu-mps2-an386')"
            )
        self.elf, self.trigger, self.icount, self.machine = str(elf), trigger, icount, machine
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self.tcp_port = _free_port()
        self.port = f"socket://127.0.0.1:{self.tcp_port}"

    def command(self) -> list[str]:
        cmd = [
            "qemu-system-arm",
            "-M",
            self.machine,
            "-nographic",
            "-monitor",
            "none",
            "-kernel",
            self.elf,
            "-serial",
            f"tcp:127.0.0.1:{self.tcp_port},server=on,wait=on,nodelay=on",
            "-serial",
            f"file:{self.trigger}" if self.trigger else "null",
        ]
        return cmd + (["-icount", "shift=0,align=off,sleep=off"] if self.icount else []) + self.extra

    def start(self, wait_s: float = 10.0) -> QemuDut:
        """Start QEMU and wait until its UART0 server listens (read from /proc, never probed: with
        wait=on the first connection gets the boot frame); a QEMU that exits raises with its stderr."""
        self._log = tempfile.TemporaryFile()
        self.proc = spawn(self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + wait_s
        while not _listening(self.tcp_port):
            if self.proc.poll() is not None:
                self._log.seek(0)
                msg = self._log.read().decode(errors="replace").strip()
                raise RuntimeError(
                    f"qemu-system-arm exited with {self.proc.returncode}: {msg}\ncommand: " + " ".join(self.command())
                )
            if time.monotonic() > deadline or not os.path.exists("/proc/net/tcp"):
                break
            time.sleep(0.01)
        return self

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        _kill(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> QemuDut:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Mismatch:
    sample: int
    mode: str
    field: str  # pred | exit_layer | macs | scores
    expected: object
    got: object


def check_against_reference(
    net: NetworkArrays,
    policy: ExitPolicy,
    x: np.ndarray,
    target: str = "host",
    dtype: DType = "f32",
    modes: list[str] | None = None,
    calib_x: np.ndarray | None = None,
    workdir: str | Path | None = None,
) -> list[Mismatch]:
    """Export, build and run the firmware (host pty or QEMU) on every row of x in every mode and
    compare with the numpy reference: predictions, exit layers, MACs and float32 score bits.
    int8 calibrates on ``calib_x`` (default: x). Returns the mismatches (empty = bit-exact)."""
    if target not in ("host", "qemu"):
        raise ValueError(f"unknown target {target!r}: use 'host' or 'qemu'")
    board = "host" if target == "host" else "qemu-mps2-an386"
    calib = x if calib_x is None and dtype == "int8" else calib_x
    modes = modes or all_modes(net.n_layers)
    with tempfile.TemporaryDirectory(prefix="ffenergy-check-") as tmp:
        out = Path(workdir or tmp)
        export_model(net, policy, out, dtype, board, calib_x=calib, name="check")
        exe = build_firmware(out, board)
        model = deploy(net, policy, dtype, calib, name="check")
        launcher = HostDut(exe) if target == "host" else QemuDut(exe)
        with launcher, Dut(launcher.port, timeout_s=5.0) as dut:
            got = dut.predict(x, modes)
    found: list[Mismatch] = []
    scores = layer_scores(model, x)
    for mode in modes:
        ref = reference_predict(model, x, mode, scores=scores)
        for i in range(len(x)):
            for name in ("pred", "exit_layer", "macs"):
                e, g = int(getattr(ref, name)[i]), int(getattr(got[mode], name)[i])
                if e != g:
                    found.append(Mismatch(i, mode, name, e, g))
            if ref.scores[i].tobytes() != got[mode].scores[i].tobytes():
                found.append(Mismatch(i, mode, "scores", ref.scores[i], got[mode].scores[i]))
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m ffenergy.firmware.launch MODEL_DIR [--board B] [--out DIR]``: build, print the path."""
    ap = argparse.ArgumentParser(
        prog="python -m ffenergy.firmware.launch",
        description="Build the DUT firmware for an exported model; print the executable.",
    )
    ap.add_argument("model_dir", nargs="?", help="the directory holding model.h (from export_model)")
    ap.add_argument("--board", default="host", help="host, qemu-mps2-an386 or nucleo-l476rg (default: host)")
    ap.add_argument("--out", help="build directory (default: under the per-user cache)")
    ap.add_argument("--source-dir", action="store_true", help="print the firmware source directory and exit")
    args = ap.parse_args(argv)
    if args.source_dir:
        print(firmware_source_dir())
        return 0
    if not args.model_dir:
        ap.error("MODEL_DIR is required (or --source-dir)")
    try:
        print(build_firmware(args.model_dir, args.board, args.out))
    except (ToolchainMissing, FileNotFoundError, RuntimeError, UnknownName) as exc:
        ap.exit(1, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
