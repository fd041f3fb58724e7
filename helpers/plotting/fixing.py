"""Figures of notebook 13: explanations that point at a region, accuracies of the fixes, and
how well each score ranks the flipped labels."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers import decoy
from helpers.plotting.basics import to_image
from helpers.records import Explanation


def show_region_explanations(
    result: Explanation, masks: torch.Tensor, classes: Sequence[str], *, suptitle: str
) -> Figure:
    """Two rows: each image with its region outlined (titled 'true → predicted'), and below it
    the magnitude |δ| of its explanation, titled with its share inside the region, with a colour
    bar. masks: (N, 1, H, W) bool."""
    n = len(result)
    fig, axes = plt.subplots(
        2, n, figsize=(1.9 * n + 1.2, 4.4), squeeze=False, layout="constrained"
    )
    magnitude = result.delta.abs().sum(1).cpu()  # (N, H, W)
    top = float(magnitude.max()) or 1.0
    shares = decoy.region_share(result.delta.cpu(), masks.cpu())
    for i in range(n):
        axes[0, i].imshow(to_image(result.x[i]), cmap="gray", vmin=0, vmax=1)
        axes[0, i].contour(masks[i, 0].cpu().float().numpy(), levels=[0.5], colors="tab:orange")
        title = f"{classes[int(result.y[i])]} → {classes[int(result.y_pred[i])]}"
        axes[0, i].set_title(title, fontsize=9)
        shown = axes[1, i].imshow(magnitude[i].numpy(), cmap="magma", vmin=0, vmax=top)
        axes[1, i].contour(masks[i, 0].cpu().float().numpy(), levels=[0.5], colors="tab:cyan")
        axes[1, i].set_title(f"{shares[i]:.0%} in the region", fontsize=8)
    fig.colorbar(shown, ax=axes[1, :].tolist(), label="|δ| per pixel")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image (region outlined)")
    axes[1, 0].set_ylabel("|δ| of the explanation")
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
    flipped: torch.Tensor,
    *,
    title: str,
    positives: str = "flipped labels",
    negatives: str = "clean labels",
) -> Figure:
    """ROC curves: for each named score (N,), the share of ``flipped`` (positive) images found
    against the share of the others flagged, as the threshold goes down the ranking; the axes
    name the ``positives`` and ``negatives``."""
    fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    flipped = flipped.cpu()
    for name, score in scores.items():
        hits = flipped[score.cpu().argsort(descending=True)].double()
        found = torch.cat([torch.zeros(1), hits.cumsum(0) / hits.sum()])
        flagged = torch.cat([torch.zeros(1), (1 - hits).cumsum(0) / (1 - hits).sum()])
        ax.plot(flagged.numpy(), found.numpy(), label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(
        xlabel=f"share of {negatives} flagged", ylabel=f"share of {positives} found", title=title
    )
    ax.legend(fontsize=8)
    return fig
