"""An emulated Joulescope JS220 at ``pyjoulescope_driver``'s API boundary, driven by a recording (a test tool).

``EmulatedJoulescopeDriver`` stands in for ``pyjoulescope_driver.Driver`` (``JoulescopeMeter``'s
``driver_factory``): ``device_paths``, ``open``/``close``, ``publish``, ``subscribe``/``unsubscribe``,
``finalize``. Once every subscribed signal's ``.../ctrl`` topic is set to 1 (so that a replay starts at
the recording's first sample; a JS220 starts each signal as it is enabled) it publishes the recording as
the JS220 does:
float32 current, voltage (the recording's supply, 3.3 V if it has none) and power on ``s/i``, ``s/v``,
``s/p``, at the output rate, in messages with ``sample_id`` counted at the 2 MHz base rate and a
``decimate_factor``, and the trigger line (1 inside a recording's windows) as packed bits from twice
that rate on every ``s/gpi/N`` (the JS220 samples its inputs at the full rate). It publishes from its
own thread as fast as the subscriber's callbacks return, not in wall-clock time.

Faults: ``drop=(first, count)`` leaves out samples [first, first + count) of every signal (a sample-id
gap, as when USB falls behind); ``stall_at`` stops publishing at that sample. Each block's trigger
bits come after its analog signals, so the meter must hold samples until every signal has them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ffenergy.recordings.recording import Recording

BASE_RATE = 2_000_000  # the JS220's sample-id clock
SERIAL = "004242"


class EmulatedJoulescopeDriver:
    """A ``pyjoulescope_driver.Driver`` look-alike with one JS220 that streams ``recording``."""

    def __init__(
        self,
        recording: Recording,
        *,
        block: int | None = None,
        drop: tuple[int, int] | None = None,
        stall_at: int | None = None,
        devices: tuple[str, ...] = (f"u/js220/{SERIAL}",),
    ):
        rate = recording.sample_rate_hz
        if BASE_RATE % round(rate) or round(rate) != rate or rate > BASE_RATE // 2:
            raise ValueError(f"the emulated JS220 streams at 2 MHz / N; the recording is sampled at {rate:g} Hz")
        self.rec = recording
        self.rate = round(rate)
        self.block = block or max(8, (self.rate // 20) // 8 * 8)  # the JS220 publishes ~20 messages a second
        self.drop, self.stall_at = drop, stall_at
        self.devices = devices
        self.published: list[tuple[str, Any]] = []
        self._subs: dict[str, list[Callable[[str, Any], None]]] = {}
        self._enabled: set[str] = set()
        self._enabled_lock = threading.Lock()  # publish() runs beside the stream thread
        self._fs: int | None = None
        self._opened: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        voltage = recording.voltage_v or 3.3
        power = recording.power_w()
        self._signals = {
            "s/i": (power / voltage).astype(np.float32),
            "s/v": np.full(recording.n_samples, voltage, np.float32),
            "s/p": power.astype(np.float32),
        }
        self._trigger = recording.trigger()

    # --- the Driver API ffenergy uses --------------------------------------------------------
    def device_paths(self, timeout: float | None = None) -> list[str]:
        return sorted(self.devices)

    def open(self, device_prefix: str, mode: str | None = None, timeout: float | None = None) -> None:
        if device_prefix not in self.devices:
            raise RuntimeError(f"jsdrv_open {device_prefix}: not found")
        self._opened = device_prefix

    def close(self, device_prefix: str, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._opened = None

    def finalize(self, timeout: float | None = None) -> None:
        self.close(self._opened or "")

    def subscribe(self, topic: str, flags: Any, fn: Callable[[str, Any], None], timeout: float | None = None) -> None:
        self._subs.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic: str, fn: Callable[[str, Any], None], timeout: float | None = None) -> None:
        if fn in self._subs.get(topic, []):
            self._subs[topic].remove(fn)

    def publish(self, topic: str, value: Any, timeout: float | None = None) -> None:
        if self._opened is None or not topic.startswith(self._opened + "/"):
            raise RuntimeError(f"jsdrv_publish {topic}: device not open")
        self.published.append((topic, value))
        local = topic[len(self._opened) + 1 :]
        if local == "h/fs":
            if int(value) != self.rate:
                raise RuntimeError(f"the emulated JS220 streams its recording at {self.rate} Hz only, not {value}")
            self._fs = int(value)
        elif local.endswith("/ctrl"):
            with self._enabled_lock:
                (self._enabled.add if int(value) else self._enabled.discard)(local[: -len("/ctrl")])
            if int(value) and self._thread is None and self._all_subscribed_on():
                self._thread = threading.Thread(target=self._stream, name="emulated-js220", daemon=True)
                self._thread.start()

    def _all_subscribed_on(self) -> bool:
        """Every signal with a subscriber is enabled (a replay then starts at the recording's first sample)."""
        wanted = {t[len(self._opened or "") + 1 : -len("/!data")] for t, fns in self._subs.items() if fns}
        with self._enabled_lock:
            return wanted <= self._enabled

    # --- the stream ------------------------------------------------------------------------
    def _stream(self) -> None:
        decimate = BASE_RATE // self.rate
        n = self.rec.n_samples
        for lo in range(0, n, self.block):
            hi = min(lo + self.block, n)
            if self.stall_at is not None and hi > self.stall_at:
                return
            for a, b in self._kept(lo, hi):
                if self._stop.is_set():
                    return
                for name in ("s/i", "s/v", "s/p"):
                    self._send(name, a * decimate, decimate, self._signals[name][a:b])
                bits = np.packbits(np.repeat(self._trigger[a:b], 2), bitorder="little")  # 2 bits per output sample
                with self._enabled_lock:
                    inputs = sorted(e for e in self._enabled if e.startswith("s/gpi/"))
                for name in inputs:
                    self._send(name, a * decimate, decimate // 2, bits)

    def _kept(self, lo: int, hi: int) -> list[tuple[int, int]]:
        if self.drop is None:
            return [(lo, hi)]
        d0, d1 = self.drop[0], self.drop[0] + self.drop[1]
        return [(a, b) for a, b in ((lo, min(hi, d0)), (max(lo, d1), hi)) if b > a]

    def _send(self, name: str, sample_id: int, decimate: int, data: np.ndarray) -> None:
        with self._enabled_lock:
            if name not in self._enabled or self._opened is None:
                return
        topic = f"{self._opened}/{name}/!data"
        value = {
            "sample_id": sample_id,
            "sample_rate": BASE_RATE,
            "decimate_factor": decimate,
            "data": data.copy(),
            "utc": 0,
            "field_id": 0,
            "index": 0,
            "time_map": {"offset_time": 0, "offset_counter": 0, "counter_rate": float(BASE_RATE)},
        }
        for fn in list(self._subs.get(topic, [])):
            fn(topic, value)
