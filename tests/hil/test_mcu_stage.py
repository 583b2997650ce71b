"""The MCU stage end to end: the real firmware (host build on a pty) + the simulated INA226 logger.

Checks that per-sample energy vs exit layer is linear and that the energy per layer recovered
through the whole pipeline (trigger events -> simulated trace -> wire protocol -> driver ->
windows -> stage) matches the simulator's ground truth; plus DUT reset, meter loss and resume.
"""

from __future__ import annotations

import numpy as np
import pytest

from ffenergy.analysis.per_sample import fit_energy_vs_exit
from ffenergy.contract import INSN_CLASS_COLUMNS, SAMPLES_COLUMNS, WINDOWS_COLUMNS, CsvAppender, read_rows
from ffenergy.experiment.mcu_stage import run_mcu_stage
from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.firmware.dut import Dut
from ffenergy.firmware.export import export_model
from ffenergy.firmware.launch import HostDut, build_firmware
from ffenergy.meters.base import MeterError
from ffenergy.meters.ina226 import Ina226Meter
from ffenergy.meters.triggered import MeterDisconnected
from ffenergy.sim.meter import spawn_sim_meter
from ffenergy.sim.model import EnergyModel
from ffenergy.targets.mcu import open_mcu
from ffenergy.targets.mcu_config import McuConfig
from ffenergy.vocabulary import all_modes
from tests.firmware.fw_helpers import require_qemu

DIMS = [32, 24, 24, 24]  # layers 2 and 3 cost the same MACs, so energy is linear in the exit layer
N_CLASSES = 4
MODES = all_modes(len(DIMS) - 1)
REPEATS = 20
SIM = EnergyModel(f_clk_hz=16e6, seed=11)  # ~0.5 k samples per window at 20 kHz


def _build(out, board):
    rng = np.random.default_rng(5)
    weights = [(rng.normal(size=(DIMS[i + 1], DIMS[i])) / np.sqrt(DIMS[i])).astype(np.float32) for i in range(3)]
    biases = [(0.1 * rng.normal(size=d)).astype(np.float32) for d in DIMS[1:]]
    net = NetworkArrays("mp", weights, biases, [], N_CLASSES, label_value=1.0, norm_eps=1e-4)
    policy = ExitPolicy("gap", np.array([0.5, 0.5, 0.0], np.float32))
    export_model(net, policy, out, "f32", board)
    return build_firmware(out, board)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("fw"), "host")


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(6, DIMS[0])).astype(np.float32) / np.float32(255.0)
    return x, rng.integers(0, N_CLASSES, size=6)


def _writers(run_dir):
    return CsvAppender(run_dir / "samples.csv", SAMPLES_COLUMNS), CsvAppender(run_dir / "windows.csv", WINDOWS_COLUMNS)


def _keys(run_dir):
    return [(r["mode"], int(r["sample"])) for r in read_rows(run_dir / "samples.csv")]


def test_energy_per_layer_matches_the_simulator(firmware, data, tmp_path):
    x, y = data
    config = McuConfig(target="mcu-sim", firmware=str(firmware), sim=SIM)
    samples, windows = _writers(tmp_path)
    with open_mcu(config, tmp_path) as session, samples, windows:
        result = run_mcu_stage(
            session.dut,
            session.meter,
            x,
            y,
            MODES,
            REPEATS,
            samples,
            windows,
            "mcu-sim",
            trace_path=tmp_path / "trace.csv",
        )
        manifest = session.manifest()
    assert result.measured == len(x) * len(MODES) and result.dut_resets == 0
    assert manifest["meter"]["provenance"] == "simulated"
    assert manifest["meter"]["ground_truth"]["net_joules_per_mac"] == SIM.net_joules_per_mac

    rows = read_rows(tmp_path / "samples.csv")
    layers = np.array([int(r["exit_layer"]) for r in rows])
    energy = np.array([float(r["energy_j"]) for r in rows])
    macs = np.array([int(r["macs"]) for r in rows])
    fit = fit_energy_vs_exit(layers, energy)
    layer_macs = N_CLASSES * DIMS[1] * DIMS[2]
    assert fit.r2 >= 0.95
    assert fit.slope_j_per_layer == pytest.approx(SIM.net_joules_per_mac * layer_macs, rel=0.05)
    assert np.allclose(energy, [SIM.net_energy_j(m) for m in macs], rtol=0.05)
    assert set(np.unique(layers)) == {1, 2, 3}
    assert {r["instructions"] for r in rows} == {""}  # the host build counts no instructions
    assert manifest["meter"]["energy_model"] == "macs"

    wins = read_rows(tmp_path / "windows.csv")
    assert len(wins) == len(rows) and {w["n_inferences"] for w in wins} == {str(REPEATS)}
    assert all(float(w["net_energy_j"]) < float(w["energy_j"]) for w in wins)
    trace = read_rows(tmp_path / "trace.csv")
    assert list(trace[0]) == ["t_s", "current_a", "voltage_v", "trigger"]
    assert {r["trigger"] for r in trace} == {"0", "1"}


class _ResetOnce:
    """Delegates to a Dut; resets the real firmware process (kill + boot) before the n-th INFER."""

    def __init__(self, dut: Dut, launcher: HostDut, at: int):
        self._dut, self._launcher, self._at, self._calls = dut, launcher, at, 0

    def __getattr__(self, name):
        return getattr(self._dut, name)

    def infer(self, mode, repeats=1, timeout_s=None):
        self._calls += 1
        if self._calls == self._at:
            self._launcher.restart()
        return self._dut.infer(mode, repeats, timeout_s)


def test_dut_reset_mid_run_is_reported_reloaded_and_measured(firmware, data, tmp_path):
    x, y = data
    config = McuConfig(target="mcu-sim", firmware=str(firmware), sim=SIM)
    samples, windows = _writers(tmp_path)
    with open_mcu(config, tmp_path) as session, samples, windows:
        dut = _ResetOnce(session.dut, session.launcher, at=7)
        result = run_mcu_stage(dut, session.meter, x[:3], y[:3], MODES, REPEATS, samples, windows, "mcu-sim")
    assert result.dut_resets == 1
    keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) == 3 * len(MODES)
    rows = read_rows(tmp_path / "samples.csv")
    assert np.allclose(
        [float(r["energy_j"]) for r in rows], [SIM.net_energy_j(int(r["macs"])) for r in rows], rtol=0.05
    )


class _UnplugMeterAt:
    """Pulls the simulated meter's cable (for longer than the driver retries) before the n-th INFER."""

    def __init__(self, dut: Dut, sim, at: int):
        self._dut, self._sim, self._at, self._calls = dut, sim, at, 0

    def __getattr__(self, name):
        return getattr(self._dut, name)

    def infer(self, mode, repeats=1, timeout_s=None):
        self._calls += 1
        if self._calls == self._at:
            self._sim.unplug()
        return self._dut.infer(mode, repeats, timeout_s)


def test_meter_lost_mid_run_keeps_rows_and_resume_measures_only_the_rest(firmware, data, tmp_path):
    x, y = data
    samples, windows = _writers(tmp_path)
    with (
        spawn_sim_meter(tmp_path / "meter.tty", tmp_path / "trig.fifo", SIM, replug_delay_s=60) as sim,
        HostDut(firmware, trigger=sim.trigger) as host,
        Dut(host.port) as dut,
        Ina226Meter(str(sim.port), reopen_retries=3, reopen_interval_s=0.1) as meter,
        samples,
        windows,
    ):
        with pytest.raises(MeterDisconnected, match=r"vanished.*rows measured by this call are kept in .*samples.csv"):
            run_mcu_stage(_UnplugMeterAt(dut, sim, at=9), meter, x, y, MODES, REPEATS, samples, windows, "mcu-sim")
    first = _keys(tmp_path)
    assert len(first) == 8 == len(set(first))
    assert len(read_rows(tmp_path / "windows.csv")) == 8

    config = McuConfig(target="mcu-sim", firmware=str(firmware), sim=SIM)
    samples, windows = _writers(tmp_path)
    with open_mcu(config, tmp_path / "resume") as session, samples, windows:
        result = run_mcu_stage(session.dut, session.meter, x, y, MODES, REPEATS, samples, windows, "mcu-sim")
    assert (result.skipped, result.measured) == (8, len(x) * len(MODES) - 8)
    keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) == len(x) * len(MODES)
    assert keys[:8] == first


def test_config_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="use one of mcu-sim, mcu-qemu, mcu"):
        McuConfig(target="mcu-x").validate()
    with pytest.raises(ValueError, match="needs dut_port"):
        McuConfig(target="mcu").validate()
    with pytest.raises(ValueError, match="needs firmware.*build_firmware"):
        McuConfig(target="mcu-sim", firmware=str(tmp_path / "missing")).validate()
    with pytest.raises(ValueError, match="unknown MCU option.*meter_prt"):
        McuConfig.from_dict("mcu", {"dut_port": "/dev/ttyACM0", "meter_prt": "/dev/ttyUSB0"})
    with pytest.raises(ValueError, match="unknown sim option.*fclk"):
        McuConfig.from_dict("mcu-sim", {"sim": {"fclk": 1}})
    fw = tmp_path / "ffdut"
    fw.write_bytes(b"")
    cfg = McuConfig.from_dict("mcu-sim", {"firmware": str(fw), "sim": {"seed": 3, "f_clk_hz": 8e6}})
    assert cfg.sim == EnergyModel(seed=3, f_clk_hz=8e6)


@pytest.mark.qemu
def test_mcu_qemu_runs_the_cortex_m_build_through_the_same_pipeline(data, tmp_path):
    require_qemu()
    x, y = data
    elf = _build(tmp_path / "fw", "qemu-mps2-an386")
    samples, windows = _writers(tmp_path)
    with (
        open_mcu(McuConfig(target="mcu-qemu", firmware=str(elf), sim=SIM), tmp_path / "run") as session,
        samples,
        windows,
    ):
        assert session.provenance == "simulated"
        result = run_mcu_stage(
            session.dut,
            session.meter,
            x[:2],
            y[:2],
            MODES,
            REPEATS,
            samples,
            windows,
            "mcu-qemu",
            insn_log=session.insn_log,
        )
    assert result.measured == 2 * len(MODES)
    rows = read_rows(tmp_path / "samples.csv")
    priced = [SIM.insn_net_energy_j(tuple(float(r[c]) for c in INSN_CLASS_COLUMNS)) for r in rows]
    assert np.allclose([float(r["energy_j"]) for r in rows], priced, rtol=0.05)


def test_short_windows_are_reported_once_with_the_fix(firmware, data, tmp_path):
    x, y = data
    samples, windows = _writers(tmp_path)
    with open_mcu(McuConfig(target="mcu-sim", firmware=str(firmware), sim=SIM), tmp_path) as session, samples, windows:
        result = run_mcu_stage(session.dut, session.meter, x[:3], y[:3], ["depth-1"], 1, samples, windows, "mcu-sim")
    assert result.measured == 3
    assert len(result.warnings) == 1 and "repeat inferences inside the window" in result.warnings[0]
    rows = read_rows(tmp_path / "windows.csv")
    assert all(float(w["energy_lo_j"]) < float(w["energy_j"]) < float(w["energy_hi_j"]) for w in rows)


class _KillMeterAt(_UnplugMeterAt):
    """Kills the simulated logger's process (not the DUT) just before the ``at``-th INFER.

    ``stop`` kills it and removes its port's path, as a dead device's node goes. Left behind, the
    path would name a freed pty number that another process (a second test run on the same
    machine, with its own simulated logger) can be handed at once: the driver's reopen would then
    reach that logger and call the meter back.
    """

    def infer(self, mode, repeats=1, timeout_s=None):
        self._calls += 1
        if self._calls == self._at:
            self._sim.stop()
        return self._dut.infer(mode, repeats, timeout_s)


def test_a_dead_meter_process_is_named_not_blamed_on_the_dut(firmware, data, tmp_path):
    x, y = data
    samples, windows = _writers(tmp_path)
    config = McuConfig(target="mcu-sim", firmware=str(firmware), sim=SIM, dut_timeout_s=1.0)
    with open_mcu(config, tmp_path / "work") as session, samples, windows:
        dut = _KillMeterAt(session.dut, session.sim_meter, at=5)
        with pytest.raises(
            MeterError, match=r"meter stream ended.*vanished.*not the DUT.*rows measured by this call are kept"
        ):
            run_mcu_stage(dut, session.meter, x, y, MODES, REPEATS, samples, windows, "mcu-sim")
    assert len(read_rows(tmp_path / "samples.csv")) == 4


def test_a_sample_whose_window_row_was_never_written_is_measured_again(tmp_path):
    from ffenergy.experiment.mcu_stage import drop_torn_rows

    def sample(proc, mode, idx, target="mcu-sim"):
        return {
            "target": target,
            "procedure": proc,
            "mode": mode,
            "sample": idx,
            "label": 0,
            "pred": 0,
            "exit_layer": 1,
            "macs": 10,
            "correct": 1,
        }

    def window(proc, mode, idx, target="mcu-sim"):
        return {
            "target": target,
            "meter": "ina226",
            "domain": "dut",
            "procedure": proc,
            "mode": mode,
            "repeat": idx,
            "n_inferences": 2,
            "duration_s": 0.1,
            "energy_j": 1e-3,
        }

    with (
        CsvAppender(tmp_path / "samples.csv", SAMPLES_COLUMNS) as s,
        CsvAppender(tmp_path / "windows.csv", WINDOWS_COLUMNS) as w,
    ):
        s.write_many(
            [
                sample("mp", "full", 0),
                sample("mp", "full", 1),
                sample("mp", "full", 2),
                sample("mp", "full", 0, "mcu-qemu"),
            ]
        )
        w.write_many(
            [window("mp", "full", 0), window("mp", "full", 1), window("mp", "light", 0)]
        )  # 2 torn, light the reverse
    assert drop_torn_rows(tmp_path, "mcu-sim") == 2
    assert [(r["mode"], r["sample"]) for r in read_rows(tmp_path / "samples.csv") if r["target"] == "mcu-sim"] == [
        ("full", "0"),
        ("full", "1"),
    ]
    assert len(read_rows(tmp_path / "samples.csv")) == 3  # another target's rows stay
    assert [(r["mode"], r["repeat"]) for r in read_rows(tmp_path / "windows.csv")] == [("full", "0"), ("full", "1")]
    assert drop_torn_rows(tmp_path, "mcu-sim") == 0
