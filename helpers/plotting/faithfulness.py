"""Figures of notebook 14's comparison: the same mistakes explained by every method, the mask
AUROC of each method on each known-cause task, and RISE's insertion and deletion curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.faithfulness import Curves, magnitude
from helpers.plotting.basics import draw_signed, to_image
from helpers.records import Predictions


def show_method_grid(
    mistakes: Predictions,
    maps: Mapping[str, torch.Tensor],
    classes: Sequence[str],
    *,
    masks: torch.Tensor | None = None,
    column_titles: Sequence[str] | None = None,
    suptitle: str,
) -> Figure:
    """One column per mistake, the image on top (titled 'true → predicted', under its line of
    ``column_titles`` if given), then one row per method (named by the keys of ``maps``, each
    (N, C or 1, H, W)): the magnitude of its map, scaled to each map's own maximum, with the
    causal ``masks`` (N, 1, H, W) outlined if given."""
    n, rows = len(mistakes), len(maps) + 1
    if column_titles is not None and len(column_titles) != n:
        raise ValueError(
            f"column_titles must hold {n} titles, one per mistake; got {len(column_titles)}"
        )
    fig, axes = plt.subplots(
        rows, n, figsize=(1.5 * n + 2.4, 1.45 * rows + 0.6), squeeze=False, layout="constrained"
    )
    outline = None if masks is None else masks[:, 0].detach().cpu().float().numpy()
    for i in range(n):
        axes[0, i].imshow(to_image(mistakes.x[i]), cmap="gray", vmin=0, vmax=1)
        true, wrong = classes[int(mistakes.y[i])], classes[int(mistakes.y_pred[i])]
        above = "" if column_titles is None else f"{column_titles[i]}\n"
        axes[0, i].set_title(f"{above}{true} → {wrong}", fontsize=9)
    for row, (name, found) in enumerate(maps.items(), start=1):
        size = magnitude(found.detach().cpu().float())[:, 0]  # (N, H, W)
        top = size.flatten(1).amax(1).clamp(min=1e-12)
        for i in range(n):
            shown = axes[row, i].imshow((size[i] / top[i]).numpy(), cmap="magma", vmin=0, vmax=1)
        axes[row, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if outline is not None:
        for ax_row in axes:
            for i, ax in enumerate(ax_row):
                ax.contour(outline[i], levels=[0.5], colors="tab:cyan", linewidths=0.8)
    if len(maps):
        fig.colorbar(shown, ax=axes[1:, :].ravel().tolist(), label="|map| ÷ its maximum")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle)
    return fig


def show_smoothing(x: torch.Tensor, maps: Mapping[str, torch.Tensor], *, suptitle: str) -> Figure:
    """One row per image ``x`` (N, C, H, W) in [0, 1]: the image, then each signed map of
    ``maps`` (name -> (N, C, H, W)) on its own scale centred on zero, with a colour bar."""
    n, columns = len(x), len(maps) + 1
    fig, axes = plt.subplots(
        n, columns, figsize=(2.6 * columns, 2.3 * n + 0.6), squeeze=False, layout="constrained"
    )
    for i in range(n):
        axes[i, 0].imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
        for ax, (name, signed) in zip(axes[i, 1:], maps.items()):
            draw_signed(ax, signed[i], colorbar="value (red: +)")
            ax.set_title(name, fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle)
    return fig


def plot_mask_auroc(
    scores: Mapping[str, Mapping[str, tuple[float, float]]], *, title: str
) -> Figure:
    """Horizontal bars of mask AUROC, one group per method and one bar per task:
    ``scores[task][method] = (mean, std)``; the std as an error bar, chance (0.5) dashed."""
    tasks = list(scores)
    methods = list(dict.fromkeys(m for task in tasks for m in scores[task]))
    height = 0.8 / max(len(tasks), 1)
    fig, ax = plt.subplots(
        figsize=(7, 0.35 * len(methods) * len(tasks) + 1.5), layout="constrained"
    )
    positions = np.arange(len(methods))
    for k, task in enumerate(tasks):
        means = [scores[task].get(m, (np.nan, 0.0))[0] for m in methods]
        spreads = [scores[task].get(m, (np.nan, 0.0))[1] for m in methods]
        ax.barh(positions + k * height, means, height, xerr=spreads, label=task, capsize=2)
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1, label="chance")
    ax.set_yticks(positions + height * (len(tasks) - 1) / 2, methods)
    ax.invert_yaxis()
    ax.set(
        xlabel="mask AUROC (pixels ranked by the map against the cause)", xlim=(0, 1), title=title
    )
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_insertion_deletion(curves: Mapping[str, Curves], *, title: str) -> Figure:
    """Two panels, insertion and deletion: each method's mean probability of the true class
    against the share of pixels put in or taken out, its area in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained", sharey=True)
    for name, curve in curves.items():
        fraction = curve.fraction.numpy()
        panels = ((curve.insertion, curve.insertion_auc), (curve.deletion, curve.deletion_auc))
        for ax, (values, area) in zip(axes, panels):
            ax.plot(fraction, values.mean(0).numpy(), label=f"{name} ({area.mean():.3f})")
    for ax, kind in zip(axes, ("inserted into a black image", "deleted (set to black)")):
        ax.set(xlabel=f"share of pixels {kind}, in the map's order", xlim=(0, 1))
        ax.legend(fontsize=7, title="method (area)", title_fontsize=7)
    axes[0].set_ylabel("mean probability of the true class")
    axes[0].set_title("insertion")
    axes[1].set_title("deletion")
    fig.suptitle(title)
    return fig


__all__ = ["plot_insertion_deletion", "plot_mask_auroc", "show_method_grid", "show_smoothing"]
