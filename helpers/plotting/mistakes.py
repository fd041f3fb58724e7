"""Figures of the model's mistakes: a gallery, probabilities, the confusion matrix, confidence."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.plotting.basics import show_images, to_image
from helpers.records import Predictions


def show_mistakes(
    mistakes: Predictions, classes: Sequence[str], *, num_images: int = 24, num_columns: int = 8
) -> Figure:
    """A gallery of misclassified images titled 'true → predicted (confidence)'."""
    shown = mistakes[:num_images]
    titles = [
        f"{classes[t]} → {classes[p]} ({_percent(c)})"
        for t, p, c in zip(shown.y.tolist(), shown.y_pred.tolist(), shown.confidence.tolist())
    ]
    return show_images(
        shown.x,
        titles,
        num_columns=max(1, min(num_columns, len(shown))),  # a short gallery stays compact
        suptitle=f"{len(shown)} of {len(mistakes)} misclassified images: true → predicted "
        "(confidence)",
        size=1.6,
    )


def show_probabilities(
    predictions: Predictions, classes: Sequence[str], *, suptitle: str | None = None
) -> Figure:
    """Each image beside a bar chart of its class probabilities.

    The true class is drawn in green, the predicted class in red when it differs; their tick
    labels are coloured alike and the true class's probability is written above its bar, so it
    can be found when the bar is too short to see.
    """
    n = len(predictions)
    fig, axes = plt.subplots(n, 2, figsize=(7, 1.8 * n + 0.5), squeeze=False, layout="constrained")
    for i, (ax_image, ax_bars) in enumerate(axes):
        true, predicted = int(predictions.y[i]), int(predictions.y_pred[i])
        colors = ["lightgrey"] * len(classes)
        colors[predicted], colors[true] = "tab:red", "tab:green"
        ax_image.imshow(to_image(predictions.x[i]), cmap="gray", vmin=0, vmax=1)
        ax_image.axis("off")
        probs = predictions.probs[i].cpu().numpy()
        label = f"true {classes[true]}, predicted {classes[predicted]}"
        ax_image.set_title(f"{label} ({_percent(probs[predicted])})", fontsize=9)
        ax_bars.bar(range(len(classes)), probs, color=colors)
        ax_bars.set_xticks(range(len(classes)), classes, fontsize=8)
        labels = ax_bars.get_xticklabels()
        labels[predicted].set_color("tab:red")
        labels[true].set(color="tab:green", fontweight="bold")
        text = "<0.1%" if probs[true] < 0.001 else f"{probs[true]:.1%}"
        ax_bars.annotate(
            text,
            (true, probs[true]),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color="tab:green",
        )
        ax_bars.set(ylim=(0, 1.15), yticks=[0, 0.25, 0.5, 0.75, 1], ylabel="probability")
    axes[-1, 1].set_xlabel("class (green: true, red: predicted)")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_confusion_matrix(matrix: torch.Tensor, classes: Sequence[str]) -> Figure:
    """Counts per (true, predicted) pair; the diagonal is greyed out so the errors stand out.

    Each count is written in black or white, whichever contrasts more with its cell.
    """
    counts = matrix.cpu().numpy()
    off_diagonal = np.where(np.eye(len(classes), dtype=bool), np.nan, counts)
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    image = ax.imshow(off_diagonal, cmap="magma_r", vmin=0)  # perceptually uniform, light at 0
    bar = fig.colorbar(image, ax=ax, label="misclassified images")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    for (row, col), value in np.ndenumerate(counts):
        if not value:
            continue
        if row == col:
            color = "grey"
        else:
            red, green, blue, _ = image.cmap(image.norm(value))
            color = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"
        ax.text(col, row, str(value), ha="center", va="center", fontsize=8, color=color)
    ticks = np.arange(len(classes))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)")
    return fig


def plot_confidence_histograms(confidence: torch.Tensor, correct: torch.Tensor) -> Figure:
    """Histograms of the top-class probability for right and for wrong predictions."""
    bins = np.linspace(0, 1, 21)
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for mask, label, color in ((correct, "right", "tab:blue"), (~correct, "wrong", "tab:red")):
        values = confidence[mask].cpu().numpy()
        label = f"{label} ({len(values)})"
        ax.hist(values, bins=bins, density=True, alpha=0.6, color=color, label=label)
    ax.set(xlabel="confidence (probability of the predicted class)", ylabel="density")
    ax.set(title="How sure is the model when it is right, and when it is wrong?")
    ax.legend()
    return fig


def plot_per_class_error(errors: torch.Tensor, classes: Sequence[str]) -> Figure:
    """A bar per true class: the fraction of its test images the model gets wrong."""
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    ax.bar(range(len(classes)), errors.cpu().numpy() * 100, color="tab:red")
    ax.set_xticks(range(len(classes)), classes)
    ax.set(xlabel="true class", ylabel="error rate (%)", title="Test error rate per class")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _percent(probability: float) -> str:
    """A probability as a whole percentage that never rounds a wrong answer up to "100%"."""
    return ">99%" if 0.995 <= probability < 1 else f"{probability:.0%}"
