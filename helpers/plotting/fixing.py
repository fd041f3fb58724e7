"""Figures of notebook 13: explanations that point at a region, accuracies of the fixes, and
how well each score ranks the flipped labels."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers import decoy, metrics
from helpers.plotting.basics import to_image
from helpers.records import Explanation


def show_region_explanations(
    result: Explanation, masks: torch.Tensor, classes: Sequence[str], *, suptitle: str
) -> Figure:
    """Two rows: each image with its region outlined (titled 'true → predicted'), and below it
    where its explanation puts its change: |δ| per pixel as a share of that image's total |δ|,
    titled with the share inside the region, on one colour scale for all tiles (so a tile that
    crowds into the region shows bright there, however large or small its δ is overall).
    masks: (N, 1, H, W) bool."""
    n = len(result)
    fig, axes = plt.subplots(
        2, n, figsize=(1.9 * n + 1.2, 4.4), squeeze=False, layout="constrained"
    )
    magnitude = result.delta.abs().sum(1).cpu()  # (N, H, W)
    spread = magnitude / magnitude.sum((1, 2), keepdim=True).clamp(min=1e-12)  # each sums to 1
    top = float(spread.max()) or 1.0
    shares = decoy.region_share(result.delta.cpu(), masks.cpu())
    for i in range(n):
        axes[0, i].imshow(to_image(result.x[i]), cmap="gray", vmin=0, vmax=1)
        axes[0, i].contour(masks[i, 0].cpu().float().numpy(), levels=[0.5], colors="tab:orange")
        title = f"{classes[int(result.y[i])]} → {classes[int(result.y_pred[i])]}"
        axes[0, i].set_title(title, fontsize=9)
        shown = axes[1, i].imshow(spread[i].numpy(), cmap="magma", vmin=0, vmax=top)
        axes[1, i].contour(masks[i, 0].cpu().float().numpy(), levels=[0.5], colors="tab:cyan")
        axes[1, i].set_title(f"{shares[i]:.0%} in the region", fontsize=8)
    fig.colorbar(shown, ax=axes[1, :].tolist(), label="share of the image's |δ|\nper pixel")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image (region outlined)")
    axes[1, 0].set_ylabel("where |δ| goes")
    fig.suptitle(suptitle)
    return fig


def plot_accuracies(
    accuracies: dict[str, float], *, title: str, reference: str | None = None
) -> Figure:
    """Horizontal bars of test accuracy in [0, 1] (drawn in %), one per named model; a dashed
    line at the ``reference`` model's accuracy."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(accuracies) + 1.2), layout="constrained")
    names = list(accuracies)
    values = np.array([accuracies[n] for n in names]) * 100
    ax.barh(names, values, color="tab:blue")
    for row, value in enumerate(values):
        ax.text(value, row, f" {value:.1f}%", va="center", fontsize=9)
    if reference is not None:
        ax.axvline(accuracies[reference] * 100, color="black", linestyle="--", label=reference)
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="test accuracy (%)", xlim=(0, 105), title=title)
    return fig


def plot_rankings(
    scores: dict[str, torch.Tensor],
    positive: torch.Tensor,
    *,
    title: str,
    positives: str = "flipped labels",
    negatives: str = "clean labels",
    k: int | None = None,
    log_scale: bool = False,
) -> Figure:
    """ROC curves: for each named score (N,), the true-positive rate (share of the ``positive``
    images flagged) against the false-positive rate (share of the others flagged) as the
    threshold goes down the ranking (``metrics.roc_curve``), each labelled with its AUROC, and
    the diagonal of a random ranking; the axes name the ``positives`` and ``negatives``.

    Args:
        k: if given, a dot where each score's top ``k`` are flagged (with k = the number of
            positives, the true-positive rate there is the precision at k).
        log_scale: the false-positive rate on a log axis (linear below one negative's share,
            so 0 stays on it): curves that all hug the top-left corner come apart.
    """
    fig, ax = plt.subplots(figsize=(6, 4.8), layout="constrained")
    positive = positive.cpu()
    num_negatives = int((~positive).sum())
    styles = ("-", "--", "-.", ":")
    for (name, score), style in zip(scores.items(), styles * len(scores)):
        score = score.cpu()
        false_positive, true_positive = metrics.roc_curve(score, positive)
        area = metrics.auroc(score, positive)
        (line,) = ax.plot(
            false_positive.numpy(),
            true_positive.numpy(),
            style,
            label=f"{name} (AUROC {area:.3f})",
        )
        if k is not None:
            hits = int(positive[score.topk(k).indices].sum())
            at = ((k - hits) / num_negatives, hits / int(positive.sum()))
            ax.plot(*at, "o", color=line.get_color(), markersize=6)
    chance = np.concatenate([[0.0], np.geomspace(1 / num_negatives, 1, 200)])
    ax.plot(chance, chance, color="grey", linestyle=":", label="random ranking (AUROC 0.5)")
    if k is not None:
        ax.plot([], [], "o", color="black", label=f"top {k} flagged (precision at {k})")
    if log_scale:
        ax.set_xscale("symlog", linthresh=1 / num_negatives, linscale=0.5)
        decades = 10.0 ** np.arange(np.ceil(np.log10(1 / num_negatives)), 1)
        ax.set_xticks([0, *decades])  # 0, then the decades above one negative's share
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel=f"false-positive rate: share of {negatives} flagged"
        + (" (log scale)" if log_scale else ""),
        ylabel=f"true-positive rate: share of {positives} flagged",
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig
