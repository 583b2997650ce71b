"""The PPK2 adapter's data path through a fake ppk2_api object (no hardware here)."""

from __future__ import annotations

import threading
from typing import ClassVar

import numpy as np
import pytest

from ffenergy.meters import ppk2
from ffenergy.meters.base import MeterUnavailable
from ffenergy.meters.ppk2 import Ppk2Meter
from ffenergy.meters.triggered import MeterDisconnected, Token


class FakePpk2:
    """Mimics ppk2_api.PPK2_API: get_data() -> bytes, get_samples(bytes) -> (uA list, logic bytes)."""

    devices: ClassVar[list[str]] = ["/dev/fake-ppk2"]

    def __init__(self, port: str, chunks: list[tuple[list[float], list[int]]] = ()):
        self.port = port
        self.calls: list[tuple] = []
        self._chunks = list(chunks)
        self._lock = threading.Lock()

    @classmethod
    def list_devices(cls):
        return cls.devices

    def get_modifiers(self):
        self.calls.append(("get_modifiers",))

    def use_source_meter(self):
        self.calls.append(("source",))

    def use_ampere_meter(self):
        self.calls.append(("ampere",))

    def set_source_voltage(self, mv):
        self.calls.append(("voltage", mv))

    def toggle_DUT_power(self, state):
        self.calls.append(("power", state))

    def start_measuring(self):
        self.calls.append(("start",))

    def stop_measuring(self):
        self.calls.append(("stop",))

    def get_data(self) -> bytes:
        with self._lock:
            if not self._chunks:
                return b""
            self._next = self._chunks.pop(0)
            return b"\x00" * 4 * len(self._next[0])

    def get_samples(self, data: bytes):
        return self._next


def _chunks(channel: int):
    idle_ua, active_ua = 1000.0, 6000.0
    levels = np.r_[np.zeros(3000), np.ones(5000), np.zeros(3000)].astype(int)
    other = 1 << ((channel + 1) % 8)  # noise on another logic channel must not matter
    logic = (levels << channel) | (np.arange(len(levels)) % 3 == 0) * other
    ua = np.where(levels > 0, active_ua, idle_ua)
    return [(ua[k : k + 1000].tolist(), logic[k : k + 1000].tolist()) for k in range(0, len(ua), 1000)]


@pytest.mark.parametrize("mode, channel", [("source", 3), ("ampere", 7)])
def test_window_from_logic_channel(mode, channel):
    made = []

    def factory(port):
        made.append(FakePpk2(port, _chunks(channel)))
        return made[0]

    factory.list_devices = FakePpk2.list_devices  # the port is discovered like the real class does
    with Ppk2Meter(mode=mode, voltage_mv=1800, trigger_channel=channel, api_factory=factory) as meter:
        w = meter.next_window(Token(0, 0), timeout_s=5)  # the fake streams at once: search from the first sample
        assert w.duration_s == pytest.approx(5000 / 1e5)
        assert w.gross_j == pytest.approx(1.8 * 6e-3 * 0.05)
        assert w.net_j == pytest.approx(1.8 * 5e-3 * 0.05)
        assert meter.info.provenance == "measured" and meter.info.details["trigger_channel"] == f"D{channel}"
    api = made[0]
    assert api.port == "/dev/fake-ppk2"
    assert (mode,) in api.calls and ("voltage", 1800) in api.calls and ("stop",) in api.calls
    assert (("power", "ON") in api.calls) == (mode == "source")


def test_missing_package_device_and_bad_options_are_clear(monkeypatch):
    def no_module(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(ppk2.importlib, "import_module", no_module)
    with pytest.raises(MeterUnavailable, match="pip install ppk2-api"):
        Ppk2Meter()
    FakePpk2.devices = []
    try:
        with pytest.raises(MeterUnavailable, match="no PPK2 found on USB"):
            Ppk2Meter(api_factory=FakePpk2)
    finally:
        FakePpk2.devices = ["/dev/fake-ppk2"]
    with pytest.raises(ValueError, match="D0..D7"):
        Ppk2Meter("/dev/x", trigger_channel=8, api_factory=lambda port: FakePpk2(port, []))


def test_device_error_while_streaming_fails_the_meter():
    class Broken(FakePpk2):
        def get_data(self):
            raise OSError("[Errno 5] Input/output error")

    with Ppk2Meter("/dev/ppk", api_factory=lambda port: Broken(port, [])) as meter:
        with pytest.raises(MeterDisconnected, match="PPK2 on /dev/ppk stopped answering"):
            meter.next_window(meter.start(), timeout_s=5)
