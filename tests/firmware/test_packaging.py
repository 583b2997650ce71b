"""The firmware ships in the wheel: built from a copy of the sources, unpacked away from the
checkout, it builds and runs the host DUT with its builds in the user cache, never beside itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ffenergy.firmware.boards import BOARDS

REPO = Path(__file__).resolve().parents[2]
C_TREE = Path("ffenergy") / "firmware" / "c"
KEY_SOURCES = ("Makefile", "core/mlp.c", "core/proto.c", "boards/host/hal_posix.c", "boards/cortex-m/startup.c")

# Runs in a fresh interpreter whose only ffenergy is the unpacked wheel (PYTHONPATH).
SCRIPT = r"""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np

import ffenergy
from ffenergy.firmware.arrays import ExitPolicy, NetworkArrays
from ffenergy.firmware.export import export_model
from ffenergy.firmware.launch import (build_firmware, check_against_reference, firmware_cache_dir,
                                      firmware_source_dir, make_command)

rng = np.random.default_rng(0)
dims = [12, 8, 6]
net = NetworkArrays("mp", [(rng.normal(size=(dims[i + 1], dims[i])) / 3).astype(np.float32) for i in range(2)],
                    [(0.1 * rng.normal(size=d)).astype(np.float32) for d in dims[1:]], [], 3,
                    label_value=1.0, norm_eps=1e-4)
policy = ExitPolicy("gap", np.array([0.5, 0.0], np.float32))
x = (rng.integers(0, 256, size=(6, dims[0])) / 255).astype(np.float32)
model_dir = Path("model")
export_model(net, policy, model_dir, "f32", "host")
exe = build_firmware(model_dir, "host")
again = build_firmware(model_dir, "host")
by_hand = subprocess.run(make_command(model_dir, "host"), shell=True, capture_output=True, text=True)
print(json.dumps({
    "ffenergy": ffenergy.__file__, "source_dir": str(firmware_source_dir()), "cache_dir": str(firmware_cache_dir()),
    "exe": str(exe), "again": str(again), "make_rc": by_hand.returncode, "make_err": by_hand.stderr[-2000:],
    "mismatches": len(check_against_reference(net, policy, x, "host", "f32")),
}))
"""


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_wheel_ships_the_firmware_and_builds_it_into_the_user_cache(tmp_path):
    missing = BOARDS.get("host").missing_tools()
    if missing or not shutil.which("make"):
        pytest.skip(f"the host firmware build needs {', '.join(missing or ['make'])}")
    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools")
    # a copy of what the build reads, so no stale build/ or egg-info of the checkout leaks in
    src = tmp_path / "src"
    shutil.copytree(REPO / "ffenergy", src / "ffenergy", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for f in REPO.iterdir():
        if f.is_file():
            shutil.copy2(f, src / f.name)
    dist = tmp_path / "dist"
    args = ["wheel", str(src), "--no-deps", "--no-build-isolation", "--no-cache-dir", "-q", "-w", str(dist)]
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = dist.glob("ffenergy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tree = {f for f in _files(REPO / C_TREE) if "__pycache__" not in f}
    assert set(KEY_SOURCES) <= tree
    sources = {f"{C_TREE.as_posix()}/{f}" for f in tree}
    assert sources <= names, f"not in the wheel: {sorted(sources - names)}"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    before = _files(site)
    work = tmp_path / "work"  # outside the checkout, so '' on sys.path finds no ffenergy
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FFENERGY"))}
    env.update(PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1", FFENERGY_CACHE=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])

    assert Path(got["ffenergy"]).is_relative_to(site)  # the wheel's copy, not the checkout
    assert Path(got["source_dir"]) == site / C_TREE
    cache = (tmp_path / "cache" / "firmware").resolve()
    assert Path(got["cache_dir"]).resolve() == cache
    exe = Path(got["exe"])
    assert exe.parent.parent == cache and exe.name == "ffdut" and os.access(exe, os.X_OK)
    assert got["again"] == got["exe"]  # the unchanged model is found in the cache
    assert got["make_rc"] == 0, got["make_err"]  # the printed make command works as given
    assert (work / "model" / "build" / "host" / "ffdut").is_file()  # by hand: beside the model
    assert got["mismatches"] == 0
    assert _files(site) == before  # nothing written beside the installed package
