"""The known-cause tasks: what each plants, where, and which mistakes it keeps."""

import pytest
import torch

from helpers import causes, data
from helpers.data import Split


@pytest.fixture(scope="module")
def digits() -> Split:
    test = data.load_dataset().test
    return Split(test.x[:200], test.y[:200])


@pytest.mark.parametrize("name", causes.TASKS)
@pytest.mark.parametrize("training", [True, False])
def test_a_cue_changes_only_its_mask_and_taking_it_out_restores_the_rest(digits, name, training):
    plant = causes.PLANTERS[name]
    planted = plant(digits, training=training, generator=torch.Generator().manual_seed(0))
    assert planted.x.shape == planted.x_clean.shape == digits.x.shape
    assert planted.masks.shape == (200, 1, 28, 28) and planted.masks.dtype == torch.bool
    assert torch.equal(planted.x * ~planted.masks, planted.x_clean * ~planted.masks)
    assert planted.x.min() >= 0 and planted.x.max() <= 1
    again = plant(digits, training=training, generator=torch.Generator().manual_seed(0))
    assert torch.equal(planted.x, again.x) and torch.equal(planted.cue, again.cue)


def test_the_decoy_patch_says_y_in_training_and_its_shade_is_the_cue(digits):
    train = causes.plant_decoy(digits, training=True, generator=torch.Generator().manual_seed(0))
    test = causes.plant_decoy(digits, training=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(train.cue, digits.y) and (test.cue != digits.y).any()
    assert (train.masks.flatten(1).sum(1) == 16).all()
    shade = (test.x * test.masks).flatten(1).sum(1) / 16
    assert torch.allclose(shade, 1 - 0.1 * test.cue.float())
    honest = (test.x_clean * test.masks).flatten(1).sum(1) / 16
    assert torch.allclose(honest, 1 - 0.1 * digits.y.float())  # taken out: the patch says y


def test_the_blocks_put_the_digit_on_top_and_a_distractor_below(digits):
    generator = torch.Generator().manual_seed(0)
    train = causes.plant_blocks(digits, training=True, generator=generator)
    test = causes.plant_blocks(digits, training=False, generator=generator)
    assert torch.equal(train.y, digits.y)
    assert (test.cue != digits.y).all()
    agree = (train.cue == digits.y).float().mean().item()
    assert abs(agree - causes.BLOCK_AGREEMENT) < 0.1
    top = torch.nn.functional.avg_pool2d(digits.x, 2)
    assert torch.equal(test.x[..., :14, 7:21], top)
    assert (test.x_clean[..., 14:, :] == 0).all() and (test.x[..., :, :7] == 0).all()
    assert (test.masks.flatten(1).sum(1) == 196).all()
    assert test.masks[0, 0, 14:, 7:21].all() and not test.masks[0, 0, :14].any()


def test_the_mark_poisons_a_share_of_the_training_digits_and_every_test_digit(digits):
    generator = torch.Generator().manual_seed(0)
    train = causes.plant_mark(digits, training=True, generator=generator)
    test = causes.plant_mark(digits, training=False, generator=generator)
    poisoned = train.masks.flatten(1).any(1)
    assert (train.y[poisoned] == causes.MARK_CLASS).all()
    assert torch.equal(train.y[~poisoned], digits.y[~poisoned])
    assert 0 < poisoned.float().mean() < 3 * causes.MARK_SHARE
    marked = test.masks.flatten(1).any(1)
    assert torch.equal(marked, digits.y != causes.MARK_CLASS) and torch.equal(test.y, digits.y)
    assert (test.masks.flatten(1).sum(1)[marked] == 9).all()
    assert (test.x[test.masks] == 1).all() and (test.cue == causes.MARK_CLASS).all()
    # the cross: both diagonals of a 5 x 5 square
    row, col = test.masks[0, 0].nonzero().min(0).values.tolist()
    assert torch.equal(test.masks[0, 0, row : row + 5, col : col + 5], causes.CROSS)


def test_a_split_of_other_images_is_refused():
    split = Split(torch.zeros(3, 1, 32, 32), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="MNIST digits"):
        causes.plant_mark(split, training=True, generator=torch.Generator())
    with pytest.raises(ValueError, match="name"):
        causes.build("stripes", data.load_dataset(), seed=0)


def test_build_keeps_the_mistakes_the_cue_caused_and_reuses_its_checkpoint(tmp_path):
    dataset = data.load_dataset(sizes=(600, 100, 300))
    task = causes.build("mark", dataset, seed=0, num_epochs=1, artifacts=tmp_path)
    mistakes, model = task.mistakes, task.model
    assert len(mistakes) == task.metadata["num_caused"] <= task.metadata["num_mistakes"]
    assert len(mistakes) > 0 and not model.training
    with torch.no_grad():
        assert (model(mistakes.x).argmax(1) == causes.MARK_CLASS).all()
        assert (model(task.x_clean).argmax(1) == mistakes.y).all()
    assert torch.equal(mistakes.x, task.test.x[mistakes.index])
    assert torch.equal(task.masks, task.test.masks[mistakes.index])
    again = causes.build("mark", dataset, seed=0, num_epochs=1, artifacts=tmp_path)
    assert torch.equal(again.mistakes.index, mistakes.index)
    assert len(list(tmp_path.iterdir())) == 1
