"""The figures of notebook 13 draw what they are given, with titles and labels."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from helpers import decoy, plotting  # noqa: E402
from tests.test_weaknesses import explanation  # noqa: E402


def test_the_fixing_figures_have_titles_and_labels():
    result = explanation([0, 1], [1, 2], [[0.1, 0, 0, 0], [0, 0, 0.2, 0]])
    masks = decoy.corner_masks((2, 2), torch.tensor([0, 3]), 1)
    fig = plotting.show_region_explanations(result, masks, ["a", "b", "c"], suptitle="patch")
    assert fig._suptitle.get_text() == "patch" and fig.axes[0].get_title() == "a → b"
    assert fig.axes[2].get_title() == "100% in the region"  # all of δ sits in the corner
    fig = plotting.plot_accuracies({"clean": 0.9, "fix": 0.8}, title="t", reference="clean")
    assert fig.axes[0].get_xlabel() == "test accuracy (%)" and len(fig.axes[0].patches) == 2
    flipped = torch.tensor([True, False, False])
    fig = plotting.plot_rankings({"s": torch.tensor([3.0, 1.0, 2.0])}, flipped, title="roc")
    x, y = fig.axes[0].lines[0].get_data()
    assert list(y) == [0, 1, 1, 1] and list(x) == [0, 0, 0.5, 1]  # the flip ranks first


def test_each_region_tile_shows_where_its_change_goes_on_one_shared_scale():
    # one change ten times larger than the other: each tile still sums to 1, so neither is black
    result = explanation([0, 1], [1, 2], [[1.0, 0, 0, 0], [0, 0, 0.1, 0]])
    masks = decoy.corner_masks((2, 2), torch.tensor([0, 3]), 1)
    fig = plotting.show_region_explanations(result, masks, ["a", "b", "c"], suptitle="patch")
    tiles = [ax.images[0] for ax in fig.axes[2:4]]
    assert [float(tile.get_array().sum()) for tile in tiles] == [1.0, 1.0]
    assert tiles[0].get_clim() == tiles[1].get_clim() == (0.0, 1.0)


def test_the_roc_figure_marks_the_top_k_and_names_each_auroc():
    flipped = torch.tensor([True, False, False, True])
    scores = {"s": torch.tensor([3.0, 1.0, 2.0, 0.0])}
    fig = plotting.plot_rankings(scores, flipped, title="roc", k=2, log_scale=True)
    ax = fig.axes[0]
    dot = ax.lines[1].get_data()  # the top 2 hold one flip: half the flips, half the others
    assert (list(dot[0]), list(dot[1])) == ([0.5], [0.5])
    assert ax.get_xscale() == "symlog" and ax.get_legend().get_texts()[0].get_text() == (
        "s (AUROC 0.500)"
    )
