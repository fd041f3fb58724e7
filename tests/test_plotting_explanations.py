"""Figures of explanations: tiles that are compared share one colour scale; side-by-side edits
keep one scale a row; cost bars add up."""

import matplotlib
import pytest
import tiny
import torch

from helpers import plotting
from helpers.records import Explanation
from helpers.training import History

matplotlib.use("Agg")


def explanation(x_adv: torch.Tensor, method: str) -> Explanation:
    """Two black 2×2 images, class 0 answered, x_adv answered class 1."""
    x = torch.zeros(2, 1, 2, 2)
    answers = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    passes = {"forward_passes": torch.full((2,), 2), "backward_passes": torch.zeros(2).long()}
    return tiny.explained(x, x_adv, torch.tensor([1, 1]), answers, **passes, method=method)


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


def two_explanations() -> Explanation:
    """Two images fixed by changes of very different sizes: 0.04 on one pixel, 1.8 on another."""
    x = torch.full((2, 1, 3, 3), 0.5)
    delta = torch.zeros(2, 1, 3, 3)
    delta[0, 0, 0, 0] = 0.04
    delta[1, 0, 1, 1] = -0.3
    delta[1, 0, 2, 2] = 0.4  # the larger change's extreme value
    logits = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # both predicted 1, true class 0
    y = torch.zeros(2, dtype=torch.int64)
    two = torch.full((2,), 2)
    return tiny.explained(x, x + delta, y, logits, forward_passes=two, method="hand")


def signed_images(fig) -> list:
    return [im for ax in fig.axes for im in ax.images if im.get_cmap().name == "RdBu_r"]


def test_shared_limit_is_the_largest_signed_value_of_the_batch():
    assert plotting.shared_limit(two_explanations().delta) == pytest.approx(0.4)
    assert plotting.shared_limit(torch.zeros(0, 1, 3, 3)) > 0  # an empty batch still draws


def test_every_explanation_row_shares_one_colour_scale():
    fig = plotting.show_explanations(two_explanations(), ["0", "1"])
    limits = [im.get_clim() for im in signed_images(fig)]
    assert len(limits) == 2 and all(lim == pytest.approx((-0.4, 0.4)) for lim in limits)
    magnitudes = [im for ax in fig.axes for im in ax.images if im.get_cmap().name == "magma"]
    assert [im.get_clim() for im in magnitudes] == [pytest.approx((0, 0.4))] * 2


def test_explanations_take_a_limit_shared_with_other_figures():
    fig = plotting.show_explanations(two_explanations()[:1], ["0", "1"], limit=0.4)
    assert [im.get_clim() for im in signed_images(fig)] == [pytest.approx((-0.4, 0.4))]


def test_every_gallery_tile_shares_one_colour_scale():
    fig = plotting.show_explanation_gallery(two_explanations(), ["0", "1"])
    limits = [im.get_clim() for im in signed_images(fig)]
    assert len(limits) == 2 and all(lim == pytest.approx((-0.4, 0.4)) for lim in limits)


def test_draw_signed_scales_one_change_to_itself_without_a_limit():
    fig = plotting.show_images(torch.zeros(1, 1, 3, 3))
    image = plotting.draw_signed(fig.axes[0], two_explanations().delta[0])
    assert image.get_clim() == pytest.approx((-0.04, 0.04))


def test_history_names_its_held_out_split_and_marks_an_epoch():
    history = History(loss=[1.0, 0.5], accuracy=[0.5, 0.8], test_loss=[0.9], test_accuracy=[0.6])
    history.test_loss.append(0.7)
    history.test_accuracy.append(0.7)
    fig = plotting.plot_history(history, held_out="validation", mark=2, title="t")
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["train", "validation", "chosen: epoch 2"]
    assert fig.get_suptitle() == "t"
