"""Grad-CAM, SSIM/NISSIM, promotion/suppression and unit measures on tiny models whose answers
are known by hand."""

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from torch import nn

from helpers import evidence
from helpers.attacks import forward
from tests import tiny


class OneLayer(nn.Module):
    """conv (1 -> 3 channels, 3x3, padding 1), global average pooling, linear (3 -> 4)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 3, padding=1, dtype=torch.float64)
        self.linear = nn.Linear(3, 4, dtype=torch.float64)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(x).mean((2, 3)))


def images(num_images: int, size: int = 12, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_images, 1, size, size, generator=generator, dtype=torch.float64)


def test_grad_cam_of_a_one_layer_model_is_computed_by_hand():
    model, x = OneLayer().eval(), images(5)
    target = torch.tensor([0, 1, 2, 3, 1])
    maps = evidence.grad_cam(model, x, target, "conv")
    activation = model.conv(x).detach()  # (N, 3, 12, 12)
    # d logit_k / d A_c[i, j] = W[k, c] / (H W): alpha_c = W[k, c] / (H W)
    alpha = model.linear.weight.detach()[target] / (12 * 12)  # (N, 3)
    expected = torch.relu((alpha[:, :, None, None] * activation).sum(1))
    top = expected.flatten(1).amax(1).view(-1, 1, 1)
    expected = torch.where(top > 0, expected / top.clamp(min=1e-12), expected)
    assert maps.shape == (5, 12, 12)
    assert torch.allclose(maps, expected, atol=1e-10)
    assert torch.allclose(maps.flatten(1).amax(1)[top.flatten() > 0], torch.ones(1).double())


def test_grad_cam_upsamples_a_coarse_layer_bilinearly():
    model = (
        nn.Sequential(nn.Conv2d(1, 2, 2, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 36, 3))
        .double()
        .eval()
    )
    x, target = images(3), torch.tensor([0, 1, 2])
    maps = evidence.grad_cam(model, x, target, "0")
    assert maps.shape == (3, 12, 12) and maps.min() >= 0 and maps.max() <= 1


def test_one_target_per_image_on_a_batch_equals_one_call_per_image():
    model, x = tiny.make_model("cnn", 1), tiny.make_batch(2, 6)[0]
    target = torch.tensor([0, 3, 1, 2, 2, 0])
    batched = evidence.grad_cam(model, x, target, "0", batch_size=4)
    single = torch.cat(
        [evidence.grad_cam(model, x[i : i + 1], target[i : i + 1], "0") for i in range(6)]
    )
    assert torch.allclose(batched, single, atol=1e-6)
    # and the target matters: another class gives another map for some image
    assert not torch.allclose(batched, evidence.grad_cam(model, x, (target + 1) % 4, "0"))


def test_bad_layer_and_targets_get_clear_errors():
    model, x = tiny.make_model("cnn", 1), tiny.make_batch(2, 3)[0]
    with pytest.raises(ValueError, match=r"layer='conv9'.*conv layers are \['0'\]"):
        evidence.grad_cam(model, x, torch.tensor([0, 1, 2]), "conv9")
    with pytest.raises(ValueError, match="target must have shape"):
        evidence.grad_cam(model, x, torch.tensor([0, 1]), "0")
    with pytest.raises(ValueError, match="not a map"):
        evidence.grad_cam(model, x, torch.tensor([0, 1, 2]), "3")  # the linear layer


def ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004: 11x11 Gaussian window (sigma 1.5, normalized), K1 0.01, K2 0.03,
    L = 1; local statistics over the window, SSIM map averaged where the window fits."""
    offsets = np.arange(11) - 5
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()

    def local(image):
        return correlate2d(image, window, mode="valid")

    mu_a, mu_b = local(a), local(b)
    var_a, var_b = local(a * a) - mu_a**2, local(b * b) - mu_b**2
    cov = local(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


def test_ssim_matches_the_original_definition_on_28x28_maps():
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(6, 28, 28, generator=generator, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(6, 28, 28, generator=generator, dtype=torch.float64)).clamp(0, 1)
    b[0] = torch.rand(28, 28, generator=generator, dtype=torch.float64)  # unrelated maps too
    ours = evidence.ssim(a, b)
    reference = [ssim_reference(p.numpy(), q.numpy()) for p, q in zip(a, b)]
    assert np.allclose(ours.numpy(), reference, atol=1e-6, rtol=0)
    assert ours[0] < ours[1:].min()  # the unrelated pair is the least similar


def test_nissim_is_zero_for_identical_maps_and_grows_with_the_change():
    a = torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(evidence.nissim(a, a), torch.zeros(3, dtype=torch.float64))
    assert evidence.nissim(a, 1 - a).min() > evidence.nissim(a, (a + 0.05).clamp(0, 1)).max()
    zeros = torch.zeros(1, 28, 28)
    assert evidence.nissim(zeros, zeros).item() == 0  # two all-zero maps are identical


def test_ssim_refuses_mismatched_or_too_small_maps():
    with pytest.raises(ValueError, match="same shape"):
        evidence.ssim(torch.zeros(2, 28, 28), torch.zeros(2, 14, 14))
    with pytest.raises(ValueError, match="upsample"):
        evidence.ssim(torch.zeros(2, 7, 7), torch.zeros(2, 7, 7))


def test_vid_is_the_population_standard_deviation():
    assert evidence.vid(torch.tensor([0.1, 0.3])) == pytest.approx(0.1)
    assert evidence.vid(torch.tensor([0.2])) == 0.0


def test_promotion_categories_follow_the_stated_thresholds():
    logits = torch.zeros(5, 3)
    logits_adv = torch.tensor(
        [[0, 3.0, 0], [-3.0, 0.5, 0], [-1.0, 1.0, 0], [1.0, -1.0, 0], [-0.5, 2.0, 0]]
    )  # rows: all rise, mostly fall, half and half, neither (target falls, left rises), 4:1
    target, left = torch.ones(5, dtype=torch.long), torch.zeros(5, dtype=torch.long)
    result = evidence.promotion(logits, logits_adv, target, left)
    assert result.rise.tolist() == [3.0, 0.5, 1.0, 0.0, 2.0]
    assert result.fall.tolist() == [0.0, 3.0, 1.0, 0.0, 0.5]
    assert result.category.tolist() == [2, 0, 1, 3, 2]
    assert result.shares() == {
        "suppression": 0.2,
        "balanced": 0.2,
        "promotion": 0.4,
        "neither": 0.2,
    }
    with pytest.raises(ValueError, match="left must have shape"):
        evidence.promotion(logits, logits_adv, target, left[:3])


def test_pixel_contributions_add_up_to_the_logit_changes_of_a_linear_model():
    model = tiny.linear_model([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, 1.0, -1.0]], [0.1, -0.2])
    x = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]]], [[[0.9, 0.1], [0.3, 0.5]]]], dtype=torch.float64)
    delta = torch.tensor(
        [[[[0.1, -0.1], [0.0, 0.2]]], [[[-0.3, 0.2], [0.1, 0.0]]]], dtype=torch.float64
    )
    target, left = torch.tensor([1, 0]), torch.tensor([0, 1])
    promoting, suppressing = evidence.contributions(model, x, delta, target, left)
    change = model(x + delta) - model(x)  # (2, 2)
    assert torch.allclose(promoting.flatten(1).sum(1), change[[0, 1], target])
    assert torch.allclose(suppressing.flatten(1).sum(1), -change[[0, 1], left])
    assert torch.allclose(promoting[0, 0], torch.tensor([[0.0, -0.1], [0.0, -0.2]]).double())


def test_selectivity_is_one_for_a_single_class_unit_and_zero_for_a_flat_one():
    features = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert evidence.class_selectivity(features, y, 2).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="non-negative"):
        evidence.class_selectivity(-features, y, 2)


def test_activations_and_sensitivity_of_a_conv_layer():
    model, x = tiny.make_model("cnn", 1), tiny.make_batch(2, 4)[0]
    features = evidence.activations(model, x, "1")  # after the ReLU: (N, 4)
    by_hand = torch.relu(model[0](x)).mean((2, 3))
    assert torch.allclose(features, by_hand)
    assert torch.equal(evidence.sensitivity(model, x, x, "1"), torch.zeros(4))
    moved = evidence.sensitivity(model, x, (x + 0.1).clamp(0, 1), "1")
    assert torch.allclose(
        moved, (evidence.activations(model, (x + 0.1).clamp(0, 1), "1") - by_hand).abs().mean(0)
    )


def test_mod_curves_average_nissim_per_layer_and_strength():
    model, x = OneLayer().eval(), images(4, seed=3)
    y = model(x).argmax(1)
    curves = evidence.mod_curves(model, x, y, ["conv"], [0.05, 0.3], forward.fgsm)
    assert curves["conv"].shape == (2,)
    for eps, value in zip([0.05, 0.3], curves["conv"]):
        attacked = forward.fgsm(model, x, y, eps=eps)
        before = evidence.grad_cam(model, x, y, "conv")
        after = evidence.grad_cam(model, attacked.x_adv, attacked.y_adv, "conv")
        expected = evidence.nissim(before, after).mean()
        assert value.item() == pytest.approx(expected.item(), abs=1e-9)
    unchanged = evidence.mod_curves(model, x, y, ["conv"], [0.1], lambda m, x, y, eps: _same(x, y))
    assert unchanged["conv"].tolist() == [0.0]


def _same(x: torch.Tensor, y: torch.Tensor):
    """An 'attack' that changes nothing: x_adv = x, and the answer stays y."""

    class Same:
        x_adv, y_adv = x, y

    return Same()
