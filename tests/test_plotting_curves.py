"""Figures of the black-box notebooks: axes labelled where points are, ranges that start at 0,
one colour scale for changes that are compared."""

import matplotlib
import pytest
import tiny
import torch

from helpers import plotting
from helpers.metrics import similarity
from helpers.records import Explanation

matplotlib.use("Agg")


def label(queries, seed_shift, jacobian=False, size=None):
    record = {
        "pool_size": queries,
        "jacobian": jacobian,
        "label_queries": queries,
        "agreement": 0.5 + seed_shift,
        "success_rate": 1.0,
        "mean_queries": 3.0 + seed_shift,
    }
    if size is not None:
        record["median_l2_ratio_to_whitebox"] = size
    return record


def test_label_curve_reads_queries_against_the_budget_and_labels_its_points():
    records = [label(15, 0.0), label(15, 0.2), label(1000, 0.1), label(60, 0.0, jacobian=True)]
    fig = plotting.plot_label_curve(records, max_queries=20, paper=(8.73, 0.7308))
    share, queries = fig.axes
    assert queries.get_ylim() == (0, 20) and share.get_ylim() == (0, 102)
    assert [tick.get_text() for tick in queries.get_xticklabels()] == ["15", "1,000"]
    solid = queries.get_lines()[0]  # pool only: through the median of the two seeds at 15
    assert solid.get_ydata().tolist() == [3.1, 3.1]
    assert list(queries.get_lines()[-1].get_ydata()) == [8.73, 8.73]  # the paper


def test_label_curve_draws_the_size_panel_when_every_record_has_a_size():
    records = [label(15, 0.0, size=9.0), label(1000, 0.0, size=3.0)]
    fig = plotting.plot_label_curve(records)
    size = fig.axes[2]
    assert size.get_lines()[0].get_ydata().tolist() == [9.0, 3.0]
    assert size.get_ylim()[0] == 0
    assert len(plotting.plot_label_curve([label(15, 0.0)]).axes) == 2


def test_budget_curve_labels_the_budgets_measured():
    records = [
        {"method": m, "budget": b, "success_rate": 1.0, "median_l2_ratio_to_whitebox": r}
        for m, r in (("a", 2.0), ("b", 3.0))
        for b in (20, 50, 250)
    ]
    size, success = plotting.plot_budget_curve(records).axes
    assert [tick.get_text() for tick in size.get_xticklabels()] == ["20", "50", "250"]
    assert size.get_ylim()[0] == 0 and [line.get_ydata()[0] for line in size.get_lines()[:2]] == [
        2.0,
        3.0,
    ]


def test_the_size_axis_turns_logarithmic_only_when_one_method_is_far_off():
    def records(far: float) -> list[dict]:
        return [
            {"method": m, "budget": b, "success_rate": 1.0, "median_l2_ratio_to_whitebox": r}
            for m, r in (("ours", 1.5), ("peer", far))
            for b in (10, 100)
        ]

    near = plotting.plot_budget_curve(records(12.0)).axes[0]  # 8 times ours: linear
    assert near.get_yscale() == "linear" and near.get_ylim()[0] == 0
    far = plotting.plot_budget_curve(records(36.0)).axes[0]  # 24 times: logarithmic
    low, high = far.get_ylim()
    assert far.get_yscale() == "log" and low < 1 and high > 36


def test_side_by_side_draws_both_changes_of_a_row_on_one_scale():
    x = torch.full((2, 1, 4, 4), 0.5)

    def explanation(scale: float) -> Explanation:
        delta = torch.zeros_like(x)
        delta[:, 0, 1, 1] = torch.tensor([scale, -2 * scale])
        logits = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
        return tiny.explained(x, x + delta, torch.zeros(2, dtype=torch.int64), logits)

    small, large = explanation(0.1), explanation(0.3)
    fig = plotting.show_side_by_side(
        small, large, ["0", "1"], similarity(small.delta, large.delta, top_k=1)
    )
    heats = [ax.get_images()[0] for ax in fig.axes if ax.get_images()][1:3]  # row 0's changes
    assert [heat.get_clim() for heat in heats] == [pytest.approx((-0.3, 0.3))] * 2
