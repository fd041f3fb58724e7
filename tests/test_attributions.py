"""captum's attributions through one table: answers on linear models checked by hand, batches
equal to one image at a time, modes and random state left alone, clear errors."""

import pytest
import torch
from tiny import make_batch, make_model
from torch import nn

from helpers import attributions
from helpers.records import Predictions

# logits = W x + b for 2 x 2 images: class 0 reads (1, 2, 3, 4), class 1 reads (-1, 0, 1, 0.5)
WEIGHT = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]]


def linear(weight=WEIGHT) -> nn.Module:
    layer = nn.Linear(len(weight[0]), len(weight), dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.zero_()
    return nn.Sequential(nn.Flatten(), layer).eval()


def images() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.tensor([[0.5, 0.25, 1.0, 0.0], [0.0, 1.0, 0.5, 0.5]], dtype=torch.float64)
    return x.view(2, 1, 2, 2), torch.tensor([1, 1]), torch.tensor([0, 2])


def test_gradient_methods_of_a_linear_model_by_hand():
    model, (x, y, other) = linear(), images()
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    margin = torch.stack([w[1] - w[0], w[1] - w[2]]).view(2, 1, 2, 2)  # d(z_y - z_other)/dx
    run = lambda name, **kw: attributions.attribute(model, x, y, name, other=other, **kw)  # noqa: E731
    assert torch.allclose(run("saliency"), margin)
    assert torch.allclose(run("input_x_gradient"), x * margin)
    assert torch.allclose(run("integrated_gradients"), x * margin)  # exact for a linear model
    assert torch.allclose(run("saliency", target="true"), w[[1, 1]].view(2, 1, 2, 2))
    assert torch.allclose(run("saliency", target="predicted"), w[[0, 2]].view(2, 1, 2, 2))


def test_occlusion_and_kernel_shap_of_a_linear_model_by_hand():
    # a pixel occluded alone removes its own term; KernelSHAP of a linear model from a black
    # baseline gives each 4 x 4 square the sum of its terms, here one square per 8 x 8 quarter
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 64, generator=generator, dtype=torch.float64)
    model = linear(weight.tolist())
    x = torch.rand(3, 1, 8, 8, generator=generator, dtype=torch.float64)
    y, other = torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0])
    terms = x * (weight[y] - weight[other]).view(3, 1, 8, 8)
    single = attributions.attribute(model, x, y, "occlusion", other=other, window=1, stride=1)
    assert torch.allclose(single, terms)
    shap = attributions.attribute(model, x, y, "kernel_shap", other=other, n_samples=60)
    quarters = terms.view(3, 1, 2, 4, 2, 4).sum((3, 5))  # (3, 1, 2, 2): one per square
    expected = quarters.repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert torch.allclose(shap, expected, atol=1e-6)


def test_grad_cam_is_upsampled_to_the_image_and_needs_a_conv_layer():
    model = make_model("cnn", 0)
    x, y = make_batch(0, 3)
    maps = attributions.attribute(model, x, y, "grad_cam")
    assert maps.shape == (3, 1, 6, 6)
    with pytest.raises(TypeError, match="conv layer"):
        attributions.attribute(make_model("mlp", 0), x, y, "grad_cam")


@pytest.mark.parametrize("method", list(attributions.METHODS))
def test_a_batch_equals_one_image_at_a_time(method):
    model = make_model("lenet_bn", 3)
    x, y = make_batch(3, 4)
    other = (y + 1) % 4
    batch = attributions.attribute(model, x, y, method, other=other)
    singles = [
        attributions.attribute(model, x[i : i + 1], y[i : i + 1], method, other=other[i : i + 1])
        for i in range(4)
    ]
    assert batch.shape == (4, 1, 6, 6)
    if method != "kernel_shap":  # its samples are drawn per call, so a batch draws others
        assert torch.allclose(batch, torch.cat(singles), atol=1e-5)


def test_a_record_brings_its_answers_and_is_not_asked_again():
    model, (x, y, other) = linear(), images()
    logits = torch.zeros(2, 3, dtype=torch.float64).scatter(1, other[:, None], 1.0)
    record = Predictions(index=torch.arange(2), x=x, y=y, logits=logits)
    expected = attributions.attribute(model, x, y, "saliency", other=other)
    assert torch.equal(attributions.attribute(model, record, method="saliency"), expected)
    with pytest.raises(ValueError, match="not both"):
        attributions.attribute(model, record, y, "saliency")


@pytest.mark.parametrize("method", list(attributions.METHODS))
def test_every_mode_and_the_random_state_are_left_as_they_were(method):
    model = make_model("lenet_bn", 1).train()
    model[1].eval()  # a mixed model: one BatchNorm in eval mode, the rest training
    modes = [m.training for m in model.modules()]
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = make_batch(1, 3)
    x_before, rng = x.clone(), torch.get_rng_state()
    first = attributions.attribute(model, x, y, method, generator=torch.Generator().manual_seed(5))
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert torch.equal(x, x_before) and torch.equal(torch.get_rng_state(), rng)
    again = attributions.attribute(model, x, y, method, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again) and not first.requires_grad


def test_an_empty_batch_gives_empty_maps():
    model = make_model("cnn", 0)
    x, y = make_batch(0, 2)
    assert attributions.attribute(model, x[:0], y[:0], "occlusion").shape == (0, 1, 6, 6)
    assert attributions.attribute(model, x[:0], y[:0], "grad_cam").shape == (0, 1, 6, 6)


def test_bad_input_is_refused_with_the_fix():
    model = make_model("cnn", 0)
    x, y = make_batch(0, 2)
    with pytest.raises(ValueError, match="method"):
        attributions.attribute(model, x, y, "lime")
    with pytest.raises(ValueError, match="target"):
        attributions.attribute(model, x, y, "saliency", target="both")
    with pytest.raises(ValueError, match="y"):
        attributions.attribute(model, x, y[:1], "saliency")
    with pytest.raises(TypeError, match="y is missing"):
        attributions.attribute(model, x, method="saliency")
    with pytest.raises(TypeError, match="settings"):
        attributions.attribute(model, x, y, "occlusion", n_steps=3)
    with pytest.raises(ValueError, match="x"):
        attributions.attribute(model, x + 2, y, "saliency")
    with pytest.raises(TypeError, match="Module"):
        attributions.attribute(lambda z: z, x, y, "saliency")


def test_kernel_shap_features_are_numbered_squares():
    features = attributions.block_features((1, 8, 6), 4)
    assert features.shape == (1, 1, 8, 6)
    assert features[0, 0, :, 0].tolist() == [0] * 4 + [2] * 4
    assert features[0, 0, 0].tolist() == [0, 0, 0, 0, 1, 1]
