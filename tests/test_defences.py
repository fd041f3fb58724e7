"""Defences: training transforms, input cleaning and its straight-through (BPDA) view."""

import copy

import pytest
import torch
from tiny import make_batch, make_cnn

from helpers import checkpoints, course, data, defences, metrics, training
from helpers.attacks import forward


def test_bit_depth_rounds_and_hides_the_gradient_unless_straight_through():
    x = torch.tensor([0.1, 0.4, 0.6, 0.95]).view(1, 1, 2, 2).requires_grad_(True)
    plain = defences.BitDepth(1)(x)
    assert plain.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad(plain.sum(), x)
    assert (grad == 0).all()  # rounding has no gradient: plain attacks see nothing
    through = defences.BitDepth(1, straight_through=True)(x)
    assert torch.equal(through, plain)
    (grad,) = torch.autograd.grad(through.sum(), x)
    assert (grad == 1).all()  # BPDA: the identity on the backward pass
    assert defences.BitDepth(3)(torch.tensor([0.5]).view(1, 1, 1, 1)).item() == pytest.approx(4 / 7)


def test_a_plain_attack_is_stopped_by_the_cleaner_and_bpda_gets_through():
    model, (x, y) = make_cnn(2), make_batch(2, 40)
    hidden = defences.cleaned(model, 4)
    seen = defences.cleaned(model, 4, straight_through=True)
    plain = forward.pgd(hidden, x, y, eps=0.3, num_steps=10)
    adaptive = forward.pgd(seen, x, y, eps=0.3, num_steps=10)
    with torch.no_grad():
        assert torch.equal(adaptive.success, hidden(adaptive.x_adv).argmax(1) != y)
    assert metrics.robust_accuracy(adaptive) < metrics.robust_accuracy(plain)


def test_training_transforms_stay_in_their_ball_and_leave_the_mode_alone():
    model, (x, y) = make_cnn(0).train(), make_batch(0, 8)
    generator = torch.Generator().manual_seed(0)
    for transform, eps in (
        (defences.fgsm_random_start(0.1, generator), 0.1),
        (defences.pgd_training(0.2, num_steps=3, step_size=0.05, generator=generator), 0.2),
    ):
        x_adv = transform(model, x, y)
        assert model.training and not x_adv.requires_grad
        assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert ((x_adv - x).flatten(1).abs().amax(1) > 0).all()  # every image took its step
    noisy = defences.gaussian_noise(0.1, torch.Generator().manual_seed(1))(model, x, y)
    again = defences.gaussian_noise(0.1, torch.Generator().manual_seed(1))(model, x, y)
    assert torch.equal(noisy, again) and noisy.min() >= 0 and noisy.max() <= 1


def test_a_robust_model_is_trained_once_then_loaded(tmp_path, capsys):
    dataset = data.load_dataset(sizes=(200, 20, 50))
    path = tmp_path / "robust.pt"
    transform = defences.make_transform("fgsm_rs", {"eps": 0.1}, torch.Generator())
    tags = {"defence": "fgsm_rs", "eps": 0.1}
    settings = dict(seed=0, num_epochs=1, transform=transform, tags=tags)
    trained, metadata = training.load_or_train(dataset, path, **settings)
    loaded, again = training.load_or_train(dataset, path, **settings)
    assert "Loaded" in capsys.readouterr().out
    assert metadata["defence"] == "fgsm_rs" and metadata["eps"] == 0.1
    assert metadata["seconds_per_epoch"] > 0 and again == metadata
    assert torch.equal(trained(dataset.test.x), loaded(dataset.test.x))


def test_each_recipe_keeps_its_own_checkpoint(tmp_path, capsys):
    dataset = data.load_dataset(sizes=(200, 20, 50))
    lesson = course.Course(dataset, torch.device("cpu"), 0, 1, torch.Generator(), tmp_path)
    mild = lesson.robust_model("noise", std=0.1)
    lesson.robust_model("noise", std=0.3)
    capsys.readouterr()
    again = lesson.robust_model("noise", std=0.1)  # loaded: the second recipe did not overwrite it
    assert "Loaded" in capsys.readouterr().out and len(list(tmp_path.glob("cnn_noise_*"))) == 2
    assert torch.equal(mild(dataset.test.x), again(dataset.test.x))
    assert lesson.metadata["cnn_noise"]["std"] == 0.1


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: defences.gaussian_noise(0), ValueError, "std must be > 0"),
        (lambda: defences.BitDepth(0), ValueError, "bits must be >= 1"),
        (lambda: defences.make_transform("magic", {}, None), ValueError, "defence must be one of"),
        (lambda: defences.make_transform("pgd", {"num_steps": 3}, None), TypeError, "'eps'"),
        (lambda: defences.make_transform("noise", {"eps": 0.1}, None), TypeError, "'eps'"),
        (lambda: defences.make_transform("standard", {"eps": 0.1}, None), TypeError, "no settings"),
    ],
)
def test_bad_settings_get_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_warm_started_robust_model_records_its_start_and_retrains_for_another(tmp_path, capsys):
    dataset = data.load_dataset(sizes=(200, 20, 50))
    lesson = course.Course(dataset, torch.device("cpu"), 0, 1, torch.Generator(), tmp_path)
    start = lesson.model()
    warm = lesson.robust_model("fgsm_rs", start_from=start, eps=0.1)
    assert lesson.metadata["cnn_fgsm_rs"]["initial"] == checkpoints.fingerprint(start)
    other = copy.deepcopy(start)
    with torch.no_grad():
        other.classifier[-1].bias += 1.0  # another start: another recipe
    capsys.readouterr()
    lesson.robust_model("fgsm_rs", start_from=other, eps=0.1)
    assert "from the initial model's weights" in capsys.readouterr().out
    again = lesson.robust_model("fgsm_rs", start_from=start, eps=0.1)
    assert "Loaded" in capsys.readouterr().out
    assert torch.equal(warm(dataset.test.x), again(dataset.test.x))
    lesson.robust_model("fgsm_rs", eps=0.1)  # cold: a file of its own
    assert len(list(tmp_path.glob("cnn_fgsm_rs_*"))) == 3
