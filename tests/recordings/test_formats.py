"""Each recording format, written the way its tool writes it, read back to the same windows and joules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ffenergy.meters.trigger_windows import integrate_windows, measure_window
from ffenergy.recordings.formats import ReadOptions, detect, read_recording
from ffenergy.recordings.recording import RecordingError

RATE = 2000.0


def _stream(n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Power (W) with structure inside and between windows, and its trigger: windows [1000, 2500) and [4000, 5200)."""
    rng = np.random.default_rng(7)
    trig = np.zeros(n, np.uint8)
    trig[1000:2500] = 1
    trig[4000:5200] = 1
    power = 0.02 + 0.01 * trig + 0.002 * rng.standard_normal(n) + 0.001 * np.sin(np.arange(n) / 50)
    return power, trig


def test_jls_power_and_gpi_trigger(tmp_path):
    pyjls = pytest.importorskip("pyjls")
    power, trig = _stream()
    path = tmp_path / "bench.jls"
    with pyjls.Writer(str(path)) as w:
        w.source_def(source_id=1, name="js220", vendor="Jetperch", model="JS220", version="1", serial_number="42")
        for sid, name, dtype, units in (
            (1, "current", pyjls.DataType.F32, "A"),
            (2, "voltage", pyjls.DataType.F32, "V"),
        ):
            w.signal_def(signal_id=sid, source_id=1, data_type=dtype, sample_rate=int(RATE), name=name, units=units)
        w.signal_def(signal_id=3, source_id=1, data_type=pyjls.DataType.U1, sample_rate=int(RATE), name="gpi[0]")
        w.fsr_f32(1, 0, (power / 3.3).astype(np.float32))
        w.fsr_f32(2, 0, np.full(len(power), 3.3, np.float32))
        w.fsr(3, 0, np.packbits(trig, bitorder="little"))
    assert detect(path) == "jls"
    rec = read_recording(path, options=ReadOptions(inferences=7))
    assert rec.edges.tolist() == [[1000, 2500], [4000, 5200]] and rec.meter == "joulescope"
    assert rec.voltage_v == pytest.approx(3.3) and rec.sample_rate_hz == RATE and "JS220 42" in rec.details["device"]
    stored = (power / 3.3).astype(np.float32).astype(np.float64) * np.float32(3.3)
    w = integrate_windows(rec.samples, rec.edges, RATE)
    assert w.gross_j == pytest.approx([stored[1000:2500].sum() / RATE, stored[4000:5200].sum() / RATE], rel=1e-6)
    with pytest.raises(RecordingError, match="no trigger signal 'gpi\\[1\\]'"):
        read_recording(path, options=ReadOptions(trigger="gpi[1]"))


def test_ppk2_csv_export_with_logic_bits(tmp_path):
    power, trig = _stream()
    path = tmp_path / "ppk2.csv"
    t_ms = np.arange(len(power)) / RATE * 1e3
    bits = [f"0{b}000000" for b in trig]  # the trigger on D1
    rows = [f"{t:.3f},{p / 3.0 * 1e6:.4f},{b}" for t, p, b in zip(t_ms, power, bits)]
    path.write_text("Timestamp(ms),Current(uA),D0-D7\n" + "\n".join(rows) + "\n")
    assert detect(path) == "ppk2-csv"
    with pytest.raises(RecordingError, match="no voltage; pass --voltage-v"):
        read_recording(path)
    with pytest.raises(RecordingError, match="no complete trigger window"):  # D0 stays low
        read_recording(path, options=ReadOptions(voltage_v=3.0, trigger="D0"))
    rec = read_recording(path, options=ReadOptions(voltage_v=3.0, trigger="D1"))
    assert rec.edges.tolist() == [[1000, 2500], [4000, 5200]] and rec.sample_rate_hz == pytest.approx(RATE)
    assert rec.samples[1000:2500].sum() / RATE == pytest.approx(power[1000:2500].sum() / RATE, rel=1e-5)


def test_ppk2_csv_without_the_trigger_channel_high_has_no_window(tmp_path):
    path = tmp_path / "ppk2.csv"
    path.write_text("Timestamp(ms),Current(uA),D0-D7\n0.0,10,00000000\n0.5,10,00000000\n1.0,10,00000000\n")
    with pytest.raises(RecordingError, match="no complete trigger window"):
        read_recording(path, options=ReadOptions(voltage_v=3.0))


def test_energyrunner3_results_json_exact_edges(tmp_path):
    samples = [2.0e-5] * 100 + [3.0e-5] * 300 + [2.0e-5] * 100
    entry = {
        "file": "tst_000000_Stop_7.bin",
        "infer": {"iterations": 50, "warmups": 1},
        "power": {"samples": samples, "timestamps": [["08", 100], ["09", 400]], "voltage": 1.8},
        "mode": "e",
    }
    path = tmp_path / "kws" / "energy" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([entry, entry]))
    assert detect(path) == "energyrunner3"
    rec = read_recording(path)
    assert rec.edges.tolist() == [[100, 400], [600, 900]] and rec.edge_uncertainty == 0
    assert rec.inferences.tolist() == [50, 50] and rec.voltage_v == 1.8 and rec.workload == "kws"
    w = integrate_windows(rec.samples, rec.edges, rec.sample_rate_hz, quantity="energy")
    assert w.gross_j == pytest.approx([300 * 3.0e-5] * 2)
    assert w.idle_power_w == pytest.approx([2.0e-5 * 1000] * 2)


def test_ffenergy_trace_csv_gives_the_drivers_energy(tmp_path):
    power, trig = _stream(3000)
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.9, 1.1, len(power))) / RATE  # a meter's own, slightly uneven clock
    v = np.full(len(t), 3.3)
    path = tmp_path / "trace.csv"
    path.write_text(
        "t_s,current_a,voltage_v,trigger\n"
        + "".join(f"{a!r},{p / 3.3!r},3.3,{b}\n" for a, p, b in zip(t.tolist(), power.tolist(), trig.tolist()))
    )
    rec = read_recording(path)
    assert rec.format == "ffenergy-trace" and rec.edges.tolist() == [[1000, 2500]]
    w = integrate_windows(rec.samples, rec.edges, rec.sample_rate_hz, quantity="energy", t_s=rec.t_s)
    live = measure_window(t, v, power / 3.3, trig, 1000, 2500)
    assert w.gross_j[0] == pytest.approx(live.gross_j, rel=1e-12)
    assert w.duration_s[0] == pytest.approx(live.duration_s, rel=1e-12)
    assert w.gross_lo_j[0] == pytest.approx(live.gross_lo_j, rel=1e-12)
