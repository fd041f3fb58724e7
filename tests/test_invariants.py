"""What every method of the table owes a practitioner's own model: its modes and weights back
exactly as they were (frozen BatchNorm included), bad arguments refused before any query, and
an empty batch answered with an empty record."""

import pytest
import torch
from tiny import make_batch, make_bn_model, make_cnn
from torch import nn

from helpers import attacks, blackbox, evidence, generative, generators, metrics, records
from helpers.attacks import boundary, forward

METHODS = [method.name for method in attacks.METHODS]


class Counted(nn.Module):
    """A provider that counts the images it is asked about (forward passes of any kind)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.asked = model, 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.asked += len(x)
        return self.model(x)


def frozen_batch_norm_model() -> nn.Module:
    """A model in training mode whose BatchNorm layers the user froze with .eval()."""
    model = make_bn_model(0).train()
    model[1].eval()  # frozen statistics
    return model


def subjects(model: nn.Module) -> dict:
    return {"model": model, "black_box": blackbox.BlackBox(model), "surrogate": make_cnn(1)}


def modes(model: nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


@pytest.mark.filterwarnings("ignore:.*training mode")
@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_each_module_its_mode_back_and_changes_no_weight(method):
    model = frozen_batch_norm_model()
    before, state = modes(model), {k: v.clone() for k, v in model.state_dict().items()}
    x, y = make_batch(0, 5)
    chosen = attacks.get(method)
    budget = {} if chosen.kind == "forward" else {"max_queries": 4}  # FGSM and PGD: one or steps
    chosen(x, y, **subjects(model), **budget)
    assert modes(model) == before and not model[1].training and model[3].training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_grad_cam_and_a_black_box_give_each_module_its_mode_back():
    model = frozen_batch_norm_model()
    before, state = modes(model), {k: v.clone() for k, v in model.state_dict().items()}
    x, y = make_batch(0, 3)
    evidence.grad_cam(model, x, y, "0")
    box = blackbox.BlackBox(model)
    box.labels(x), box.probabilities(x)
    assert modes(model) == before
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_batch_gives_an_empty_record(method):
    x, y = make_batch(0, 0)
    result = attacks.get(method)(x, y, **subjects(make_cnn(0)))
    assert isinstance(result, records.Explanation) and len(result) == 0
    assert result.x_adv.shape == (0, *x.shape[1:]) and result.queries.sum() == 0


@pytest.mark.parametrize("method", METHODS)
def test_labels_outside_the_classes_are_refused_before_any_query(method):
    provider = Counted(make_cnn(0))
    x, y = make_batch(0, 4)
    y[2] = 7  # the tiny models have 4 classes
    found = subjects(provider)
    with pytest.raises(ValueError, match=r"y must hold classes in \[0, 3\]"):
        attacks.get(method)(x, y, **found)
    asked = found["black_box"].queries if "black_box" in attacks.get(method).needs else 0
    assert asked == 0
    if "model" in attacks.get(method).needs:  # a white-box model: its pass on x is no query
        assert provider.asked <= len(x)


@pytest.mark.parametrize("method", [m.name for m in attacks.methods("black box")])
@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"max_queries": 0}, ValueError, "max_queries must be >= 1"),
        ({"growth": 1.0}, ValueError, "growth must be > 1"),
        ({"method": "nothing"}, ValueError, "method must be one of"),
    ],
)
def test_bad_black_box_settings_cost_no_query(method, settings, error, message):
    box = blackbox.BlackBox(make_cnn(0))
    x, y = make_batch(0, 3)
    with pytest.raises(error, match=message):
        attacks.get(method)(x, y, black_box=box, surrogate=make_cnn(1), **settings)
    assert box.queries == 0


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"generator": "seed 0"}, TypeError, "generator must be a torch.Generator"),
        ({"num_shrink_queries": -1}, ValueError, "num_shrink_queries must be >= 0"),
        ({"num_directions": 1.5}, TypeError, "num_directions must be an int"),
        ({"step": "line"}, ValueError, "step must be one of"),
        ({"starts": torch.zeros(2, 1, 6, 6)}, ValueError, "starts must be one point per image"),
        (
            {"starts": torch.full((3, 1, 6, 6), 2.0)},
            ValueError,
            r"starts must hold pixels in \[0, 1\]",
        ),
    ],
)
def test_the_boundary_search_checks_its_arguments_before_any_query(arguments, error, message):
    box = blackbox.BlackBox(make_cnn(0))
    x, y = make_batch(0, 3)
    with pytest.raises(error, match=message):
        boundary.explain(box, make_cnn(1), x, y, **arguments)
    assert box.queries == 0


def test_a_black_box_method_refuses_what_is_no_black_box_before_anything_runs():
    x, y = make_batch(0, 3)
    with pytest.raises(TypeError, match="black_box must be a BlackBox or have its interface"):
        boundary.explain(make_cnn(0), make_cnn(1), x, y)


def test_grad_cam_checks_its_targets_and_answers_an_empty_batch():
    model, (x, y) = make_cnn(0), make_batch(0, 3)
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 3\]"):
        evidence.grad_cam(model, x, torch.tensor([0, 1, 4]), "0")
    empty = evidence.grad_cam(model, x[:0], y[:0], "0")
    assert empty.shape == (0, 6, 6)


def test_pgd_on_an_empty_batch_gives_an_empty_record():
    x, y = make_batch(0, 0)
    result = forward.pgd(make_cnn(0), x, y, eps=0.1, num_steps=2, num_restarts=3)
    assert len(result) == 0 and result.method == "pgd_linf"


def test_a_nan_in_a_map_is_a_clear_error_naming_the_argument():
    maps = torch.rand(3, 12, 12)
    broken = maps.clone()
    broken[1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"b holds NaN or infinite values in maps \[1\]"):
        evidence.nissim(maps, broken)
    with pytest.raises(ValueError, match="x contains NaN"):
        attacks.explain(make_cnn(0), torch.full((1, 1, 6, 6), float("nan")), torch.tensor([0]))


def test_gan_counterfactuals_spend_queries_through_the_engine():
    torch.manual_seed(0)
    gan = generators.GAN((1, 8, 8), 4, kind="counterfactual", width=4, discriminator_width=4)
    provider = Counted(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval())
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 4
    with torch.no_grad():
        logits = provider(x)
    mistakes = records.Predictions(torch.arange(8), x, y, logits)
    provider.asked = 0
    result = generative.counterfactuals(gan, provider, mistakes, max_queries=2)
    attacked = int(result.attacked.sum())
    assert result.queries.max() <= 2 and (result.queries[~result.attacked] == 0).all()
    assert provider.asked == len(x) + int(result.queries.sum())  # the pass on x, then queries
    assert result.forward_passes.sum() == provider.asked and attacked > 0
    with torch.no_grad():
        assert torch.equal(result.success, provider(result.x_adv).argmax(1) == y)


@pytest.mark.parametrize("method", [m.name for m in attacks.methods("black box")])
def test_a_black_box_of_8_bit_images_keeps_the_images_it_answered(method):
    model, (x, y) = make_cnn(0), make_batch(0, 6)
    box = blackbox.BlackBox(model, bits=8)
    result = attacks.get(method)(x, y, black_box=box, surrogate=make_cnn(1), max_queries=6)
    changed = result.attacked
    assert torch.equal(result.x_adv[changed], blackbox.quantize(result.x_adv[changed]))
    with torch.no_grad():  # success is the answer on the very image kept
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
    assert metrics.success_after_rounding(model, result).tolist() == result.success.tolist()


def test_rounding_to_8_bits_is_what_a_png_stores():
    x = torch.tensor([0.0, 0.5, 1 / 255 + 0.0019, 0.999]).view(1, 1, 2, 2)
    levels = (blackbox.quantize(x) * 255).flatten()
    torch.testing.assert_close(levels, torch.tensor([0.0, 128.0, 1.0, 255.0]))  # 127.5: to even
