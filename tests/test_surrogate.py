"""Surrogate training: label queries, the user's own pool, augmentation, seeds, checkpoints."""

import pytest
import torch
from tiny import SHAPE, make_cnn
from torch import nn

from helpers import (
    architectures,
    data,
    evaluation,
    models,
    surrogate,
    training,
)
from helpers.attacks import transfer
from helpers.blackbox import BlackBox

NUM_CLASSES = 3


def make_provider(seed: int = 0) -> nn.Module:
    return make_cnn(seed, num_classes=NUM_CLASSES)


def make_pool(num_images: int, seed: int = 1) -> torch.Tensor:
    return torch.rand((num_images, *SHAPE), generator=torch.Generator().manual_seed(seed))


def train(black_box, pool, **settings):
    settings = {"num_classes": NUM_CLASSES, "num_epochs": 2, **settings}
    return surrogate.train_surrogate(black_box, pool, **settings)


def test_label_queries_are_counted_and_reported_apart_from_explanation_queries():
    black_box = BlackBox(make_provider())
    result = train(black_box, make_pool(30), num_seed=10, num_rounds=2)
    assert result.label_queries == black_box.queries == 10 * 2**2 == len(result.x)
    assert [r.label_queries for r in result.rounds] == [10, 20, 40]
    assert [r.num_images for r in result.rounds] == [10, 20, 40]
    x = make_pool(8, seed=2)
    y = torch.zeros(8, dtype=torch.int64)
    explanation = transfer.explain(black_box, result.model, x, y, max_queries=3)
    assert black_box.queries == 40 + explanation.forward_passes.sum().item()
    assert result.label_queries == 40


def test_targets_are_the_black_box_answers_and_probabilities_train_softly():
    provider, pool = make_provider(), make_pool(20)
    hard = train(BlackBox(provider), pool, num_rounds=1)
    soft = train(BlackBox(provider), pool, num_rounds=1, probabilities=True)
    with torch.no_grad():
        logits = provider(hard.x)
    assert torch.equal(hard.targets, logits.argmax(1)) and hard.targets.dtype == torch.int64
    assert torch.allclose(soft.targets, provider(soft.x).softmax(1).detach())
    assert torch.equal(hard.x[:20], soft.x[:20])  # same generator, same pool images


def test_softened_answers_are_the_providers_softmax_at_the_temperature():
    provider, pool = make_provider(), make_pool(16)
    with torch.no_grad():
        logits = 5 * provider(pool)
    for temperature in (1.0, 3.0, 10.0):
        softened = surrogate.soften(logits.softmax(1), temperature)
        assert torch.allclose(softened, (logits / temperature).softmax(1), atol=1e-6)
    with pytest.raises(ValueError, match="temperature must be finite and positive"):
        surrogate.soften(logits.softmax(1), 0.0)


def test_distilling_at_a_temperature_fits_the_small_probabilities_the_answers_hide():
    provider, pool = make_provider(), make_pool(64)
    with torch.no_grad():
        logits = 8 * provider(pool)  # answers sharp enough that cross-entropy ignores the rest
    targets = logits.softmax(1)
    centred = lambda z: z - z.mean(1, keepdim=True)  # noqa: E731  (logits up to a constant)
    errors = {}
    for temperature in (1.0, 10.0):
        model = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0)
        surrogate.fit(model, pool, targets, num_epochs=30, seed=0, temperature=temperature)
        with torch.no_grad():
            own = model(pool).log_softmax(1)
        errors[temperature] = (centred(own) - centred(logits)).pow(2).mean().item()
        assert not model.training
    assert errors[10.0] < 0.8 * errors[1.0]  # the provider's margins, not only its top class
    same = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0)
    plain = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0)
    surrogate.fit(same, pool, targets, num_epochs=1, seed=0, temperature=1.0)
    surrogate.fit(plain, pool, targets, num_epochs=1, seed=0)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in plain.state_dict().items())


@pytest.mark.parametrize(
    "temperature, error, message",
    [
        (0.0, ValueError, "finite and positive"),
        (float("inf"), ValueError, "finite and positive"),
        (True, TypeError, "real number"),
        ("2", TypeError, "real number"),
        (2.0, ValueError, "not its labels"),
    ],
)
def test_a_bad_temperature_is_refused_before_training(temperature, error, message):
    pool = make_pool(8)
    labels = make_provider()(pool).argmax(1)
    model = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=message):
        surrogate.fit(model, pool, labels, num_epochs=1, temperature=temperature)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_training_on_probabilities_lowers_the_soft_cross_entropy():
    provider, pool = make_provider(), make_pool(64)
    with torch.no_grad():
        targets = (5 * provider(pool)).softmax(1)  # sharper than the tiny provider's own
    entropy = -(targets * targets.log()).sum(1).mean().item()
    model = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0)
    divergence = lambda: nn.functional.cross_entropy(model(pool), targets).item() - entropy
    before = divergence()
    surrogate.fit(model, pool, targets, num_epochs=20, seed=0)
    assert divergence() < 0.5 * before and not model.training


def test_a_label_only_black_box_cannot_train_on_probabilities_and_counts_nothing():
    black_box = BlackBox(make_provider(), probabilities=False)
    with pytest.raises(PermissionError, match="labels only"):
        train(black_box, make_pool(10), probabilities=True)
    assert black_box.queries == 0


def test_the_pool_is_disjoint_from_the_provider_training_data():
    dataset = data.load_dataset(sizes=(300, 100, 50))
    provider = models.SmallCNN(width=4).eval()
    result = surrogate.train_surrogate(
        BlackBox(provider), dataset.pool.x, num_classes=10, num_seed=40, num_epochs=1
    )
    flat = lambda x: x.flatten(1)
    same = lambda a, b: (flat(a)[:, None] == flat(b)[None]).all(2)  # (len(a), len(b))
    assert not same(dataset.pool.x, dataset.train.x).any()
    assert same(result.x, dataset.pool.x).any(1).all()
    assert not same(result.x, dataset.train.x).any()


def test_the_surrogate_architecture_differs_from_the_provider():
    result = train(BlackBox(make_provider()), make_pool(10))
    assert type(result.model) is models.SurrogateCNN
    assert architectures.ARCHITECTURES["SurrogateCNN"] is models.SurrogateCNN
    assert models.SurrogateCNN is not models.SmallCNN


def test_same_seed_same_surrogate_and_the_global_random_state_is_untouched():
    provider, pool = make_provider(), make_pool(30)

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return train(BlackBox(provider), pool, num_seed=12, num_rounds=1, generator=generator)

    state = torch.get_rng_state()
    first, same, other = run(1), run(1), run(2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.x, same.x) and torch.equal(first.targets, same.targets)
    weights, again = first.model.state_dict(), same.model.state_dict()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert not torch.equal(first.x, other.x)


def test_jacobian_augmentation_follows_the_sign_of_the_gradient_by_hand():
    # two classes, logits w_c · x: dp_1/dx = p_1 p_0 (w_1 - w_0), whose sign is (+, -, -, +);
    # the last pixel is clipped at 1
    layer = nn.Linear(4, 2, bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.5, 2.0]]))
    model = nn.Sequential(nn.Flatten(), layer).eval()
    x = torch.tensor([0.5, 0.5, 0.5, 0.95], dtype=torch.float64).view(1, 1, 2, 2)
    before = x.clone()
    x_new = surrogate.jacobian_augment(model, x, torch.tensor([1]), step_size=0.1)
    expected = torch.tensor([0.6, 0.4, 0.4, 1.0], dtype=torch.float64).view(1, 1, 2, 2)
    assert torch.allclose(x_new, expected) and torch.equal(x, before)


@pytest.mark.parametrize(
    "num_images, epochs", [(1000, 40), (64, 640), (65, 320), (15, 640), (2000, 20), (1984, 21)]
)
def test_matched_epochs_give_a_small_pool_as_many_optimizer_steps(num_images, epochs):
    # 1,000 images in batches of 64 are 16 batches: 40 epochs are 640 steps
    assert training.matched_epochs(num_images, 1000, 40) == epochs
    batches = -(-num_images // 64)
    assert batches * epochs >= 640 > batches * (epochs - 1)


def test_matched_epochs_reject_an_empty_pool():
    with pytest.raises(ValueError, match="num_images"):
        training.matched_epochs(0, 1000, 40)


def test_the_label_budget_is_checked_before_any_query():
    black_box = BlackBox(make_provider(), max_queries=30)
    with pytest.raises(ValueError, match="needs 40 label queries"):
        train(black_box, make_pool(20), num_seed=10, num_rounds=2)
    assert black_box.queries == 0


def test_noise_trains_on_noisy_batches_reproducibly_leaving_the_global_random_state_alone():
    provider, pool = make_provider(), make_pool(30)
    seen = []

    def run(noise):
        batches = lambda model, x, y: seen.append(x.clone()) or x  # noqa: E731
        model = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0)
        targets = BlackBox(provider).probabilities(pool)
        surrogate.fit(model, pool, targets, num_epochs=1, noise=noise, transform=batches)
        return model

    state = torch.get_rng_state()
    plain, noisy, again = run(0.0), run(0.3), run(0.3)
    assert torch.equal(torch.get_rng_state(), state)
    weights = [m.state_dict() for m in (plain, noisy, again)]
    assert all(torch.equal(weights[1][k], weights[2][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the transform sees the clean batch; the noise is added after it
    rows = pool.flatten(1)
    assert all((x.flatten(1)[:, None] == rows).all(2).any(1).all() for x in seen)
    result = train(BlackBox(provider), pool, noise=0.3)
    assert result.settings["noise"] == 0.3


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"num_seed": 11}, "exceeds the 10 images"),
        ({"num_seed": 0}, "num_seed"),
        ({"num_rounds": -1}, "num_rounds"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"num_rounds": 1, "step_size": 0.0}, "step_size"),
        ({"noise": -0.1}, "noise"),
        ({"noise": True}, "noise"),
    ],
)
def test_bad_settings_are_rejected_before_any_query(settings, message):
    black_box = BlackBox(make_provider())
    with pytest.raises((TypeError, ValueError), match=message):
        train(black_box, make_pool(10), **settings)
    assert black_box.queries == 0


def test_bad_pool_images_are_rejected():
    with pytest.raises(ValueError, match="x_pool"):
        train(BlackBox(make_provider()), make_pool(10) * 2)


def test_a_saved_surrogate_is_loaded_without_spending_label_queries(tmp_path, capsys):
    dataset = data.load_dataset(sizes=(100, 30, 20))
    provider = models.SmallCNN(width=4).eval()
    path = tmp_path / "surrogate.pt"
    settings = {"num_epochs": 1, "probabilities": True}
    first_box, second_box = BlackBox(provider), BlackBox(provider)
    trained, metadata = surrogate.load_or_train(
        dataset, path, seed=0, black_box=first_box, **settings
    )
    loaded, again = surrogate.load_or_train(dataset, path, seed=0, black_box=second_box, **settings)
    assert "Loaded" in capsys.readouterr().out
    assert first_box.queries == 30 == metadata["label_queries"] and second_box.queries == 0
    logits = evaluation.predict_logits
    assert torch.equal(logits(trained, dataset.test.x), logits(loaded, dataset.test.x))
    assert again == metadata and type(loaded) is models.SurrogateCNN


class Majority(models.Classifier):
    """A candidate that can only learn the most common answer."""

    def __init__(self, *shape, **named) -> None:
        super().__init__(*shape, **named)
        self.bias = nn.Parameter(torch.zeros(self.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1)


class Balanced(nn.Module):
    """A random linear provider of pixels about their mean: its classes are about equally common."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.weight = torch.randn(SHAPE[0] * SHAPE[1] * SHAPE[2], NUM_CLASSES, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - 0.5) @ self.weight


def test_the_candidate_that_agrees_best_on_held_out_answers_is_chosen(monkeypatch):
    monkeypatch.setitem(architectures.ARCHITECTURES, "Majority", Majority)
    black_box = BlackBox(Balanced())
    result = train(
        black_box, make_pool(100), architecture=("Majority", "SurrogateCNN"), num_epochs=20
    )
    assert black_box.queries == result.label_queries == 100  # choosing cost no label query
    assert set(result.candidates) == {"Majority", "SurrogateCNN"}
    held = torch.randperm(100, generator=torch.Generator().manual_seed(result_seed(0)))[:20]
    shares = torch.bincount(result.targets[held], minlength=NUM_CLASSES) / 20
    assert result.candidates["Majority"] <= shares.max().item() + 1e-6
    assert result.candidates["SurrogateCNN"] > result.candidates["Majority"]
    assert result.settings["chosen"] == "SurrogateCNN" and type(result.model) is models.SurrogateCNN


def result_seed(generator_seed: int) -> int:
    """The seed ``train_surrogate`` draws first from ``torch.Generator().manual_seed(...)``."""
    return int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(generator_seed)))


def test_train_surrogate_distils_every_model_and_refuses_labels_before_any_query():
    provider, pool = make_provider(), make_pool(20)
    box = BlackBox(provider)
    with pytest.raises(ValueError, match="probabilities=True"):
        train(box, pool, temperature=4.0)
    assert box.queries == 0
    hot = train(BlackBox(provider), pool, probabilities=True, temperature=4.0)
    assert hot.settings["temperature"] == 4.0
    assert train(BlackBox(provider), pool, probabilities=True).settings["temperature"] == 1.0
    seed = result_seed(0)  # train's default generator
    same = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=seed)
    surrogate.fit(same, hot.x, hot.targets, num_epochs=2, seed=seed, temperature=4.0)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in hot.model.state_dict().items())


def test_an_ensemble_trains_each_member_on_its_own_with_the_next_seed():
    pool, provider = make_pool(40), make_provider()
    targets = provider(pool).argmax(1)
    ensemble = surrogate.new_surrogate(SHAPE, NUM_CLASSES, pool, seed=0, num_members=2)
    alone = [
        models.SurrogateCNN(
            SHAPE, NUM_CLASSES, *map(tuple, (ensemble.config["mean"], ensemble.config["std"]))
        )
        for _ in range(2)
    ]
    for member, copy in zip(ensemble.members, alone):
        copy.load_state_dict(member.state_dict())
    surrogate.fit(ensemble, pool, targets, num_epochs=2, seed=5)
    for i, copy in enumerate(alone):
        surrogate.fit(copy, pool, targets, num_epochs=2, seed=5 + i)
        assert all(
            torch.equal(v, ensemble.members[i].state_dict()[k])
            for k, v in copy.state_dict().items()
        )
    assert not ensemble.training
    assert not torch.equal(ensemble.members[0](pool), ensemble.members[1](pool))


def test_train_surrogate_builds_an_ensemble_of_the_chosen_architecture():
    result = train(BlackBox(make_provider()), make_pool(30), num_members=3)
    assert type(result.model).__name__ == "Ensemble" and len(result.model.members) == 3
    assert result.candidates == {} and result.settings["num_members"] == 3


def test_combine_trains_members_of_every_family_instead_of_choosing_one():
    black_box = BlackBox(make_provider())
    families = ("MLP", "SurrogateCNN")
    result = train(black_box, make_pool(30), architecture=families, num_members=2, combine=True)
    kinds = [type(member).__name__ for member in result.model.members]
    assert kinds == ["MLP", "MLP", "SurrogateCNN", "SurrogateCNN"]
    assert result.candidates == {} and result.settings["chosen"] == list(families)
    assert result.label_queries == black_box.queries == 30
    few = train(
        BlackBox(make_provider()), make_pool(30), architecture=families, num_seed=4, combine=True
    )
    assert few.label_queries == 4  # nothing held out, so few labels are enough
    with pytest.raises(TypeError, match="combine"):
        train(BlackBox(make_provider()), make_pool(30), architecture=families, combine="yes")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"architecture": "VGG"}, "architecture must be one of"),
        ({"architecture": []}, "architecture must be one of"),
        ({"num_members": 0}, "num_members"),
        ({"architecture": ("MLP", "SurrogateCNN"), "num_seed": 4}, "at least 5"),
    ],
)
def test_bad_architecture_settings_are_rejected_before_any_query(settings, message):
    black_box = BlackBox(make_provider())
    with pytest.raises(ValueError, match=message):
        train(black_box, make_pool(10), **settings)
    assert black_box.queries == 0


def test_a_saved_choice_of_architecture_is_loaded_again(tmp_path, capsys):
    dataset = data.load_dataset(sizes=(100, 30, 20))
    provider = models.SmallCNN(width=4).eval()
    settings = {"num_epochs": 1, "architecture": ("MLP", "SurrogateCNN"), "num_members": 2}
    path = tmp_path / "surrogate.pt"
    trained, metadata = surrogate.load_or_train(
        dataset, path, seed=0, black_box=BlackBox(provider), **settings
    )
    second_box = BlackBox(provider)
    loaded, _ = surrogate.load_or_train(dataset, path, seed=0, black_box=second_box, **settings)
    assert "Loaded" in capsys.readouterr().out and second_box.queries == 0
    assert metadata["chosen"] in {"MLP", "SurrogateCNN"} and len(loaded.members) == 2
    logits = evaluation.predict_logits
    assert torch.equal(logits(trained, dataset.test.x), logits(loaded, dataset.test.x))
