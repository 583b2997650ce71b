"""CIFAR-10 from the python-pickle batches (``cifar-10-batches-py``).

Each image is flattened channel-major (1024 R, 1024 G, 1024 B values: the batch files' own
layout, and torch's C x H x W flatten), scaled to [0, 1] and normalised per channel. The FF
label overlay therefore lands on the first pixels of row 0 of the red channel.

``normalization: paper`` uses mean (0.4914, 0.4822, 0.4465) and std (0.247, 0.243, 0.261),
as LightFF's main code; its label value 2.13 is about the largest normalised value
((1 - 0.4822) / 0.243 = 2.131, the green channel), so the label is as bright as the brightest
pixel. ``half`` (mean = std = 0.5, the test code) and ``none`` use label value 1.0.

The batches are read with an unpickler that only admits numpy arrays and plain containers.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffenergy.data.base import DataError, Dataset, require_option
from ffenergy.data.splits import cache_root, check_fraction, class_counts, require_online, stratified_split

BATCH_DIR = "cifar-10-batches-py"
BUILD_STATS = "build_stats.json"  # written by whoever rebuilt an offline copy (see copy_caveat)
NORMALIZATIONS = {
    "paper": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261), 2.13),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1.0),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0),
}
IMAGE_VALUES = 3 * 32 * 32
ATTRIBUTION = (
    "CIFAR-10 by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton; Krizhevsky, Learning Multiple "
    "Layers of Features from Tiny Images, tech. report, University of Toronto, 2009"
)
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
}


@dataclass(frozen=True)
class Options:
    """CIFAR-10 loader options (YAML ``data.options``)."""

    normalization: str = "paper"
    """``paper``: LightFF mean/std, label value 2.13; ``half``: mean = std = 0.5, label value
    1.0; ``none``: pixels in [0, 1], label value 1.0."""
    train_batches: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Which ``data_batch_N`` files (1..5) form the training pool (10000 images each)."""
    label_value: float | None = None
    """What the FF label overlay writes; None: the normalization's (TinyFoA's FF CIFAR-10 recipe: 5)."""

    def validate(self) -> None:
        require_option("normalization", self.normalization, NORMALIZATIONS)
        if not self.train_batches or any(b not in range(1, 6) for b in self.train_batches):
            raise ValueError(
                f"data.options.train_batches: {self.train_batches} must be a non-empty list of 1..5; "
                "e.g. [1, 2, 3, 4, 5]"
            )
        if self.label_value is not None and (
            not isinstance(self.label_value, (int, float))
            or isinstance(self.label_value, bool)
            or self.label_value <= 0
        ):
            raise ValueError(
                f"data.options.label_value: {self.label_value!r} must be a positive number, e.g. 5; "
                "leave it out for the normalization's"
            )
        if len(set(self.train_batches)) != len(self.train_batches):
            raise ValueError(f"data.options.train_batches: {self.train_batches} repeats a batch; list each once")


def load(source: str, path: Path | None, val_fraction: float, seed: int, options: Options) -> Dataset:
    """Load CIFAR-10 from a local batch folder (``local``) or with torchvision (``download``).

    ``path`` may be the ``cifar-10-batches-py`` folder or its parent. ``val_fraction`` of the
    training images (stratified by class) are held out for threshold calibration; the test
    split is ``test_batch``.
    """
    options.validate()
    check_fraction("val_fraction", val_fraction)
    folder = _resolve_source(source, path)
    class_names = read_class_names(folder / "batches.meta")
    batches = [read_batch(folder / f"data_batch_{b}") for b in options.train_batches]
    x_pool = np.concatenate([b[0] for b in batches])
    y_pool = np.concatenate([b[1] for b in batches])
    x_test_u8, y_test = read_batch(folder / "test_batch")
    fit_idx, val_idx = stratified_split(y_pool, val_fraction, seed)
    mean, std, label_value = NORMALIZATIONS[options.normalization]
    if options.label_value is not None:
        label_value = float(options.label_value)
    x_pool = normalize(x_pool, mean, std)
    return Dataset(
        name="cifar10",
        x_train=x_pool[fit_idx],
        y_train=y_pool[fit_idx],
        x_val=x_pool[val_idx],
        y_val=y_pool[val_idx],
        x_test=normalize(x_test_u8, mean, std),
        y_test=y_test,
        class_names=class_names,
        label_value=label_value,
        source=f"{source}: CIFAR-10 python batches in {folder.name}/; {ATTRIBUTION}",
        caveat=copy_caveat(folder),
        extra={
            "train_batches": list(options.train_batches),
            "normalization": {"name": options.normalization, "mean": list(mean), "std": list(std)},
            "split": "test_batch for test; stratified val from the training batches",
            "class_counts": {
                "train": class_counts(y_pool[fit_idx], class_names),
                "val": class_counts(y_pool[val_idx], class_names),
                "test": class_counts(y_test, class_names),
            },
        },
    )


def copy_caveat(folder: Path) -> str:
    """What ``BUILD_STATS`` beside the batches says of a rebuilt copy ("" without one, or when every pixel is exact).

    An offline copy rebuilt from other sources records, per batch file, its images (``n``), how many
    have their exact original pixels (``exact``) and the rest's mean absolute error in grey levels
    (``mae_jpeg_vs_exact``); the original archive has no such file.
    """
    path = folder / BUILD_STATS
    if not path.exists():
        return ""
    try:
        stats = json.loads(path.read_text())
        n = sum(int(b["n"]) for b in stats.values())
        exact = sum(int(b["exact"]) for b in stats.values())
        mae = max(float(b["mae_jpeg_vs_exact"]) for b in stats.values())
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DataError(
            f"CIFAR-10 {path}: not a build record with n, exact and mae_jpeg_vs_exact per batch ({exc!r}); "
            "fix or remove it"
        ) from exc
    if exact >= n:
        return ""
    return (
        f"not the original CIFAR-10: pixels are exact for {exact:,} of {n:,} images, the rest JPEG-decoded "
        f"(mean absolute error up to {mae:.1f} grey levels, {folder.name}/{BUILD_STATS}); accuracies are approximate"
    )


def normalize(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 (N, 3072) channel-major to float32 ((q / 255) - mean_c) / std_c."""
    x = images.astype(np.float32).reshape(len(images), 3, -1) / np.float32(255.0)
    x = (x - np.array(mean, np.float32)[None, :, None]) / np.array(std, np.float32)[None, :, None]
    return x.reshape(len(images), IMAGE_VALUES)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3072), labels int64 (N,)) of one batch file."""
    d = _unpickle(path)
    data, labels = d.get(b"data"), d.get(b"labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(
            f"CIFAR-10 batch {path.name}: no b'data' array or b'labels' list; is it a CIFAR-10 python batch?"
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_VALUES or len(labels) != len(data):
        raise DataError(
            f"CIFAR-10 batch {path.name}: data {data.dtype}{data.shape} with {len(labels)} labels, expected "
            f"uint8 (N, {IMAGE_VALUES}) with N labels; re-extract cifar-10-python.tar.gz"
        )
    y = np.asarray(labels, dtype=np.int64)
    if len(y) and not (0 <= y.min() and y.max() <= 9):
        raise DataError(f"CIFAR-10 batch {path.name}: labels outside 0..9; re-extract cifar-10-python.tar.gz")
    return data, y


def read_class_names(path: Path) -> list[str]:
    """The 10 class names from ``batches.meta``."""
    names = _unpickle(path).get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"CIFAR-10 {path.name}: no list of 10 b'label_names'; re-extract cifar-10-python.tar.gz")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.exists():
        raise DataError(
            f"CIFAR-10 file {path.name} missing in {path.parent}; extract cifar-10-python.tar.gz there "
            "(data_batch_1..5, test_batch, batches.meta) or use data.source: download"
        )
    try:
        d = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:  # unpickling raises many exception types on bad input
        raise DataError(f"CIFAR-10 file {path.name}: not a CIFAR-10 python pickle ({exc}); re-extract it") from exc
    if not isinstance(d, dict):
        raise DataError(f"CIFAR-10 file {path.name}: holds {type(d).__name__}, expected a dict; re-extract it")
    return d


def _resolve_source(source: str, path: Path | None) -> Path:
    if source == "local":
        if path is None:
            raise DataError(f"data.path is required with data.source: local (the {BATCH_DIR} folder or its parent)")
        path = Path(path)
        return path / BATCH_DIR if (path / BATCH_DIR).is_dir() else path
    if source == "download":
        root = Path(path) if path else cache_root("") / "cifar10"
        if not (root / BATCH_DIR / "test_batch").exists():
            _download(root)
        return root / BATCH_DIR
    raise DataError(f"data.source: unknown source {source!r} for cifar10; use local or download")


def _download(root: Path) -> None:
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:
        raise DataError(
            "CIFAR-10 download needs torchvision (pip install torchvision), or extract "
            "cifar-10-python.tar.gz yourself and use data.source: local"
        ) from exc
    require_online("www.cs.toronto.edu", "CIFAR-10")
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"CIFAR-10 download into {root} failed ({exc}); retry, or use data.source: local") from exc
