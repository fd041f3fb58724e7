"""Figures of mistakes: no wrong answer titled "100%", the true class always findable."""

import matplotlib
import torch

from helpers import plotting
from helpers.records import Mistakes

matplotlib.use("Agg")


def test_the_gallery_never_rounds_a_wrong_answer_up_to_100_percent():
    # softmax of (0, log 996 - log 4) over two classes: 0.996 on class 1, whose true class is 0
    logits = torch.tensor([[0.0, float(torch.tensor(996 / 4).log())], [0.0, 0.0]])
    mistakes = Mistakes(
        index=torch.arange(2), x=torch.zeros(2, 1, 4, 4), y=torch.tensor([0, 1]), logits=logits
    )
    fig = plotting.show_mistakes(mistakes, ["a", "b"], num_columns=2)
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles == ["a → b (>99%)", "b → a (50%)"]


def test_the_true_class_can_be_found_when_its_bar_is_too_short_to_see():
    logits = torch.tensor([[0.0, 20.0, 0.0]])  # true class 0 at about 2e-9
    wrong = Mistakes(
        index=torch.arange(1), x=torch.zeros(1, 1, 4, 4), y=torch.tensor([0]), logits=logits
    )
    bars = plotting.show_probabilities(wrong, ["a", "b", "c"]).axes[1]
    assert [text.get_text() for text in bars.texts] == ["<0.1%"]
    assert bars.get_xticklabels()[0].get_color() == "tab:green"
