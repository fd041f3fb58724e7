"""Bad input gets a clear error naming the argument, the value and the fix."""

import warnings

import pytest
import torch
from torch import nn

from helpers import attacks, validation

CPU = torch.device("cpu")


def images(n: int = 2) -> torch.Tensor:
    return torch.full((n, 1, 4, 4), 0.5)


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[0.5]], TypeError, r"x must be a torch.Tensor .* got list"),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            TypeError,
            r"x must be a floating.*x.float\(\)",
        ),
        (
            torch.zeros(1, 4, 4),
            ValueError,
            r"shape \(N, C, H, W\), got shape \(1, 4, 4\).*unsqueeze",
        ),
        (images().index_fill(0, torch.tensor([1]), float("nan")), ValueError, "x contains NaN"),
        (images().index_fill(0, torch.tensor([0]), float("inf")), ValueError, "infinite"),
        (images() * 255, ValueError, r"\[0, 1\], got values in \[127.5, 127.5\].*normalization"),
        (images() - 1, ValueError, r"got values in \[-0.5, -0.5\]"),
    ],
)
def test_check_images_rejects(x, error, match):
    with pytest.raises(error, match=match):
        validation.check_images(x)


def test_check_images_accepts_images_and_names_the_argument():
    validation.check_images(images())
    validation.check_images(torch.zeros(0, 1, 4, 4))
    with pytest.raises(ValueError, match="x_adv must"):
        validation.check_images(images() + 1, name="x_adv")


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [
        ([0, 1], TypeError, "y must be a torch.Tensor"),
        (torch.tensor([0.0, 1.0]), TypeError, r"torch.int64, got torch.float32.*y.long\(\)"),
        (torch.tensor([0, 1], dtype=torch.int32), TypeError, "got torch.int32"),
        (
            torch.tensor([0, 1, 2]),
            ValueError,
            r"shape \(2,\), one label per image, got shape \(3,\)",
        ),
        (torch.tensor([[0, 1]]), ValueError, r"got shape \(1, 2\)"),
        (torch.tensor([0, 3]), ValueError, r"classes in \[0, 2\] .*3 logits.*\[0, 3\]"),
        (torch.tensor([-1, 0]), ValueError, r"labels in \[-1, 0\]"),
        (torch.zeros(2, dtype=torch.int64, device="meta"), ValueError, r"y is on meta.*y.to"),
    ],
)
def test_check_labels_rejects(y, error, match):
    with pytest.raises(error, match=match):
        validation.check_labels(y, num_images=2, num_classes=3, device=CPU)


def test_check_labels_accepts_labels():
    validation.check_labels(torch.tensor([0, 2]), num_images=2, num_classes=3, device=CPU)


@pytest.mark.parametrize(
    ("logits", "error", "match"),
    [
        ((1, 2), TypeError, "must return a tensor of logits, got tuple"),
        (torch.zeros(2, 3, 1), ValueError, r"shape \(2, K\), got shape \(2, 3, 1\)"),
        (torch.zeros(3, 3), ValueError, r"got shape \(3, 3\)"),
        (torch.zeros(2, 3, dtype=torch.int64), ValueError, "dtype torch.int64"),
        (torch.zeros(2, 1), ValueError, "at least 2 logits per image, got 1"),
    ],
)
def test_check_logits_rejects(logits, error, match):
    with pytest.raises(error, match=match):
        validation.check_logits(logits, num_images=2)


def test_check_logits_returns_num_classes():
    assert validation.check_logits(torch.zeros(2, 5), num_images=2) == 5


def test_check_model_rejects_a_non_callable_a_model_on_another_device_and_another_dtype():
    x = images()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module or a callable, got int"):
        validation.check_model(3, x)
    with pytest.raises(ValueError, match=r"model is on meta but the images are on cpu"):
        validation.check_model(nn.Linear(2, 2, device="meta"), x)
    with pytest.raises(TypeError, match=r"torch.float64 but the images x are torch.float32"):
        validation.check_model(tiny_model().double(), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validation.check_model(tiny_model().train(), x)  # the mode is the engine's business
        validation.check_model(lambda x: x, x)


def test_attacks_run_a_training_model_in_eval_mode_and_give_its_mode_back():
    model = tiny_model().train()
    with pytest.warns(UserWarning, match=r"training mode.*eval mode.*model.eval\(\)"):
        attacks.deepfool(model, images(), torch.tensor([0, 1]))
    assert model.training
    assert all(module.training for module in model.modules())


def test_a_model_that_returns_probabilities_gets_a_warning():
    model = nn.Sequential(tiny_model(), nn.Softmax(1)).eval()  # only the softmax is wrong
    with pytest.warns(UserWarning, match="seems to return probabilities.*final softmax"):
        attacks.explain(model, images(), torch.tensor([0, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attacks.explain(tiny_model(), images(), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("check", "value", "error", "match"),
    [
        (validation.check_positive, 0, ValueError, "eps must be > 0, got 0"),
        (validation.check_positive, -0.1, ValueError, "eps must be > 0, got -0.1"),
        (validation.check_positive, float("nan"), ValueError, "eps must be finite, got nan"),
        (validation.check_positive, float("inf"), ValueError, "finite"),
        (validation.check_positive, "0.1", TypeError, "eps must be a real number, got '0.1'"),
        (validation.check_positive, True, TypeError, "real number"),
        (validation.check_non_negative, -1e-3, ValueError, "eps must be >= 0, got -0.001"),
        (validation.check_count, 0, ValueError, "eps must be >= 1, got 0"),
        (validation.check_count, 2.0, TypeError, r"eps must be an int, got 2.0 \(float\)"),
        (validation.check_count, True, TypeError, "int"),
        (validation.check_choice, "l3", ValueError, r"eps must be one of 'linf', 'l2'; got 'l3'"),
    ],
)
def test_setting_checks_reject(check, value, error, match):
    with pytest.raises(error, match=match):
        if check is validation.check_choice:
            check(value, "eps", ("linf", "l2"))
        else:
            check(value, "eps")


def test_setting_checks_accept_good_values():
    validation.check_positive(0.5, "eps")
    validation.check_non_negative(0, "overshoot")
    validation.check_count(0, "num_steps", minimum=0)
    validation.check_choice("l2", "norm", ("linf", "l2"))
    validation.check_generator(None, CPU)
    validation.check_generator(torch.Generator(), CPU)


def test_check_generator_rejects():
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        validation.check_generator(0, CPU)
    with pytest.raises(ValueError, match=r"generator is on cpu but the images are on meta"):
        validation.check_generator(torch.Generator(), torch.device("meta"))


@pytest.mark.parametrize(
    ("method", "settings", "error", "match"),
    [
        ("iterative_linf", dict(eps=-0.1), ValueError, "eps must be > 0"),
        ("iterative_linf", dict(step_size=0), ValueError, "step_size must be > 0"),
        ("iterative_l2", dict(max_queries=0), ValueError, "max_queries must be >= 1"),
        ("iterative_linf", dict(random_start=True, eps=0.1), ValueError, "random_start=True needs"),
        ("iterative_linf", dict(norm="l1"), ValueError, "norm must be one of"),
        ("deepfool", dict(overshoot=-0.01), ValueError, "overshoot must be >= 0"),
        ("deepfool", dict(max_queries=1.5), TypeError, "max_queries must be an int"),
        ("deepfool", dict(num_refine_steps=-1), ValueError, "num_refine_steps must be >= 0"),
        ("deepfool_refined", dict(refine_overshoot=-1.0), ValueError, "refine_overshoot"),
        ("cw", {}, ValueError, "method must be one of 'deepfool'"),
    ],
)
def test_attacks_reject_bad_settings(method, settings, error, match):
    with pytest.raises(error, match=match):
        attacks.explain(tiny_model(), images(), torch.tensor([0, 1]), method=method, **settings)


@pytest.mark.parametrize("method", [m.name for m in attacks.methods("white box")])
def test_attacks_reject_bad_inputs(method):
    model, x, y = tiny_model(), images(), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"x must hold pixels in \[0, 1\]"):
        attacks.explain(model, x + 1, y, method=method)
    with pytest.raises(TypeError, match="y must have dtype torch.int64"):
        attacks.explain(model, x, y.int(), method=method)
    with pytest.raises(ValueError, match="one label per image"):
        attacks.explain(model, x, y[:1], method=method)
    with pytest.raises(ValueError, match=r"classes in \[0, 2\]"):
        attacks.explain(model, x, torch.tensor([0, 7]), method=method)
    with pytest.raises(ValueError, match="y is on meta"):
        attacks.explain(model, x, y.to("meta"), method=method)
    with pytest.raises(ValueError, match="model is on meta"):
        attacks.explain(tiny_model().to("meta"), x, y, method=method)
    with pytest.raises(ValueError, match=r"shape \(2, K\), got shape \(2,\)"):
        attacks.explain(lambda x: x.flatten(1)[:, 0], x, y, method=method)
    with pytest.raises(TypeError, match="x must be a torch.Tensor of images, got ndarray"):
        attacks.explain(model, x.numpy(), y, method=method)
    with pytest.raises(TypeError, match="x must be a torch.Tensor of images, got list"):
        attacks.explain(model, x.tolist(), y, method=method)
    with pytest.raises(
        TypeError, match=r"model's parameters are torch.float64.*x.to\(torch.float64\)"
    ):
        attacks.explain(tiny_model().double(), x, y, method=method)


def test_refine_rejects_a_mismatched_start():
    model, x, y = tiny_model(), images(), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="x must be a torch.Tensor of images, got ndarray"):
        attacks.refine(model, x.numpy(), y, x)
    with pytest.raises(ValueError, match="x_adv must match x in shape"):
        attacks.refine(model, x, y, x[:1])
    with pytest.raises(ValueError, match=r"x_adv must hold pixels in \[0, 1\]"):
        attacks.refine(model, x, y, x + 1)
    with pytest.raises(ValueError, match="num_steps must be >= 0"):
        attacks.refine(model, x, y, x, num_steps=-1)
