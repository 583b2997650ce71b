"""Sweeps on a loopback Ray cluster (a head and two worker nodes) with fake bench resources.

Node A offers every bench the points need (``bench:cpu``, ``meter:simulated``, ``bench:mcu-sim``),
node B only ``bench:mcu-sim``: host points run on A, microcontroller points on either.
"""

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ffenergy.cli import main
from ffenergy.contract import read_rows

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.slow

STORE = 80 * 2**20
LOOPBACK = {"node_ip_address": "127.0.0.1", "object_store_memory": STORE}
# seconds-long points: a 2-layer OP network, the simulated meter, 3 samples on the simulated MCU
BASE = """\
name: pt
seed: 0
data: {dataset: mnist, source: embedded, val_fraction: 0.1}
model: {hidden: [16, 16], epochs: 1, batch_size: 100}
inference: {procedures: [op], alpha_sweep: [1.0]}
targets: [cpu]
meter: simulated
measurement: {repeats: 5, min_window_s: 0.01, warmup_s: 0.0, batch_size: 512}
meter_options:
  simulated: {static_power_w: 1.0, update_period_s: 0.0005, noise: 0.001}
mcu: {max_samples: 3, repeats: 1, modes: [full, light]}
"""


@pytest.fixture(scope="module")
def cluster():
    # Ray swaps 127.0.0.1 for the host's outward address when it resolves a cluster address; keep it on loopback
    mp = pytest.MonkeyPatch()
    mp.setattr(ray._private.services, "resolve_ip_for_localhost", lambda host: host)
    points_before = set(Path(tempfile.gettempdir()).glob("ffenergy-point-*"))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **LOOPBACK})
    a = c.add_node(num_cpus=2, resources={"bench:cpu": 1, "meter:simulated": 1, "bench:mcu-sim": 1}, **LOOPBACK)
    b = c.add_node(num_cpus=2, resources={"bench:mcu-sim": 1}, **LOOPBACK)
    c.wait_for_nodes()
    assert c.address.startswith("127.0.0.1:")
    yield c, a, b
    c.shutdown()
    mp.undo()
    for left in set(Path(tempfile.gettempdir()).glob("ffenergy-point-*")) - points_before:
        shutil.rmtree(left, ignore_errors=True)  # the folders of points whose node was killed mid-run


def _sweep_file(tmp_path: Path, grid: str, min_window_s: float = 0.01) -> Path:
    (tmp_path / "base.yaml").write_text(BASE.replace("min_window_s: 0.01", f"min_window_s: {min_window_s}"))
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: base.yaml\nname: t\nretries: 2\ngrid:\n{grid}")
    return path


def _sweep(path: Path, address: str, out: Path) -> tuple[int, Path]:
    rc = main(["sweep", str(path), "--address", address, "--out", str(out), "--no-progress"])
    (sweep_dir,) = out.iterdir()
    return rc, sweep_dir


def _last_rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    return {row["point"]: row for row in read_rows(sweep_dir / "sweep.csv")}


def _stage_times(run_dir: Path) -> dict[str, list[float]]:
    return json.loads((run_dir / "manifest.json").read_text())["stage_times"]


def test_two_points_on_one_bench_never_measure_at_the_same_time(cluster, tmp_path):
    c, a, _ = cluster
    # windows long enough that two points trained side by side would measure side by side without the lock
    path = _sweep_file(tmp_path, "  inference.alpha: [0.5, 1.0]\n", min_window_s=0.15)
    rc, sweep_dir = _sweep(path, c.address, tmp_path / "out")
    assert rc == 0
    rows = _last_rows(sweep_dir)
    assert {r["status"] for r in rows.values()} == {"done"}
    assert {r["node"].split("/")[1] for r in rows.values()} == {a.node_id[:8]}  # the only node with the meter
    first, second = sorted(
        (_stage_times(sweep_dir / r["run_dir"]) for r in rows.values()), key=lambda t: t["measure"][0]
    )
    assert first["model"][0] < second["model"][1] and second["model"][0] < first["model"][1]  # trained side by side
    assert first["hil"][1] <= second["measure"][0]  # but the second measured only after the first was done
    assert main(["plot", str(sweep_dir), "--jobs", "1"]) == 0  # a sweep directory is a folder of runs
    assert (sweep_dir / "comparison").is_dir()


def test_a_lost_node_is_retried_and_every_point_lands_once(cluster, tmp_path):
    c, a, b = cluster
    path = _sweep_file(tmp_path, "  seed: [0, 1, 2]\n  targets: [[cpu], [mcu-sim]]\n")
    out = tmp_path / "out"

    def kill_b_after_the_first_finished_point() -> None:
        deadline = time.monotonic() + 120
        while not any(len(read_rows(p)) for p in out.glob("*/sweep.csv")):
            if time.monotonic() > deadline:
                return  # the sweep never finished a point: its own assertions say why
            time.sleep(0.2)
        c.remove_node(b, allow_graceful=False)  # node B dies, with its points in flight

    killer = threading.Thread(target=kill_b_after_the_first_finished_point, daemon=True)
    killer.start()
    rc, sweep_dir = _sweep(path, c.address, out)
    killer.join(timeout=60)
    assert rc == 0
    rows = _last_rows(sweep_dir)
    assert sorted(rows) == [f"p00{i}" for i in range(6)]
    assert all(r["status"] == "done" for r in rows.values())
    retried = [r for r in rows.values() if int(r["attempts"]) > 1]
    assert retried and all(r["error"] for r in retried)  # the kill hit a running point, which ran again
    assert all(r["node"].endswith(a.node_id[:8]) for r in retried)  # on the node that was left
    runs = sorted(p.name for p in (sweep_dir / "runs").iterdir())
    assert runs == sorted(Path(r["run_dir"]).name for r in rows.values())  # each point's results exactly once
    for point, row in rows.items():
        config = json.loads((sweep_dir / row["run_dir"] / "manifest.json").read_text())["config"]
        assert [config["seed"], config["targets"]] == [json.loads(row["seed"]), json.loads(row["targets"])]
        assert config["name"] == f"pt-{point}"
        assert (sweep_dir / row["run_dir"] / "summary.csv").is_file()
