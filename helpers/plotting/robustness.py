"""Figures of forward attacks and defences: accuracy against ε, fooled digits, distributions."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.plotting.basics import draw_signed, shared_limit, to_image
from helpers.records import Explanation


def plot_accuracy_against_eps(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "Accuracy under attack",
    xlabel: str = "ε (largest change of a pixel, L∞)",
) -> Figure:
    """One line per named curve: accuracy in [0, 1] (drawn in %) at each budget ε.

    Args:
        curves: name -> (epsilons, accuracies), e.g. {"PGD-40": ([0, 0.1], [1.0, 0.7])}.
    """
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for (name, (epsilons, accuracy)), marker in zip(curves.items(), "os^vDx*+" * 4):
        ax.plot(epsilons, np.asarray(accuracy) * 100, marker=marker, label=name)
    ax.set(xlabel=xlabel, ylabel="accuracy (%)", ylim=(-2, 102), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def show_adversarial_examples(
    result: Explanation, classes: Sequence[str], *, suptitle: str | None = None
) -> Figure:
    """Two rows per batch of a forward attack's record: the changed images, titled 'true →
    now predicted (probability)', and below each its signed change δ, all on one colour scale
    (``shared_limit``) with one colour bar."""
    n = len(result)
    limit = shared_limit(result.delta)
    fig, axes = plt.subplots(
        2, n, figsize=(1.9 * n + 1.2, 4.4), squeeze=False, layout="constrained"
    )
    for i in range(n):
        true, now = int(result.y[i]), int(result.y_adv[i])
        axes[0, i].imshow(to_image(result.x_adv[i]), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(
            f"{classes[true]} → {classes[now]} ({result.probs_adv[i, now]:.0%})",
            fontsize=9,
            color="tab:red" if now != true else "black",
        )
        last = i == n - 1
        bar = "δ: ink added (red), one scale" if last else None
        draw_signed(axes[1, i], result.delta[i], colorbar=bar, limit=limit)
        axes[1, i].set_title(f"L∞ {result.linf[i]:.2f}, L2 {result.l2[i]:.1f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("changed image")
    axes[1, 0].set_ylabel("change δ")
    fig.suptitle(suptitle or f"{result.method}: true → now predicted (probability)")
    return fig


def plot_distributions(
    values: dict[str, torch.Tensor], *, xlabel: str, title: str, num_bins: int = 30
) -> Figure:
    """Overlaid histograms (as densities) of named 1-d tensors, each with its median marked."""
    fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    arrays = {name: v.detach().cpu().double().numpy() for name, v in values.items()}
    every = np.concatenate([a for a in arrays.values() if len(a)] or [np.zeros(1)])
    bins = np.linspace(every.min(), every.max() + 1e-9, num_bins + 1)
    for (name, array), color in zip(
        arrays.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ):
        label = f"{name} ({len(array)}, median {np.median(array):.2f})" if len(array) else name
        ax.hist(array, bins=bins, density=True, alpha=0.5, color=color, label=label)
        if len(array):
            ax.axvline(np.median(array), color=color, linestyle="--")
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    ax.legend(fontsize=8)
    return fig
