"""Figures of explanations: one per row, a gallery by mistake, two side by side, their costs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from helpers.metrics import Similarity
from helpers.plotting.basics import SIGNED_CMAP, draw_signed, signed_map, to_image
from helpers.records import Explanation


def show_explanations(
    result: Explanation, classes: Sequence[str], *, suptitle: str | None = None
) -> Figure:
    """One row per image: original, signed change δ, |δ| over the image, corrected image, and
    the class probabilities before and after (all read from the record ``result``)."""
    n = len(result)
    fig, axes = plt.subplots(n, 5, figsize=(15, 2.8 * n + 0.6), squeeze=False, layout="constrained")
    for i, row in enumerate(axes):
        image, delta = to_image(result.x[i]), result.delta[i]
        before, after = int(result.y_pred[i]), int(result.y_adv[i])
        row[0].imshow(image, cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"original: predicted {classes[before]} ({result.probs[i, before]:.0%})")
        draw_signed(row[1], delta, colorbar="added (red) / removed (blue)")
        row[1].set_title(f"perturbation δ, L2 = {delta.norm():.2f}")
        row[2].imshow(image, cmap="gray", vmin=0, vmax=1)
        overlay = row[2].imshow(np.abs(signed_map(delta)[0]), cmap="hot", alpha=0.6)
        fig.colorbar(overlay, ax=row[2], fraction=0.046, pad=0.04, label="|δ|")
        row[2].set_title("|δ| over the image")
        row[3].imshow(to_image(result.x_adv[i]), cmap="gray", vmin=0, vmax=1)
        probability = result.probs_adv[i, after]
        row[3].set_title(f"corrected: predicted {classes[after]} ({probability:.0%})")
        for ax in row[:4]:
            ax.axis("off")
        _probability_bars(row[4], result, i, classes)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def show_explanation_gallery(
    result: Explanation,
    classes: Sequence[str],
    *,
    num_columns: int = 8,
    title: str = "Explanations grouped by (true → predicted) pair",
) -> Figure:
    """Signed changes with the digit's outline, grouped by (true, predicted) pair.

    Each tile is scaled to its own largest change, so weak and strong ones are equally legible.
    """
    pairs = list(zip(result.y.tolist(), result.y_pred.tolist()))
    order = sorted(range(len(result)), key=lambda i: pairs[i])
    num_rows = max(1, -(-len(order) // num_columns))
    fig, axes = plt.subplots(
        num_rows, num_columns, figsize=(1.7 * num_columns, 1.8 * num_rows + 0.8), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order):
        heat = draw_signed(ax, result.delta[i])
        outline = result.x[i].detach().cpu().mean(0).numpy()  # (H, W) grey, for the contour
        ax.contour(outline, levels=[0.5], colors="black", linewidths=0.7)
        true, predicted = pairs[i]
        label = f"{classes[true]} → {classes[predicted]}, L2 {result.delta[i].norm():.2f}"
        ax.set_title(label, fontsize=8)
    if len(order):
        bar = fig.colorbar(heat, ax=axes, fraction=0.02, pad=0.02)
        limit = heat.norm.vmax
        bar.set_ticks([-limit, 0, limit], labels=["ink removed", "0", "ink added"])
        bar.set_label("δ, each tile scaled to its own maximum")
    fig.suptitle(title + " (black line: the digit's outline)")
    return fig


def show_side_by_side(
    whitebox: Explanation,
    blackbox: Explanation,
    classes: Sequence[str],
    similar: Similarity,
    *,
    suptitle: str | None = None,
) -> Figure:
    """One row per image: the original, the developer's (white-box) change and the user's
    (black-box) one, with their ``similar``ity; the two changes of a row share one symmetric
    colour scale, so that the larger one looks larger."""
    n = len(whitebox)
    fig, axes = plt.subplots(n, 3, figsize=(10, 3.0 * n + 0.6), squeeze=False, layout="constrained")
    for i, row in enumerate(axes):
        true, predicted = int(whitebox.y[i]), int(whitebox.y_pred[i])
        row[0].imshow(to_image(whitebox.x[i]), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"true {classes[true]}, predicted {classes[predicted]}")
        pair = (("developer", whitebox), ("user", blackbox))
        limit = max(signed_map(result.delta[i])[1] for _, result in pair)
        for ax, (who, result) in zip(row[1:], pair):
            heat = draw_signed(ax, result.delta[i], colorbar="δ: ink added (red), one scale a row")
            heat.set_clim(-limit, limit)
            ax.set_title(f"{who} ({result.method}): L2 {result.delta[i].norm():.2f}", fontsize=9)
        cosine, overlap = similar.cosine[i], similar.overlap[i]
        row[2].set_xlabel(f"cosine {cosine:.2f}, top-pixel overlap {overlap:.0%}")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_agreement(
    curves: dict[str, tuple[Sequence[int], Sequence[float]]],
    *,
    title: str = "How well does the surrogate imitate the black box?",
) -> Figure:
    """Agreement of surrogates with the black box against the label queries they cost.

    Args:
        curves: name -> (label queries, agreement in [0, 1]), one pair per trained surrogate.
    """
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, (queries, agreement) in curves.items():
        ax.plot(queries, np.asarray(agreement) * 100, "o-", label=name)
    ax.set(xlabel="label queries (images the black box labelled)", title=title)
    ax.set(ylabel="agreement with the black box on the test set (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_success_by_budget(
    results: dict[str, Explanation],
    *,
    paper: tuple[float, float] | None = None,
    budget: int | None = None,
    title: str = "Misclassified images explained within q queries (one run each)",
) -> Figure:
    """Fraction of the attacked images each run explained with at most q queries, for each q.

    A run that goes on after its hit (shrink or refinement steps) reaches the fraction only
    at its final count: the curve measures what each run spent, not its first hit.

    Args:
        results: name -> a result. paper: (mean queries, success rate) of a published result,
            drawn as a point. budget: a budget to mark with a vertical line.
    """
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    rows = {name: result[result.attacked] for name, result in results.items()}
    most = max([int(r.queries.max()) for r in rows.values() if len(r)] + [budget or 0])
    steps = np.arange(0, most + 2)  # every curve runs to the same end, flat after its last hit
    for (name, r), style in zip(rows.items(), ["-", "--", "-.", ":"] * 9):
        queries, success = r.queries.cpu(), r.success.cpu()
        explained = [((queries <= q) & success).float().mean().item() * 100 for q in steps]
        ax.step(steps, explained, style, where="post", label=name)
    if paper is not None:
        label = "paper: success at its mean queries"
        ax.plot(paper[0], paper[1] * 100, "k*", markersize=12, label=label)
    if budget is not None:
        ax.axvline(budget, color="grey", linestyle="--", label=f"budget {budget}")
    ax.set(xlabel="queries per image (q)", ylabel="explained within q queries (%)")
    ax.set(ylim=(0, 102), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def show_edits(
    results: Mapping[str, Explanation],
    classes: Sequence[str],
    *,
    suptitle: str | None = None,
) -> Figure:
    """One row per image: the original, then for each named result its corrected image and its
    signed change δ, the changes of a row on one shared scale centred on 0, so that their
    sizes compare at a glance. Every result holds the same images, in the same order."""
    names = list(results)
    first = results[names[0]]
    n, columns = len(first), 1 + 2 * len(names)
    fig, axes = plt.subplots(
        n, columns, figsize=(2.1 * columns + 1, 2.3 * n + 0.6), squeeze=False, layout="constrained"
    )
    for i, row in enumerate(axes):
        true, predicted = int(first.y[i]), int(first.y_pred[i])
        row[0].imshow(to_image(first.x[i]), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"true {classes[true]}, answered {classes[predicted]}", fontsize=9)
        limit = max(signed_map(results[name].delta[i])[1] for name in names)
        for j, name in enumerate(names):
            result = results[name]
            image, changed = row[1 + 2 * j], row[2 + 2 * j]
            image.imshow(to_image(result.x_adv[i]), cmap="gray", vmin=0, vmax=1)
            answer = classes[int(result.y_adv[i])]
            image.set_title(f"{name}:\nanswered {answer}", fontsize=9)
            heat = changed.imshow(signed_map(result.delta[i])[0], cmap=SIGNED_CMAP)
            heat.set_clim(-limit, limit)
            changed.set_title(f"δ, L2 = {result.delta[i].norm():.2f}", fontsize=9)
        fig.colorbar(heat, ax=row[-1], fraction=0.046, pad=0.04, label="δ (one scale a row)")
        for ax in row:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_costs(costs: Mapping[str, Mapping[str, float]], *, ylabel: str, title: str) -> Figure:
    """Stacked bars: one bar per outer key (a plan, a method), one segment per inner key (what
    the cost went to), each bar's total written above it."""
    bars = list(costs)
    parts = list(dict.fromkeys(part for bar in costs.values() for part in bar))
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    bottom = np.zeros(len(bars))
    for part in parts:
        heights = np.array([costs[bar].get(part, 0.0) for bar in bars])
        ax.bar(bars, heights, 0.6, bottom=bottom, label=part)
        bottom += heights
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:.3g}", (x, total), ha="center", va="bottom", fontsize=9)
    ax.set(ylabel=ylabel, title=title, ylim=(0, bottom.max() * 1.15 if len(bars) else 1))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _probability_bars(ax, result: Explanation, i: int, classes: Sequence[str]) -> None:
    """Grouped bars of the class probabilities before (grey) and after (blue) the change."""
    positions, label = np.arange(len(classes)), int(result.y[i])
    ax.bar(positions - 0.2, result.probs[i].cpu().numpy(), 0.4, color="grey", label="before")
    ax.bar(positions + 0.2, result.probs_adv[i].cpu().numpy(), 0.4, color="tab:blue", label="after")
    ax.set_xticks(positions, classes, fontsize=8)
    ax.get_xticklabels()[label].set_color("tab:green")
    ax.set(ylim=(0, 1), ylabel="probability", title=f"true class {classes[label]} (green)")
    ax.legend(fontsize=8)
