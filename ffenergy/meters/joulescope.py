"""Joulescope JS220 through ``pyjoulescope_driver`` (pip install 'ffenergy[joulescope]'; Apache-2.0).

The JS220 streams current, voltage and its own power (float32, 1 Msps, or fewer with the driver's
``h/fs``, which downsamples on the instrument) and its general-purpose inputs (1 bit, from the full
2 MHz rate) as separate pub/sub topics (``{device}/s/i/!data``, ``s/v``, ``s/p``, ``s/gpi/N``). Every
message carries the ``sample_id`` of its first sample; ``SampleAligner`` puts the signals side by side
by sample id (sample_id // decimate_factor at the output rate). The DUT's trigger pin on GPI 0 (or
``trigger_in``) gives sample-aligned windows (``TriggeredMeter``). Energy is the JS220's power signal
(computed before downsampling, so exact under it): the current column holds p / v.

A sample-id gap (the instrument or USB dropped samples) is counted, logged, listed in the meter info
and breaks the windows open across it (``StreamRestarted``: measure again); nothing is integrated
across a gap. No samples for ``stall_timeout_s`` (stalled, unplugged) fails the meter with a clear error.

The library is imported only when the meter is built, so the rest of ffenergy runs without it;
``driver_factory`` replaces ``pyjoulescope_driver.Driver`` (tests use ``ffenergy.sim.joulescope``, an
emulated JS220 at the library's API boundary driven by real recordings, not a device).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Unpack

import numpy as np

from ffenergy.meters.base import MeterError, MeterInfo, MeterUnavailable
from ffenergy.meters.triggered import DOMAIN, TriggeredMeter, WindowOptions

log = logging.getLogger(__name__)
PIP_HINT = "pip install 'ffenergy[joulescope]'"
TRIGGERS = {"gpi0": "s/gpi/0", "gpi1": "s/gpi/1", "gpi2": "s/gpi/2", "gpi3": "s/gpi/3", "trigger_in": "s/gpi/7"}
SIGNALS = ("i", "v", "p")
U1_SLACK = 7  # a 1-bit message may end in up to 7 padding bits: its last 7 samples wait for the next message


@dataclass
class StreamStats:
    samples: int = 0
    messages: int = 0
    dropped_samples: int = 0  # sample-id gaps, in output samples
    gaps: list[tuple[int, int]] = field(default_factory=list)  # the first 20 [first, end) missing sample indices


class SampleAligner:
    """Per-signal sample buffers keyed by output sample index, released where every signal has samples.

    ``add`` takes one message. A signal that jumps ahead leaves a hole (filled with NaN in its buffer, so
    buffers stay contiguous); ``take`` returns ``(first index, {signal: array})`` for the samples every
    signal holds from the next index up to the next hole, or the hole ``(first, end)`` itself, skipped.
    """

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.start = dict.fromkeys(names, -1)  # output index of each buffer's first sample; -1: nothing yet
        self.data: dict[str, np.ndarray] = {n: np.zeros(0) for n in names}
        self.limit = dict.fromkeys(names, 0)  # how many of each buffer's samples may be released
        self.next = -1  # the next output index to release
        self.holes: list[tuple[int, int]] = []

    def add(self, name: str, first: int, values: np.ndarray, slack: int = 0) -> None:
        start, held = self.start[name], self.data[name]
        if start < 0:
            self.start[name], self.data[name] = first, values
        else:
            end = start + len(held)
            if first > end:  # this signal skipped samples: a hole no signal is released across
                self.holes.append((end, first))
                held = np.concatenate((held, np.full(first - end, np.nan)))
            self.data[name] = np.concatenate((held[: max(first - start, 0)], values))  # padding bits overwritten
        self.limit[name] = max(len(self.data[name]) - slack, 0)

    def take(self) -> tuple[int, dict[str, np.ndarray]] | tuple[int, int] | None:
        if min(self.start.values()) < 0:
            return None
        if self.next < 0:
            self.next = max(self.start.values())
            self._trim()
        self.holes = sorted(h for h in self.holes if h[1] > self.next)
        if self.holes and self.holes[0][0] <= self.next:
            lo, hi = self.holes.pop(0)
            self.next = hi
            self._trim()
            return lo, hi
        end = min(self.start[n] + self.limit[n] for n in self.names)
        if self.holes:
            end = min(end, self.holes[0][0])
        if end <= self.next:
            return None
        out = {n: self.data[n][self.next - self.start[n] : end - self.start[n]] for n in self.names}
        first, self.next = self.next, end
        self._trim()
        return first, out

    def _trim(self) -> None:
        for n in self.names:
            drop = min(max(self.next - self.start[n], 0), len(self.data[n]))
            if drop:
                self.data[n] = self.data[n][drop:]
                self.start[n] += drop
                self.limit[n] = max(self.limit[n] - drop, 0)


def _load_driver_class() -> Callable[[], Any]:
    try:
        module = importlib.import_module("pyjoulescope_driver")
    except ImportError as exc:
        raise MeterUnavailable(
            f"the Joulescope meter needs the pyjoulescope_driver package ({exc}): {PIP_HINT}"
        ) from exc
    return module.Driver  # type: ignore[no-any-return]


class JoulescopeMeter(TriggeredMeter):
    """A JS220 (``device``: its path or serial number; None: the only one found) with the DUT trigger on ``trigger``."""

    def __init__(
        self,
        device: str | None = None,
        *,
        trigger: Literal["gpi0", "gpi1", "gpi2", "gpi3", "trigger_in"] = "gpi0",
        sample_rate_hz: int = 1_000_000,
        stall_timeout_s: float = 2.0,
        driver_factory: Callable[[], Any] | None = None,
        **window_options: Unpack[WindowOptions],
    ):
        window_options.setdefault(
            "history_s", 2.0
        )  # 1 Msps x 32 bytes: 64 MB; open windows are kept whatever their length
        super().__init__(**window_options)
        if trigger not in TRIGGERS:
            raise ValueError(f"Joulescope trigger {trigger!r}: use one of {', '.join(TRIGGERS)}")
        if not 1 <= sample_rate_hz <= 1_000_000 or 1_000_000 % sample_rate_hz:
            raise ValueError(f"Joulescope sample_rate_hz {sample_rate_hz}: use 1 Msps or an integer divisor of it")
        self.trigger, self.sample_rate_hz, self.stall_timeout_s = trigger, sample_rate_hz, stall_timeout_s
        self.stats = StreamStats()
        self._topics = {f"s/{s}/!data": s for s in SIGNALS} | {f"{TRIGGERS[trigger]}/!data": "trig"}
        self._aligner = SampleAligner((*SIGNALS, "trig"))
        self._lock = threading.Lock()  # the library's callback thread against close()
        self._closing = threading.Event()
        self._last_data = time.monotonic()
        self._driver = (driver_factory or _load_driver_class())()
        try:
            self.device = self._find(device)
            self._start()
        except MeterUnavailable:
            self._finalize()
            raise
        except Exception as exc:  # the library raises RuntimeError/TimeoutError with its own codes
            self._finalize()
            raise MeterUnavailable(
                f"cannot start the Joulescope {device or ''}: {exc}. Check the USB cable, and that the Joulescope UI"
                " or another program does not hold it"
            ) from exc
        self._watchdog = threading.Thread(target=self._watch, name="joulescope-watchdog", daemon=True)
        self._watchdog.start()

    def _find(self, wanted: str | None) -> str:
        paths = [p for p in self._driver.device_paths() if "js220" in p.lower()]
        if wanted:
            paths = [p for p in paths if p == wanted or p.lower().endswith("/" + wanted.lower())]
        if len(paths) != 1:
            seen = ", ".join(self._driver.device_paths()) or "none"
            which = f" matching {wanted!r}" if wanted else ""
            raise MeterUnavailable(
                f"{'no' if not paths else 'more than one'} Joulescope JS220{which} found (devices seen: {seen});"
                " plug it in (and close the Joulescope UI, which holds it), or name one with the device option"
                " (its serial number)"
            )
        return paths[0]

    def _start(self) -> None:
        d, dev = self._driver, self.device
        d.open(dev, "defaults")
        d.publish(f"{dev}/s/i/range/mode", "auto")
        d.publish(f"{dev}/s/v/range/mode", "auto")
        d.publish(f"{dev}/h/fs", int(self.sample_rate_hz))
        for topic in self._topics:
            d.subscribe(f"{dev}/{topic}", "pub", self._on_data)
        for topic in self._topics:
            d.publish(f"{dev}/{topic.rsplit('/', 1)[0]}/ctrl", 1)

    # --- the library's callback thread ------------------------------------------------------
    def _on_data(self, topic: str, value: dict[str, Any]) -> None:
        name = self._topics.get(topic[len(self.device) + 1 :])
        if name is None or self._error is not None or self._closing.is_set():
            return
        try:
            self._ingest(name, value)
        except Exception as exc:  # an exception must not vanish inside the library's thread
            log.exception("Joulescope %s: bad %s message", self.device, topic)
            self._fail(MeterError(f"the Joulescope {self.device} sent a message ffenergy cannot read ({exc})"))

    def _ingest(self, name: str, value: dict[str, Any]) -> None:
        self._last_data = time.monotonic()
        self.stats.messages += 1
        sample_id, decimate = int(value["sample_id"]), int(value["decimate_factor"])
        base_rate = float(value["sample_rate"])
        out_decimate = round(base_rate / self.sample_rate_hz)
        if name == "trig":  # 1 bit per sample, 8 to a byte, from the full rate: pick one per output sample
            bits = np.unpackbits(np.asarray(value["data"], np.uint8), bitorder="little")
            ids = sample_id + np.arange(len(bits)) * decimate
            keep = ids % out_decimate == 0
            if not keep.any():
                return
            first = int(ids[keep][0]) // out_decimate
            slack = -(-U1_SLACK * decimate // out_decimate)
            self._aligner.add(name, first, bits[keep].astype(np.float64), slack)
        else:
            if decimate != out_decimate:
                raise MeterError(
                    f"{name} arrives at {base_rate / decimate:g} samples/s, not the {self.sample_rate_hz} set with h/fs"
                )
            self._aligner.add(name, sample_id // decimate, np.asarray(value["data"], np.float64))
        with self._lock:
            while (taken := self._aligner.take()) is not None:
                self._release(taken)

    def _release(self, taken: tuple[int, Any]) -> None:
        first, rest = taken
        if not isinstance(rest, dict):  # a hole: samples [first, rest) never came
            lost = rest - first
            self.stats.dropped_samples += lost
            if len(self.stats.gaps) < 20:
                self.stats.gaps.append((first, rest))
            log.warning("Joulescope %s dropped %d samples (%d..%d)", self.device, lost, first, rest)
            self._restart(f"the JS220 dropped {lost} samples, sample ids {first}..{rest}")
            return
        n = len(rest["p"])
        self.stats.samples += n
        v = rest["v"]
        with np.errstate(divide="ignore", invalid="ignore"):
            current = np.where(v != 0, rest["p"] / v, rest["i"])
        t = (first + np.arange(n)) / self.sample_rate_hz
        self._append(t, v, current, rest["trig"])

    def _watch(self) -> None:
        while not self._closing.wait(0.2):
            quiet = time.monotonic() - self._last_data
            if quiet > self.stall_timeout_s and self._error is None:
                self._stream_down(f"no samples from the Joulescope for {quiet:.1f} s")
                self._fail(
                    MeterError(
                        f"the Joulescope {self.device} sent no samples for {self.stall_timeout_s} s (stream stalled or"
                        " unplugged): check the USB cable and that no other program took it, then resume the run"
                        " (ffenergy run CONFIG --resume RUN_DIR)"
                    )
                )

    # --- Meter interface --------------------------------------------------------------------
    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="joulescope",
            provenance="measured",
            domains=(DOMAIN,),
            update_period_s=1.0 / self.sample_rate_hz,
            details={
                "device": getattr(self, "device", None),
                "sample_rate_hz": self.sample_rate_hz,
                "trigger": self.trigger,
                "energy_from": "the JS220's power signal (s/p)",
                "stream": asdict(self.stats),
            },
        )

    def _finalize(self) -> None:
        try:
            self._driver.finalize()
        except Exception:  # the library is already down; nothing left to release
            pass

    def close(self) -> None:
        self._closing.set()  # from here on the callback drops what the library still delivers
        self._watchdog.join(timeout=2.0)
        for topic in self._topics:
            try:
                self._driver.publish(f"{self.device}/{topic.rsplit('/', 1)[0]}/ctrl", 0, timeout=0.25)
                self._driver.unsubscribe(f"{self.device}/{topic}", self._on_data)
            except Exception:  # the device may be gone already
                pass
        try:
            self._driver.close(self.device)
        except Exception:
            pass
        self._finalize()
