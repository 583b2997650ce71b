"""MIT-BIH loader: tiny WFDB records written with wfdb (the real format), plus one real record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ffenergy.data import mitbih
from ffenergy.data.base import DataError

FS = 360
SPACING = 72 * 8  # 1.6 s between beats: one R peak per 1.5 s window; multiple of 72 -> integer at 125 Hz
BEAT_SYMBOLS = list("NLRejAaJSVEF/fQ")
EXPECTED = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4, 4, 4]


def write_record(
    folder: Path,
    name: str,
    symbols: list[str],
    *,
    fs: int = FS,
    channels: tuple[str, ...] = ("MLII", "V1"),
    first_r: int = 72 * 5,
    extra_ann: list[tuple[int, str]] = (),
) -> list[int]:
    """A record with a Gaussian 'R wave' at each beat annotation; returns the R sample indices."""
    r_peaks = [first_r + i * SPACING for i in range(len(symbols))]
    n = r_peaks[-1] + 2 * fs
    t = np.arange(n)
    ecg = 0.01 * np.random.default_rng(len(symbols)).standard_normal(n)  # makes every beat unique
    for r in r_peaks:
        ecg += np.exp(-0.5 * ((t - r) / 4.0) ** 2)
    signals = np.stack([ecg, -ecg], axis=1)[:, : len(channels)]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(channels),
        sig_name=list(channels),
        p_signal=signals,
        fmt=["212"] * len(channels),
        write_dir=str(folder),
    )
    ann = sorted([(r, s) for r, s in zip(r_peaks, symbols)] + list(extra_ann))
    wfdb.wrann(name, "atr", np.array([a[0] for a in ann]), [a[1] for a in ann], write_dir=str(folder))
    return r_peaks


def opts(tmp_path: Path, **kw) -> mitbih.Options:
    return mitbih.Options(cache_dir=str(tmp_path / "cache"), **kw)


def test_aami_mapping_window_and_skipped_annotations(tmp_path: Path) -> None:
    # first beat at 0.2 s: too early for 0.5 s of context, so it is dropped and counted
    write_record(
        tmp_path,
        "100",
        ["N"] + BEAT_SYMBOLS,
        first_r=72,
        extra_ann=[(1000, "+"), (2000, "~"), (3000, "|"), (4000, "x")],
    )
    o = opts(tmp_path, records=["100"], test_fraction=0.5)
    beats, hit = mitbih.load_beats(tmp_path, ["100"], o)
    assert not hit
    assert beats["y"].tolist() == EXPECTED
    assert int(beats["dropped_edges"].sum()) == 1 and int(beats["skipped_annotations"].sum()) == 4
    x = beats["x"]
    assert x.shape == (15, 187) and x.dtype == np.float32
    assert np.all(x.argmax(axis=1) == o.pre_r)  # R peak sits at index pre_r
    assert x.min() == 0.0 and np.allclose(x.max(axis=1), 1.0)


def test_native_rate_and_no_normalisation(tmp_path: Path) -> None:
    r = write_record(tmp_path, "100", ["N", "V"])
    o = opts(tmp_path, records=["100"], resample_hz=0, beat_length=100, pre_r=30, normalize="none", use_cache=False)
    x, y, dropped, _ = mitbih.read_record_beats(tmp_path / "100", o)
    assert y.tolist() == [0, 2] and dropped == 0
    record = wfdb.rdrecord(str(tmp_path / "100"), channels=[0]).p_signal[:, 0]
    np.testing.assert_allclose(x[1], record[r[1] - 30 : r[1] + 70], atol=1e-6)


def test_missing_channel_names_record_and_channel(tmp_path: Path) -> None:
    write_record(tmp_path, "105", ["N"], channels=("V1", "V5"))
    with pytest.raises(DataError, match=r"105.*'MLII'.*V1, V5"):
        mitbih.load("local", tmp_path, 0.1, 0, opts(tmp_path, records=["105"]))


def test_wrong_sampling_rate(tmp_path: Path) -> None:
    write_record(tmp_path, "100", ["N", "N"], fs=250)
    with pytest.raises(DataError, match=r"record 100: header says 250 Hz, expected 360 Hz.*fs_expected: 250"):
        mitbih.load("local", tmp_path, 0.1, 0, opts(tmp_path, records=["100"]))
    ds = mitbih.load("local", tmp_path, 0.0, 0, opts(tmp_path, records=["100"], fs_expected=250))
    assert len(ds.y_train) + len(ds.y_test) == 2


def test_missing_annotation_file(tmp_path: Path) -> None:
    write_record(tmp_path, "100", ["N"])
    (tmp_path / "100.atr").unlink()
    with pytest.raises(DataError, match=r"record 100: file 100\.atr missing"):
        mitbih.load("local", tmp_path, 0.1, 0, opts(tmp_path, records=["100"]))


def test_missing_record_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"record 119: file 119\.hea missing"):
        mitbih.load("local", tmp_path, 0.1, 0, opts(tmp_path, records=["119"]))
    with pytest.raises(DataError, match="does not exist"):
        mitbih.load("local", tmp_path / "nope", 0.1, 0, opts(tmp_path))


def test_random_split_is_stratified_disjoint_and_seeded(tmp_path: Path) -> None:
    write_record(tmp_path, "100", ["N"] * 30 + ["V"] * 10)
    o = opts(tmp_path, test_fraction=0.2)
    a = mitbih.load("local", tmp_path, 0.25, 7, o)
    assert a.extra["class_counts"]["test"] == {"N": 6, "S": 0, "V": 2, "F": 0, "Q": 0}
    assert a.extra["class_counts"]["val"] == {"N": 6, "S": 0, "V": 2, "F": 0, "Q": 0}
    assert a.extra["class_counts"]["train"] == {"N": 18, "S": 0, "V": 6, "F": 0, "Q": 0}
    # the beats differ (noise), so rows identify beats: splits must not share any
    rows = lambda x: {r.tobytes() for r in x}
    assert not rows(a.x_train) & rows(a.x_test) and not rows(a.x_val) & rows(a.x_test)
    assert not rows(a.x_train) & rows(a.x_val)
    b = mitbih.load("local", tmp_path, 0.25, 7, o)
    c = mitbih.load("local", tmp_path, 0.25, 8, o)
    assert b.extra["cache_hit"] and np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_inter_patient_split_uses_ds1_for_training(tmp_path: Path) -> None:
    write_record(tmp_path, "101", ["N"] * 8 + ["V"] * 4)  # DS1
    write_record(tmp_path, "100", ["N"] * 5)  # DS2
    write_record(tmp_path, "102", ["N"] * 3)  # paced: excluded by default
    ds = mitbih.load("local", tmp_path, 0.25, 0, opts(tmp_path, split="inter-patient"))
    assert ds.extra["train_records"] == ["101"] and ds.extra["test_records"] == ["100"]
    assert len(ds.y_test) == 5 and len(ds.y_train) + len(ds.y_val) == 12
    with pytest.raises(DataError, match="no DS2 record"):
        mitbih.load("local", tmp_path, 0.25, 0, opts(tmp_path, split="inter-patient", records=["101"]))


def test_undersampling_caps_training_classes_only(tmp_path: Path) -> None:
    write_record(tmp_path, "100", ["N"] * 40 + ["V"] * 5)
    ds = mitbih.load("local", tmp_path, 0.0, 0, opts(tmp_path, balance="undersample", balance_per_class=4))
    assert ds.extra["class_counts"]["train"]["N"] == 4 and ds.extra["class_counts"]["train"]["V"] == 4
    assert ds.extra["class_counts"]["test"]["N"] == 8  # the test split is never balanced


def test_cache_key_follows_options_and_files(tmp_path: Path) -> None:
    write_record(tmp_path, "100", ["N"] * 4)
    o = opts(tmp_path)
    assert not mitbih.load_beats(tmp_path, ["100"], o)[1]
    assert mitbih.load_beats(tmp_path, ["100"], o)[1]
    assert not mitbih.load_beats(tmp_path, ["100"], replace(o, beat_length=150))[1]
    write_record(tmp_path, "100", ["N"] * 5)  # the record changed on disk
    beats, hit = mitbih.load_beats(tmp_path, ["100"], o)
    assert not hit and len(beats["y"]) == 5


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"split": "patient"}, "split"),
        ({"balance": "undersample"}, "balance_per_class"),
        ({"pre_r": 187}, "pre_r"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"normalize": "z"}, "normalize"),
    ],
)
def test_options_validation_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^data\.options\.{field}: .*; "):
        mitbih.Options(**change).validate()


def test_download_offline_fails_fast(tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wfdb, "dl_database", lambda *a, **k: pytest.fail("must not try to download"))
    with pytest.raises(DataError, match="physionet.org is unreachable"):
        mitbih.load("download", tmp_path / "mitdb", 0.1, 0, opts(tmp_path))


def test_real_record_100(tmp_path: Path, mitdb_dir: Path) -> None:
    ds = mitbih.load("local", mitdb_dir, 0.1, 0, opts(tmp_path, records=["100"]))
    counts = ds.extra["class_counts"]["all"]
    # record 100 holds 2239 N, 33 A and 1 V beat annotations (2273 beats)
    assert counts["S"] == 33 and counts["V"] == 1 and counts["F"] == counts["Q"] == 0
    assert counts["N"] + ds.extra["beats_dropped_at_edges"] == 2239
    assert ds.x_train.shape[1] == 187 and ds.label_value == 1.0
