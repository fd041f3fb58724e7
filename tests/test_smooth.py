"""The smooth explanation: its smoothing operator checked by hand on small graphs, the attack's
invariants on tiny models, and its closed-form answer on a linear model."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_attacks import TENSOR_FIELDS, count_passes
from tiny import ARCHS, linear_model, make_batch, make_model

from helpers import attacks
from helpers.attacks import smooth
from helpers.attacks.smooth import _graph, _smooth, _smooth_norm

A = 0.5 / math.sqrt(2)  # alpha W_n's off-diagonal on a flat row of three pixels, alpha = 0.5


def dense(alpha: float, x: torch.Tensor, sigma: float = 0.25) -> torch.Tensor:
    """S (D, D) of one image x (1, C, H, W), built pixel pair by pixel pair, independently."""
    _, _, height, width = x.shape
    pixels = [(r, c) for r in range(height) for c in range(width)]
    weight = torch.zeros(len(pixels), len(pixels), dtype=torch.float64)
    for i, (r, c) in enumerate(pixels):
        for j, (s, d) in enumerate(pixels):
            if i != j and abs(r - s) <= 1 and abs(c - d) <= 1:
                gap = (x[0, :, r, c] - x[0, :, s, d]).pow(2).sum()
                weight[i, j] = torch.exp(-gap / sigma**2)
    root = weight.sum(1).sqrt()
    normalized = weight / root[:, None] / root[None, :]
    return (1 - alpha) * torch.linalg.inv(
        torch.eye(len(pixels), dtype=torch.float64) - alpha * normalized
    )


def operator(alpha: float, x: torch.Tensor) -> torch.Tensor:
    """S (D, D) as ``_smooth`` applies it, column by column."""
    size = x[0, 0].numel()
    basis = torch.eye(size, dtype=torch.float64).view(size, 1, *x.shape[2:])
    weights = _graph(x.expand(size, -1, -1, -1), 0.25)
    return _smooth(basis, weights, alpha).view(size, size).T


def test_the_operator_on_a_flat_row_of_three_pixels_by_hand():
    # weights 1 to each side; degrees (1, 2, 1); I - 0.5 W_n = [[1, -a, 0], [-a, 1, -a],
    # [0, -a, 1]] with a = 0.5 / sqrt(2), determinant 1 - 2a^2 = 0.75; its inverse times 0.5
    x = torch.zeros(1, 1, 1, 3, dtype=torch.float64)
    expected = (
        0.5
        / 0.75
        * torch.tensor([[1 - A**2, A, A**2], [A, 1, A], [A**2, A, 1 - A**2]], dtype=torch.float64)
    )
    found = operator(0.5, x)
    assert torch.allclose(found, expected, atol=1e-7)
    assert torch.allclose(found, found.T, atol=1e-7)  # symmetric
    # what it keeps: the square roots of the degrees, (1, sqrt 2, 1)
    roots = torch.tensor([1, math.sqrt(2), 1], dtype=torch.float64)
    assert torch.allclose(found @ roots, roots, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 0.99])
def test_the_operator_matches_a_dense_build_and_its_spectrum(alpha):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 4, 5, generator=generator, dtype=torch.float64)
    found, expected = operator(alpha, x), dense(alpha, x)
    assert torch.allclose(found, expected, atol=1e-6)
    eigenvalues = torch.linalg.eigvalsh((found + found.T) / 2)
    assert eigenvalues.min() >= (1 - alpha) / (1 + alpha) - 1e-6 and eigenvalues.max() <= 1 + 1e-6
    if alpha == 0:
        assert torch.equal(found, torch.eye(20, dtype=torch.float64))


@pytest.mark.parametrize("alpha", [0.0, 0.9])
def test_the_public_smoothing_is_the_dense_operator(alpha):
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 4, 5, generator=generator, dtype=torch.float64)
    z = torch.randn(2, 1, 4, 5, generator=generator, dtype=torch.float64)
    found = smooth.smoothing(z, x, alpha=alpha)
    for image in range(2):
        expected = dense(alpha, x[image : image + 1]) @ z[image].flatten()
        assert torch.allclose(found[image].flatten(), expected, atol=1e-6)
    assert torch.equal(z, z.clone()) and found.dtype == z.dtype


def test_the_public_smoothing_refuses_bad_input():
    x = torch.rand(1, 1, 4, 5)
    with pytest.raises(ValueError, match="alpha"):
        smooth.smoothing(x, x, alpha=1.0)
    with pytest.raises(ValueError, match="sigma"):
        smooth.smoothing(x, x, sigma=0.0)
    with pytest.raises(ValueError, match="z must be shaped like x"):
        smooth.smoothing(x[..., :4], x)


def test_the_operator_is_sharp_across_an_edge():
    # two flat halves, 0 and 1: the weight across is exp(-16); a change on the left stays there
    x = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64).view(1, 1, 1, 4)
    found = operator(0.9, x)
    assert found[2:, :2].abs().max() < 1e-5 and found[:2, :2].min() > 0.1


def test_the_smooth_norm_is_the_operator_inverse_norm_and_never_below_l2():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 3, 3, generator=generator, dtype=torch.float64)
    delta = torch.randn(1, 1, 3, 3, generator=generator, dtype=torch.float64)
    weights = _graph(x, 0.25)
    for alpha in (0.0, 0.7):
        inverse = torch.linalg.inv(dense(alpha, x))
        expected = (delta.flatten() @ inverse @ delta.flatten()).sqrt()
        found = _smooth_norm(delta, weights, alpha)
        assert torch.allclose(found, expected.view(1), atol=1e-6)
        assert found.item() >= delta.norm().item() - 1e-9
    assert torch.allclose(_smooth_norm(delta, weights, 0.0), delta.norm().view(1))


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_the_explanation_of_a_linear_model_is_the_closed_form_smallest(alpha):
    # margin = w.x + b < 0 at a flat grey image (all weights 1, nothing clipped): the smallest
    # |delta|_S with w.delta >= -margin is -margin / sqrt(w^T S w), along S w
    generator = torch.Generator().manual_seed(2)
    w = torch.randn(9, generator=generator, dtype=torch.float64)
    x = torch.full((1, 1, 3, 3), 0.5, dtype=torch.float64)
    bias = -(w @ x.flatten()).item() - 0.05 * w.norm().item()
    model = linear_model([[0.0] * 9, w.tolist()], [0.0, bias])
    result = smooth.smooth_explanation(model, x, torch.tensor([1]), alpha=alpha, overshoot=0.0)
    operator_s = dense(alpha, x)
    smallest = 0.05 * w.norm() / (w @ operator_s @ w).sqrt()
    size = _smooth_norm(result.delta, _graph(x, 0.25), alpha)
    assert result.success.item()
    assert smallest <= size.item() <= 1.01 * smallest
    direction = operator_s @ w
    cosine = (result.delta.flatten() @ direction) / (result.delta.norm() * direction.norm())
    assert cosine > 0.999


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 5),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    arch=st.sampled_from(ARCHS),
    alpha=st.sampled_from([0.0, 0.5, 0.9]),
)
def test_invariants(seed, num_images, dtype, arch, alpha):
    model, (x, y) = make_model(arch, seed, dtype), make_batch(seed, num_images, dtype)
    x_before, y_before = x.clone(), y.clone()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    run = lambda: smooth.smooth_explanation(  # noqa: E731
        model, x, y, alpha=alpha, max_queries=8, num_refine_steps=3
    )
    with count_passes(model) as passes:
        result = run()
    assert torch.equal(x, x_before) and torch.equal(y, y_before)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert not model.training and torch.equal(torch.get_rng_state(), rng)
    assert result.x_adv.dtype == x.dtype and 0 <= result.x_adv.min() <= result.x_adv.max() <= 1
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
        right = model(x).argmax(1) == y
    assert torch.equal(result.x_adv[right], x[right]) and (result.queries[right] == 0).all()
    assert result.forward_passes.sum().item() == passes.forward_rows
    assert result.backward_passes.sum().item() == passes.backward_rows
    assert torch.equal(result.queries, result.forward_passes - 1)
    assert (result.queries <= 8).all() and (result.queries[~right] >= 1).all()
    again = run()
    assert all(torch.equal(getattr(result, name), getattr(again, name)) for name in TENSOR_FIELDS)


def test_an_empty_batch_gives_an_empty_record():
    model = make_model("cnn", 0)
    x, y = make_batch(0, 1)
    result = smooth.smooth_explanation(model, x[:0], y[:0])
    assert len(result) == 0 and result.x_adv.shape == (0, *x.shape[1:])


def test_a_model_in_training_mode_is_put_back():
    model = make_model("lenet_bn", 0).train()
    x, y = make_batch(0, 3)
    with pytest.warns(UserWarning, match="training mode"):
        smooth.smooth_explanation(model, x, y, max_queries=2)
    assert model.training and all(m.training for m in model.modules())


BAD_SETTINGS = [
    {"alpha": 1.0},
    {"alpha": -0.1},
    {"sigma": 0.0},
    {"max_queries": 0},
    {"overshoot": -1.0},
    {"num_refine_steps": -1},
]


@pytest.mark.parametrize("settings_", BAD_SETTINGS, ids=lambda s: next(iter(s)))
def test_bad_settings_are_refused_before_any_query(settings_):
    model = make_model("cnn", 0)
    x, y = make_batch(0, 2)
    with count_passes(model) as passes, pytest.raises(ValueError, match=next(iter(settings_))):
        smooth.smooth_explanation(model, x, y, **settings_)
    assert passes.forward_rows == 0


def test_the_method_is_described_for_the_attacks_table():
    method = attacks.get("smooth", "white box")
    assert method.knob == "alpha"
    low, high, _ = method.knob_range
    assert low <= method.knob_default <= high < 1
    assert method.function is smooth.smooth_explanation
