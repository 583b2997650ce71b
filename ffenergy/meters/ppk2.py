"""Nordic Power Profiler Kit II through the ``ppk2-api`` package (pip install ppk2-api; GPL-2.0).

The PPK2 samples current with its 8 logic inputs in the same 32-bit word, so the DUT's trigger
pin wired to one of D0..D7 gives sample-aligned windows (``TriggeredMeter``). Its firmware streams
100 kS/s; ppk2-api does not report the rate, so the driver takes it from ``sample_rate_hz``, else
from the API object's ``sample_rate_hz`` where one has it, else 100 kS/s, and checks it against the
data: after ``RATE_CHECK_S`` of streaming, samples received over wall-clock time more than
``RATE_TOLERANCE`` away from it are logged and recorded as ``observed_rate_hz``.
Source-meter mode powers the DUT at ``voltage_mv``; ampere mode sits in series with the DUT's own
supply, whose voltage you state with ``voltage_mv``. The PPK2 has no sample timestamps: time is
sample index / the sample rate. ppk2-api silently drops samples it cannot convert (time then drifts a
little); only a mismatch between its current and logic lists is visible, and counted as lost.
An API object with a ``replay`` attribute (``ffenergy.sim.replay.Ppk2ReplayApi``) is a
recording replayed, not a PPK2: its figures are labelled ``simulated`` and ``replay`` names the recording.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Unpack

import numpy as np

from ffenergy.meters.base import MeterInfo, MeterUnavailable
from ffenergy.meters.triggered import DOMAIN, MeterDisconnected, TriggeredMeter, WindowOptions

SAMPLE_RATE_HZ = 100_000.0  # the PPK2 firmware's stream rate
RATE_CHECK_S = 2.0
RATE_TOLERANCE = 0.1
PIP_HINT = "pip install ppk2-api"
log = logging.getLogger(__name__)


def _load_api_class(multiprocess: bool) -> Any:
    try:
        module = importlib.import_module("ppk2_api.ppk2_api")
    except ImportError as exc:
        raise MeterUnavailable(f"the PPK2 meter needs the ppk2-api package ({exc}): {PIP_HINT}") from exc
    return module.PPK2_MP if multiprocess else module.PPK2_API


class Ppk2Meter(TriggeredMeter):
    """A PPK2 with the DUT trigger on logic channel ``trigger_channel`` (0..7 = D0..D7)."""

    def __init__(
        self,
        port: str | None = None,
        *,
        mode: Literal["source", "ampere"] = "source",
        voltage_mv: int = 3300,
        trigger_channel: int = 0,
        sample_rate_hz: float | None = None,
        multiprocess: bool = True,
        api_factory: Callable[[str], Any] | None = None,
        **window_options: Unpack[WindowOptions],
    ):
        window_options.setdefault("history_s", 10.0)
        super().__init__(**window_options)
        if mode not in ("source", "ampere"):
            raise ValueError(f"PPK2 mode {mode!r}: use 'source' (the PPK2 powers the DUT) or 'ampere' (in series)")
        if not 0 <= trigger_channel <= 7:
            raise ValueError(f"PPK2 trigger_channel {trigger_channel}: use 0..7 for logic inputs D0..D7")
        if not 800 <= voltage_mv <= 5000:
            raise ValueError(f"PPK2 voltage_mv {voltage_mv}: the PPK2 supports 800..5000 mV")
        self.mode, self.voltage_mv, self.trigger_channel = mode, voltage_mv, trigger_channel
        factory = api_factory or _load_api_class(multiprocess)
        self.port = port or self._find_port(factory)
        self.lost_samples = 0
        self._n_seen = 0
        self.observed_rate_hz: float | None = None
        self._first_data_s: float | None = None
        try:
            self._api = factory(self.port)
            replay = getattr(self._api, "replay", None)
            self.replay: dict[str, Any] | None = dict(replay) if isinstance(replay, dict) else None
            self.sample_rate_hz = float(sample_rate_hz or getattr(self._api, "sample_rate_hz", None) or SAMPLE_RATE_HZ)
            if not self.sample_rate_hz > 0:
                raise ValueError(f"PPK2 sample_rate_hz {self.sample_rate_hz}: must be positive")
            self._api.get_modifiers()
            if mode == "source":
                self._api.use_source_meter()
            else:
                self._api.use_ampere_meter()
            self._api.set_source_voltage(voltage_mv)
            if mode == "source":
                self._api.toggle_DUT_power("ON")
            self._api.start_measuring()
        except MeterUnavailable:
            raise
        except Exception as exc:  # the package raises bare Exceptions and serial errors
            raise MeterUnavailable(
                f"cannot start the PPK2 on {self.port}: {exc}. Check the USB cable and that"
                " no other program (nRF Connect Power Profiler) holds the port"
            ) from exc
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ppk2-{self.port}", daemon=True)
        self._thread.start()

    @staticmethod
    def _find_port(factory: Any) -> str:
        lister = getattr(factory, "list_devices", None)
        ports = lister() if lister else []
        if not ports:
            raise MeterUnavailable(
                "no PPK2 found on USB: plug it in (both USB cables for source mode) or pass"
                " its port, e.g. /dev/serial/by-id/usb-Nordic_Semiconductor_PPK2_*-if01"
            )
        return ports[0]

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._api.get_data()
                if not data:
                    self._closing.wait(0.01)
                    continue
                decoded = self._api.get_samples(data)
            except Exception as exc:
                if not self._closing.is_set():
                    self._fail(
                        MeterDisconnected(
                            f"the PPK2 on {self.port} stopped answering ({exc}): check the USB"
                            " cable, then resume the run (ffenergy run CONFIG --resume RUN_DIR)"
                        )
                    )
                return
            self._ingest(decoded)

    def _ingest(self, decoded: Any) -> None:
        if not (isinstance(decoded, tuple) and len(decoded) == 2):
            self._fail(MeterUnavailable(f"this ppk2-api returns no logic channels; upgrade: {PIP_HINT} --upgrade"))
            return
        micro_amps, logic = decoded
        n = min(len(micro_amps), len(logic))
        self.lost_samples += abs(len(micro_amps) - len(logic))
        if n == 0:
            return
        t = (self._n_seen + np.arange(n)) / self.sample_rate_hz
        self._n_seen += n
        self._check_rate()
        current = np.asarray(micro_amps[:n], np.float64) * 1e-6
        trig = (np.asarray(logic[:n], np.int64) >> self.trigger_channel) & 1
        self._append(t, np.full(n, self.voltage_mv / 1000.0), current, trig.astype(np.float64))

    def _check_rate(self) -> None:
        """Compare the stated rate with samples received over wall-clock time, once, after RATE_CHECK_S."""
        now = time.monotonic()
        if self._first_data_s is None:
            self._first_data_s, self._n_at_first = now, self._n_seen
            return
        if self.observed_rate_hz is not None or now - self._first_data_s < RATE_CHECK_S:
            return
        self.observed_rate_hz = (self._n_seen - self._n_at_first) / (now - self._first_data_s)
        if abs(self.observed_rate_hz / self.sample_rate_hz - 1) > RATE_TOLERANCE:
            log.warning(
                "PPK2 on %s: %.4g samples/s arrived, the stated rate is %.4g: time and energy scale with the rate;"
                " pass sample_rate_hz if the device streams at another rate (or the host drops samples)",
                self.port,
                self.observed_rate_hz,
                self.sample_rate_hz,
            )

    @property
    def info(self) -> MeterInfo:
        return MeterInfo(
            name="ppk2",
            provenance="simulated" if self.replay else "measured",
            domains=(DOMAIN,),
            update_period_s=1.0 / self.sample_rate_hz,
            details={
                "port": self.port,
                "mode": self.mode,
                "voltage_mv": self.voltage_mv,
                "trigger_channel": f"D{self.trigger_channel}",
                "lost_samples": self.lost_samples,
                "sample_rate_hz": self.sample_rate_hz,
                "observed_rate_hz": self.observed_rate_hz,
                **({"replay": self.replay} if self.replay else {}),
            },
        )

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2.0)
        try:
            self._api.stop_measuring()
        except Exception:  # the device may already be gone; nothing left to release
            pass
