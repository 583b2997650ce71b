"""A meter whose own sample stream carries the DUT's trigger line (INA226 logger, PPK2, simulator).

Subclasses run a reader that calls ``_append`` with converted samples, ``_restart`` when the
stream starts over (port reopened, logger reset) and ``_fail`` when the meter is gone for good.
Windows are found from trigger edges in the stream (``trigger_windows``), never from host time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np

from ffenergy.meters.base import Meter, MeterError, WindowEnergy
from ffenergy.meters.trigger_windows import EDGE_SHARE_LIMIT, WindowEnergyDetail, find_windows, measure_window

log = logging.getLogger(__name__)
DOMAIN = "dut"
MAX_OPEN_WINDOWS = 8  # the newest open windows whose samples the history keeps, however long they last


class MeterDisconnected(MeterError):
    """The meter's port vanished and did not come back within the reopen budget."""


class StreamRestarted(MeterError):
    """The meter's stream started over (port reopened, logger reset) after the window opened: retry it."""


@dataclasses.dataclass(frozen=True)
class Token:
    """Where a window opened: the next sample's absolute index, and how many stream restarts preceded it."""

    index: int
    restarts: int


class WindowOptions(TypedDict, total=False):
    """``TriggeredMeter``'s window options, as subclasses pass them through."""

    idle_span_s: float
    post_idle_s: float
    window_timeout_s: float
    history_s: float
    edge_share_limit: float


class TriggeredMeter(Meter):
    """Buffers (t, V, I, trigger) samples and cuts windows at the trigger edges.

    ``start()`` returns a ``Token`` (the next sample's index); ``next_window(token)`` waits for the first
    complete window whose rising edge comes at or after it, plus ``post_idle_s`` of idle samples
    after the falling edge (they feed the idle level), and returns its energy.

    History: the buffer keeps at least the last ``history_s`` seconds, and every sample from
    ``idle_span_s`` before the oldest open window on, however long that window lasts (a window is
    open from ``start()`` until ``next_window`` returns or raises for it).
    """

    def __init__(
        self,
        *,
        idle_span_s: float = 0.05,
        post_idle_s: float = 0.005,
        window_timeout_s: float = 10.0,
        history_s: float = 60.0,
        edge_share_limit: float = EDGE_SHARE_LIMIT,
    ):
        self.idle_span_s = idle_span_s
        self.post_idle_s = post_idle_s
        self.window_timeout_s = window_timeout_s
        self.history_s = history_s
        self.edge_share_limit = edge_share_limit
        self._cond = threading.Condition()
        self._cols = np.zeros((4, 1 << 16), dtype=np.float64)  # t, v, i, trig
        self._n = 0  # samples held
        self._base = 0  # absolute index of self._cols[:, 0]
        self._restarts: list[int] = []  # absolute indices where the stream started over
        self._restart_why: list[str] = []  # why, one entry per restart
        self._open_windows: dict[int, int] = {}  # absolute start index of each open window -> how many are open there
        self._error: MeterError | None = None
        self._down: str | None = None  # why the stream stopped while the driver tries to get it back

    # --- reader side -------------------------------------------------------------------------
    def _append(self, t: np.ndarray, v: np.ndarray, i: np.ndarray, trig: np.ndarray) -> None:
        k = len(t)
        if k == 0:
            return
        with self._cond:
            self._make_room(k)
            self._cols[:, self._n : self._n + k] = (t, v, i, trig)
            self._n += k
            self._cond.notify_all()

    def _make_room(self, k: int) -> None:
        cap = self._cols.shape[1]
        if self._n + k <= cap:
            return
        drop = self._droppable()
        if drop >= cap // 4:  # trim only when it frees a good share, so appends stay amortised O(1)
            self._cols[:, : self._n - drop] = self._cols[:, drop : self._n]
            self._n -= drop
            self._base += drop
        if self._n + k > self._cols.shape[1]:
            grown = np.zeros((4, max(2 * self._cols.shape[1], self._n + k)), dtype=np.float64)
            grown[:, : self._n] = self._cols[:, : self._n]
            self._cols = grown

    def _droppable(self) -> int:
        """Samples at the head of the buffer older than ``history_s`` and than every open window's idle span."""
        if self._n < 2:
            return 0
        t = self._cols[0, : self._n]
        keep_from = t[-1] - self.history_s
        first_open = min(self._open_windows, default=None)
        if first_open is not None and first_open - self._base < self._n:
            keep_from = min(keep_from, t[max(first_open - self._base, 0)] - self.idle_span_s)
        return int(np.searchsorted(t, keep_from))

    def _restart(self, why: str = "port reopened or logger reset") -> None:
        """The stream starts over (or has a hole) at the next sample: windows open across it are measured again."""
        with self._cond:
            self._restarts.append(self._base + self._n)
            self._restart_why.append(why)
            self._cond.notify_all()

    def _fail(self, error: MeterError) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def _reopen_with_retries(
        self,
        why: str,
        reopen: Callable[[], None],
        closing: threading.Event,
        retries: int,
        interval_s: float,
        device: str,
    ) -> bool:
        """The stream stopped for ``why`` (a port vanished): call ``reopen`` up to ``retries`` times, ``interval_s``
        apart, until it raises no ``MeterError``: True. Else the meter fails with ``MeterDisconnected`` naming
        ``device`` and how to go on; False (also when ``closing`` is set meanwhile)."""
        self._stream_down(why)
        log.warning("%s; reopening (%d tries, %.1f s apart)", why, retries, interval_s)
        self._restart(why)
        for _ in range(retries):
            if closing.wait(interval_s):
                return False
            try:
                reopen()
            except MeterError:
                continue
            self._stream_down(None)
            log.warning("%s is back", device)
            return True
        self._fail(
            MeterDisconnected(
                f"{why} and did not come back after {retries} reopen tries over {retries * interval_s:.1f} s."
                f" Plug {device} back in, then resume the run (ffenergy run CONFIG --resume RUN_DIR): finished rows"
                " are kept"
            )
        )
        return False

    def _stream_down(self, why: str | None) -> None:
        """The sample stream stopped for ``why`` (the driver is reconnecting); None: it flows again."""
        with self._cond:
            self._down = why
            self._cond.notify_all()

    def stream_problem(self) -> str | None:
        """Why no samples are coming (the meter failed, or is down and reconnecting); None while they flow.

        Lets a caller whose DUT went quiet tell a stopped meter from a stopped DUT.
        """
        with self._cond:
            return str(self._error) if self._error else self._down

    def wait_flowing(self, timeout_s: float | None = None) -> None:
        """Return once samples flow (at once unless the driver is reconnecting); raises the meter's error if it
        failed meanwhile, ``MeterError`` if the stream is still down after ``timeout_s`` (default: the window
        timeout). A window retried after a restart must open only then, or its trigger pulse is never seen."""
        timeout = self.window_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._down is not None and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MeterError(
                        f"{self.info.name}: the sample stream is still down after {timeout} s ({self._down})"
                    )
                self._cond.wait(min(left, 0.5))
            if self._error:
                raise self._error

    # --- consumer side -----------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Absolute index of the next sample to arrive."""
        with self._cond:
            return self._base + self._n

    @property
    def restart_indices(self) -> tuple[int, ...]:
        """Absolute sample indices where the stream started over or had a hole, oldest first."""
        with self._cond:
            return tuple(self._restarts)

    def token_at(self, index: int) -> Token:
        """A token for the first window at or after absolute sample ``index``, restarts up to it counted as seen.

        For consumers that read a stream faster than real time (replays, benchmarks) and walk its windows
        one after the other; the samples from ``index`` on are kept only within ``history_s``.
        """
        with self._cond:
            return Token(index, sum(1 for r in self._restarts if r <= index))

    def start(self) -> Token:
        with self._cond:
            if self._error:
                raise self._error
            index = self._base + self._n
            self._open_windows[index] = self._open_windows.get(index, 0) + 1
            while sum(self._open_windows.values()) > MAX_OPEN_WINDOWS:  # windows never closed (their caller failed)
                del self._open_windows[min(self._open_windows)]
            return Token(index, len(self._restarts))

    def _close_token(self, token: Token) -> None:
        left = self._open_windows.get(token.index, 0) - 1
        if left > 0:
            self._open_windows[token.index] = left
        else:
            self._open_windows.pop(token.index, None)

    def next_window(self, token: Token, timeout_s: float | None = None) -> WindowEnergyDetail:
        """The first complete trigger window at or after ``token`` (see the class doc)."""
        timeout = self.window_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            try:
                return self._await_window(token, timeout)
            finally:
                self._close_token(token)

    def _await_window(self, token: Token, timeout: float) -> WindowEnergyDetail:
        deadline = time.monotonic() + timeout
        while True:
            if token.index < self._base:
                raise MeterError(
                    f"{self.info.name}: window start {token.index} has left the {self.history_s} s sample"
                    " history; call next_window sooner after start, or raise history_s"
                )
            restarted = len(self._restarts) > token.restarts
            # a window completed before the stream broke is still good: return it before any error
            found = self._complete_window(token.index, self._restarts[token.restarts] if restarted else None)
            if found is not None:
                return found
            if self._error:
                raise self._error
            if restarted:
                raise StreamRestarted(
                    f"{self.info.name}: the meter stream started over after the window opened"
                    f" ({self._restart_why[token.restarts]}); measure the window again"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise MeterError(
                    f"{self.info.name}: no complete trigger window within {timeout} s after sample {token.index}"
                    f" ({self._base + self._n - token.index} samples arrived). Check the trigger wiring, and that a pulse"
                    " lasts several sample periods (raise INFER repeats)"
                )
            self._cond.wait(min(left, 0.5))

    def _complete_window(self, token: int, limit: int | None = None) -> WindowEnergyDetail | None:
        """The first complete window at or after ``token`` within the samples before ``limit`` (absolute)."""
        lo = token - self._base
        hi = self._n if limit is None else min(max(limit - self._base, 0), self._n)
        if hi - lo < 2:
            return None
        t, v, i, trig = self._cols[:, :hi]
        wins = find_windows(trig[lo:], offset=lo)
        if not wins:
            return None
        start, end = wins[0]
        if t[-1] - t[end] < self.post_idle_s:
            return None
        s0 = int(np.searchsorted(t[:start], t[start] - self.idle_span_s))
        s0 = max(s0, max((r - self._base for r in self._restarts if r - self._base <= start), default=0))
        s1 = int(np.searchsorted(t, t[end] + self.idle_span_s, side="right"))
        detail = measure_window(
            t[s0:s1], v[s0:s1], i[s0:s1], trig[s0:s1], start - s0, end - s0, self.idle_span_s, self.edge_share_limit
        )
        return dataclasses.replace(detail, start_index=start + self._base, end_index=end + self._base)

    def samples(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of (t, v, i, trig) for absolute sample indices [start, end) still in the history."""
        with self._cond:
            lo = max(start - self._base, 0)
            hi = min(end - self._base, self._n)
            t, v, i, trig = self._cols[:, lo : max(lo, hi)].copy()
            return t, v, i, trig

    def stop(self, token: Any, work_macs: int = 0) -> WindowEnergy:
        detail = self.next_window(token)
        return WindowEnergy(joules={DOMAIN: detail.gross_j}, duration_s=detail.duration_s)
