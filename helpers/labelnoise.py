"""Label errors that explanations find: flip a known share of labels, score every training image
out of fold, and rank.

A model trained on noisy labels memorizes many of the flips, so it reads a mislabelled image as
its given label and its own explanation toward that label is empty. Every score here therefore
comes from models that did not see the image: the training set is cut into folds, a model is
trained on the other folds (``training.train_new_cnn``) and scores the fold it did not see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from helpers import attacks, training, validation
from helpers.data import Dataset, Split


def flip_labels(
    y: Tensor, rate: float, num_classes: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Give exactly round(rate * N) labels, chosen at random, another class drawn at random.

    Args:
        y: (N,) the true labels. rate: the share to flip, in [0, 1).
        generator: a CPU generator (same seed, same flips).
    Returns: (the noisy labels (N,), the flipped mask (N,) bool).
    """
    if not isinstance(rate, int | float) or not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}; e.g. rate=0.05 flips 5%")
    validation.check_count(num_classes, "num_classes", minimum=2)
    validation.check_generator(generator, torch.device("cpu"))
    rows = torch.randperm(len(y), generator=generator)[: round(rate * len(y))]
    shift = torch.randint(1, num_classes, (len(rows),), generator=generator)
    noisy = y.clone()
    noisy[rows] = (y[rows] + shift.to(y.device)) % num_classes  # never the true class
    flipped = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    flipped[rows] = True
    return noisy, flipped


@dataclass(frozen=True)
class Scores:
    """Out-of-fold scores of every training image, larger = more likely mislabelled.

    ``explanation`` (N,): the L2 of the white-box explanation toward the given label, or minus
    the margin (logit of the given label - the best other) for an image the fold model already
    reads as its given label. ``loss`` (N,): the cross-entropy of the given label.
    ``probs`` (N, K): the out-of-fold probabilities (cleanlab's input). ``fold`` (N,).
    """

    explanation: Tensor
    loss: Tensor
    probs: Tensor
    fold: Tensor


def out_of_fold_scores(
    dataset: Dataset,
    *,
    num_folds: int = 2,
    num_epochs: int,
    seed: int,
    method: str = "deepfool",
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Scores:
    """Score ``dataset.train`` (its labels as given, noisy or not) with ``num_folds`` models,
    each trained from ``seed`` on the other folds and scoring the fold it did not see.

    Args:
        dataset: its ``train`` split is scored; models are built for its shape and classes.
        num_folds: >= 2. num_epochs, seed: each fold model's training.
        method: the white-box method of ``attacks.explain`` for the explanation score.
        device: where the fold models train and explain; the scores come back on the CPU.
    """
    validation.check_count(num_folds, "num_folds", minimum=2)
    train = dataset.train
    fold = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)) % num_folds
    explanation, loss = torch.zeros(len(train)), torch.zeros(len(train))
    probs = torch.zeros(len(train), dataset.num_classes)
    for k in range(num_folds):
        held = (fold == k).nonzero()[:, 0]
        seen = Split(train.x[fold != k], train.y[fold != k])
        model, _, _ = training.train_new_cnn(
            replace(dataset, train=seen),
            num_epochs=num_epochs,
            seed=seed + k,
            device=device,
            progress=progress,
        )
        result = explain_given(model, train.x[held], train.y[held], method)
        explanation[held], logits = result
        loss[held] = F.cross_entropy(logits, train.y[held], reduction="none")
        probs[held] = logits.softmax(1)
    return Scores(explanation, loss, probs, fold)


def explain_given(model: nn.Module, x: Tensor, y: Tensor, method: str) -> tuple[Tensor, Tensor]:
    """(scores (N,), logits (N, K)) for images ``x`` and given labels ``y``: the explanation's
    L2 toward y where the model reads another class (where the method fails, the L2 of the
    change it ended on), minus the margin of y where it reads y."""
    device = next(model.parameters()).device
    result = attacks.explain(model, x.to(device), y.to(device), method).to("cpu")
    others = result.logits.scatter(1, result.y[:, None], float("-inf"))
    margin = result.logits.gather(1, result.y[:, None])[:, 0] - others.amax(1)
    return torch.where(result.attacked, result.l2, -margin), result.logits


def cleanlab_scores(labels: Tensor, probs: Tensor) -> tuple[Tensor, Tensor]:
    """cleanlab's view of the same out-of-fold probabilities (N, K): (scores (N,), 1 - its label
    quality, larger = more likely mislabelled; the (N,) bool mask ``find_label_issues`` flags)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels_np, probs_np = labels.cpu().numpy(), probs.double().cpu().numpy()
    quality = torch.from_numpy(get_label_quality_scores(labels_np, probs_np))
    issues = torch.from_numpy(find_label_issues(labels_np, probs_np))
    return 1 - quality.float(), issues


def _check_ranking(scores: Tensor, flipped: Tensor) -> None:
    if len(scores) == 0:
        raise ValueError("the ranking is empty: pass one score per training image (N >= 1)")
    if scores.shape != flipped.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and flipped {tuple(flipped.shape)} differ")


def precision_at_k(scores: Tensor, flipped: Tensor, k: int) -> float:
    """Share of true flips among the ``k`` highest ``scores`` (N,)."""
    _check_ranking(scores, flipped)
    validation.check_count(k, "k")
    if k > len(scores):
        raise ValueError(f"k={k} is larger than the ranking ({len(scores)} images)")
    return flipped[scores.topk(k).indices].float().mean().item()


def without_top(split: Split, scores: Tensor, k: int) -> Split:
    """``split`` without its ``k`` highest-scoring images (the suspected label errors)."""
    _check_ranking(scores, torch.zeros_like(scores, dtype=torch.bool))
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[scores.topk(k).indices.cpu()] = False
    return Split(split.x[keep], split.y[keep])


__all__ = [
    "Scores",
    "cleanlab_scores",
    "explain_given",
    "flip_labels",
    "out_of_fold_scores",
    "precision_at_k",
    "without_top",
]
