"""Rebuild ffenergy/data/embedded/mnist-subset.npz from a full MNIST IDX directory.

Deterministic and stratified: the first N_TRAIN_PER_CLASS training digits of each class (in
file order) and the first N_TEST_PER_CLASS test digits of each class.

    python tools/make_embedded_mnist.py ../shared/data/mnist
"""

import sys
from pathlib import Path

import numpy as np

from ffenergy.data.mnist import read_idx_dir

N_TRAIN_PER_CLASS = 1400
N_TEST_PER_CLASS = 200


def first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)]))


def main(src: str) -> None:
    arrays = read_idx_dir(Path(src))
    tr = first_per_class(arrays["train_labels"], N_TRAIN_PER_CLASS)
    te = first_per_class(arrays["test_labels"], N_TEST_PER_CLASS)
    out = Path(__file__).resolve().parents[1] / "ffenergy" / "data" / "embedded" / "mnist-subset.npz"
    np.savez_compressed(
        out,
        train_images=arrays["train_images"][tr],
        train_labels=arrays["train_labels"][tr],
        test_images=arrays["test_images"][te],
        test_labels=arrays["test_labels"][te],
        train_index=tr.astype(np.int32),
        test_index=te.astype(np.int32),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(tr)} train, {len(te)} test digits")


if __name__ == "__main__":
    main(sys.argv[1])
