"""Figures of explanations side by side and of their costs: one scale a row, totals that add up."""

import matplotlib
import torch

from helpers import plotting
from helpers.records import Explanation

matplotlib.use("Agg")


def explanation(x_adv: torch.Tensor, method: str) -> Explanation:
    """Two black 2×2 images, class 0 answered, x_adv answered class 1."""
    x = torch.zeros(2, 1, 2, 2)
    answers = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    return Explanation(
        index=torch.arange(2),
        x=x,
        y=torch.tensor([1, 1]),
        logits=answers,
        x_adv=x_adv,
        logits_adv=answers.flip(1),
        attacked=torch.ones(2, dtype=torch.bool),
        success=torch.ones(2, dtype=torch.bool),
        queries=torch.ones(2, dtype=torch.int64),
        forward_passes=torch.full((2,), 2),
        backward_passes=torch.zeros(2, dtype=torch.int64),
        method=method,
    )


def test_show_edits_draws_each_rows_changes_on_one_scale():
    small = explanation(torch.full((2, 1, 2, 2), 0.25), "small")
    large = explanation(torch.full((2, 1, 2, 2), 0.5), "large")
    fig = plotting.show_edits({"small": small, "large": large}, ["a", "b"])
    images = [ax.images[0] for ax in fig.axes if ax.images]  # colour bars hold no image
    assert len(images) == 2 * (1 + 2 * 2)
    for row in (images[:5], images[5:]):
        assert row[2].get_clim() == row[4].get_clim() == (-0.5, 0.5)  # the largest change's
    titles = [ax.get_title() for ax in fig.axes]
    assert "true b, answered a" in titles and "large:\nanswered b" in titles
    assert "δ, L2 = 0.50" in titles and "δ, L2 = 1.00" in titles


def test_plot_costs_stacks_the_parts_and_writes_each_total():
    costs = {"label": {"labels": 1.5, "explanations": 0.5}, "probabilities": {"labels": 3.0}}
    ax = plotting.plot_costs(costs, ylabel="dollars", title="bill").axes[0]
    assert [patch.get_height() for patch in ax.patches] == [1.5, 3.0, 0.5, 0.0]
    assert [text.get_text() for text in ax.texts] == ["2", "3"]
    assert ax.get_ylabel() == "dollars" and ax.get_title() == "bill"
