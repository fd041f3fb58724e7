"""Generative models: shapes and ranges, the (K + 1)-way discriminator, training, checkpoints,
counterfactuals, Defense-GAN's projection and its cleaners, checked on tiny models."""

import pytest
import torch
from tiny import make_batch
from torch import nn

from helpers import checkpoints, data, defences, generative, generators
from helpers.attacks import forward
from helpers.records import Predictions

SHAPE = (1, 8, 8)


def tiny_gan(kind: str, seed: int = 0) -> generators.GAN:
    torch.manual_seed(seed)
    return generators.GAN(SHAPE, 4, kind=kind, latent_size=3, width=4, discriminator_width=4)


class ConstantGenerator(nn.Module):
    """Class c draws the grey image c / 3 whatever z (z enters with a zero gradient)."""

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grey = (y.to(z.dtype) / 3 + 0 * z.sum(1))[:, None, None, None]
        return grey.expand(-1, *SHAPE)


def test_generators_draw_images_in_range_and_the_discriminator_has_a_fake_class():
    conditional, counterfactual = tiny_gan("conditional").eval(), tiny_gan("counterfactual").eval()
    y = torch.tensor([0, 1, 2, 3])
    drawn = conditional.sample(y, torch.Generator().manual_seed(0))
    x, _ = make_batch(0, 4)
    x = nn.functional.interpolate(x, size=SHAPE[1:])
    changed = counterfactual.generator(x, y)
    for images in (drawn, changed):
        assert images.shape == (4, *SHAPE) and images.min() >= 0 and images.max() <= 1
    scores = conditional.discriminator.scores(drawn)  # (N, K + 1)
    assert scores.shape == (4, 5)
    assert torch.equal(conditional.discriminator(drawn), scores[:, :4])
    assert torch.allclose(conditional.discriminator.fakeness(drawn), scores.softmax(1)[:, 4])


def test_a_gan_round_trips_through_a_checkpoint(tmp_path):
    gan = tiny_gan("counterfactual").eval()
    path = checkpoints.save(gan, tmp_path / "gan.pt", {"seed": 0})
    loaded, metadata = checkpoints.load(path, expected={"seed": 0})
    x = torch.rand(3, *SHAPE)
    y = torch.tensor([0, 2, 3])
    assert metadata == {"seed": 0} and isinstance(loaded, generators.GAN)
    assert torch.equal(loaded.generator(x, y), gan.generator(x, y))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: generators.GAN(SHAPE, 4, latent_size=0), "latent_size must be >= 1"),
        (lambda: generators.GAN(SHAPE, 4, kind="cyclic"), "kind"),
        (lambda: generators.GAN((1, 6, 6), 4), "divisible by 4"),
        (lambda: generators.GAN(SHAPE, 4, discriminator_width=0), "discriminator_width"),
        (lambda: tiny_gan("conditional").sample(torch.tensor([4])), "y"),
        (lambda: tiny_gan("counterfactual").sample(torch.tensor([0])), "conditional GAN"),
    ],
)
def test_bad_settings_get_a_clear_error(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def small_digits(num_train: int = 64) -> data.Dataset:
    digits = data.load_dataset(sizes=(num_train, 16, 16))

    def shrink(split: data.Split) -> data.Split:  # 8x8 digits of 4 classes, for tiny GANs
        return data.Split(nn.functional.avg_pool2d(split.x[:, :, 2:26, 2:26], 3), split.y % 4)

    return data.Dataset(
        "tiny-digits",
        tuple("0123"),
        shrink(digits.train),
        shrink(digits.pool),
        shrink(digits.test),
        source="test",
    )


def test_training_is_seeded_and_leaves_the_judge_and_the_global_rng_alone():
    digits = small_digits()
    judge = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).train()
    weights = [p.detach().clone() for p in judge.parameters()]
    gans = [tiny_gan("counterfactual"), tiny_gan("counterfactual")]  # the same initial weights
    state = torch.get_rng_state()
    runs = []
    for gan in gans:
        history = generative.train(
            gan,
            digits.train,
            num_epochs=2,
            batch_size=16,
            judge=judge,
            generator=torch.Generator().manual_seed(1),
            progress=False,
        )
        runs.append((gan, history))
    assert torch.equal(torch.get_rng_state(), state)
    assert judge.training and all(p.requires_grad for p in judge.parameters())
    assert all(torch.equal(a, b) for a, b in zip(weights, judge.parameters()))
    (first, history), (second, _) = runs
    assert not first.training and len(history.generator_loss) == 2
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_a_conditional_gan_learns_the_classes_and_the_ink_of_its_digits():
    digits = small_digits(256)
    torch.manual_seed(0)
    gan = generators.GAN(SHAPE, 4, latent_size=3, width=8, discriminator_width=8)
    classes, draws = torch.arange(4).repeat(50), torch.Generator().manual_seed(0)
    before = gan.eval().sample(classes, draws).mean().item()
    history = generative.train(
        gan, digits.train, num_epochs=6, batch_size=32, lr=2e-3, progress=False
    )
    after = gan.sample(classes, torch.Generator().manual_seed(0)).mean().item()
    assert all(len(v) == 6 for v in vars(history).values())
    assert history.real_accuracy[-1] > 0.25  # real digits go to their class above chance
    ink = digits.train.x.mean().item()  # the mean pixel of real digits
    assert abs(after - ink) < abs(before - ink)  # its digits moved toward real ones


def test_counterfactuals_are_a_record_checked_by_the_model():
    gan = tiny_gan("counterfactual").eval()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    x = torch.rand(5, *SHAPE)
    with torch.no_grad():
        logits = model(x)
    y = (logits.argmax(1) + 1) % 4
    y[4] = logits[4].argmax()  # the last image is already right: left alone
    mistakes = Predictions(torch.arange(5), x, y, logits)
    result = generative.counterfactuals(gan, model, mistakes, max_queries=1)
    with torch.no_grad():
        expected = torch.cat([gan.generator(x[:4], y[:4]), x[4:]])
        assert torch.equal(result.x_adv, expected)
        assert torch.equal(result.success[:4], model(expected[:4]).argmax(1) == y[:4])
    assert result.queries.tolist() == [1, 1, 1, 1, 0] and result.attacked.tolist() == [1] * 4 + [0]
    assert torch.equal(result.index, mistakes.index) and result.success[4]
    again = generative.counterfactuals(gan, model, mistakes, max_queries=3)
    with torch.no_grad():  # an image not read as y yet goes through the generator again
        second = gan.generator(expected, y)
        twice = (again.queries == 2).nonzero()[:, 0]
        assert torch.equal(again.x_adv[twice], second[twice])
    assert torch.equal((again.queries == 1)[:4], result.success[:4])
    assert torch.equal(again.success[:4], model(again.x_adv[:4]).argmax(1) == y[:4])
    assert (~again.success <= (again.queries == 3)).all()  # a failure used every query
    with pytest.raises(ValueError, match="mistakes.y"):
        bad = Predictions(torch.arange(5), x, y + 4, mistakes.logits)
        generative.counterfactuals(gan, model, bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generative.counterfactuals(
            gan, model, Predictions(mistakes.index, x * 3, y, mistakes.logits)
        )


def test_projection_picks_the_closest_class_by_hand():
    gan = tiny_gan("conditional")
    gan.generator = ConstantGenerator()
    x = torch.tensor([0.0, 0.3, 0.62, 0.9]).view(4, 1, 1, 1).expand(-1, *SHAPE)
    projected = generative.project(gan, x, num_steps=2, num_restarts=2)
    assert projected.y.tolist() == [0, 1, 2, 3]  # the greys 0, 1/3, 2/3, 1 nearest to each
    expected_error = ((projected.y / 3 - x[:, 0, 0, 0]) ** 2) * 64
    assert torch.allclose(projected.error, expected_error)
    assert projected.x.shape == x.shape and projected.z.shape == (4, 3)


def test_projection_steps_bring_the_image_closer_and_bad_input_is_refused():
    gan = tiny_gan("conditional").eval()
    target = gan.sample(torch.tensor([1, 2]), torch.Generator().manual_seed(5)).detach()
    few = generative.project(gan, target, num_steps=1)
    many = generative.project(gan, target, num_steps=60)
    assert (many.error < few.error).all()
    again = generative.project(gan, target, num_steps=60)
    assert torch.equal(again.x, many.x)  # the same default generator: the same starts
    for settings, message in (
        ({"num_restarts": 0}, "num_restarts"),
        ({"num_steps": 0}, "num_steps"),
    ):
        with pytest.raises(ValueError, match=message):
            generative.project(gan, target, **settings)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generative.project(gan, target + 2)
    with pytest.raises(TypeError, match="conditional GAN"):
        generative.project(tiny_gan("counterfactual"), target)


def test_the_purifier_hides_the_gradient_and_straight_through_passes_it():
    gan = tiny_gan("conditional").eval()
    purifier = defences.Purifier(gan, num_steps=3)
    x = torch.rand(2, *SHAPE).requires_grad_(True)
    cleaned = purifier(x)
    assert torch.equal(cleaned, purifier(x))  # the same starts at every call
    (grad,) = torch.autograd.grad(cleaned.sum(), x)
    assert (grad == 0).all()
    through = defences.StraightThrough(purifier)(x)
    assert torch.allclose(through, cleaned)
    (grad,) = torch.autograd.grad(through.sum(), x)
    assert (grad == 1).all()
    with pytest.raises(TypeError, match="cleaner"):
        defences.cleaned(nn.Identity(), "bits")


def test_bpda_gets_through_the_purifier_where_a_plain_attack_sees_nothing():
    x, y = make_batch(2, 12)
    x = nn.functional.interpolate(x, size=SHAPE[1:])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    gan = tiny_gan("conditional").eval()
    purifier = defences.Purifier(gan, num_steps=2)
    hidden = defences.cleaned(model, purifier)
    seen = defences.cleaned(model, purifier, straight_through=True)
    plain = forward.pgd(hidden, x, y, eps=0.3, num_steps=3, generator=torch.Generator())
    assert (plain.backward_passes[plain.attacked] > 0).all()
    adaptive = forward.pgd(seen, x, y, eps=0.3, num_steps=3, generator=torch.Generator())
    with torch.no_grad():
        assert torch.equal(
            adaptive.success[adaptive.attacked],
            (hidden(adaptive.x_adv).argmax(1) != y)[adaptive.attacked],
        )


def test_a_gan_is_trained_once_then_loaded_and_retrained_for_another_judge(tmp_path, capsys):
    digits = small_digits()
    path = tmp_path / "gan.pt"
    judge = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    settings = dict(kind="counterfactual", seed=0, num_epochs=1, progress=False)
    _, metadata = generative.load_or_train(digits, path, judge=judge, **settings)
    _, again = generative.load_or_train(digits, path, judge=judge, **settings)
    assert "Loaded" in capsys.readouterr().out and again == metadata and metadata["seconds"] > 0
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    generative.load_or_train(digits, path, judge=other, **settings)
    assert "judge=" in capsys.readouterr().out  # a new judge: trained again, and it says why


def test_the_first_restart_is_the_single_search_so_more_restarts_never_do_worse():
    gan = tiny_gan("conditional").eval()
    target = torch.rand(3, *SHAPE)
    one = generative.project(gan, target, num_steps=5, num_restarts=1)
    three = generative.project(gan, target, num_steps=5, num_restarts=3)
    assert (three.error <= one.error + 1e-4).all()
    assert torch.allclose(gan.generator(three.z, three.y), three.x)  # each image's own best code


def test_an_image_is_projected_alike_whatever_its_batch():
    gan = tiny_gan("conditional").eval()
    x = torch.rand(5, *SHAPE)
    together = generative.project(gan, x, num_steps=4, num_restarts=2)
    alone = generative.project(gan, x[3:4], num_steps=4, num_restarts=2)
    assert torch.allclose(together.x[3:4], alone.x, atol=1e-5) and together.y[3] == alone.y[0]
    purifier = defences.Purifier(gan, num_steps=4)
    assert torch.allclose(purifier(x)[1:3], purifier(x[1:3]), atol=1e-5)  # PGD asks subsets


def test_training_data_outside_the_pixel_range_or_the_classes_is_refused():
    gan, x = tiny_gan("conditional"), torch.rand(4, *SHAPE)
    with pytest.raises(ValueError, match=r"split.x must hold pixels in \[0, 1\]"):
        generative.train(gan, data.Split(x * 255, torch.zeros(4, dtype=torch.long)), num_epochs=1)
    with pytest.raises(ValueError, match="split.y"):
        generative.train(gan, data.Split(x, torch.full((4,), 4)), num_epochs=1)
