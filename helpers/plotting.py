"""Figures for the course: image grids, learning curves and the model's mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.data import Split
from helpers.evaluation import Mistakes
from helpers.training import History


def to_image(x: torch.Tensor) -> np.ndarray:
    """One image (C, H, W) in [0, 1] as an array imshow understands: (H, W) or (H, W, C)."""
    array = x.detach().cpu().float().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def show_images(
    x: torch.Tensor,
    titles: Sequence[str] | None = None,
    *,
    num_columns: int = 8,
    suptitle: str | None = None,
    size: float = 1.4,
) -> Figure:
    """A grid of images `x` (N, C, H, W) in [0, 1], each with an optional title."""
    num_images = len(x)
    num_rows = max(1, -(-num_images // num_columns))
    fig, axes = plt.subplots(
        num_rows, num_columns, figsize=(size * num_columns, size * num_rows + 0.4), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < num_images:
            ax.imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_samples_per_class(
    split: Split, classes: Sequence[str], *, per_class: int = 8, title: str = "Samples per class"
) -> Figure:
    """One row per class with its first `per_class` images."""
    rows = [split.x[split.y == label][:per_class] for label in range(len(classes))]
    titles = [
        classes[label] if j == 0 else "" for label, row in enumerate(rows) for j in range(len(row))
    ]
    return show_images(torch.cat(rows), titles, num_columns=per_class, suptitle=title, size=1.0)


def plot_history(history: History) -> Figure:
    """Loss and accuracy per epoch, on the training set and (if recorded) the test set."""
    epochs = np.arange(1, len(history.loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(epochs, history.loss, "o-", label="train")
    ax_acc.plot(epochs, history.accuracy, "o-", label="train")
    if history.test_loss:
        ax_loss.plot(epochs, history.test_loss, "s-", label="test")
        ax_acc.plot(epochs, history.test_accuracy, "s-", label="test")
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def show_mistakes(
    mistakes: Mistakes, classes: Sequence[str], *, num_images: int = 24, num_columns: int = 8
) -> Figure:
    """A gallery of misclassified images titled 'true → predicted (confidence)'."""
    count = min(num_images, len(mistakes))
    titles = [
        f"{classes[mistakes.y[i]]} → {classes[mistakes.y_pred[i]]} ({mistakes.confidence[i]:.0%})"
        for i in range(count)
    ]
    return show_images(
        mistakes.x[:count],
        titles,
        num_columns=num_columns,
        suptitle=f"{count} of {len(mistakes)} misclassified images: true → predicted (confidence)",
        size=1.6,
    )


def show_probabilities(
    x: torch.Tensor,
    probs: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[str],
    *,
    suptitle: str | None = None,
) -> Figure:
    """Each image (N, C, H, W) beside a bar chart of its class probabilities (N, K).

    The true class `y` is drawn in green, the predicted class in red when it differs.
    """
    fig, axes = plt.subplots(len(x), 2, figsize=(7, 1.7 * len(x)), squeeze=False)
    for i, (ax_image, ax_bars) in enumerate(axes):
        predicted = int(probs[i].argmax())
        colors = ["lightgrey"] * len(classes)
        colors[predicted] = "tab:red"
        colors[int(y[i])] = "tab:green"
        ax_image.imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
        ax_image.axis("off")
        ax_image.set_title(f"true {classes[int(y[i])]}, predicted {classes[predicted]}", fontsize=9)
        ax_bars.bar(range(len(classes)), probs[i].detach().cpu().numpy(), color=colors)
        ax_bars.set_xticks(range(len(classes)), classes, fontsize=8)
        ax_bars.set(ylim=(0, 1), ylabel="probability")
    axes[-1, 1].set_xlabel("class (green: true, red: predicted)")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: torch.Tensor, classes: Sequence[str]) -> Figure:
    """Counts per (true, predicted) pair; the diagonal is greyed out so the errors stand out."""
    counts = matrix.cpu().numpy()
    off_diagonal = np.where(np.eye(len(classes), dtype=bool), np.nan, counts)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(off_diagonal, cmap="Reds")
    fig.colorbar(image, ax=ax, label="misclassified images")
    for (row, col), value in np.ndenumerate(counts):
        if value:
            color = "grey" if row == col else "black"
            ax.text(col, row, str(value), ha="center", va="center", fontsize=8, color=color)
    ticks = np.arange(len(classes))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)")
    fig.tight_layout()
    return fig


def plot_confidence_histograms(confidence: torch.Tensor, correct: torch.Tensor) -> Figure:
    """Histograms of the top-class probability for right and for wrong predictions."""
    bins = np.linspace(0, 1, 21)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for mask, label, color in ((correct, "right", "tab:blue"), (~correct, "wrong", "tab:red")):
        values = confidence[mask].cpu().numpy()
        ax.hist(
            values,
            bins=bins,
            density=True,
            alpha=0.6,
            color=color,
            label=f"{label} ({len(values)})",
        )
    ax.set(xlabel="confidence (probability of the predicted class)", ylabel="density")
    ax.set(title="How sure is the model when it is right, and when it is wrong?")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_per_class_error(errors: torch.Tensor, classes: Sequence[str]) -> Figure:
    """A bar per true class: the fraction of its test images the model gets wrong."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(range(len(classes)), errors.cpu().numpy() * 100, color="tab:red")
    ax.set_xticks(range(len(classes)), classes)
    ax.set(xlabel="true class", ylabel="error rate (%)", title="Test error rate per class")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save `fig` as a PNG (the README shows some of these), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
