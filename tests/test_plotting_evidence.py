"""The figures of notebooks 11 and 12 show their point: uniform colour maps, shared scales where
tiles are compared, separate scales where one series would flatten another."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import plotting  # noqa: E402


def test_grad_cam_overlays_use_a_perceptually_uniform_map():
    x, maps = torch.rand(2, 1, 6, 6), torch.rand(2, 6, 6)
    fig = plotting.show_grad_cams({"before": (x, maps)}, ["1 → 7", "2 → 3"], suptitle="t")
    overlays = [ax.get_images()[1] for ax in fig.axes[:2]]
    assert {image.get_cmap().name for image in overlays} == {"inferno"}
    assert all(image.get_clim() == (0, 1) for image in overlays)  # one scale for every tile
    assert [ax.get_title() for ax in fig.axes[:2]] == ["1 → 7", "2 → 3"]


def test_mod_curves_draw_the_mean_of_their_subsets_and_a_band():
    subsets = torch.tensor([[0.1, 0.3], [0.3, 0.5]])  # (R=2 subsets, S=2 strengths)
    fig = plotting.plot_mod_against_eps({"a, last": ([0.1, 0.2], subsets)}, title="t")
    ax = fig.axes[0]
    assert ax.get_lines()[0].get_ydata().tolist() == pytest.approx([0.2, 0.4])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.1) and band.max() == pytest.approx(0.5)
    single = plotting.plot_mod_against_eps({"b": ([0.1, 0.2], torch.tensor([0.2, 0.1]))})
    assert single.axes[0].get_lines()[0].get_linestyle() == "--" and not single.axes[0].collections


def test_mod_curves_of_one_model_share_its_colour():
    mods = torch.tensor([0.1, 0.2])
    names = ["a, earlier (x)", "a, last (y)", "b, earlier (x)", "b, last (y)"]
    fig = plotting.plot_mod_against_eps({name: ([0.1, 0.2], mods) for name in names})
    colors = [line.get_color() for line in fig.axes[0].get_lines()]
    styles = [line.get_linestyle() for line in fig.axes[0].get_lines()]
    assert colors[0] == colors[1] != colors[2] == colors[3]
    assert styles == ["--", "-", "--", "-"]


def test_contributions_share_one_scale_centred_on_zero():
    x = torch.rand(2, 1, 4, 4)
    promoting = torch.zeros(2, 1, 4, 4)
    promoting[0, 0, 0, 0] = 3.0  # the largest contribution of all tiles
    suppressing = torch.full((2, 1, 4, 4), -0.5)
    fig = plotting.show_contributions(x, promoting, suppressing, ["a", "b"], suptitle="t")
    signed = [image for ax in fig.axes[:6] for image in ax.get_images()][2:]  # rows 2 and 3
    assert len(signed) == 4 and {image.get_clim() for image in signed} == {(-3.0, 3.0)}
    assert len(fig.axes) == 7  # six tiles and one colour bar


def test_units_get_one_panel_and_one_vertical_scale_per_kind():
    selectivity = torch.tensor([0.1, 0.5, 0.9])
    sensitivity = {
        "explanations": torch.tensor([0.01, 0.02, 0.03]),
        "PGD": torch.tensor([1, 2, 3.0]),
    }
    fig = plotting.plot_units(sensitivity, selectivity, title="units")
    assert [ax.get_title() for ax in fig.axes] == ["explanations", "PGD"]
    tops = [ax.get_ylim()[1] for ax in fig.axes]
    assert tops[0] < 0.1 < 3 < tops[1]  # the explanations are not squashed under PGD's scale
    points = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(points, [[0.1, 0.01], [0.5, 0.02], [0.9, 0.03]])


def test_filtered_accuracy_draws_low_and_high_pass_on_separate_axes():
    curves = {"standard": {"low": [0.2, 0.9], "high": [0.8, 0.1]}}
    fig = plotting.plot_filtered_accuracy(curves, [2, 7], title="filtered")
    low, high = fig.axes
    assert "Low-pass" in low.get_title() and "High-pass" in high.get_title()
    assert low.get_lines()[0].get_ydata().tolist() == [20, 90]
    assert high.get_lines()[0].get_ydata().tolist() == [80, 10]
    assert low.get_xlabel() == high.get_xlabel() == "cut-off radius r (cycles per image)"
