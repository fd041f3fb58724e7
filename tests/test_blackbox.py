"""The black box (counting, budget, no gradients, bad input) and the black-box explanations."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import SHAPE, linear_model, make_batch
from torch import nn

from helpers import surrogate
from helpers.attacks import transfer
from helpers.blackbox import BlackBox, QueryBudgetExceeded

NUM_CLASSES = 4


class NoBackward(torch.autograd.Function):
    """Identity forward; fails the test if a backward pass ever runs through it."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("a gradient reached the provider's model")


class Provider(nn.Module):
    """A tiny CNN with weights from its own seed, whose logits pass through `NoBackward`."""

    def __init__(self, seed: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, NUM_CLASSES)
        )
        with torch.no_grad():
            for param in self.net.parameters():
                scale = param[0].numel() ** -0.5 if param.dim() > 1 else 0.1
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
        self.to(dtype).eval()

    def forward(self, x):
        return NoBackward.apply(self.net(x))


def make_surrogate(seed: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A different tiny model: a linear layer on the pixels and their squares."""
    generator = torch.Generator().manual_seed(seed + 1000)
    layer = nn.Linear(2 * 36, NUM_CLASSES)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.3)
        layer.bias.zero_()

    class Surrogate(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            flat = x.flatten(1)
            return self.layer(torch.cat([flat, flat**2], 1))

    return Surrogate().to(dtype).eval()


# ---------------------------------------------------------------- the black box itself


def test_the_test_provider_fails_when_a_gradient_reaches_it():
    x = torch.rand(2, *SHAPE, requires_grad=True)
    with pytest.raises(AssertionError, match="gradient reached"):
        Provider(0)(x).sum().backward()


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), max_size=5), modes=st.lists(st.booleans(), max_size=5))
def test_query_counting_is_exact(sizes, modes):
    model, black_box = Provider(0), BlackBox(Provider(0))
    for size, probabilities in zip(sizes, modes + [False] * len(sizes)):
        x, _ = make_batch(size, size)
        answer = black_box.probabilities(x) if probabilities else black_box.labels(x)
        with torch.no_grad():
            logits = model(x)
        if probabilities:
            assert torch.allclose(answer, logits.softmax(1)) and answer.shape == (size, 4)
        else:
            assert torch.equal(answer, logits.argmax(1)) and answer.dtype == torch.int64
    assert black_box.queries == sum(sizes) and black_box.queries_left is None


@settings(max_examples=25, deadline=None)
@given(max_queries=st.integers(0, 12), sizes=st.lists(st.integers(0, 7), max_size=6))
def test_the_budget_is_enforced_and_an_over_budget_request_counts_nothing(max_queries, sizes):
    black_box = BlackBox(Provider(0), max_queries=max_queries)
    answered = []
    for size in sizes:
        x, _ = make_batch(size, size)
        before = black_box.queries
        if before + size > max_queries:
            with pytest.raises(QueryBudgetExceeded, match="max_queries"):
                black_box.labels(x)
            assert black_box.queries == before
        else:
            answered.append(black_box.labels(x))
            assert black_box.queries == before + size
    assert black_box.queries == sum(len(a) for a in answered) <= max_queries
    assert black_box.queries_left == max_queries - black_box.queries


def test_no_gradient_leaves_the_black_box_and_the_model_stays_hidden():
    model = Provider(0)
    black_box = BlackBox(model, max_queries=10)
    x = torch.rand(3, *SHAPE, requires_grad=True)
    probs, labels = black_box.probabilities(x), black_box.labels(x)
    assert not probs.requires_grad and probs.grad_fn is None and not labels.requires_grad
    assert not any(isinstance(value, nn.Module) for value in vars(black_box).values())
    assert "net" not in repr(black_box) and all(p.grad is None for p in model.parameters())


def test_training_a_surrogate_and_explaining_never_backpropagate_through_the_provider():
    model = Provider(1)
    black_box = BlackBox(model)
    pool, _ = make_batch(5, 12)
    trained = surrogate.train_surrogate(
        black_box, pool, num_classes=NUM_CLASSES, num_seed=6, num_rounds=1, num_epochs=1
    )
    x, y = make_batch(6, 5)
    result = transfer.explain(black_box, trained.model, x, y, max_queries=4)
    assert result.misclassified.any() and (result.backward_passes == 0).all()
    assert all(p.grad is None for p in model.parameters())


def test_a_label_only_black_box_refuses_probabilities_and_counts_nothing():
    black_box = BlackBox(Provider(0), probabilities=False)
    x, _ = make_batch(0, 3)
    with pytest.raises(PermissionError, match="labels only"):
        black_box.probabilities(x)
    assert black_box.queries == 0 and black_box.labels(x).shape == (3,)
    assert black_box.queries == 3


BAD_IMAGES = {
    "not a tensor": ([[0.5]], TypeError, "torch.Tensor"),
    "integers": (torch.zeros(1, 1, 6, 6, dtype=torch.uint8), TypeError, "floating"),
    "no batch dimension": (torch.zeros(1, 6, 6), ValueError, r"\(N, C, H, W\)"),
    "out of range": (torch.full((1, *SHAPE), 2.0), ValueError, r"\[0, 1\]"),
    "nan": (torch.full((1, *SHAPE), float("nan")), ValueError, "NaN"),
}


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_bad_images_are_rejected_and_not_counted(case):
    x, error, message = BAD_IMAGES[case]
    black_box = BlackBox(Provider(0))
    with pytest.raises(error, match=message):
        black_box.labels(x)
    assert black_box.queries == 0


@pytest.mark.parametrize("max_queries", [-1, 1.5, True])
def test_a_bad_budget_is_rejected(max_queries):
    with pytest.raises((TypeError, ValueError), match="max_queries"):
        BlackBox(Provider(0), max_queries=max_queries)


# ---------------------------------------------------------------- black-box explanations


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    max_queries=st.integers(1, 8),
    num_shrink_steps=st.integers(0, 3),
)
def test_invariants(seed, num_images, dtype, max_queries, num_shrink_steps):
    model, surrogate = Provider(seed, dtype), make_surrogate(seed, dtype)
    x, y = make_batch(seed, num_images, dtype)
    x_before, y_before = x.clone(), y.clone()
    weights = {k: v.clone() for k, v in surrogate.state_dict().items()}
    rng = torch.get_rng_state()
    black_box = BlackBox(model)
    run = lambda box: transfer.explain(
        box, surrogate, x, y, max_queries=max_queries, num_shrink_steps=num_shrink_steps
    )
    result = run(black_box)

    # inputs, the surrogate's weights and mode, and the global random state unchanged
    assert torch.equal(x, x_before) and torch.equal(y, y_before)
    assert all(torch.equal(v, weights[k]) for k, v in surrogate.state_dict().items())
    assert not surrogate.training and all(p.grad is None for p in surrogate.parameters())
    assert torch.equal(torch.get_rng_state(), rng)

    # outputs in range and consistent; success is a fresh prediction of the provider
    assert result.x_adv.dtype == dtype and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert torch.equal(result.delta, result.x_adv - x)
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
        right = model(x).argmax(1) == y
    assert torch.equal(result.misclassified, ~right)
    assert torch.equal(result.x_adv[right], x[right]) and (result.queries[right] == 0).all()

    # the black box's own counter agrees: one uncounted pass on x, then one per candidate
    assert black_box.queries == result.forward_passes.sum().item()
    assert torch.equal(result.queries, result.forward_passes - 1)
    assert (result.queries[~right] >= 1).all() and (result.queries <= max_queries).all()
    assert (result.backward_passes == 0).all()

    again = run(BlackBox(model))
    assert torch.equal(result.x_adv, again.x_adv) and torch.equal(result.queries, again.queries)


def binary_case(surrogate_distance: float, black_box_distance: float):
    """Provider and surrogate share the direction w of their margin (class 1 minus class 0) but
    not its offset: from x = 0.5 the surrogate's boundary is nearer. Steps up to 0.6 long stay
    inside [0, 1]. Returns (provider, surrogate, x, y)."""
    w = [0.6, -0.8]  # |w| = 1, so a margin is a distance
    x = torch.full((1, 1, 1, 2), 0.5, dtype=torch.float64)
    base = sum(0.5 * v for v in w)
    provider = linear_model([[0.0, 0.0], w], [0.0, -base - black_box_distance])
    surrogate = linear_model([[0.0, 0.0], w], [0.0, -base - surrogate_distance])
    return provider, surrogate, x, torch.tensor([1])


def test_a_first_candidate_that_succeeds_costs_exactly_one_query():
    provider, surrogate, x, y = binary_case(0.1, 0.1)
    black_box = BlackBox(provider)
    result = transfer.explain(black_box, surrogate, x, y, min_radius=0.05)
    assert result.success.item() and result.queries.item() == 1
    assert black_box.queries == 2  # the pass on x belongs to the evaluation that found it


def test_the_step_schedule_grows_by_the_growth_factor_until_the_black_box_agrees():
    # the surrogate's explanation (DeepFool, no overshoot) is 0.1 away, the black box's boundary
    # 0.5: radii 0.1, 0.15, 0.225, 0.3375, 0.506, so the fifth candidate succeeds
    provider, surrogate, x, y = binary_case(0.1, 0.5)
    result = transfer.explain(
        BlackBox(provider), surrogate, x, y, growth=1.5, min_radius=0.05, overshoot=0.0
    )
    expected = 1 + math.ceil(math.log(0.5 / 0.1) / math.log(1.5))
    assert result.success.item() and result.queries.item() == expected == 5
    assert result.l2.item() == pytest.approx(0.1 * 1.5**4, rel=1e-3)


def test_shrink_steps_bisect_toward_x_within_max_queries():
    # radii 0.05, 0.1, 0.2, 0.4: the fourth candidate passes the boundary at 0.235. Along the
    # line to it, t = 0.5 misses (0.2), 0.75 hits (0.3), 0.625 hits (0.25), 0.5625 misses (0.225)
    provider, surrogate, x, y = binary_case(0.05, 0.235)
    run = lambda **kw: transfer.explain(
        BlackBox(provider), surrogate, x, y, growth=2.0, min_radius=0.02, overshoot=0.0, **kw
    )
    plain, full = run(), run(num_shrink_steps=4)
    capped = run(num_shrink_steps=4, max_queries=6)
    assert (plain.queries.item(), full.queries.item(), capped.queries.item()) == (4, 8, 6)
    assert plain.l2.item() == pytest.approx(0.4, rel=1e-2)
    assert full.l2.item() == pytest.approx(0.625 * plain.l2.item()) and full.success.item()
    assert capped.l2.item() == pytest.approx(0.75 * plain.l2.item()) and capped.success.item()


def test_a_spent_budget_stops_the_attack_and_keeps_what_it_found():
    model, surrogate = Provider(3), make_surrogate(3)
    x, y = make_batch(3, 12)
    black_box = BlackBox(model, max_queries=15)
    with pytest.warns(UserWarning, match="results so far are kept"):
        result = transfer.explain(black_box, surrogate, x, y, max_queries=10)
    assert black_box.queries <= 15 and result.queries.sum() == black_box.queries - 12
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
    assert not result.success[result.misclassified].all()


BAD_SETTINGS = {
    "method": ({"method": "fgsm"}, ValueError, "method"),
    "max_queries": ({"max_queries": 0}, ValueError, "max_queries"),
    "growth": ({"growth": 1.0}, ValueError, "growth"),
    "min_radius": ({"min_radius": 0.0}, ValueError, "min_radius"),
    "num_shrink_steps": ({"num_shrink_steps": -1}, ValueError, "num_shrink_steps"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_settings_are_rejected_before_any_query(case):
    settings, error, message = BAD_SETTINGS[case]
    black_box = BlackBox(Provider(0))
    x, y = make_batch(0, 3)
    with pytest.raises(error, match=message):
        transfer.explain(black_box, make_surrogate(0), x, y, **settings)
    assert black_box.queries == 0


def test_bad_arguments_are_rejected():
    x, y = make_batch(0, 3)
    with pytest.raises(TypeError, match="black_box must be a BlackBox"):
        transfer.explain(Provider(0), make_surrogate(0), x, y)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        transfer.explain(BlackBox(Provider(0)), make_surrogate(0), x, y[:2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        transfer.explain(BlackBox(Provider(0)), make_surrogate(0), x + 1, y)
