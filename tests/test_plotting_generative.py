"""Figures of notebook 15: GAN curves per GAN, generated digits titled with the reading, and
counterfactuals beside the adversarial explanations, read from their records."""

import matplotlib
import pytest
import torch
from tiny import make_batch

from helpers import generative, plotting
from helpers.records import Explanation

matplotlib.use("Agg")
CLASSES = [str(k) for k in range(4)]


def test_gan_curves_share_a_colour_per_gan():
    histories = {
        name: generative.GanHistory([1.0, 0.8], [2.0, 1.5], [0.5, 0.7]) for name in ("a", "b")
    }
    loss, real = plotting.plot_gan_history(histories, title="t").axes[:2]
    lines = loss.get_lines()
    assert [line.get_ydata().tolist() for line in lines[:2]] == [[1.0, 0.8], [2.0, 1.5]]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert real.get_lines()[1].get_ydata().tolist() == [0.5, 0.7]


def test_generated_digits_say_what_the_classifier_read_in_red_when_wrong():
    x, _ = make_batch(0, 4)
    wanted, read = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 1])
    fig = plotting.show_class_grid(x, wanted, read, CLASSES, title="t")
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["0: read 0", "0: read 2", "1: read 1", "1: read 1"]
    assert [ax.title.get_color() for ax in titled].count("red") == 1


def test_counterfactuals_are_drawn_with_their_reading_and_fakeness():
    x, y = make_batch(1, 3)
    logits = torch.nn.functional.one_hot(torch.tensor([1, 2, 3]), 4).float()
    x_adv = (x + 0.2).clamp(0, 1)
    record = dict(
        index=torch.arange(3),
        x=x,
        y=torch.tensor([0, 1, 2]),
        logits=logits,
        x_adv=x_adv,
        attacked=torch.ones(3, dtype=torch.bool),
        queries=torch.ones(3, dtype=torch.int64),
        forward_passes=torch.ones(3),
        backward_passes=torch.zeros(3),
    )
    read = torch.nn.functional.one_hot(torch.tensor([0, 1, 0]), 4).float()  # the last one fails
    counterfactual = Explanation(**record, logits_adv=read, success=torch.tensor([1, 1, 0]) > 0)
    white = Explanation(**record, logits_adv=read, success=torch.ones(3, dtype=torch.bool))
    fakeness = {
        name: torch.tensor([0.1, 0.5, 0.9]) for name in ("original", "counterfactual", "white box")
    }
    fig = plotting.show_counterfactuals(counterfactual, white, CLASSES, fakeness, title="t")
    second_row = [ax.get_title() for ax in fig.axes[:12] if ax.get_title().startswith("reads")]
    assert second_row == ["reads 0, fake 0.10", "reads 1, fake 0.50", "reads 0, fake 0.90"]
    assert any(ax.get_ylabel() == "white-box δ" for ax in fig.axes)
    limits = {ax.images[0].get_clim() for ax in fig.axes[9:12]}  # the white-box row: one scale
    assert len(limits) == 1 and limits.pop()[1] == pytest.approx(0.2)  # the largest |δ| of a pixel
