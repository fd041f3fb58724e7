"""The figures of notebook 14's comparison draw what they are given, with titles and labels."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import faithfulness, plotting  # noqa: E402
from helpers.records import Predictions  # noqa: E402


def test_the_method_grid_has_a_row_per_method_and_outlines_the_cause():
    x = torch.zeros(2, 1, 4, 4)
    logits = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mistakes = Predictions(index=torch.arange(2), x=x, y=torch.tensor([0, 1]), logits=logits)
    maps = {"a": torch.rand(2, 1, 4, 4), "b": torch.rand(2, 3, 4, 4)}
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[:, :, :2, :2] = True
    fig = plotting.show_method_grid(mistakes, maps, ["0", "1", "2"], masks=masks, suptitle="s")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 6 and fig._suptitle.get_text() == "s"
    assert image_axes[0].get_title() == "0 → 1" and image_axes[2].get_ylabel() == "a"
    assert image_axes[2].images[0].get_array().max() == 1  # each map scaled to its maximum
    assert all(ax.collections for ax in image_axes)  # the outline on every panel


def test_the_grid_puts_each_column_title_above_its_mistake():
    x = torch.zeros(2, 1, 4, 4)
    logits = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mistakes = Predictions(index=torch.arange(2), x=x, y=torch.tensor([0, 1]), logits=logits)
    maps = {"a": torch.rand(2, 1, 4, 4)}
    fig = plotting.show_method_grid(
        mistakes, maps, ["0", "1", "2"], column_titles=["decoy", "mark"], suptitle="s"
    )
    titles = [ax.get_title() for ax in fig.axes if ax.images][:2]
    assert titles == ["decoy\n0 → 1", "mark\n1 → 2"]
    with pytest.raises(ValueError, match="column_titles"):
        plotting.show_method_grid(
            mistakes, maps, ["0", "1", "2"], column_titles=["a"], suptitle="s"
        )


def test_the_smoothing_figure_draws_each_signed_map_centred_on_zero():
    x = torch.rand(2, 1, 4, 4)
    signed = {"g": torch.randn(2, 1, 4, 4), "S g": torch.randn(2, 1, 4, 4)}
    fig = plotting.show_smoothing(x, signed, suptitle="smoothing")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 6 and fig._suptitle.get_text() == "smoothing"
    low, high = image_axes[1].images[0].get_clim()
    assert low == -high and high == signed["g"][0].abs().max().item()
    assert [ax.get_title() for ax in image_axes[:3]] == ["image", "g", "S g"]


def test_the_auroc_bars_and_the_curves_have_labels():
    scores = {"decoy": {"m": (0.9, 0.05), "n": (0.6, 0.0)}, "mark": {"m": (0.8, 0.1)}}
    fig = plotting.plot_mask_auroc(scores, title="AUROC")
    assert len(fig.axes[0].patches) == 4 and fig.axes[0].get_title() == "AUROC"
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x = torch.rand(3, 1, 2, 2)
    curves = faithfulness.insertion_deletion(model, x, torch.tensor([0, 1, 0]), x, step=2)
    fig = plotting.plot_insertion_deletion({"m": curves}, title="curves")
    assert [ax.get_title() for ax in fig.axes] == ["insertion", "deletion"]
    assert fig.axes[0].get_legend().get_texts()[0].get_text().startswith("m (")
