"""``TriggeredMeter.wait_flowing``: a window retried after a meter restart opens only once samples flow again."""

from __future__ import annotations

import threading
import time

import pytest

from ffenergy.meters.base import MeterError, MeterInfo
from ffenergy.meters.triggered import MeterDisconnected, TriggeredMeter


class _Driver(TriggeredMeter):
    """The reader side of a driver, worked by the test (no device)."""

    info = MeterInfo("driver", "measured", ("dut",), 1e-3)


def _later(delay_s: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), action()))
    thread.start()
    return thread


def test_returns_at_once_while_samples_flow():
    start = time.monotonic()
    _Driver().wait_flowing(timeout_s=5.0)
    assert time.monotonic() - start < 0.1


def test_waits_until_the_driver_has_reopened_its_port():
    meter = _Driver()
    meter._stream_down("port vanished")
    start = time.monotonic()
    thread = _later(0.3, lambda: meter._stream_down(None))
    meter.wait_flowing(timeout_s=5.0)
    waited = time.monotonic() - start
    thread.join()
    assert 0.25 < waited < 0.45  # woken when the stream is back, not at the next half-second poll


def test_a_stream_still_down_at_the_timeout_is_named():
    meter = _Driver(window_timeout_s=0.2)
    meter._stream_down("no data from the logger for 2 s")
    with pytest.raises(MeterError, match=r"driver: the sample stream is still down after 0.2 s \(no data"):
        meter.wait_flowing()


def test_a_meter_that_fails_while_reconnecting_raises_its_error():
    meter = _Driver()
    meter._stream_down("port vanished")
    gone = MeterDisconnected("port vanished and did not come back")
    thread = _later(0.1, lambda: meter._fail(gone))
    with pytest.raises(MeterDisconnected) as raised:
        meter.wait_flowing(timeout_s=5.0)
    thread.join()
    assert raised.value is gone
