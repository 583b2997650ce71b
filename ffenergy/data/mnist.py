"""MNIST: the embedded stratified subset (no network), a local IDX directory, or a download.

Pixels are scaled as float32(q) / float32(255), the same arithmetic as the firmware's u8 LOAD
format, so host and device see bit-identical inputs.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ffenergy.data.base import DataError, Dataset
from ffenergy.data.splits import stratified_split

EMBEDDED_FILE = "mnist-subset.npz"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
ATTRIBUTION = (
    "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0); "
    "LeCun et al., Proc. IEEE 86(11):2278-2324, 1998."
)


@dataclass(frozen=True)
class Options:
    """MNIST has no loader-specific options."""

    def validate(self) -> None:
        return None


def pixels_to_float(q: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) or (N, 784) to float32 (N, 784) in [0, 1]."""
    return q.reshape(len(q), -1).astype(np.float32) / np.float32(255.0)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (plain or .gz) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DataError(f"cannot read MNIST IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, file holds {body.size} bytes")
    return body.reshape(shape)


def read_idx_dir(path: Path) -> dict[str, np.ndarray]:
    """The four MNIST IDX arrays from a directory (``.gz`` or uncompressed files)."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [path / stem, path / f"{stem}.gz", path / "MNIST" / "raw" / stem]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise DataError(
                f"MNIST file {stem}[.gz] not found in {path}; point data.path at a directory "
                "holding the four IDX files, or use data.source: embedded"
            )
        arrays[key] = read_idx(found)
    return arrays


def load(source: str, path: Path | None, val_fraction: float, seed: int, options: Options) -> Dataset:
    """Load MNIST from ``embedded``, ``local`` (IDX directory) or ``download`` (torchvision)."""
    if source == "embedded":
        with resources.files("ffenergy.data").joinpath("embedded", EMBEDDED_FILE).open("rb") as fh:
            npz = np.load(fh)
            arrays = {k: npz[k] for k in npz.files}
        origin = "embedded stratified MNIST subset (ffenergy/data/embedded)"
    elif source == "local":
        if path is None:
            raise DataError("data.path is required with data.source: local (a directory of MNIST IDX files)")
        arrays = read_idx_dir(Path(path))
        origin = f"MNIST IDX files in {Path(path).name}/"
    elif source == "download":
        arrays = _download(path)
        origin = "MNIST downloaded with torchvision"
    else:
        raise DataError(f"data.source: unknown source {source!r} for mnist; use embedded, local or download")
    x_all = pixels_to_float(arrays["train_images"])
    y_all = arrays["train_labels"].astype(np.int64)
    train_idx, val_idx = stratified_split(y_all, val_fraction, seed)
    return Dataset(
        name="mnist",
        x_train=x_all[train_idx],
        y_train=y_all[train_idx],
        x_val=x_all[val_idx],
        y_val=y_all[val_idx],
        x_test=pixels_to_float(arrays["test_images"]),
        y_test=arrays["test_labels"].astype(np.int64),
        class_names=[str(d) for d in range(10)],
        label_value=1.0,
        source=f"{origin}; {ATTRIBUTION}",
    )


def _download(path: Path | None) -> dict[str, np.ndarray]:
    root = Path(path) if path else Path.home() / ".cache" / "ffenergy" / "mnist"
    try:
        from torchvision.datasets import MNIST
    except ImportError as exc:
        raise DataError(
            "data.source: download needs torchvision (pip install torchvision), "
            "or use data.source: local with the IDX files"
        ) from exc
    try:
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"MNIST download failed ({exc}); use data.source: local or embedded") from exc
    return read_idx_dir(root / "MNIST" / "raw")
