"""Figures of the black-box curves: size against queries, and cost against labels."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator


def plot_budget_curve(records: Sequence[dict], *, title: str | None = None) -> Figure:
    """Median L2 relative to the white box (left) and success (right) against the black-box
    queries per image, one line per method; ``records`` as in the benchmark's ``budget_curve``
    (``method``, ``budget``, ``success_rate``, ``median_l2_ratio_to_whitebox``). The x axis is
    logarithmic, labelled at the budgets measured; so is the size axis where the largest ratio
    is over ten times the smallest, so that one method far off does not flatten the others."""
    fig, (size, success) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    methods = list(dict.fromkeys(r["method"] for r in records))
    for method, marker in zip(methods, "os^vDx*+" * 4):
        mine = sorted((r for r in records if r["method"] == method), key=lambda r: r["budget"])
        budgets = [r["budget"] for r in mine]
        size.plot(budgets, [r["median_l2_ratio_to_whitebox"] for r in mine], marker=marker)
        success.plot(budgets, [100 * r["success_rate"] for r in mine], marker=marker, label=method)
    size.axhline(1, color="gray", linestyle=":")
    size.set(
        xlabel="black-box queries per image",
        ylabel="median L2 / white box",
        ylim=(0, None),
        title="Explanation size (1: the developer's)",
    )
    ratios = [r["median_l2_ratio_to_whitebox"] for r in records]
    ratios = [r for r in ratios if np.isfinite(r) and r > 0]
    if ratios and max(ratios) > 10 * min(ratios):
        size.set_yscale("log")
        size.set_ylim(min(min(ratios), 1) / 1.5, max(ratios) * 1.5)
        size.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    success.set(
        xlabel="black-box queries per image",
        ylabel="explained (%)",
        ylim=(-2, 102),
        title="Success",
    )
    for ax in (size, success):
        log_ticks_at(ax, [r["budget"] for r in records])
    success.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_label_curve(
    records: Sequence[dict],
    *,
    title: str | None = None,
    max_queries: int | None = None,
    paper: tuple[float, float] | None = None,
) -> Figure:
    """Agreement with the black box and success, mean queries, and (where the records have it)
    the explanations' size, against the label queries each surrogate cost; pool images only
    (solid) and with Jacobian augmentation (dashed).

    Args:
        records: as in the benchmark's ``label_curve`` (``metrics.label_record``); several at
            the same label queries (surrogates from other seeds) are drawn as points, joined
            through their median.
        max_queries: the explanations' budget per image: the queries panel runs from 0 to it,
            so a difference in mean queries reads against what the user allowed (default: from
            0 to a little above the largest mean).
        paper: (mean queries, success rate) of a published result, drawn as dotted lines.
    Every panel starts at 0; the x axis is logarithmic, labelled at the label queries of the
    surrogates without augmentation (all of them if there are none). A third panel, median L2
    ÷ the white box's, is drawn when every record has ``median_l2_ratio_to_whitebox``.
    """
    sized = bool(records) and all("median_l2_ratio_to_whitebox" in r for r in records)
    fig, axes = plt.subplots(1, 3 if sized else 2, figsize=(15 if sized else 11, 4))
    fig.set_layout_engine("constrained")
    share, queries = axes[0], axes[1]
    panels = [
        (share, "agreement", 100, "s", "agreement"),
        (share, "success_rate", 100, "o", "explained"),
    ]
    panels.append((queries, "mean_queries", 1, "o", "mean queries"))
    if sized:
        panels.append((axes[2], "median_l2_ratio_to_whitebox", 1, "o", "size"))
    for jacobian, style in ((False, "-"), (True, "--")):
        mine = [r for r in records if r["jacobian"] == jacobian]
        if not mine:
            continue
        name = "Jacobian augmentation" if jacobian else "pool only"
        labels = sorted({r["label_queries"] for r in mine})
        for ax, key, scale, marker, what in panels:
            values = [[scale * r[key] for r in mine if r["label_queries"] == n] for n in labels]
            line = ax.plot(
                labels, [np.median(v) for v in values], marker + style, label=f"{what}, {name}"
            )
            points = [(n, v) for n, vs in zip(labels, values) for v in vs]
            ax.plot(*zip(*points), marker, color=line[0].get_color(), alpha=0.4, markersize=4)
    if paper is not None:
        share.axhline(100 * paper[1], color="k", linestyle=":", label="paper: explained")
        queries.axhline(paper[0], color="k", linestyle=":", label="paper: mean queries")
    top = max_queries or 1.1 * max(
        [r["mean_queries"] for r in records] + [paper[0] if paper else 0]
    )
    share.set(ylabel="%", ylim=(0, 102), title="Agreement with the black box, and success")
    budget = f" (0 to the budget, {max_queries})" if max_queries else ""
    queries.set(ylabel="mean black-box queries per image", ylim=(0, top), title="Queries" + budget)
    if sized:
        axes[2].axhline(1, color="gray", linestyle=":")
        axes[2].set(
            ylabel="median L2 / white box", ylim=(0, None), title="Size (1: the developer's)"
        )
    plain = [r["label_queries"] for r in records if not r["jacobian"]]
    for ax in axes:
        log_ticks_at(ax, plain or [r["label_queries"] for r in records])
        ax.set_xlabel("label queries (the surrogate's cost)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def log_ticks_at(ax: Axes, values: Sequence[float]) -> None:
    """A logarithmic x axis on ``ax`` labelled at ``values`` only, in plain numbers (1,000 not
    10^3), without minor tick labels, so that no label collides with another."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(values))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
