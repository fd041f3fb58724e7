"""Weak pairs: agreement of explanations within a pair, and augmented training data."""

import math

import pytest
import torch

from helpers import data, records, weaknesses


def explanation(y, y_pred, deltas):
    n = len(y)
    x = torch.full((n, 1, 2, 2), 0.5)
    logits = torch.nn.functional.one_hot(torch.tensor(y_pred), 3).float()
    return records.Explanation(
        index=torch.arange(n),
        x=x,
        y=torch.tensor(y),
        logits=logits,
        x_adv=x + torch.tensor(deltas).view(n, 1, 2, 2),
        logits_adv=logits,
        attacked=torch.ones(n, dtype=torch.bool),
        success=torch.ones(n, dtype=torch.bool),
        queries=torch.ones(n),
        forward_passes=torch.ones(n),
        backward_passes=torch.ones(n),
    )


def test_pair_agreement_by_hand():
    result = explanation(
        [0, 0, 0, 1],
        [1, 1, 1, 2],
        [[0.1, 0, 0, 0], [0.2, 0, 0, 0], [0, 0.1, 0, 0], [0, 0, 0.1, 0]],
    )
    first, second = weaknesses.pair_agreement(result)
    assert (first.pair, first.count, second.pair, second.count) == ((0, 1), 3, (1, 2), 1)
    assert first.agreement == pytest.approx(1 / 3)  # cosines 1, 0, 0 between the three
    assert math.isnan(second.agreement)


def test_augmented_data_keeps_the_classes_and_the_range():
    split = data.load_dataset(sizes=(200, 10, 10)).train
    extra = weaknesses.extra_data(split, 50, torch.Generator().manual_seed(0), classes=[3, 5])
    assert len(extra) == 50 and set(extra.y.tolist()) <= {3, 5}
    assert extra.x.min() >= 0 and extra.x.max() <= 1 and extra.x.shape[1:] == (1, 28, 28)
    again = weaknesses.extra_data(split, 50, torch.Generator().manual_seed(0), classes=[3, 5])
    assert torch.equal(extra.x, again.x)
    assert len(weaknesses.joined(split, extra)) == 250


def test_a_zero_augmentation_is_the_identity():
    x = torch.rand(4, 1, 8, 8)
    same = weaknesses.augment(x, torch.Generator(), max_angle=0.0, max_shift=0.0)
    assert torch.allclose(same, x, atol=1e-5)
