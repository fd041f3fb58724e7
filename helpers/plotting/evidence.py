"""Figures of what a change does inside the network: Grad-CAM overlays, MOD against ε, pixel
promotion and suppression, category shares, units, spectra and accuracy on filtered images."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.plotting.basics import draw_signed, shared_limit, to_image

HEAT_CMAP = "inferno"  # perceptually uniform: brighter where the class's evidence is stronger


def show_grad_cams(
    rows: dict[str, tuple[torch.Tensor, torch.Tensor]],
    titles: Sequence[str] | None = None,
    *,
    suptitle: str = "Grad-CAM",
    alpha: float = 0.5,
) -> Figure:
    """One row per name: each digit (grey) with its Grad-CAM map overlaid, a colour bar per row.

    Args:
        rows: name -> (x (N, C, H, W) in [0, 1], maps (N, H, W) in [0, 1]), the same N per row.
        titles: one per column (e.g. "7 → 2"); alpha: the map's opacity.
    """
    names = list(rows)
    n = len(next(iter(rows.values()))[0])
    fig, axes = plt.subplots(
        len(names),
        n,
        figsize=(1.6 * n + 1.2, 1.8 * len(names) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for r, name in enumerate(names):
        x, maps = rows[name]
        for i in range(n):
            ax = axes[r, i]
            ax.imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
            image = ax.imshow(
                maps[i].detach().cpu().numpy(), cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=alpha
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and titles is not None:
                ax.set_title(titles[i], fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=9)
        fig.colorbar(image, ax=axes[r, -1], fraction=0.046, pad=0.04, label="Grad-CAM")
    fig.suptitle(suptitle)
    return fig


def plot_mod_against_eps(
    curves: dict[str, tuple[Sequence[float], torch.Tensor]],
    *,
    title: str = "How far Grad-CAM moves under FGSM",
) -> Figure:
    """One line per named curve: MOD (mean NISSIM, in [0, 1]) at each FGSM strength ε. Names
    read "model, layer": one colour per model (the text before the first comma), solid for the
    names that contain "last", dashed for the others.

    Args:
        curves: name -> (epsilons (S,), mods): mods (S,), or (R, S), one row per subset of the
            images, drawn as its mean with a band from the lowest to the highest row.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = list(dict.fromkeys(name.split(",")[0] for name in curves))
    for (name, (epsilons, mods)), marker in zip(curves.items(), "os^vDx*+<>" * 4):
        rows = torch.as_tensor(mods, dtype=torch.float64).reshape(-1, len(epsilons)).numpy()
        color = palette[models.index(name.split(",")[0]) % len(palette)]
        linestyle = "-" if "last" in name else "--"
        ax.plot(epsilons, rows.mean(0), marker=marker, linestyle=linestyle, color=color, label=name)
        if len(rows) > 1:
            ax.fill_between(epsilons, rows.min(0), rows.max(0), color=color, alpha=0.15, lw=0)
    ax.set(xlabel="ε (FGSM, L∞)", ylabel="MOD (mean NISSIM)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def show_contributions(
    x: torch.Tensor,
    promoting: torch.Tensor,
    suppressing: torch.Tensor,
    titles: Sequence[str],
    *,
    suptitle: str = "Gradient × δ: where the change promotes and where it suppresses",
) -> Figure:
    """Three rows: the digits, gradient × δ of the class reached (promotion) and minus that of
    the class left (suppression), on one colour scale centred on zero shared by every tile;
    red raises the flip, blue works against it.

    Args: x: (N, C, H, W) in [0, 1]; promoting, suppressing: (N, C, H, W) signed maps.
    """
    n = len(x)
    limit = max(shared_limit(promoting), shared_limit(suppressing))
    fig, axes = plt.subplots(
        3, n, figsize=(1.7 * n + 1.4, 5.6), squeeze=False, layout="constrained"
    )
    for i in range(n):
        axes[0, i].imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(titles[i], fontsize=9)
        for row, signed in zip((1, 2), (promoting, suppressing)):
            image = draw_signed(axes[row, i], signed[i], limit=limit)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, label in zip(axes[:, 0], ("image", "promotion", "suppression")):
        ax.set_ylabel(label)
    label = "contribution to the flip (logit units)"
    fig.colorbar(image, ax=axes[1:, :].ravel().tolist(), fraction=0.03, pad=0.02, label=label)
    fig.suptitle(suptitle)
    return fig


def plot_shares(
    shares: dict[str, dict[str, float]], *, title: str = "Promotion or suppression, by source"
) -> Figure:
    """Stacked horizontal bars: per source, the share of each category (summing to 1)."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(shares) + 1.6), layout="constrained")
    sources, left = list(shares), np.zeros(len(shares))
    colors = {
        "suppression": "tab:blue",
        "balanced": "tab:gray",
        "promotion": "tab:red",
        "neither": "white",
    }
    for category in next(iter(shares.values())):
        values = np.array([shares[s][category] for s in sources])
        ax.barh(
            sources,
            values,
            left=left,
            label=category,
            edgecolor="black",
            color=colors.get(category),
        )
        left += values
    ax.set(xlabel="share of the images", xlim=(0, 1), title=title)
    ax.invert_yaxis()
    ax.legend(ncols=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    return fig


def plot_units(
    sensitivity: dict[str, torch.Tensor], selectivity: torch.Tensor, *, title: str
) -> Figure:
    """Each unit's sensitivity to each named kind of change (C,) against its class
    selectivity (C,): one panel per kind, each with its own vertical scale (an attack moves the
    units far more than an explanation, and one shared scale would flatten the explanations)."""
    fig, axes = plt.subplots(
        1,
        len(sensitivity),
        figsize=(4.2 * len(sensitivity), 3.8),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, values), color in zip(axes[0], sensitivity.items(), colors):
        ax.scatter(selectivity.cpu().numpy(), values.cpu().numpy(), s=18, alpha=0.7, color=color)
        ax.set(xlabel="class selectivity (Morcos et al. 2018)", title=name)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("sensitivity: mean |change of activation|")
    fig.suptitle(title)
    return fig


def plot_spectra(
    curves: dict[str, torch.Tensor], *, title: str = "Where the energy lies"
) -> Figure:
    """One line per name: a radial power spectrum (R,) drawn as the share of its power at
    each radius >= 1 (the mean, radius 0, left out), on a log scale."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    for name, power in curves.items():
        values = power.detach().cpu().double().numpy()[1:]
        ax.semilogy(np.arange(1, len(values) + 1), values / values.sum(), marker=".", label=name)
    ax.set(
        xlabel="radius (cycles per image)", ylabel="share of the power (mean excluded)", title=title
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_filtered_accuracy(
    curves: dict[str, dict[str, Sequence[float]]], radii: Sequence[float], *, title: str
) -> Figure:
    """Accuracy on filtered images, one panel per filter: low-pass (keep radius <= r, more of
    the image kept to the right) and high-pass (keep radius > r, more kept to the left).

    Args:
        curves: model name -> {"low": accuracies, "high": accuracies}, each (R,) in [0, 1].
        radii: (R,) the cut-off radius r of each filter, in cycles per image.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    kinds = {
        "low": "Low-pass: only the frequencies at radius <= r",
        "high": "High-pass: only the frequencies at radius > r",
    }
    for ax, (kind, panel) in zip(axes, kinds.items()):
        for (name, accuracy), marker in zip(curves.items(), "os^vDx*+"):
            ax.plot(radii, np.asarray(accuracy[kind]) * 100, marker=marker, label=name)
        ax.set(xlabel="cut-off radius r (cycles per image)", title=panel, ylim=(-2, 102))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig
