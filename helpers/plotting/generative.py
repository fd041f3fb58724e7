"""Figures of notebook 15: a GAN's training, its digits by class, and counterfactuals beside
adversarial explanations."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.plotting.basics import SIGNED_CMAP, signed_map, to_image
from helpers.records import Explanation


def plot_gan_history(histories: dict[str, object], *, title: str) -> Figure:
    """Per epoch, for each named ``generative.GanHistory``: both losses, and the share of real
    training images its discriminator assigns to their class."""
    fig, (ax_loss, ax_real) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    for (name, history), color in zip(histories.items(), plt.rcParams["axes.prop_cycle"]):
        epochs, color = np.arange(1, len(history.generator_loss) + 1), color["color"]
        ax_loss.plot(
            epochs, history.discriminator_loss, "o-", color=color, label=f"{name}: discriminator"
        )
        ax_loss.plot(epochs, history.generator_loss, "s--", color=color, label=f"{name}: generator")
        ax_real.plot(epochs, history.real_accuracy, "o-", color=color, label=name)
    ax_loss.set(title="Losses", xlabel="epoch", ylabel="loss")
    ax_real.set(
        title="Real training images put in their class", xlabel="epoch", ylabel="share", ylim=(0, 1)
    )
    for ax in (ax_loss, ax_real):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def show_class_grid(
    x: torch.Tensor, y: torch.Tensor, read: torch.Tensor, classes: Sequence[str], *, title: str
) -> Figure:
    """Generated images ``x`` (N, C, H, W) of classes ``y`` (N,), one row per class in the
    order given, each titled with the class a classifier ``read`` (N,) there (red if not y)."""
    per_row = int((y == y[0]).sum())
    rows = -(-len(x) // per_row)
    fig, axes = plt.subplots(
        rows,
        per_row,
        figsize=(1.1 * per_row, 1.2 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[: len(x)]):
        ax.imshow(to_image(x[i]), cmap="gray", vmin=0, vmax=1)
        wrong = int(read[i]) != int(y[i])
        ax.set_title(
            f"{classes[int(y[i])]}: read {classes[int(read[i])]}",
            fontsize=7,
            color="red" if wrong else "black",
        )
    fig.suptitle(title)
    return fig


def show_counterfactuals(
    counterfactual: Explanation,
    whitebox: Explanation,
    classes: Sequence[str],
    fakeness: dict[str, torch.Tensor],
    *,
    title: str,
) -> Figure:
    """One column per mistake: the original; the counterfactual with the class the model reads
    there; its mask |counterfactual − x| (one scale, [0, 1]); the white-box explanation's signed
    δ (one symmetric scale for the row, centred on 0). ``fakeness`` holds, per row name
    ("original", "counterfactual", "white box"), the discriminator's probability of "fake" per
    image (N,)."""
    n = len(counterfactual)
    fig, axes = plt.subplots(4, n, figsize=(1.6 * n, 7.2), squeeze=False, layout="constrained")
    signed = [signed_map(delta)[0] for delta in whitebox.delta]  # (H, W) each
    limit = max(signed_map(delta)[1] for delta in whitebox.delta)  # shared by the row
    for i in range(n):
        true, said = int(counterfactual.y[i]), int(counterfactual.y_pred[i])
        read = int(counterfactual.y_adv[i])
        column = axes[:, i]
        column[0].imshow(to_image(counterfactual.x[i]), cmap="gray", vmin=0, vmax=1)
        column[0].set_title(
            f"{classes[true]} (said {classes[said]})\nfake {fakeness['original'][i]:.2f}",
            fontsize=8,
        )
        column[1].imshow(to_image(counterfactual.x_adv[i]), cmap="gray", vmin=0, vmax=1)
        column[1].set_title(
            f"reads {classes[read]}, fake {fakeness['counterfactual'][i]:.2f}",
            fontsize=8,
            color="black" if read == true else "red",
        )
        mask = counterfactual.delta[i].abs().sum(0).detach().cpu().numpy()
        heat = column[2].imshow(mask, cmap="magma", vmin=0, vmax=1)
        column[2].set_title(f"mask, L2 {counterfactual.delta[i].norm():.2f}", fontsize=8)
        shown = column[3].imshow(signed[i], cmap=SIGNED_CMAP, vmin=-limit, vmax=limit)
        column[3].set_title(
            f"white box, L2 {whitebox.delta[i].norm():.2f}\nfake {fakeness['white box'][i]:.2f}",
            fontsize=8,
        )
        for ax in column:
            ax.set_xticks([])
            ax.set_yticks([])
    for row, label in zip(axes[:, 0], ("original", "counterfactual", "|change|", "white-box δ")):
        row.set_ylabel(label)
    fig.colorbar(heat, ax=axes[2, :].tolist(), fraction=0.02, label="|change|")
    fig.colorbar(
        shown, ax=axes[3, :].tolist(), fraction=0.02, label="δ: ink added (red),\nremoved (blue)"
    )
    fig.suptitle(title)
    return fig


__all__ = ["plot_gan_history", "show_class_grid", "show_counterfactuals"]
