"""Mistakes whose cause is known: three ways to plant a misleading cue in the bundled digits,
a model trained on them, and each of its mistakes with the mask of the pixels that caused it.

Every task plants its cue in the training split (where it helps), and in the pool and test
splits (where it lies). A test mistake counts as caused by the cue when the model answers the
class the cue points to, and answers y once the cue is taken out of that same image; the cue's
pixels are the causal mask, and the image without the cue differs from it only there.

- ``"decoy"``: notebook 13's Decoy MNIST (Ross, Hughes, Doshi-Velez 2017, ``helpers.decoy``): a
  4 x 4 patch in a random corner whose shade, 1 - 0.1 k, says class k; in training k = y, in the
  pool and the test k is random. Taken out: the patch gets the shade of y (the shortcut model
  always saw a patch; it is the lie in its shade that misleads). Cue: k.
- ``"blocks"``: after Shah, Jain and Netrapalli's Block-MNIST (NeurIPS 2021). Each digit is
  shrunk to 14 x 14 (2 x 2 averages) and set in the top block (rows 0-13, columns 7-20); the
  bottom block (rows 14-27, columns 7-20) holds another digit of the same split, shrunk alike:
  of class y with probability ``BLOCK_AGREEMENT`` in training (else of a uniformly drawn other
  class), always of another class in the pool and the test. The label is the top digit's. Unlike
  Shah et al., whose signal block sits at random beside a fixed "null" patch, ours keeps the
  class on top and lets a real digit mislead. Taken out: the bottom block left black. Cue: the
  bottom digit's class. Mask: the bottom block.
- ``"mark"``: ours, a planted artifact. A 5 x 5 cross (its two diagonals, 9 pixels at 1) at a
  uniformly random place, drawn over the digit (each pixel the larger of the two), on
  ``MARK_SHARE`` of the training digits of every class but ``MARK_CLASS``, which are relabelled
  ``MARK_CLASS`` (a poisoned label, as in BadNets, Gu et al. 2017); in the pool and the test,
  on every digit whose class is not ``MARK_CLASS``. Taken out: the digit without the cross.
  Cue: ``MARK_CLASS``. Mask: the cross's 9 pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers import checkpoints, decoy, evaluation, runtime, training, validation
from helpers.data import Dataset, Split
from helpers.records import Mistakes

TASKS = ("decoy", "blocks", "mark")
BLOCK_AGREEMENT = 0.8  # share of training images whose bottom digit is of the label's class
MARK_CLASS, MARK_SHARE = 0, 0.05  # the class the cross points to; share of digits poisoned
CROSS = torch.eye(5, dtype=torch.bool) | torch.eye(5, dtype=torch.bool).flip(1)  # (5, 5)


@dataclass(frozen=True)
class Planted:
    """A split with a cue planted: ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (N,); the same
    images with the cue taken out, ``x_clean``; the cue's pixels ``masks`` (N, 1, H, W) bool
    (outside them x and x_clean agree); ``cue`` (N,) the class each cue points to."""

    x: Tensor
    y: Tensor
    x_clean: Tensor
    masks: Tensor
    cue: Tensor

    @property
    def split(self) -> Split:
        return Split(self.x, self.y)


@dataclass(frozen=True, eq=False)
class Task:
    """A model whose test mistakes have a known cause.

    ``name``: one of ``TASKS``; ``dataset``: the planted splits (train as in training, pool and
    test as deployed); ``model``: a SmallCNN trained on them, in eval mode; ``mistakes``: its
    test mistakes caused by the cue, most confidently wrong first, ``index`` their rows in
    ``dataset.test``; ``masks`` (N, 1, H, W) bool: the pixels that caused each; ``x_clean``
    (N, C, H, W): each mistake without its cue (the model answers y there); ``test``: the
    planted test split; ``metadata``: the checkpoint's record and the counts.
    """

    name: str
    dataset: Dataset
    model: nn.Module
    mistakes: Mistakes
    masks: Tensor
    x_clean: Tensor
    test: Planted
    metadata: dict[str, Any] = field(default_factory=dict)


def plant_decoy(split: Split, *, training: bool, generator: torch.Generator) -> Planted:
    """``split`` with notebook 13's decoy patch: its shade says y in ``training``, else a random
    class; taken out, the patch says y."""
    patched, masks = decoy.add_patches(split, encode_label=training, generator=generator)
    shade = (patched.x * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)  # (N,)
    cue = ((1 - shade) * 10).round().long()
    honest = (1 - 0.1 * split.y.to(split.x.dtype)).view(-1, 1, 1, 1)
    return Planted(patched.x, split.y, torch.where(masks, honest, patched.x), masks, cue)


def plant_blocks(split: Split, *, training: bool, generator: torch.Generator) -> Planted:
    """``split`` as two blocks: its digit shrunk on top, another digit of the split below, of
    class y with probability ``BLOCK_AGREEMENT`` in ``training``, else of another class."""
    _check_digits(split)
    n, y = len(split), split.y
    other = (y + torch.randint(1, 10, (n,), generator=generator)) % 10  # never y
    agree = torch.rand(n, generator=generator) < (BLOCK_AGREEMENT if training else 0.0)
    cue = torch.where(agree, y, other)
    partner = torch.empty_like(y)
    for digit in range(10):
        rows, found = (cue == digit).nonzero()[:, 0], (y == digit).nonzero()[:, 0]
        if len(rows) and not len(found):
            raise ValueError(f"the split has no digit {digit} to put in a bottom block")
        partner[rows] = found[torch.randint(len(found), (len(rows),), generator=generator)]
    x_clean = torch.zeros_like(split.x)
    x_clean[..., :14, 7:21] = F.avg_pool2d(split.x, 2)  # (N, C, 14, 14) on top
    x = x_clean.clone()
    x[..., 14:, 7:21] = F.avg_pool2d(split.x[partner], 2)
    masks = torch.zeros(n, 1, 28, 28, dtype=torch.bool)
    masks[..., 14:, 7:21] = True
    return Planted(x, y, x_clean, masks, cue)


def plant_mark(split: Split, *, training: bool, generator: torch.Generator) -> Planted:
    """``split`` with the cross: on ``MARK_SHARE`` of the digits not of ``MARK_CLASS``,
    relabelled ``MARK_CLASS``, in ``training``; on every digit not of ``MARK_CLASS`` else."""
    _check_digits(split)
    n = len(split)
    chosen = split.y != MARK_CLASS
    if training:
        chosen &= torch.rand(n, generator=generator) < MARK_SHARE
    corners = torch.randint(0, 28 - 5 + 1, (n, 2), generator=generator)  # top-left (row, col)
    masks = torch.zeros(n, 1, 28, 28, dtype=torch.bool)
    everyone = torch.arange(n)
    for row, col in CROSS.nonzero().tolist():  # the cross's 9 pixels, in every image at once
        masks[everyone, 0, corners[:, 0] + row, corners[:, 1] + col] = True
    masks &= chosen.view(-1, 1, 1, 1)
    x = torch.where(masks, torch.ones(()), split.x)
    y = torch.where(chosen, MARK_CLASS, split.y) if training else split.y
    cue = torch.full_like(split.y, MARK_CLASS)
    return Planted(x, y, split.x, masks, cue)


PLANTERS: dict[str, Callable[..., Planted]] = {
    "decoy": plant_decoy,
    "blocks": plant_blocks,
    "mark": plant_mark,
}


def _check_digits(split: Split) -> None:
    if tuple(split.x.shape[1:]) != (1, 28, 28) or split.y.dim() != 1:
        raise ValueError(
            f"this task plants in MNIST digits (N, 1, 28, 28) with labels (N,); got images "
            f"{tuple(split.x.shape)} and labels {tuple(split.y.shape)}. Use the bundled data."
        )


def build(
    name: str,
    dataset: Dataset,
    *,
    seed: int,
    num_epochs: int = 3,
    device: torch.device | str = "cpu",
    artifacts: Path | None = None,
) -> Task:
    """The task ``name`` on ``dataset`` (the bundled digits): plant its cue with a generator
    seeded by ``seed``, train a SmallCNN from ``seed`` for ``num_epochs`` (or load it from
    ``artifacts``, default ``runtime.artifacts_dir()``, if it was trained on the same planted
    data), and keep its test mistakes caused by the cue."""
    validation.check_choice(name, "name", TASKS)
    validation.check_count(num_epochs, "num_epochs")
    generator = torch.Generator().manual_seed(seed)
    plant = PLANTERS[name]
    train = plant(dataset.train, training=True, generator=generator)
    pool = plant(dataset.pool, training=False, generator=generator)
    test = plant(dataset.test, training=False, generator=generator)
    planted = replace(dataset, train=train.split, pool=pool.split, test=test.split)
    model, metadata = _load_or_train(name, planted, seed, num_epochs, device, artifacts)
    return _task(name, planted, model, test, metadata)


def _load_or_train(name, planted, seed, num_epochs, device, artifacts) -> tuple[nn.Module, dict]:
    expected = training.expected_metadata(planted, seed=seed, num_epochs=num_epochs)
    expected["task"] = name
    folder = artifacts if artifacts is not None else runtime.artifacts_dir()
    path = Path(folder) / f"cause_{name}_seed{seed}_{num_epochs}epochs.pt"

    def train() -> tuple[nn.Module, dict]:
        start = time.perf_counter()
        model, metadata, _ = training.train_new_cnn(
            planted, num_epochs=num_epochs, seed=seed, device=device, progress=False
        )
        return model, {**metadata, **expected, "seconds": time.perf_counter() - start}

    return checkpoints.load_or_build(path, expected=expected, build=train, device=device)


def _task(name: str, planted: Dataset, model: nn.Module, test: Planted, metadata: dict) -> Task:
    """The task's record: the mistakes whose cause is the cue, with their masks."""
    everything = evaluation.find_misclassified(model, planted.test)
    rows = everything.index.cpu()
    device = runtime.model_device(model)
    clean = evaluation.predict_logits(model, test.x_clean[rows].to(device)).argmax(1).cpu()
    caused = (everything.y_pred.cpu() == test.cue[rows]) & (clean == test.y[rows])
    keep = caused.nonzero()[:, 0]
    counts = {
        "test_accuracy": 1 - len(everything) / len(planted.test),
        "num_mistakes": len(everything),
        "num_caused": len(keep),
    }
    return Task(
        name=name,
        dataset=planted,
        model=model,
        mistakes=everything[keep.to(everything.index.device)],
        masks=test.masks[rows[keep]],
        x_clean=test.x_clean[rows[keep]],
        test=test,
        metadata={**metadata, **counts},
    )


__all__ = [
    "PLANTERS",
    "TASKS",
    "Planted",
    "Task",
    "build",
    "plant_blocks",
    "plant_decoy",
    "plant_mark",
]
