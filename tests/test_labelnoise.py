"""Label noise: known flips, out-of-fold scores, and the ranking measures, checked by hand."""

import pytest
import torch

from helpers import data, labelnoise, metrics
from tests import tiny


def test_exactly_the_chosen_share_of_labels_flips_to_another_class():
    y = torch.arange(200) % 10
    noisy, flipped = labelnoise.flip_labels(y, 0.05, 10, torch.Generator().manual_seed(0))
    assert flipped.sum() == 10 and torch.equal(noisy != y, flipped)
    again, _ = labelnoise.flip_labels(y, 0.05, 10, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again) and noisy.max() < 10
    assert labelnoise.flip_labels(y, 0.0, 10, torch.Generator())[1].sum() == 0


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_a_noise_rate_outside_zero_one_is_refused(rate):
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        labelnoise.flip_labels(torch.zeros(10, dtype=torch.long), rate, 10, torch.Generator())


def test_precision_at_k_and_auroc_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.1, 0.5, 0.5])
    flipped = torch.tensor([True, False, False, True, False])
    assert labelnoise.precision_at_k(scores, flipped, 2) == 0.5
    # flipped 0.9 beats all 3 clean; flipped 0.5 beats 0.1, ties 0.5, loses to 0.8: 4.5 of 6
    assert metrics.auroc(scores, flipped) == pytest.approx(4.5 / 6)


def test_an_empty_ranking_is_refused():
    empty = torch.zeros(0)
    with pytest.raises(ValueError, match="the ranking is empty"):
        labelnoise.precision_at_k(empty, empty.bool(), 1)
    with pytest.raises(ValueError, match="the ranking is empty"):
        metrics.auroc(empty, empty.bool())
    with pytest.raises(ValueError, match="larger than the ranking"):
        labelnoise.precision_at_k(torch.ones(3), torch.ones(3).bool(), 4)


def test_without_top_drops_the_highest_scores():
    split = data.Split(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 3]))
    kept = labelnoise.without_top(split, torch.tensor([0.1, 5.0, 0.2, 3.0]), 2)
    assert kept.y.tolist() == [0, 2]


def test_the_explanation_score_is_the_l2_for_misread_images_and_minus_the_margin_otherwise():
    model = tiny.linear_model([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])  # logits = the pixels
    x = torch.tensor([[[[0.9, 0.2]]], [[[0.9, 0.2]]]], dtype=torch.float64)  # read as 0
    score, logits = labelnoise.explain_given(model, x, torch.tensor([0, 1]), "deepfool")
    assert score[0].item() == pytest.approx(-0.7)  # read as its label: minus its margin
    # toward label 1 the smallest L2 change closes a gap of 0.7 along (-1, 1)/sqrt(2)
    assert 0.7 / 2**0.5 <= score[1].item() <= 0.7 / 2**0.5 * 1.1
    assert torch.equal(logits, model(x))


def test_cleanlab_scores_rank_the_low_confidence_labels_first():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05], [0.1, 0.9]])
    scores, issues = labelnoise.cleanlab_scores(torch.tensor([0, 1, 1, 1]), probs)
    assert scores.argmax() == 2 and issues.tolist() == [False, False, True, False]


def test_out_of_fold_scores_find_most_flips_on_real_digits():
    small = data.load_dataset(sizes=(600, 10, 10))
    noisy_y, flipped = labelnoise.flip_labels(small.train.y, 0.1, 10, torch.Generator())
    noisy = data.Dataset(
        small.name,
        small.classes,
        data.Split(small.train.x, noisy_y),
        small.pool,
        small.test,
        small.source,
    )
    scores = labelnoise.out_of_fold_scores(noisy, num_folds=2, num_epochs=2, seed=0)
    assert scores.fold.bincount().tolist() == [300, 300]
    assert metrics.auroc(scores.explanation, flipped) > 0.8
    assert metrics.auroc(scores.loss, flipped) > 0.8
