"""Figures of forward attacks: every curve drawn, titles that say what the model now answers."""

import matplotlib
import torch
from tiny import make_batch, make_cnn

from helpers import plotting
from helpers.attacks import forward

matplotlib.use("Agg")


def test_accuracy_curves_are_drawn_in_percent():
    curves = {"FGSM": ([0.0, 0.1], [1.0, 0.5]), "PGD": ([0.0, 0.1], [1.0, 0.25])}
    ax = plotting.plot_accuracy_against_eps(curves).axes[0]
    assert [line.get_ydata().tolist() for line in ax.get_lines()] == [[100, 50], [100, 25]]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["FGSM", "PGD"]


def test_fooled_images_are_titled_true_then_now_predicted():
    model, (x, y) = make_cnn(3), make_batch(3, 12)
    result = forward.pgd(model, x, y, eps=0.5, num_steps=5)
    fooled = result[result.success][:3]
    fig = plotting.show_adversarial_examples(fooled, [str(k) for k in range(10)])
    titles = [ax.get_title() for ax in fig.axes[: len(fooled)]]
    expected = [f"{t} → {p} (" for t, p in zip(fooled.y.tolist(), fooled.y_adv.tolist())]
    assert len(fooled) and all(a.startswith(b) for a, b in zip(titles, expected))
    signed = [im for ax in fig.axes for im in ax.images if im.get_cmap().name == "RdBu_r"]
    limit = plotting.shared_limit(fooled.delta)
    assert len(signed) == len(fooled)  # one colour scale for every change
    assert all(im.get_clim() == (-limit, limit) for im in signed)


def test_distributions_report_each_median():
    values = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([0.5])}
    fig = plotting.plot_distributions(values, xlabel="L2", title="t")
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["a (3, median 2.00)", "b (1, median 0.50)"]
