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


def show_explanations(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    probs: torch.Tensor,
    probs_adv: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[str],
    *,
    suptitle: str | None = None,
) -> Figure:
    """One row per image: original, signed perturbation, |perturbation| on the image, corrected
    image, and the class probabilities before and after.

    Args:
        x, x_adv: (N, C, H, W) in [0, 1], the misclassified images and their corrected versions.
        probs, probs_adv: (N, K) softmax outputs on `x` and on `x_adv`.
        y: (N,) true labels.
    """
    delta = (x_adv - x).detach().cpu()
    fig, axes = plt.subplots(len(x), 5, figsize=(15, 2.7 * len(x)), squeeze=False)
    for i, row in enumerate(axes):
        image, signed = to_image(x[i]), delta[i].sum(0).numpy()  # sum over channels: (H, W)
        limit = max(float(np.abs(signed).max()), 1e-8)
        before, after = int(probs[i].argmax()), int(probs_adv[i].argmax())
        row[0].imshow(image, cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"original: predicted {classes[before]} ({probs[i, before]:.0%})")
        heat = row[1].imshow(signed, cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(
            heat, ax=row[1], fraction=0.046, pad=0.04, label="added (red) / removed (blue)"
        )
        row[1].set_title(f"perturbation δ, L2 = {delta[i].norm():.2f}")
        row[2].imshow(image, cmap="gray", vmin=0, vmax=1)
        overlay = row[2].imshow(np.abs(signed), cmap="hot", alpha=0.6)
        fig.colorbar(overlay, ax=row[2], fraction=0.046, pad=0.04, label="|δ|")
        row[2].set_title("|δ| over the image")
        row[3].imshow(to_image(x_adv[i]), cmap="gray", vmin=0, vmax=1)
        row[3].set_title(f"corrected: predicted {classes[after]} ({probs_adv[i, after]:.0%})")
        for ax in row[:4]:
            ax.axis("off")
        _probability_bars(row[4], probs[i], probs_adv[i], int(y[i]), classes)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_explanation_gallery(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    y_pred: torch.Tensor,
    classes: Sequence[str],
    *,
    num_columns: int = 8,
    title: str = "Explanations grouped by (true → predicted) pair",
) -> Figure:
    """Signed perturbations with the digit's outline, grouped by (true, predicted) pair.

    Red pixels were brightened (ink added), blue ones darkened (ink removed). Each tile is
    scaled to its own largest change, so weak and strong explanations are equally legible.
    """
    order = sorted(range(len(x)), key=lambda i: (int(y[i]), int(y_pred[i])))
    delta = (x_adv - x).detach().cpu().sum(1)  # (N, H, W), summed over channels
    outline = x.detach().cpu().mean(1)  # (N, H, W) grey, for the contour
    num_rows = max(1, -(-len(order) // num_columns))
    fig, axes = plt.subplots(
        num_rows, num_columns, figsize=(1.7 * num_columns, 1.8 * num_rows + 0.6), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order):
        limit = max(float(delta[i].abs().max()), 1e-8)
        heat = ax.imshow(delta[i].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.contour(outline[i].numpy(), levels=[0.5], colors="black", linewidths=0.7)
        label = f"{classes[int(y[i])]} → {classes[int(y_pred[i])]}, L2 {delta[i].norm():.2f}"
        ax.set_title(label, fontsize=8)
    if len(order):
        bar = fig.colorbar(heat, ax=axes, fraction=0.02, pad=0.02, ticks=[-limit, 0, limit])
        bar.ax.set_yticklabels(["ink removed", "0", "ink added"])
        bar.set_label("δ, each tile scaled to its own maximum")
    fig.suptitle(title + " (black line: the digit's outline)")
    return fig


def _probability_bars(ax, probs, probs_adv, label: int, classes: Sequence[str]) -> None:
    """Grouped bars of the class probabilities before (grey) and after (blue) the change."""
    positions = np.arange(len(classes))
    ax.bar(positions - 0.2, probs.detach().cpu().numpy(), 0.4, color="grey", label="before")
    ax.bar(positions + 0.2, probs_adv.detach().cpu().numpy(), 0.4, color="tab:blue", label="after")
    ax.set_xticks(positions, classes, fontsize=8)
    ax.get_xticklabels()[label].set_color("tab:green")
    ax.set(ylim=(0, 1), ylabel="probability", title=f"true class {classes[label]} (green)")
    ax.legend(fontsize=8)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save `fig` as a PNG (the README shows some of these), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_agreement(
    curves: dict[str, tuple[Sequence[int], Sequence[float]]],
    *,
    title: str = "How well does the surrogate imitate the black box?",
) -> Figure:
    """Agreement of surrogates with the black box against the label queries they cost.

    Args:
        curves: name -> (label queries, agreement in [0, 1]), one pair per trained surrogate.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (queries, agreement) in curves.items():
        ax.plot(queries, np.asarray(agreement) * 100, "o-", label=name)
    ax.set(xlabel="label queries (images the black box labelled)", title=title)
    ax.set(ylabel="agreement with the black box on the test set (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def show_side_by_side(
    x: torch.Tensor,
    delta_whitebox: torch.Tensor,
    delta_blackbox: torch.Tensor,
    y: torch.Tensor,
    y_pred: torch.Tensor,
    classes: Sequence[str],
    *,
    cosine: torch.Tensor,
    overlap: torch.Tensor,
    suptitle: str | None = None,
) -> Figure:
    """One row per image: the original, the developer's (white-box) perturbation and the user's
    (black-box) one, each on its own symmetric colour scale.

    Args:
        x: (N, C, H, W) misclassified images; delta_whitebox, delta_blackbox: (N, C, H, W).
        y, y_pred: (N,) true and predicted labels; cosine, overlap: (N,) their similarity.
    """
    fig, axes = plt.subplots(len(x), 3, figsize=(10, 3.0 * len(x)), squeeze=False)
    for i, row in enumerate(axes):
        row[0].imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"true {classes[int(y[i])]}, predicted {classes[int(y_pred[i])]}")
        pairs = (("developer (white box)", delta_whitebox), ("user (black box)", delta_blackbox))
        for ax, (who, delta) in zip(row[1:], pairs):
            signed = delta[i].detach().cpu().sum(0).numpy()  # (H, W), summed over channels
            limit = max(float(np.abs(signed).max()), 1e-8)
            heat = ax.imshow(signed, cmap="RdBu_r", vmin=-limit, vmax=limit)
            fig.colorbar(heat, ax=ax, fraction=0.046, pad=0.04, label="δ: ink added (red)")
            ax.set_title(f"{who}: L2 {delta[i].norm():.2f}")
        row[2].set_xlabel(f"cosine {cosine[i]:.2f}, top-pixel overlap {overlap[i]:.0%}")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_success_by_budget(
    results: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    paper: tuple[float, float] | None = None,
    budget: int | None = None,
    title: str = "Misclassified images explained within a query budget",
) -> Figure:
    """Fraction of the misclassified images explained with at most q queries, for each q.

    Args:
        results: name -> (queries (M,), success (M,) bool) over the misclassified images.
        paper: (mean queries, success rate) of a published result, drawn as a point.
        budget: a budget to mark with a vertical line.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    most = max([int(q.max()) for q, _ in results.values() if len(q)] + [budget or 0])
    steps = np.arange(0, most + 2)  # every curve runs to the same end, flat after its last hit
    for (name, (queries, success)), style in zip(results.items(), ["-", "--", "-.", ":"] * 9):
        queries, success = queries.cpu(), success.cpu()
        explained = [((queries <= q) & success).float().mean().item() * 100 for q in steps]
        ax.step(steps, explained, style, where="post", label=name)
    if paper is not None:
        label = "paper: success at its mean queries"
        ax.plot(paper[0], paper[1] * 100, "k*", markersize=12, label=label)
    if budget is not None:
        ax.axvline(budget, color="grey", linestyle="--", label=f"budget {budget}")
    ax.set(xlabel="black-box queries per image (q)", ylabel="explained within q queries (%)")
    ax.set(ylim=(0, 102), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
