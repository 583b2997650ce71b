"""Bonn EEG loader: small text segments written in the real layout, and the shared copy when present."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ffenergy.config import ConfigError, parse_config
from ffenergy.data import bonn
from ffenergy.data.base import DataError
from tests.data.conftest import shared_data_dir

SAMPLES = 400
SMALL = bonn.Options(window=40, samples_per_segment=SAMPLES, features="waveform", normalize="none", test_fraction=0.25)
FOLDERS = {"A": "A_Z", "B": "B_O", "C": "C_N", "D": "D_F", "E": "E_S"}


def write_bonn(root: Path, per_set: int = 4, samples: int = SAMPLES, noise: float = 0.0) -> Path:
    """Every sample of segment g (numbered over all sets) is g * 10000 + its index (plus seeded
    Gaussian ``noise``), so a window names its segment; set C gets upper-case names like the
    real N001.TXT."""
    rng = np.random.default_rng(0)
    g = 0
    for set_name, folder in FOLDERS.items():
        (root / folder).mkdir(parents=True)
        prefix = bonn.SETS[set_name][0]
        for k in range(1, per_set + 1):
            name = f"{prefix}{k:03d}.TXT" if set_name == "C" else f"{prefix}{k:03d}.txt"
            values = g * 10000 + np.arange(samples) + np.rint(rng.normal(0, noise, samples)).astype(int)
            (root / folder / name).write_bytes(("\r\n".join(map(str, values)) + "\r\n").encode())
            g += 1
    return root


def segment_ids(x: np.ndarray) -> set[int]:
    return set((x[:, 0] // 10000).astype(int).tolist())


def test_windows_labels_and_counts(tmp_path: Path) -> None:
    ds = bonn.load("local", write_bonn(tmp_path), 0.34, 0, SMALL)
    per_segment = (SAMPLES - 40) // 40 + 1
    assert ds.extra["windows_per_segment"] == per_segment == 10
    assert ds.n_features == 40 and ds.class_names == ["non-seizure", "seizure"]
    # window w of a segment starts at sample 40 * w and runs on sample by sample
    first = ds.x_train[0]
    assert np.array_equal(first - first[0], np.arange(40)) and first[0] % 10000 % 40 == 0
    counts = ds.extra["class_counts"]
    assert counts["all"] == {"non-seizure": 16 * per_segment, "seizure": 4 * per_segment}
    # set E is segments 16..19: exactly those windows are labelled seizure
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert np.array_equal(y, (x[:, 0] // 10000 >= 16).astype(np.int64))


def test_split_is_by_segment_never_by_window(tmp_path: Path) -> None:
    root = write_bonn(tmp_path)
    for seed in range(5):
        ds = bonn.load("local", root, 0.34, seed, SMALL)
        train, val, test = segment_ids(ds.x_train), segment_ids(ds.x_val), segment_ids(ds.x_test)
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(range(20))
        # stratified by set: one of each set's four segments in test, one in validation
        assert sorted(s // 4 for s in test) == [0, 1, 2, 3, 4] == sorted(s // 4 for s in val)
        assert len(ds.y_test) == 5 * 10 and len(ds.y_val) == 5 * 10
    # the test windows come shuffled, so a prefix (an MCU run's first max_samples) mixes the sets
    assert len(set((ds.x_test[:10, 0] // 10000 // 4).astype(int).tolist())) >= 3
    names = ds.extra["segments"]["test"]
    assert len(names) == 5 and any(n.startswith("C_N/N") and n.endswith(".TXT") for n in names)


def test_five_class_and_overlapping_windows(tmp_path: Path) -> None:
    opts = replace(SMALL, task="five-class", step=20)
    ds = bonn.load("local", write_bonn(tmp_path), 0.34, 0, opts)
    assert ds.class_names == ["A", "B", "C", "D", "E"]
    assert ds.extra["windows_per_segment"] == (SAMPLES - 40) // 20 + 1
    assert np.array_equal(ds.y_train, (ds.x_train[:, 0] // 10000 // 4).astype(np.int64))
    sub = bonn.load("local", tmp_path, 0.34, 0, replace(opts, sets=["B", "E"]))
    assert sub.class_names == ["B", "E"]
    assert set(np.unique(sub.x_test[:, 0] // 10000 // 4).tolist()) == {1, 4}


def test_zscore_per_window(tmp_path: Path) -> None:
    ds = bonn.load("local", write_bonn(tmp_path), 0.34, 0, replace(SMALL, normalize="window"))
    assert np.allclose(ds.x_train.mean(axis=1), 0, atol=1e-5)
    assert np.allclose(ds.x_train.std(axis=1), 1, atol=1e-4)
    assert ds.label_value == pytest.approx(float(ds.x_train.max()))


def test_log_spectrum_peaks_at_the_sine_frequency() -> None:
    t = np.arange(40)
    windows = np.stack([100 + 50 * np.sin(2 * np.pi * k * t / 40) for k in (3, 7)])
    spec = bonn.log_spectrum(windows)
    assert spec.shape == (2, 20)  # window // 2 bins, DC dropped: feature i is bin i + 1
    assert spec.argmax(axis=1).tolist() == [2, 6]
    assert spec[0, 2] == pytest.approx(np.log1p(50 * 40 / 2))


def test_feature_normalisation_uses_the_training_windows_only(tmp_path: Path) -> None:
    root = write_bonn(tmp_path, noise=20.0)
    opts = replace(SMALL, features="log-spectrum", normalize="feature")
    ds = bonn.load("local", root, 0.34, 0, opts)
    assert ds.n_features == 20 and ds.extra["n_features"] == 20
    assert np.allclose(ds.x_train.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(ds.x_train.std(axis=0), 1, atol=1e-3)
    raw = bonn.load("local", root, 0.34, 0, replace(opts, normalize="none"))
    mean, std = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    expected = (raw.x_test - mean) / std
    assert np.allclose(ds.x_test, expected, atol=1e-4)


def test_feature_constant_over_training_is_centred_not_blown_up(tmp_path: Path) -> None:
    # noiseless ramps: every window has the same spectrum, equal up to rounding noise
    opts = replace(SMALL, features="log-spectrum", normalize="feature")
    ds = bonn.load("local", write_bonn(tmp_path), 0.34, 0, opts)
    assert np.abs(ds.x_train).max() < 1e-6 and np.abs(ds.x_test).max() < 1e-6


def test_missing_set_names_the_folders(tmp_path: Path) -> None:
    root = write_bonn(tmp_path)
    (root / "D_F").rename(root / "elsewhere")
    with pytest.raises(DataError, match=r"set D .*folders D_F, F, D exists"):
        bonn.load("local", root, 0.34, 0, SMALL)
    bonn.load("local", root, 0.34, 0, replace(SMALL, sets=["A", "E"]))  # D not asked for: fine


def test_wrong_sample_count_names_the_file(tmp_path: Path) -> None:
    root = write_bonn(tmp_path)
    bad = root / "B_O" / "O003.txt"
    bad.write_text("\n".join(["1"] * (SAMPLES - 1)) + "\n")
    with pytest.raises(DataError, match=rf"O003\.txt: {SAMPLES - 1} samples, expected {SAMPLES}"):
        bonn.load("local", root, 0.34, 0, SMALL)


def test_non_numeric_line_names_file_and_line(tmp_path: Path) -> None:
    root = write_bonn(tmp_path)
    bad = root / "E_S" / "S002.txt"
    lines = bad.read_text().splitlines()
    lines[6] = "12a"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"S002\.txt: line 7 is '12a', not a number"):
        bonn.load("local", root, 0.34, 0, SMALL)


def test_empty_set_folder_and_bad_path(tmp_path: Path) -> None:
    root = write_bonn(tmp_path)
    for f in (root / "A_Z").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"set A: no ZNNN\.txt files"):
        bonn.load("local", root, 0.34, 0, SMALL)
    with pytest.raises(DataError, match="does not exist"):
        bonn.load("local", tmp_path / "nope", 0.34, 0, SMALL)
    with pytest.raises(DataError, match="data.source"):
        bonn.load("download", root, 0.34, 0, SMALL)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"task": "three"}, "task"),
        ({"sets": ["A", "B"]}, "sets"),  # seizure task without E
        ({"sets": ["A", "Q"]}, "sets"),
        ({"sets": ["E", "E"]}, "sets"),
        ({"window": 5000}, "window"),
        ({"step": -1}, "step"),
        ({"normalize": "minmax"}, "normalize"),
        ({"features": "wavelet"}, "features"),
        ({"test_fraction": 0.0}, "test_fraction"),
    ],
)
def test_options_errors_name_the_field(options: dict, field: str) -> None:
    raw = {"data": {"dataset": "bonn", "source": "local", "path": "x", "options": options}}
    with pytest.raises(ConfigError, match=rf"data\.options\.{field}"):
        parse_config(raw)


def test_shared_copy_500_segments_split_by_segment() -> None:
    root = shared_data_dir() / "bonn-eeg"
    if not (root / "E_S").is_dir():
        pytest.skip(f"shared Bonn EEG data not found at {root} (set FFENERGY_SHARED_DATA)")
    ds = bonn.load("local", root, 0.1, 0, replace(bonn.Options(), features="waveform", normalize="none"))
    assert ds.extra["windows_per_segment"] == 23  # 4097 // 178, the UCI table's 23 chunks
    assert ds.extra["class_counts"]["all"] == {"non-seizure": 400 * 23, "seizure": 100 * 23}
    assert ds.extra["class_counts"]["test"] == {"non-seizure": 80 * 23, "seizure": 20 * 23}
    # raw 12-bit integers, and set E's spread is far larger (README: std 341 against 48-90)
    assert np.all(ds.x_test == np.round(ds.x_test))
    assert ds.x_test[ds.y_test == 1].std() > 3 * ds.x_test[ds.y_test == 0].std()
    test, val = set(ds.extra["segments"]["test"]), set(ds.extra["segments"]["val"])
    assert len(test) == 100 and len(val) == 40 and not test & val
    # a segment's 23 windows are 23 consecutive chunks: each test segment's windows all sit in test
    rows = {tuple(r) for r in ds.x_test[:, :8].tolist()}
    for name in sorted(test)[:10]:
        seg = bonn.read_segment(root / name, 4097)
        assert all(tuple(seg[w * 178 : w * 178 + 8].tolist()) in rows for w in range(23))
