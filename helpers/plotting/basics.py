"""Image grids, the signed heat map every explanation figure shares, learning curves, saving."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.data import Split
from helpers.training import History

SIGNED_CMAP = "RdBu_r"  # red: the change adds brightness (ink), blue: it removes it
MAGNITUDE_CMAP = "magma"  # perceptually uniform, for |δ| and other maps of sizes


def to_image(x: torch.Tensor) -> np.ndarray:
    """One image (C, H, W) in [0, 1] as an array imshow understands: (H, W) or (H, W, C)."""
    array = x.detach().cpu().float().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def signed_map(delta: torch.Tensor) -> tuple[np.ndarray, float]:
    """A signed change (C, H, W) as one (H, W) map and its symmetric colour limit.

    Channels are summed: on a colour image a change that brightens all three channels counts
    three times one that brightens one. Every figure and the explorer draw δ this way.
    """
    signed = delta.detach().cpu().float().sum(0).numpy()  # (H, W)
    return signed, max(float(np.abs(signed).max()), 1e-8)


def shared_limit(deltas: torch.Tensor) -> float:
    """One symmetric colour limit for a batch of signed changes (N, C, H, W): the largest
    ``signed_map`` value of any of them, so that tiles drawn with it compare at a glance."""
    if len(deltas) == 0:
        return 1e-8
    return max(float(deltas.detach().sum(1).abs().max()), 1e-8)


def draw_signed(
    ax: Axes, delta: torch.Tensor, *, colorbar: str | None = None, limit: float | None = None
):
    """Draw ``signed_map(delta)`` on ``ax``, centred on zero; with a labelled colour bar.

    ``limit``: the colour scale's ends, ±limit (one ``shared_limit`` for tiles compared side by
    side); None scales this change to its own largest value.
    """
    signed, own = signed_map(delta)
    limit = own if limit is None else limit
    image = ax.imshow(signed, cmap=SIGNED_CMAP, vmin=-limit, vmax=limit)
    if colorbar is not None:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=colorbar)
    return image


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
        num_rows,
        num_columns,
        figsize=(size * num_columns, size * num_rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < num_images:
            ax.imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
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


def plot_history(
    history: History, *, held_out: str = "test", mark: int | None = None, title: str | None = None
) -> Figure:
    """Loss and accuracy per epoch, on the training set and (if recorded) a held-out split.

    Args:
        history: from ``training.train``; its ``test_*`` lists hold the held-out split's curve.
        held_out: what that split is called in the legend ("test", "validation").
        mark: the chosen epoch, marked with a vertical line on both panels, or None.
        title: a title over both panels, or None.
    """
    epochs = np.arange(1, len(history.loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    ax_loss.plot(epochs, history.loss, "o-", label="train")
    ax_acc.plot(epochs, history.accuracy, "o-", label="train")
    if history.test_loss:
        ax_loss.plot(epochs, history.test_loss, "s-", label=held_out)
        ax_acc.plot(epochs, history.test_accuracy, "s-", label=held_out)
    if mark is not None:
        for ax in (ax_loss, ax_acc):
            ax.axvline(mark, color="grey", linestyle="--", label=f"chosen: epoch {mark}")
    # a log scale, so that the flat end of the curves, where epochs are chosen, can be read
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss (log scale)", yscale="log")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    if title:
        fig.suptitle(title)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
        ax.grid(alpha=0.3)
    return fig


def image_png(
    image: np.ndarray, *, cmap: str = "gray", limit: float | None = None, scale: int = 5
) -> bytes:
    """PNG bytes of a (H, W) array, upscaled `scale` times with crisp pixels.

    Grey images are drawn on [0, 1]; with `limit`, a diverging map on [-limit, limit].
    """
    vmin, vmax = (0.0, 1.0) if limit is None else (-limit, limit)
    buffer = io.BytesIO()
    plt.imsave(
        buffer,
        np.kron(image, np.ones((scale, scale))),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        format="png",
    )
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save `fig` as a PNG (the README shows some of these), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
