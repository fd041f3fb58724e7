"""Invariants of the explanation attacks on tiny models, and answers checked by hand."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tiny import ARCHS, SHAPE, linear_model, make_batch, make_cnn, make_model
from torch import nn

from helpers import attacks, geometry
from helpers.engine import QueryCounter
from helpers.records import Explanation

NUM_CLASSES = 4
TENSOR_FIELDS = [f.name for f in fields(Explanation) if f.type in ("Tensor", torch.Tensor)]


@dataclass
class Passes:
    forward_rows: int = 0
    backward_rows: int = 0


@contextmanager
def count_passes(model: nn.Sequential) -> Iterator[Passes]:
    """Count, with module hooks apart from QueryCounter, the images the model sees each way."""
    passes = Passes()

    def on_forward(module, inputs):
        passes.forward_rows += len(inputs[0])

    def on_backward(module, grad_input, grad_output):
        passes.backward_rows += int(grad_output[0].ne(0).any(1).sum())

    handles = [
        model.register_forward_pre_hook(on_forward),
        model[-1].register_full_backward_hook(on_backward),
    ]
    yield passes
    for handle in handles:
        handle.remove()


def start_point(x: torch.Tensor) -> torch.Tensor:
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    return (x + 0.6 * (noise - 0.5)).clamp(0, 1)


# name -> (run(model, x, y), most queries per image)
CASES: dict[str, tuple[Callable[..., Explanation], int]] = {
    "iterative_linf": (
        lambda m, x, y: attacks.explain(m, x, y, "iterative_linf", step_size=0.05, max_queries=6),
        6,
    ),
    "iterative_l2": (
        lambda m, x, y: attacks.iterative_gradient(
            m, x, y, norm="l2", eps=1.5, step_size=0.5, max_queries=6
        ),
        6,
    ),
    "iterative_random_start": (
        lambda m, x, y: attacks.iterative_gradient(
            m,
            x,
            y,
            eps=0.3,
            random_start=True,
            generator=torch.Generator().manual_seed(1),
            max_queries=8,
        ),
        8,
    ),
    "deepfool": (lambda m, x, y: attacks.deepfool(m, x, y, max_queries=5), 5),
    "deepfool_refined": (
        lambda m, x, y: attacks.explain(m, x, y, "deepfool_refined", num_refine_steps=3),
        50 + 3,
    ),
    "refine": (lambda m, x, y: attacks.refine(m, x, y, start_point(x), num_steps=3), 1 + 3),
}


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 5),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    arch=st.sampled_from(ARCHS),
)
def test_invariants(case, seed, num_images, dtype, arch):
    run, most_queries = CASES[case]
    model, (x, y) = make_model(arch, seed, dtype), make_batch(seed, num_images, dtype)
    x_before, y_before = x.clone(), y.clone()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with count_passes(model) as passes:
        result = run(model, x, y)

    # inputs, weights, mode and global random state unchanged
    assert torch.equal(x, x_before) and torch.equal(y, y_before)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)

    # outputs in range, on the device and in the dtype of x, consistent with each other
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert len(TENSOR_FIELDS) == 11
    assert all(getattr(result, name).device == x.device for name in TENSOR_FIELDS)
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert torch.equal(result.delta, result.x_adv - x)
    assert torch.allclose(result.l2, result.delta.flatten(1).norm(dim=1))
    assert torch.equal(result.linf, result.delta.flatten(1).abs().amax(1))

    # success is a fresh prediction; images already right come back untouched for free
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
        right = model(x).argmax(1) == y
    assert torch.equal(result.misclassified, ~right)
    assert torch.equal(result.x_adv[right], x[right]) and result.success[right].all()
    assert (result.queries[right] == 0).all() and (result.backward_passes[right] == 0).all()

    # counts agree with the independent hooks: one uncounted pass on x, then one per query
    assert result.forward_passes.sum().item() == passes.forward_rows
    assert result.backward_passes.sum().item() == passes.backward_rows
    assert torch.equal(result.queries, result.forward_passes - 1)
    assert (result.queries[~right] >= 1).all() and (result.queries <= most_queries).all()
    assert all(t.dtype == torch.int64 for t in (result.queries, result.backward_passes))

    # same inputs and seed, same result
    again = run(model, x, y)
    assert all(torch.equal(getattr(result, name), getattr(again, name)) for name in TENSOR_FIELDS)


@settings(max_examples=15, deadline=None)
@given(
    weight=st.lists(st.floats(-2, 2), min_size=4, max_size=4).filter(
        lambda w: sum(v * v for v in w) > 0.1
    ),
    distance=st.floats(0.05, 0.2),
    x_flat=st.lists(st.floats(0.3, 0.7), min_size=4, max_size=4),
)
def test_deepfool_finds_the_closed_form_distance_of_a_binary_linear_model(weight, distance, x_flat):
    # logit_1 - logit_0 = w·x + b; choose b so the true class 1 is `distance` away in L2
    x = torch.tensor(x_flat, dtype=torch.float64).view(1, 1, 2, 2)
    w = torch.tensor(weight, dtype=torch.float64)
    bias = -(w @ x.flatten()).item() - distance * w.norm().item()
    model = linear_model([[0.0] * 4, weight], [0.0, bias])
    result = attacks.deepfool(model, x, torch.tensor([1]), overshoot=0.005)
    assert result.success.item() and result.queries.item() == 1
    assert distance <= result.l2.item() <= 1.01 * distance


def test_deepfool_finds_the_binding_margin_of_a_three_class_linear_model():
    # predicted 2, true 0; class 1 is far below, so only the margin 0 - 2 binds:
    # (w0 - w2)·x + (b0 - b2) = (1, -1, 0.5, 0)·x - 0.5, at x = 0.5 gives -0.25,
    # and the distance is 0.25 / |(1, -1, 0.5, 0)| = 0.25 / 1.5
    model = linear_model(
        [[1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], [0.0, -100.0, 0.5]
    )
    x = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    result = attacks.deepfool(model, x, torch.tensor([0]), overshoot=0.0)
    assert result.success.item() and result.queries.item() == 1
    assert 0.25 / 1.5 <= result.l2.item() <= 1.01 * 0.25 / 1.5


def test_deepfool_respects_the_box_when_a_pixel_cannot_move():
    # margin = -x0 + x1 - 0.8 = -0.3 at x = (0, 0.5). Without the box the nearest fix moves
    # both pixels by 0.15 (L2 0.212), but x0 cannot go below 0: x1 must rise by 0.3.
    model = linear_model([[0.0, 0.0], [-1.0, 1.0]], [0.0, -0.8])
    x = torch.tensor([0.0, 0.5], dtype=torch.float64).view(1, 1, 1, 2)
    result = attacks.deepfool(model, x, torch.tensor([1]), overshoot=0.0)
    assert result.success.item() and result.queries.item() == 1
    assert result.x_adv[0, 0, 0, 0].item() == 0.0
    assert 0.3 <= result.l2.item() <= 0.303


def test_deepfool_beats_every_wrong_class_at_once():
    # true class 0, predicted 1; fixing the margin over class 1 alone, along (1, -1, 0), makes
    # class 2 win. The nearest point beating both moves (0.1, -0.1, -0.15): L2 sqrt(0.0425)
    weight = [[0.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [2.0, -2.0, 2.0]]
    model = linear_model(weight, [0.0, 0.2, -1.1])
    x = torch.full((1, 1, 1, 3), 0.5, dtype=torch.float64)
    result = attacks.deepfool(model, x, torch.tensor([0]), overshoot=0.0)
    assert result.success.item() and result.queries.item() == 1
    assert 0.0425**0.5 <= result.l2.item() <= 1.01 * 0.0425**0.5
    one_at_a_time = attacks.deepfool(model, x, torch.tensor([0]), num_constraints=1)
    assert one_at_a_time.queries.item() >= 2


class Bent(nn.Module):
    """Two classes; logit 1 is bend(w·x + b), logit 0 is zero: the boundary is the hyperplane
    w·x + b = 0, but linearizing bend there says it is nearer than it is."""

    def __init__(self, w: torch.Tensor, b: float, bend: Callable) -> None:
        super().__init__()
        self.w, self.b, self.bend = w, b, bend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(u), self.bend(u)], 1)


BENDS = {  # name -> (bend, most queries at overshoot 0.1; a fixed 5% overshoot needed 4, 6 and 9)
    "u|u|": (lambda u: u * u.abs(), 3),
    "u^3": (lambda u: u**3, 4),
    "u^5": (lambda u: u**5, 9),  # 8 held until hypothesis drew seed 325, distance 0.5 (9)
}


@pytest.mark.parametrize("bend", BENDS)
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), distance=st.floats(0.01, 0.5))
def test_deepfool_does_not_stall_where_a_longer_step_fixes_the_margin(bend, seed, distance):
    # a linear step covers only 1/2, 1/3 or 1/5 of the way each time; the curvature seen on the
    # first step tells the second how much longer to be
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 1, 4, 4, generator=generator, dtype=torch.float64) * 0.5 + 0.25
    w = torch.randn(16, generator=generator, dtype=torch.float64)
    b = -(x[0].flatten() @ w).item() - distance * w.norm().item()  # image 0: `distance` away
    function, most_queries = BENDS[bend]
    model = Bent(w, b, function).eval()
    y = torch.ones(4, dtype=torch.int64)
    reachable = (x.flatten(1) @ w + b < 0) & ((w.clamp(min=0).sum() + b) > 0)
    result = attacks.deepfool(model, x, y, overshoot=0.1)
    assert result.success[reachable].all() and (result.queries <= most_queries).all()
    default = attacks.deepfool(model, x, y)  # overshoot 0.05: never more than the fixed rule
    assert default.success[reachable].all() and (default.queries <= 9).all()


def test_the_property_tests_draw_the_same_examples_on_every_run():
    # conftest.py's "repeatable" profile: BENDS' bounds were hit once by a draw CI made anew
    if os.environ.get("HYPOTHESIS_PROFILE", "repeatable") == "repeatable":
        assert settings.default.derandomize


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 8), reach=st.floats(-1, 1.5))
@example(seed=1384, size=8, reach=1.0)  # a gradient entry of 1.4e-4 puts the answer at lam ~ 1436
def test_project_to_halfspace_matches_a_bisection(seed, size, reach):
    generator = torch.Generator().manual_seed(seed)
    anchor = torch.rand(3, size, generator=generator, dtype=torch.float64).round(decimals=1)
    grad = torch.randn(3, size, generator=generator, dtype=torch.float64)
    grad[:, 0] = 0.0  # a pixel the gradient ignores must stay put
    best = grad.clamp(min=0).sum(1)  # grad·z at the best corner of the box
    bound = (grad * anchor).sum(1) + reach * (best - (grad * anchor).sum(1))
    z = geometry.project_to_halfspace(anchor, grad, bound)
    # lam can be large where a gradient entry is tiny (0.2 / 1e-4 = 2000): search up to 1e9
    low, high = torch.zeros(3, 1, dtype=torch.float64), torch.full((3, 1), 1e9, dtype=torch.float64)
    for _ in range(200):
        middle = (low + high) / 2
        short = ((anchor + middle * grad).clamp(0, 1) * grad).sum(1, keepdim=True) < bound[:, None]
        low, high = torch.where(short, middle, low), torch.where(short, high, middle)
    already = (bound <= (grad * anchor).sum(1))[:, None]
    expected = torch.where(already, anchor, (anchor + high * grad).clamp(0, 1))
    assert torch.allclose(z, expected, atol=1e-9)
    assert torch.equal(z[:, 0], anchor[:, 0])


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), num_steps=st.integers(0, 6), near_minimal=st.booleans())
def test_refine_never_increases_l2_and_keeps_success(seed, num_steps, near_minimal):
    model, (x, y) = make_cnn(seed), make_batch(seed, 5)
    if near_minimal:  # candidates around a near-minimal start are often larger than it
        start = attacks.deepfool(model, x, y, num_refine_steps=10)
    else:
        start = attacks.iterative_gradient(model, x, y, step_size=0.1, max_queries=10)
    refined = attacks.refine(model, x, y, start.x_adv, num_steps=num_steps)
    assert refined.success[start.success].all()
    assert (refined.l2[start.success] <= start.l2[start.success]).all()
    unchanged = refined.l2 == start.l2
    assert torch.equal(refined.x_adv[unchanged], start.x_adv[unchanged])


def test_refine_shrinks_iterative_explanations_and_deepfool_ones():
    model, (x, y) = make_cnn(0), make_batch(0, 40)
    start = attacks.iterative_gradient(model, x, y, step_size=0.05, max_queries=20)
    refined = attacks.refine(model, x, y, start.x_adv, num_steps=10)
    explained = start.success & start.misclassified
    assert explained.sum() >= 20
    assert refined.l2[explained].mean() < 0.8 * start.l2[explained].mean()

    plain = attacks.deepfool(model, x, y)
    better = attacks.deepfool(model, x, y, num_refine_steps=10)
    assert torch.equal(plain.success, better.success)
    assert (better.l2 <= plain.l2).all() and better.l2.sum() < 0.97 * plain.l2.sum()
    assert torch.equal(better.queries, plain.queries + 10 * plain.misclassified)


def test_twenty_refinement_steps_get_within_one_percent_of_two_hundred():
    model, (x, y) = make_cnn(0), make_batch(0, 40)
    short = attacks.deepfool(model, x, y, num_refine_steps=20)
    long = attacks.deepfool(model, x, y, num_refine_steps=200)
    explained = long.success & long.misclassified
    assert explained.sum() >= 20
    assert (short.l2[explained] / long.l2[explained]).median() <= 1.01


def test_deepfool_needs_a_few_queries_where_small_gradient_steps_need_many():
    model, (x, y) = make_cnn(0), make_batch(0, 40)
    deepfool = attacks.explain(model, x, y, "deepfool")
    iterative = attacks.explain(model, x, y, "iterative_l2", step_size=0.05)
    assert deepfool.success_rate == 1.0 and iterative.success_rate == 1.0
    assert deepfool.mean_queries < 2 and 4 * deepfool.mean_queries < iterative.mean_queries


def test_iterative_gradient_stays_in_the_eps_ball():
    model, (x, y) = make_cnn(2), make_batch(2, 20)
    linf = attacks.explain(model, x, y, "iterative_linf", eps=0.02, step_size=0.01, max_queries=20)
    l2 = attacks.explain(model, x, y, "iterative_l2", eps=0.1, step_size=0.04, max_queries=20)
    assert linf.linf.max() <= 0.02 + 1e-6 and l2.l2.max() <= 0.1 + 1e-6
    assert not linf.success.all() and not l2.success.all()  # the ball is too small for some


def test_query_counter_counts_rows_and_backward_passes():
    model = make_cnn(0)
    counter = QueryCounter(model, num_images=4, device=torch.device("cpu"))
    x, _ = make_batch(0, 4)
    counter(x, query=False)
    x_in = x[[1, 3]].requires_grad_(True)
    logits = counter(x_in, torch.tensor([1, 3]))
    torch.autograd.grad(logits[1].sum(), x_in)  # row 1 of the call is image 3
    assert counter.forward_passes.tolist() == [1, 2, 1, 2]
    assert counter.queries.tolist() == [0, 1, 0, 1]
    assert counter.backward_passes.tolist() == [0, 0, 0, 1]


def test_explanation_summaries_count_only_misclassified_images():
    model, (x, y) = make_cnn(3), make_batch(3, 12)
    result = attacks.explain(model, x, y, "deepfool")
    wrong = result.misclassified
    assert 0 < wrong.sum() < 12
    assert result.mean_queries == pytest.approx(result.queries[wrong].double().mean().item())
    assert result.success_rate == result.success[wrong].float().mean().item()
    assert result.method == "deepfool" and result.settings["overshoot"] == 0.05


@pytest.mark.parametrize("method", [m.name for m in attacks.methods("white box")])
def test_an_empty_batch_gives_an_empty_explanation(method):
    model = make_cnn(0)
    x, y = torch.zeros(0, *SHAPE), torch.zeros(0, dtype=torch.int64)
    result = attacks.explain(model, x, y, method)
    assert result.x_adv.shape == (0, *SHAPE) and result.queries.shape == (0,)


def test_random_start_follows_the_generator():
    model, (x, y) = make_cnn(4), make_batch(4, 10)

    def run(seed: int) -> Explanation:
        generator = torch.Generator().manual_seed(seed)
        return attacks.iterative_gradient(
            model, x, y, eps=0.2, random_start=True, generator=generator, max_queries=1
        )

    first, same, other = run(1), run(1), run(2)
    wrong = first.misclassified
    assert wrong.any()
    assert torch.equal(first.x_adv, same.x_adv)
    assert not torch.equal(first.x_adv[wrong], other.x_adv[wrong])
    assert torch.equal(first.x_adv[~wrong], x[~wrong])
    assert first.linf.max() <= 0.2 + 1e-6
