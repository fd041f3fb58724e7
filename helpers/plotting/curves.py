"""Figures of the black-box benchmark's curves: size against queries, and cost against labels."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def plot_budget_curve(records: Sequence[dict], *, title: str | None = None) -> Figure:
    """Median L2 relative to the white box (left) and success (right) against the black-box
    queries per image, one line per method; ``records`` as in the benchmark's ``budget_curve``
    (``method``, ``budget``, ``success_rate``, ``median_l2_ratio_to_whitebox``)."""
    fig, (size, success) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    methods = list(dict.fromkeys(r["method"] for r in records))
    for method, marker in zip(methods, "os^vDx*+" * 4):
        mine = sorted((r for r in records if r["method"] == method), key=lambda r: r["budget"])
        budgets = [r["budget"] for r in mine]
        size.plot(budgets, [r["median_l2_ratio_to_whitebox"] for r in mine], marker=marker)
        success.plot(budgets, [100 * r["success_rate"] for r in mine], marker=marker, label=method)
    size.axhline(1, color="gray", linestyle=":")
    size.set(
        xscale="log",
        xlabel="black-box queries per image",
        ylabel="median L2 / white box",
        title="Explanation size (1: the developer's)",
    )
    success.set(
        xscale="log",
        xlabel="black-box queries per image",
        ylabel="explained (%)",
        ylim=(-2, 102),
        title="Success",
    )
    success.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_label_curve(records: Sequence[dict], *, title: str | None = None) -> Figure:
    """Agreement with the black box and success (left), and mean queries (right), against the
    label queries the surrogate cost, with and without Jacobian augmentation; ``records`` as in
    the benchmark's ``label_curve``."""
    fig, (share, queries) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for jacobian, style in ((False, "-"), (True, "--")):
        mine = sorted(
            (r for r in records if r["jacobian"] == jacobian), key=lambda r: r["label_queries"]
        )
        if not mine:
            continue
        labels = [r["label_queries"] for r in mine]
        name = "Jacobian augmentation" if jacobian else "pool only"
        share.plot(
            labels, [100 * r["agreement"] for r in mine], "s" + style, label=f"agreement, {name}"
        )
        share.plot(
            labels, [100 * r["success_rate"] for r in mine], "o" + style, label=f"explained, {name}"
        )
        queries.plot(labels, [r["mean_queries"] for r in mine], "o" + style, label=name)
    share.set(
        xscale="log",
        xlabel="label queries",
        ylabel="%",
        ylim=(-2, 102),
        title="Agreement and success",
    )
    queries.set(
        xscale="log",
        xlabel="label queries",
        ylabel="mean black-box queries per image",
        title="Cost of an explanation",
    )
    share.legend(fontsize=8)
    queries.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
