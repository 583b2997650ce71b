"""wfdb and pyedflib are optional extras: the loaders import without them and, when a record has
to be read (or downloaded), name the extra to install."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import ffenergy.data
from ffenergy.data import chbmit, mitbih
from ffenergy.data.base import DataError


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):
    """without(name): make ``import name`` fail as if the package were not installed."""

    def hide(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)

    return hide


@pytest.mark.parametrize(
    "module, package",
    [("ffenergy.data.mitbih", "wfdb"), ("ffenergy.data.chbmit", "pyedflib"), ("ffenergy.data.chbmit", "wfdb")],
)
def test_loader_imports_without_its_extra(module: str, package: str, without, monkeypatch) -> None:
    without(package)
    name = module.rsplit(".", 1)[1]
    original = getattr(ffenergy.data, name)
    monkeypatch.setattr(ffenergy.data, name, original)  # both put back after the test
    monkeypatch.delitem(sys.modules, module)
    fresh = importlib.import_module(module)  # a top-level import of the package would raise here
    assert fresh is not original and callable(fresh.load)


def test_mitbih_without_wfdb_names_the_ecg_extra(tmp_path: Path, without) -> None:
    for ext in ("hea", "dat", "atr"):
        (tmp_path / f"100.{ext}").write_bytes(b"")
    without("wfdb")
    options = mitbih.Options(cache_dir=str(tmp_path / "cache"), records=["100"])
    with pytest.raises(DataError, match=r"wfdb package, which is not installed: pip install 'ffenergy\[ecg\]'"):
        mitbih.load_beats(tmp_path, ["100"], options)
    with pytest.raises(DataError, match=r"pip install 'ffenergy\[ecg\]'"):  # before any network access
        mitbih.load("download", tmp_path / "empty", 0.1, 0, options)


def test_chbmit_without_pyedflib_names_the_eeg_extra(tmp_path: Path, without) -> None:
    folder = tmp_path / "chbmit" / "chb01"
    folder.mkdir(parents=True)
    (folder / "chb01_01.edf").write_bytes(b"")
    (folder / "chb01-summary.txt").write_text("File Name: chb01_01.edf\nNumber of Seizures in File: 0\n")
    without("pyedflib")
    options = chbmit.Options(cache_dir=str(tmp_path / "cache"), patients=[1])
    with pytest.raises(DataError, match=r"pyedflib package, which is not installed: pip install 'ffenergy\[eeg\]'"):
        chbmit.load("local", tmp_path / "chbmit", 0.25, 0, options)


def test_chbmit_download_without_wfdb_names_the_eeg_extra(tmp_path: Path, without) -> None:
    without("wfdb")
    options = chbmit.Options(cache_dir=str(tmp_path / "cache"), patients=[1])
    with pytest.raises(DataError, match=r"wfdb package, which is not installed: pip install 'ffenergy\[eeg\]'"):
        chbmit.load("download", tmp_path / "chbmit", 0.25, 0, options)
