"""CHB-MIT loader: small EDF files written with pyedflib (the real format) and summary files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyedflib
import pytest
import wfdb
from pyedflib import highlevel

from ffenergy.data import chbmit
from ffenergy.data.base import DataError
from tests.data.conftest import shared_data_dir

FS = 256
LABELS = ("FP1-F7", "F7-T7", "T8-P8-0", "F8-T8", "T8-P8-1")


def write_edf(
    path: Path,
    seconds: int,
    seizures: list[tuple[float, float]],
    *,
    fs: int = FS,
    labels: tuple[str, ...] = LABELS,
    hum: float = 0.0,
) -> None:
    """Background: 10 Hz at 20 uV; inside seizures: 5 Hz at 200 uV; optional 60 Hz hum."""
    t = np.arange(seconds * fs) / fs
    x = 20 * np.sin(2 * np.pi * 10 * t) + hum * np.sin(2 * np.pi * 60 * t)
    for s, e in seizures:
        inside = (t >= s) & (t < e)
        x[inside] = 200 * np.sin(2 * np.pi * 5 * t[inside])
    headers = [
        highlevel.make_signal_header(label, sample_frequency=fs, physical_min=-500, physical_max=500)
        for label in labels
    ]
    highlevel.write_edf(str(path), [x.copy() for _ in labels], headers)


def write_patient(root: Path, patient: int, files: dict[str, tuple[int, list[tuple[float, float]]]], **kw) -> Path:
    folder = root / f"chb{patient:02d}"
    folder.mkdir(parents=True)
    lines = ["Data Sampling Rate: 256 Hz", "*" * 25, "", "Channels in EDF Files:"]
    for i, label in enumerate(LABELS, 1):
        lines.append(f"Channel {i}: {label}")
    for name, (seconds, seizures) in files.items():
        write_edf(folder / name, seconds, seizures, **kw)
        lines += [
            "",
            f"File Name: {name}",
            "File Start Time: 10:00:00",
            "File End Time: 11:00:00",
            f"Number of Seizures in File: {len(seizures)}",
        ]
        for k, (s, e) in enumerate(seizures, 1):
            tag = "Seizure" if patient == 1 else f"Seizure {k}"  # both spellings occur in CHB-MIT
            lines += [f"{tag} Start Time: {s:g} seconds", f"{tag} End Time: {e:g} seconds"]
    (folder / f"chb{patient:02d}-summary.txt").write_text("\n".join(lines) + "\n")
    return folder


def opts(tmp_path: Path, **kw) -> chbmit.Options:
    return chbmit.Options(cache_dir=str(tmp_path / "cache"), **kw)


@pytest.fixture
def two_patients(tmp_path: Path) -> Path:
    root = tmp_path / "chbmit"
    # patient 1: one seizure 42-62 s: windows 44..60 inside (4), 40-44 and 60-64 partial (dropped)
    write_patient(root, 1, {"chb01_01.edf": (80, []), "chb01_03.edf": (120, [(42, 62)])})
    # patient 2: two seizures in one file -> 3 + 2 seizure windows
    write_patient(root, 2, {"chb02_16.edf": (120, [(8, 20), (100, 108)])})
    return root


def test_window_labels_inside_outside_partial() -> None:
    labels = chbmit.window_labels(30 * FS, FS, 4 * FS, [(10.0, 20.0)])
    # windows [0,4) [4,8) [8,12) [12,16) [16,20) [20,24) [24,28)
    assert labels.tolist() == [0, 0, -1, 1, 1, 0, 0]


def test_pooled_windows_balanced_labelled_and_shaped(two_patients: Path, tmp_path: Path) -> None:
    o = opts(tmp_path, patients=[1, 2], test_fraction=0.25)
    ds = chbmit.load("local", two_patients, 0.25, 0, o)
    assert ds.extra["windows_per_patient"] == {"chb01": 8, "chb02": 10}
    assert ds.extra["class_counts"]["all"] == {"non-seizure": 9, "seizure": 9}
    assert ds.x_train.shape[1] == 1024 and ds.x_train.dtype == np.float32
    assert ds.label_value == pytest.approx(float(ds.x_train.max()))
    # z-scored windows: each channel half has mean 0 and std 1 (before decimation: close to it)
    half = ds.x_test[:, :512]
    assert np.allclose(half.mean(axis=1), 0, atol=0.05) and np.allclose(half.std(axis=1), 1, atol=0.05)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 18
    assert min(len(ds.y_test), len(ds.y_val)) >= 2


def test_labels_match_window_content(two_patients: Path, tmp_path: Path) -> None:
    o = opts(tmp_path, patients=[1], zscore=False, decimate=1, use_cache=False)
    x, y = (lambda a: (a["x"], a["y"]))(chbmit.patient_windows(two_patients, 1, 0, o)[0])
    assert x.shape == (8, 2048)
    amplitude = np.abs(x[:, 100:900]).max(axis=1)  # away from filter edge effects
    assert np.all(amplitude[y == 1] > 150) and np.all(amplitude[y == 0] < 40)


def test_bandpass_removes_60hz_hum(tmp_path: Path) -> None:
    root = tmp_path / "chbmit"
    write_patient(root, 3, {"chb03_01.edf": (60, [(20, 40)])}, hum=100.0)
    o = opts(tmp_path, patients=[3], zscore=False, decimate=1, use_cache=False)
    a, _ = chbmit.patient_windows(root, 3, 0, o)
    background = a["x"][a["y"] == 0][:, 100:900]
    # 10 Hz at 20 uV passes; 100 uV of 60 Hz would push the peak to ~120 uV without the filter
    assert 15 < np.abs(background).max() < 25


def test_seeded_and_cached(two_patients: Path, tmp_path: Path) -> None:
    o = opts(tmp_path, patients=[1, 2])
    a = chbmit.load("local", two_patients, 0.2, 3, o)
    b = chbmit.load("local", two_patients, 0.2, 3, o)
    assert b.extra["cache_hits"] == 2 and np.array_equal(a.x_test, b.x_test)
    c = chbmit.load("local", two_patients, 0.2, 3, replace(o, use_cache=False))
    assert np.array_equal(a.x_train, c.x_train)


def test_missing_channel_names_file_and_channel(tmp_path: Path) -> None:
    root = tmp_path / "chbmit"
    write_patient(root, 4, {"chb04_01.edf": (40, [(8, 20)])}, labels=("FP1-F7", "F7-T7", "T8-P8-0"))
    with pytest.raises(DataError, match=r"chb04_01\.edf: channel F8-T8 missing \(has FP1-F7, F7-T7, T8-P8-0\)"):
        chbmit.load("local", root, 0.1, 0, opts(tmp_path, patients=[4]))


def test_missing_channel_skip_file_option(tmp_path: Path) -> None:
    root = tmp_path / "chbmit"
    write_patient(root, 4, {"chb04_01.edf": (40, [(8, 20)])}, labels=("FP1-F7", "F7-T7"))
    write_edf(root / "chb04" / "chb04_02.edf", 40, [])
    summary = root / "chb04" / "chb04-summary.txt"
    summary.write_text(
        summary.read_text() + "\nFile Name: chb04_02.edf\nNumber of Seizures in File: 1\n"
        "Seizure 1 Start Time: 20 seconds\nSeizure 1 End Time: 32 seconds\n"
    )
    ds = chbmit.load("local", root, 0.0, 0, opts(tmp_path, patients=[4], missing_channel="skip-file"))
    assert ds.extra["files_skipped_missing_channel"] == ["chb04_01.edf"]
    assert ds.extra["class_counts"]["all"] == {"non-seizure": 3, "seizure": 3}  # from chb04_02 only


def test_repeated_channel_name_matches_first_copy() -> None:
    assert chbmit._find_channel(list(LABELS), "T8-P8") == 2
    assert chbmit._find_channel(list(LABELS), "f8-t8") == 3
    assert chbmit._find_channel(list(LABELS), "T7-P7") is None


def test_wrong_sampling_rate(tmp_path: Path) -> None:
    root = tmp_path / "chbmit"
    write_patient(root, 5, {"chb05_01.edf": (40, [(8, 20)])}, fs=200)
    with pytest.raises(DataError, match=r"chb05_01\.edf: channel F7-T7 sampled at 200 Hz, expected 256 Hz"):
        chbmit.load("local", root, 0.1, 0, opts(tmp_path, patients=[5]))


def test_summary_and_file_errors(two_patients: Path, tmp_path: Path) -> None:
    summary = two_patients / "chb02" / "chb02-summary.txt"
    summary.write_text(summary.read_text().replace("Number of Seizures in File: 2", "Number of Seizures in File: 3"))
    with pytest.raises(DataError, match=r"chb02-summary\.txt: entry chb02_16\.edf lists 3 seizures but 2 start"):
        chbmit.load("local", two_patients, 0.1, 0, opts(tmp_path, patients=[2]))
    (two_patients / "chb01" / "chb01_03.edf").unlink()
    with pytest.raises(DataError, match=r"patient 1: chb01_03\.edf \(listed in chb01-summary\.txt\) missing"):
        chbmit.load("local", two_patients, 0.1, 0, opts(tmp_path, patients=[1]))
    with pytest.raises(DataError, match=r"patient 7: .*chb07-summary\.txt missing"):
        chbmit.load("local", two_patients, 0.1, 0, opts(tmp_path, patients=[7]))


def test_truncated_edf_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "chbmit"
    folder = write_patient(root, 8, {"chb08_02.edf": (40, [(8, 20)])})
    edf = folder / "chb08_02.edf"
    edf.write_bytes(edf.read_bytes()[:300])
    with pytest.raises(DataError, match=r"chb08_02\.edf: not a readable EDF"):
        chbmit.load("local", root, 0.1, 0, opts(tmp_path, patients=[8]))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mode": "per-patient"}, "patients"),
        ({"mode": "both"}, "mode"),
        ({"band_high_hz": 200.0}, "band_low_hz"),
        ({"window_s": 4.001}, "window_s"),
        ({"decimate": 0}, "decimate"),
        ({"patients": []}, "patients"),
    ],
)
def test_options_validation_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^data\.options\.{field}"):
        chbmit.Options(**change).validate()


def test_per_patient_mode_and_defaults() -> None:
    assert chbmit.Options().patients == [p for p in range(1, 25) if p not in (6, 14, 16)]
    assert len(chbmit.Options().patients) == 21
    chbmit.Options(mode="per-patient", patients=[3]).validate()


def test_download_offline_fails_fast(tmp_path: Path, offline: None) -> None:
    with pytest.raises(DataError, match="physionet.org is unreachable"):
        chbmit.load("download", tmp_path / "chbmit", 0.1, 0, opts(tmp_path, patients=[1]))


def test_edf_reader_closes_files(two_patients: Path) -> None:
    # pyedflib refuses to open a file twice; a leaked reader would make this raise
    with chbmit._Edf(two_patients / "chb01" / "chb01_01.edf", chbmit.Options()) as edf:
        assert edf.n_samples == 80 * FS
    pyedflib.EdfReader(str(two_patients / "chb01" / "chb01_01.edf")).close()


def write_seizures(folder: Path, name: str, seizures: list[tuple[float, float]], fs: int = FS) -> Path:
    """A ``<name>.seizures`` WFDB annotation file as PhysioNet ships: '[' onset, ']' offset."""
    samples = np.array([round(t * fs) for pair in seizures for t in pair], dtype=np.int64)
    stem = name.removesuffix(".edf")  # wrann refuses a dot in the record name: write, then rename
    wfdb.wrann(stem, "seizures", samples, symbol=["[", "]"] * len(seizures), fs=fs, write_dir=str(folder))
    return (folder / f"{stem}.seizures").replace(folder / f"{name}.seizures")


def test_seizure_annotations_agree_with_summary(two_patients: Path, tmp_path: Path) -> None:
    folder = two_patients / "chb02"
    path = write_seizures(folder, "chb02_16.edf", [(8, 20), (100, 108)])
    assert chbmit.read_seizure_annotations(path) == [(8.0, 20.0), (100.0, 108.0)]
    assert chbmit.check_annotations(folder, chbmit.parse_summary(folder / "chb02-summary.txt")) == 1
    chbmit.load("local", two_patients, 0.25, 0, opts(tmp_path, patients=[2]))  # agreeing files load


def test_seizure_annotations_disagreeing_are_an_error(two_patients: Path, tmp_path: Path) -> None:
    folder = two_patients / "chb02"
    write_seizures(folder, "chb02_16.edf", [(8, 20), (100, 109)])  # one offset a second late
    with pytest.raises(
        DataError,
        match=r"chb02_16\.edf\.seizures marks seizures \[8-20 s, 100-109 s\] but the summary lists \[8-20 s, 100-108 s\]",
    ):
        chbmit.load("local", two_patients, 0.25, 0, opts(tmp_path, patients=[2]))
    write_seizures(folder, "chb02_16.edf", [(8, 20)])  # a seizure missing
    with pytest.raises(DataError, match=r"marks seizures \[8-20 s\]"):
        chbmit.check_annotations(folder, chbmit.parse_summary(folder / "chb02-summary.txt"))


def test_seizure_annotations_unpaired_or_unreadable(tmp_path: Path) -> None:
    wfdb.wrann("x", "seizures", np.array([10, 20, 30]), symbol=["[", "]", "["], fs=FS, write_dir=str(tmp_path))
    (tmp_path / "x.seizures").replace(tmp_path / "x.edf.seizures")
    with pytest.raises(DataError, match=r"x\.edf\.seizures: expected '\[' onset / '\]' offset pairs"):
        chbmit.read_seizure_annotations(tmp_path / "x.edf.seizures")
    (tmp_path / "y.edf.seizures").write_bytes(b"\x01")
    with pytest.raises(DataError, match=r"y\.edf\.seizures: unreadable"):
        chbmit.read_seizure_annotations(tmp_path / "y.edf.seizures")


# the real chb01/chb02 summaries (PhysioNet chbmit 1.0.0): files, seizures and their seconds
REAL_SUMMARIES = {
    1: (
        42,
        {
            "chb01_03.edf": [(2996, 3036)],
            "chb01_04.edf": [(1467, 1494)],
            "chb01_15.edf": [(1732, 1772)],
            "chb01_16.edf": [(1015, 1066)],
            "chb01_18.edf": [(1720, 1810)],
            "chb01_21.edf": [(327, 420)],
            "chb01_26.edf": [(1862, 1963)],
        },
    ),
    2: (36, {"chb02_16.edf": [(130, 212)], "chb02_16+.edf": [(2972, 3053)], "chb02_19.edf": [(3369, 3378)]}),
}


@pytest.mark.parametrize("patient", [1, 2])
def test_real_summary_and_annotations_agree(patient: int) -> None:
    folder = shared_data_dir() / "chbmit-metadata" / f"chb{patient:02d}"
    summary = folder / f"chb{patient:02d}-summary.txt"
    if not summary.exists():
        pytest.skip(f"shared CHB-MIT metadata not found at {folder} (set FFENERGY_SHARED_DATA)")
    entries = chbmit.parse_summary(summary)
    n_files, expected = REAL_SUMMARIES[patient]
    assert len(entries) == n_files
    assert {e.name: e.seizures for e in entries if e.seizures} == expected
    annotation_files = sorted(folder.glob("*.edf.seizures"))
    for path in annotation_files:  # every annotation file, seizure by seizure, start and end
        entry = next(e for e in entries if e.name == path.name.removesuffix(".seizures"))
        assert chbmit.read_seizure_annotations(path) == entry.seizures
    assert chbmit.check_annotations(folder, entries) == len(annotation_files)
    if patient == 1:  # the copy has the .seizures file of every chb01 file with a seizure
        assert [p.name.removesuffix(".seizures") for p in annotation_files] == sorted(expected)
