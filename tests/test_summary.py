"""Summaries of explanations, checked on a hand-made result."""

import math

import torch

from helpers.explanation import Explanation, summarize, summary_markdown


def hand_made():
    # image 0: explained in 1 query, 1: in 3, 2: already right, 3: failed after 10
    delta = torch.zeros(4, 1, 2, 2)
    delta[0, 0, 0, 0] = 0.3
    delta[1, 0, :, 0] = torch.tensor([0.3, 0.4])  # L2 0.5
    delta[3, 0, 1, 1] = -0.9
    flat = delta.flatten(1)
    return Explanation(
        x_adv=delta.clamp(min=0),
        delta=delta,
        success=torch.tensor([True, True, True, False]),
        misclassified=torch.tensor([True, True, False, True]),
        queries=torch.tensor([1, 3, 0, 10]),
        forward_passes=torch.tensor([2, 4, 1, 11]),
        backward_passes=torch.tensor([2, 4, 0, 10]),
        l2=flat.norm(dim=1),
        linf=flat.abs().amax(1),
        method="hand",
    )


def test_summarize_counts_only_misclassified_images_and_norms_of_successes():
    summary = summarize(hand_made())
    assert math.isclose(summary["success_rate"], 2 / 3, rel_tol=1e-6)
    assert math.isclose(summary["mean_queries"], 14 / 3)
    assert summary["median_queries"] == 3
    # median of the two successful L2 norms (0.3, 0.5): torch takes the lower middle value
    assert math.isclose(summary["median_l2"], 0.3, rel_tol=1e-6)
    assert math.isclose(summary["median_linf"], 0.3, rel_tol=1e-6)


def test_summary_markdown_has_one_row_per_result_then_the_references():
    table = summary_markdown({"ours": hand_made()}, {"paper": "99.67% | 1.96 | – | – | –"})
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| method")
    assert lines[2] == "| ours | 66.67% | 4.67 | 3 | 0.300 | 0.300 |"
    assert lines[3] == "| paper | 99.67% | 1.96 | – | – | – |"
