"""The pseudo-terminal a stand-in serial device serves on (the simulated logger, a recording's replay).

``PtyLink(path).open()`` makes a pty in raw mode and links ``path`` to its slave side atomically,
so the host opens a stable path; ``close()`` removes the link and the pty (an unplugged cable).
The device writes to, and reads the host's requests from, the master side.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from ffenergy.children import spawn


class PtyLink:
    """A pty whose slave side is linked at ``path``; the device holds the master side."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.master = self.slave = -1

    @property
    def is_open(self) -> bool:
        return self.master >= 0

    def open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo of our own frames before the host configures the port
        os.set_blocking(self.master, False)  # writes wait in select, so a stop request can end them
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.path)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    def write(self, data: bytes, stop: threading.Event | None = None) -> bool:
        """Write all of ``data``, waiting while the host does not read; False if ``stop`` was set first."""
        view = memoryview(data)
        while view:
            if stop is not None and stop.is_set():
                return False
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:
                select.select([], [self.master], [], 0.1)
        return True

    def read_requests(self, timeout_s: float = 0.0) -> bytes:
        """What the host sent, waiting up to ``timeout_s`` for the first byte; b"" if nothing came."""
        out = b""
        wait = timeout_s
        while select.select([self.master], [], [], wait)[0]:
            try:
                data = os.read(self.master, 256)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            out += data
            wait = 0.0
        return out


@dataclass
class DeviceProcess:
    """A stand-in device running as a child process, serving on the pty linked at ``port``."""

    proc: subprocess.Popen
    port: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.port.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_device(argv: list[str], ready: bytes, what: str, timeout_s: float) -> tuple[subprocess.Popen, bytes]:
    """Start a device process (it dies with this one) and wait for its first stdout line to start with ``ready``;
    (the process, that line). A device that does not get ready in ``timeout_s`` is killed, with an error."""
    proc = spawn(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None  # stdout=PIPE
    line = proc.stdout.readline() if select.select([proc.stdout], [], [], timeout_s)[0] else b""
    if not line.startswith(ready):
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
        raise RuntimeError(
            f"{what} did not start within {timeout_s} s (exit code {proc.poll()}); run {' '.join(argv)} by hand"
            " to see why"
        )
    return proc, line
