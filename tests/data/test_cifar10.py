"""CIFAR-10 loader: tiny batch files in the real python-pickle format."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from ffenergy.data import cifar10
from ffenergy.data.base import DataError
from tests.data.conftest import shared_data_dir

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_batch(path: Path, n: int, seed: int, protocol: int = 2) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    batch = {
        b"batch_label": b"training batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    return data, labels


@pytest.fixture
def batches(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        write_batch(folder / f"data_batch_{b}", 20, b)
    write_batch(folder / "test_batch", 10, 99, protocol=4)
    meta = {b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": 20, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_loads_normalises_and_splits(batches: Path) -> None:
    ds = cifar10.load("local", batches.parent, 0.1, 0, cifar10.Options())  # parent folder is accepted
    assert ds.class_names == NAMES and ds.label_value == 2.13
    assert ds.x_train.shape == (90, 3072) and ds.x_val.shape == (10, 3072) and ds.x_test.shape == (10, 3072)
    assert ds.extra["class_counts"]["val"] == dict.fromkeys(NAMES, 1)
    test_u8, test_labels = cifar10.read_batch(batches / "test_batch")
    assert ds.y_test.tolist() == test_labels.tolist() == [i % 10 for i in range(10)]
    # channel-major layout: value j of channel c is data[:, c * 1024 + j]
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.247, 0.243, 0.261])
    for c in range(3):
        expected = (test_u8[:, c * 1024 : (c + 1) * 1024] / 255.0 - mean[c]) / std[c]
        np.testing.assert_allclose(ds.x_test[:, c * 1024 : (c + 1) * 1024], expected, rtol=1e-5, atol=1e-5)
    # 2.13 is about the brightest normalised value (green channel at 255)
    assert ds.x_test.max() == pytest.approx(2.131, abs=0.002)


def test_other_normalisations_and_batch_selection(batches: Path) -> None:
    ds = cifar10.load("local", batches, 0.0, 0, cifar10.Options(normalization="none", train_batches=[2]))
    data, _ = cifar10.read_batch(batches / "data_batch_2")
    np.testing.assert_allclose(ds.x_train, data / 255.0, atol=1e-6)
    assert ds.label_value == 1.0 and len(ds.y_val) == 0
    half = cifar10.load("local", batches, 0.0, 0, cifar10.Options(normalization="half", train_batches=[2]))
    np.testing.assert_allclose(half.x_train, (data / 255.0 - 0.5) / 0.5, atol=1e-5)
    loud = cifar10.load("local", batches, 0.0, 0, cifar10.Options(train_batches=[2], label_value=5))
    assert loud.label_value == 5.0  # TinyFoA's FF recipe; the pixels keep the paper's normalisation
    np.testing.assert_array_equal(
        loud.x_train, cifar10.load("local", batches, 0.0, 0, cifar10.Options(train_batches=[2])).x_train
    )


def test_seeded_split(batches: Path) -> None:
    a = cifar10.load("local", batches, 0.2, 1, cifar10.Options())
    b = cifar10.load("local", batches, 0.2, 1, cifar10.Options())
    c = cifar10.load("local", batches, 0.2, 2, cifar10.Options())
    assert np.array_equal(a.x_val, b.x_val) and not np.array_equal(a.x_val, c.x_val)


def test_missing_batch_names_the_file(batches: Path) -> None:
    (batches / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"data_batch_3 missing in .*cifar-10-batches-py; extract"):
        cifar10.load("local", batches, 0.1, 0, cifar10.Options())
    cifar10.load("local", batches, 0.1, 0, cifar10.Options(train_batches=[1, 2]))


def test_malformed_batches(batches: Path) -> None:
    (batches / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(DataError, match=r"data_batch_1: data uint8\(3, 100\) with 3 labels"):
        cifar10.read_batch(batches / "data_batch_1")
    (batches / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python pickle"):
        cifar10.read_batch(batches / "test_batch")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_pickles_that_run_code(batches: Path) -> None:
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": _Evil()}))
    with pytest.raises(DataError, match="refusing to load"):
        cifar10.read_class_names(batches / "batches.meta")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"normalization": "imagenet"}, "normalization"),
        ({"train_batches": [0]}, "train_batches"),
        ({"train_batches": []}, "train_batches"),
        ({"train_batches": [1, 1]}, "train_batches"),
        ({"label_value": 0}, "label_value"),
        ({"label_value": "5"}, "label_value"),
    ],
)
def test_options_validation_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^data\.options\.{field}: .*; "):
        cifar10.Options(**change).validate()


def test_download_offline_fails_fast(tmp_path: Path, offline: None) -> None:
    with pytest.raises(DataError, match="torchvision|unreachable"):
        cifar10.load("download", tmp_path, 0.1, 0, cifar10.Options())


def test_a_rebuilt_copy_carries_its_caveat_and_the_original_none(batches: Path) -> None:
    assert cifar10.load("local", batches, 0.1, 0, cifar10.Options()).caveat == ""  # the archive has no build record
    record = {f"data_batch_{b}": {"n": 20, "exact": 5, "mae_jpeg_vs_exact": 5.0 + b / 10} for b in range(1, 6)}
    record["test_batch"] = {"n": 10, "exact": 10, "mae_jpeg_vs_exact": 0.0}
    (batches / cifar10.BUILD_STATS).write_text(json.dumps(record))
    caveat = cifar10.load("local", batches, 0.1, 0, cifar10.Options()).caveat
    assert "exact for 35 of 110 images" in caveat and "JPEG-decoded" in caveat and "up to 5.5 grey levels" in caveat
    for b in record:
        record[b]["exact"] = record[b]["n"]
    (batches / cifar10.BUILD_STATS).write_text(json.dumps(record))
    assert cifar10.load("local", batches, 0.1, 0, cifar10.Options()).caveat == ""  # every pixel exact


def test_a_malformed_build_record_names_the_file(batches: Path) -> None:
    (batches / cifar10.BUILD_STATS).write_text(json.dumps({"data_batch_1": {"n": 20}}))
    with pytest.raises(DataError, match=f"{cifar10.BUILD_STATS}.*fix or remove it"):
        cifar10.load("local", batches, 0.1, 0, cifar10.Options())


def test_the_shared_offline_copy_says_it_is_not_the_original() -> None:
    folder = shared_data_dir() / cifar10.BATCH_DIR
    if not (folder / "batches.meta").exists():
        pytest.skip(f"shared CIFAR-10 copy not found at {folder} (set FFENERGY_SHARED_DATA)")
    assert "exact for 6,102 of 60,000 images" in cifar10.copy_caveat(folder)
