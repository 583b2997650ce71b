"""Walking every window of a meter's stream, and comparing them with ``integrate_windows`` on the recording."""

from __future__ import annotations

import numpy as np

from ffenergy.meters.trigger_windows import WindowEnergyDetail, integrate_windows
from ffenergy.meters.triggered import StreamRestarted, TriggeredMeter
from ffenergy.recordings.recording import Recording

REL = 1e-6  # what the drivers must reproduce of the import's gross energy per window


def walk_windows(meter: TriggeredMeter, n: int, timeout_s: float = 60.0) -> list[WindowEnergyDetail | StreamRestarted]:
    """The next ``n`` windows from the stream's start: each one's energy, or the StreamRestarted it raised."""
    out: list[WindowEnergyDetail | StreamRestarted] = []
    token = meter.token_at(0)
    while len(out) < n:
        try:
            w = meter.next_window(token, timeout_s=timeout_s)
        except StreamRestarted as exc:
            out.append(exc)
            token = meter.token_at(meter.restart_indices[-1])
            continue
        out.append(w)
        token = meter.token_at(w.end_index)
    return out


def relative_errors(
    rec: Recording, windows: list[WindowEnergyDetail], which: list[int] | None = None, offset: int | None = 0
) -> np.ndarray:
    """|gross / import's gross - 1| for the recording's windows ``which`` (all), met as ``windows``.

    The windows' sample indices must be the recording's plus ``offset`` (a stream that lost samples before
    them); with ``offset=None`` their times (start_s, duration_s) times the rate must be.
    """
    which = list(range(rec.n_windows)) if which is None else which
    ref = integrate_windows(rec.samples, rec.edges, rec.sample_rate_hz, quantity=rec.quantity, t_s=rec.t_s)
    if offset is None:  # a stream whose times are its own sample ids over the rate (the JS220's)
        rate = rec.sample_rate_hz
        got = np.array([[round(w.start_s * rate), round((w.start_s + w.duration_s) * rate)] for w in windows])
    else:
        got = np.array([[w.start_index - offset, w.end_index - offset] for w in windows])
    np.testing.assert_array_equal(got, rec.edges[which], err_msg="the driver's window edges are not the recording's")
    return np.abs(np.array([w.gross_j for w in windows]) / ref.gross_j[which] - 1)
