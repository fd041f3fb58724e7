"""Summaries, similarity and the paper's figures, checked on hand-made results."""

import math

import pytest
import torch

from helpers import metrics
from helpers.metrics import Reference, summarize, summary_markdown
from helpers.records import Explanation


def hand_made():
    # image 0: explained in 1 query, 1: in 3, 2: already right, 3: failed after 10
    delta = torch.zeros(4, 1, 2, 2)
    delta[0, 0, 0, 0] = 0.3
    delta[1, 0, :, 0] = torch.tensor([0.3, 0.4])  # L2 0.5
    delta[3, 0, 1, 1] = -0.9
    x = torch.full((4, 1, 2, 2), 0.5)
    logits = torch.zeros(4, 2)
    logits[[0, 1, 3], 1] = 1.0  # predicted 1 where the true class 0 is missed
    return Explanation(
        index=torch.arange(4),
        x=x,
        y=torch.zeros(4, dtype=torch.int64),
        logits=logits,
        x_adv=x + delta,
        logits_adv=logits.flip(1),
        attacked=torch.tensor([True, True, False, True]),
        success=torch.tensor([True, True, True, False]),
        queries=torch.tensor([1, 3, 0, 10]),
        forward_passes=torch.tensor([2, 4, 1, 11]),
        backward_passes=torch.tensor([2, 4, 0, 10]),
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
    table = summary_markdown({"ours": hand_made()}, (Reference("paper", 0.9967, 1.96),))
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| method")
    assert lines[2] == "| ours | 66.67% | 4.67 | 3 | 0.300 | 0.300 |"
    assert lines[3] == "| paper | 99.67% | 1.96 | – | – | – |"


def test_the_record_slices_every_tensor_alike_and_keeps_identity():
    result = hand_made()
    assert result.misclassified.tolist() == [True, True, False, True]
    part = result[torch.tensor([False, True, False, True])]
    assert part.index.tolist() == [1, 3] and part.queries.tolist() == [3, 10]
    assert torch.equal(part.delta, result.delta[[1, 3]]) and part.method == "hand"
    one = result[1]
    assert len(one) == 1 and one.l2.item() == pytest.approx(0.5)
    assert result[-1].index.tolist() == [3] and len(result[:0]) == 0
    assert torch.allclose(result.probs_adv.sum(1), torch.ones(4))


def test_the_papers_figures_live_in_one_place():
    assert metrics.PAPER_WHITEBOX.success_rate == 0.9967
    assert metrics.PAPER_WHITEBOX.mean_queries == 1.96
    assert (metrics.PAPER_BLACKBOX.success_rate, metrics.PAPER_BLACKBOX.mean_queries) == (
        0.7308,
        8.73,
    )


# ---------------------------------------------------------------- similarity of explanations


def test_similarity_by_hand():
    reference = torch.zeros(3, 1, 2, 2)
    reference[:, 0, 0, 0], reference[:, 0, 1, 1] = 1.0, 0.5
    delta = reference.clone()
    delta[1] *= -2  # same pixels, opposite sign
    delta[2] = 0.0
    delta[2, 0, 0, 1], delta[2, 0, 1, 0] = 1.0, 0.7  # the other two pixels
    result = metrics.similarity(delta, reference, top_k=2)
    assert torch.allclose(result.cosine, torch.tensor([1.0, -1.0, 0.0]))
    assert torch.equal(result.overlap, torch.tensor([1.0, 1.0, 0.0]))
    half = metrics.similarity(delta, reference, top_k=1)  # top pixel (0, 0) vs (0, 1)
    assert torch.equal(half.overlap, torch.tensor([1.0, 1.0, 0.0]))


def test_similarity_rejects_mismatched_shapes_and_top_k():
    with pytest.raises(ValueError, match="must both be"):
        metrics.similarity(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 3))
    with pytest.raises(ValueError, match="top_k=5"):
        metrics.similarity(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), top_k=5)


def test_pairs_are_counted_most_frequent_first():
    result = hand_made()  # true 0 everywhere; predicted 1, 1, 0, 1
    assert result.pairs() == [((0, 1), 3), ((0, 0), 1)]


def test_a_similarity_slices_like_the_records_it_compares():
    similar = metrics.similarity(
        torch.eye(4).view(4, 1, 2, 2), torch.eye(4).view(4, 1, 2, 2), top_k=1
    )
    assert similar[1:3].cosine.tolist() == [1.0, 1.0] and len(similar[-1].overlap) == 1


def test_table_markdown_prints_percentages_a_format_and_dashes():
    rows = {"a": {"clean": 0.5, "seconds": 1.25}, "b": {"clean": 1.0, "seconds": None}}
    table = metrics.table_markdown(rows, formats={"seconds": ".1f"})
    assert table.splitlines() == [
        "| model | clean | seconds |",
        "|---|---:|---:|",
        "| a | 50.0% | 1.2 |",
        "| b | 100.0% | – |",
    ]


def test_budget_record_compares_with_the_white_box_on_images_both_explain():
    x = torch.zeros(3, 1, 8, 8)  # similarity compares the top 50 pixels
    y = torch.tensor([0, 1, 2])
    logits = torch.zeros(3, 3)

    def explanation(scale: float, success: list[bool]) -> Explanation:
        x_adv = x + scale * torch.arange(1.0, 4.0)[:, None, None, None]
        queries = torch.tensor([2, 4, 6])
        counts = dict(queries=queries, forward_passes=queries, backward_passes=queries)
        return Explanation(
            index=torch.arange(3),
            x=x,
            y=y,
            logits=logits,
            x_adv=x_adv,
            logits_adv=logits,
            attacked=torch.ones(3, dtype=torch.bool),
            success=torch.tensor(success),
            **counts,
        )

    record = metrics.budget_record(
        "m", 25, explanation(0.2, [1, 1, 0]), explanation(0.1, [1, 0, 1])
    )
    label = metrics.label_record(15, True, 60, 0.5, explanation(0.2, [1, 1, 0]))
    assert label == {
        "pool_size": 15,
        "jacobian": True,
        "label_queries": 60,
        "agreement": 0.5,
        "success_rate": pytest.approx(2 / 3),
        "mean_queries": 4.0,
    }
    assert record["method"] == "m" and record["budget"] == 25 and record["mean_queries"] == 4
    assert record["success_rate"] == pytest.approx(2 / 3)
    assert record["median_l2_ratio_to_whitebox"] == pytest.approx(2.0)  # only image 0 counts
    assert record["median_cosine"] == pytest.approx(1.0)
    sized = metrics.label_record(
        15, False, 15, 0.5, explanation(0.2, [1, 1, 0]), explanation(0.1, [1, 0, 1])
    )
    assert sized["median_l2_ratio_to_whitebox"] == pytest.approx(2.0)  # image 0 only
    assert "median_l2_ratio_to_whitebox" not in label
