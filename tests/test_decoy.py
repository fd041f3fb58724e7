"""Decoy MNIST: patches, their masks, the share of a change inside them, and the penalty."""

import pytest
import torch

from helpers import data, decoy, models, training
from tests import tiny


def split_of(num_images=8, size=6):
    x = torch.zeros(num_images, 1, size, size)
    return data.Split(x, torch.arange(num_images) % 10)


def test_a_training_patch_encodes_the_label_in_one_corner():
    split = split_of()
    patched, masks = decoy.add_patches(
        split, size=2, encode_label=True, generator=torch.Generator().manual_seed(0)
    )
    assert masks.shape == (8, 1, 6, 6) and masks.flatten(1).sum(1).tolist() == [4] * 8
    shade = (patched.x * masks).flatten(1).sum(1) / 4
    assert torch.allclose(shade, 1 - 0.1 * split.y.float())
    assert torch.equal(patched.x[~masks.expand_as(patched.x)], split.x[~masks.expand_as(split.x)])
    corner = masks[:, 0, [0, 0, 5, 5], [0, 5, 0, 5]]  # (N, 4): which corner each patch is in
    assert corner.sum(1).tolist() == [1] * 8 and torch.equal(patched.y, split.y)


def test_corner_masks_by_hand():
    masks = decoy.corner_masks((4, 4), torch.tensor([0, 3]), 1)
    assert masks[0, 0].nonzero().tolist() == [[0, 0]] and masks[1, 0].nonzero().tolist() == [[3, 3]]
    assert decoy.all_corners((4, 4), 1).sum() == 4


def test_a_test_patch_has_a_random_shade_seeded():
    split = split_of(200)
    runs = [
        decoy.add_patches(
            split, size=2, encode_label=False, generator=torch.Generator().manual_seed(1)
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0][0].x, runs[1][0].x)
    shade = (runs[0][0].x * runs[0][1]).flatten(1).sum(1) / 4
    assert (shade - (1 - 0.1 * split.y.float())).abs().gt(1e-6).float().mean() > 0.7


def test_a_patch_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="size=7 is larger than the images"):
        decoy.add_patches(split_of(), size=7, encode_label=True, generator=torch.Generator())


def test_region_share_by_hand():
    delta = torch.zeros(2, 1, 4, 4)
    delta[0, 0, 0, 0], delta[0, 0, 3, 3] = 3.0, -1.0  # 3 of 4 inside
    delta[1] = 0.5  # spread evenly: the share is the area share
    masks = decoy.corner_masks((4, 4), torch.tensor([0, 0]), 2)
    assert decoy.region_share(delta, masks).tolist() == [0.75, 0.25]
    assert decoy.area_share(masks).tolist() == [0.25, 0.25]


def test_the_penalty_is_the_squared_masked_input_gradient():
    model = tiny.make_cnn(0)
    x, y = tiny.make_batch(0, 3)
    x.requires_grad_(True)
    logits = model(x)
    mask = decoy.all_corners((6, 6), 2)
    value = decoy.right_reasons_penalty(mask, 2.0)(model, x, y, logits)
    rows = []
    for image in x.detach():  # by hand, one image at a time
        image = image[None].requires_grad_(True)
        (grad,) = torch.autograd.grad(model(image).log_softmax(1).sum(), image)
        rows.append((grad * mask).pow(2).sum())
    assert torch.allclose(value, 2.0 * torch.stack(rows).mean())
    with pytest.raises(ValueError, match="weight"):
        decoy.right_reasons_penalty(mask, -1.0)


def test_training_with_the_penalty_shrinks_the_gradient_in_the_region():
    small = data.load_dataset(sizes=(300, 10, 10))
    patched, _ = decoy.add_patches(
        small.train, encode_label=True, generator=torch.Generator().manual_seed(0)
    )
    mask = decoy.all_corners((28, 28), 4)
    norms = []
    for weight in (0.0, 1000.0):
        torch.manual_seed(0)
        model = models.SmallCNN((1, 28, 28), 10, small.mean, small.std, width=8)
        penalty = decoy.right_reasons_penalty(mask, weight)
        training.train(model, patched, num_epochs=2, progress=False, penalty=penalty)
        x = patched.x[:50].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).log_softmax(1).sum(), x)
        norms.append((grad * mask).pow(2).sum().item())
    assert norms[1] < 0.2 * norms[0]
