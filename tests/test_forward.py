"""Forward attacks: FGSM, PGD with restarts, untargeted DeepFool, on tiny models by hand."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import linear_model, make_batch, make_cnn

from helpers import attacks, metrics
from helpers.attacks import forward

FORWARD = [method.name for method in attacks.methods("forward")]


@pytest.mark.parametrize("method", FORWARD)
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_invariants(method, seed, num_images, dtype):
    model, (x, y) = make_cnn(seed, dtype), make_batch(seed, num_images, dtype)
    x_before, rng = x.clone(), torch.get_rng_state()
    result = attacks.get(method)(x, y, model=model)
    assert torch.equal(x, x_before) and torch.equal(torch.get_rng_state(), rng)
    assert result.x_adv.dtype == dtype and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    with torch.no_grad():
        right = model(x).argmax(1) == y
        assert torch.equal(result.success, model(result.x_adv).argmax(1) != y)  # fresh
    assert torch.equal(result.attacked, right) and torch.equal(result.x_adv[~right], x[~right])
    assert (result.queries[~right] == 0).all() and (result.queries[right] >= 1).all()
    assert torch.equal(result.forward_passes, result.queries + result.forward_passes.clamp(max=1))
    assert metrics.robust_accuracy(result) == pytest.approx(1 - result.success.float().mean())
    again = attacks.get(method)(x, y, model=model)
    assert torch.equal(again.x_adv, result.x_adv) and torch.equal(again.queries, result.queries)


def test_fgsm_steps_eps_along_the_sign_of_the_gradient_by_hand():
    # two classes, logit_1 - logit_0 = w·x: the cross-entropy of class 1 rises against w
    w = [0.5, -2.0, 1.0, 0.0]
    model = linear_model([[0.0] * 4, w], [0.0, 0.0])
    x = torch.tensor([0.4, 0.2, 0.5, 0.5], dtype=torch.float64).view(1, 1, 2, 2)
    # w·x = 0.2 - 0.4 + 0.5 = 0.3 > 0: right about class 1; one step of 0.1 against sign(w)
    # gives (0.3, 0.3, 0.4, 0.5) (a zero gradient moves nothing), where w·x = -0.05: fooled
    result = forward.fgsm(model, x, torch.tensor([1]), eps=0.1)
    expected = torch.tensor([0.3, 0.3, 0.4, 0.5], dtype=torch.float64).view(1, 1, 2, 2)
    assert torch.allclose(result.x_adv, expected) and result.queries.item() == 1
    assert result.success.item() and result.method == "fgsm"


def test_pgd_stays_in_its_ball_and_restarts_only_help():
    model, (x, y) = make_cnn(5), make_batch(5, 40)
    once = forward.pgd(model, x, y, eps=0.05, num_steps=5, num_restarts=1)
    thrice = forward.pgd(model, x, y, eps=0.05, num_steps=5, num_restarts=3)
    assert once.linf.max() <= 0.05 + 1e-6 and thrice.linf.max() <= 0.05 + 1e-6
    assert thrice.success[once.success].all()  # a fooled image stays fooled
    assert (thrice.queries >= once.queries).all() and thrice.queries.max() <= 3 * (5 + 1)
    l2 = forward.pgd(model, x, y, eps=0.5, norm="l2", num_steps=5)
    assert l2.l2.max() <= 0.5 + 1e-5 and l2.method == "pgd_l2"


def test_untargeted_deepfool_fools_a_binary_linear_model_at_the_closed_form_distance():
    w = torch.tensor([0.6, -0.8], dtype=torch.float64)  # |w| = 1: a margin is a distance
    model = linear_model([[0.0, 0.0], w.tolist()], [0.0, -0.05])
    x = torch.full((1, 1, 1, 2), 0.5, dtype=torch.float64)
    x[0, 0, 0, 0] = 0.9  # margin of class 1: 0.6·0.9 - 0.8·0.5 - 0.05 = 0.09, a distance
    margin = (w @ x.flatten() - 0.05).item()
    assert margin == pytest.approx(0.09)
    result = forward.deepfool(model, x, torch.tensor([1]), overshoot=0.0)
    assert result.success.item() and result.queries.item() == 1
    assert margin <= result.l2.item() <= 1.01 * margin + 1e-3


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, y: forward.fgsm(m, x, y, eps=0), ValueError, "eps must be > 0"),
        (lambda m, x, y: forward.pgd(m, x, y, eps=-1), ValueError, "eps must be > 0"),
        (
            lambda m, x, y: forward.pgd(m, x, y, eps=0.1, step_size=0.2),
            ValueError,
            "larger than eps",
        ),
        (lambda m, x, y: forward.pgd(m, x, y, num_restarts=0), ValueError, "num_restarts"),
        (lambda m, x, y: forward.pgd(m, x.numpy(), y), TypeError, "got ndarray"),
        (lambda m, x, y: forward.pgd(m, x, y.tolist(), num_restarts=2), TypeError, "got list"),
        (lambda m, x, y: forward.pgd(m, x, y, index=y[:1]), ValueError, "index must have"),
        (lambda m, x, y: forward.fgsm(m.double(), x, y), TypeError, "torch.float64"),
        (lambda m, x, y: forward.fgsm(m, x + 1, y), ValueError, r"\[0, 1\]"),
        (lambda m, x, y: forward.deepfool(m, x, y[:1]), ValueError, "one label per image"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    model, (x, y) = make_cnn(0), make_batch(0, 3)
    with pytest.raises(error, match=match):
        call(model, x, y)
    assert not model.training


def test_the_default_step_never_exceeds_eps_whatever_the_number_of_steps():
    model, (x, y) = make_cnn(1), make_batch(1, 6)
    for num_steps in (1, 2, 3, 40):
        result = forward.pgd(model, x, y, eps=0.1, num_steps=num_steps)
        assert result.settings["step_size"] <= 0.1 and result.linf.max() <= 0.1 + 1e-6
