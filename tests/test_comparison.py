"""The table of every method compared: each runs on a tiny model and gives maps of the images."""

import pytest
import torch

from helpers import comparison, evaluation, generators, models
from helpers.data import Split

SHAPE = (1, 8, 8)  # a GAN needs sides divisible by 4


@pytest.fixture(scope="module")
def subjects() -> comparison.Subjects:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = models.SmallCNN(SHAPE, 4, width=2).eval()
        gan = generators.GAN(SHAPE, 4, kind="counterfactual", width=2, discriminator_width=2)
    pool = torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(1))
    user = comparison.user_surrogate(model, pool, num_epochs=1, seed=0)
    return comparison.Subjects(model, user, gan.eval())


@pytest.fixture(scope="module")
def mistakes(subjects):
    x = torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(2))
    answers = evaluation.predict_logits(subjects.model, x).argmax(1)
    split = Split(x, (answers + 1) % 4)  # labels the model gets wrong, every one
    return evaluation.find_misclassified(subjects.model, split)[:3]


@pytest.mark.parametrize("name", list(comparison.METHODS))
def test_every_method_maps_the_mistakes(subjects, mistakes, name):
    entry = comparison.METHODS[name]
    found = comparison.explain(name, subjects, mistakes)
    channels = 1 if name == "grad_cam" else SHAPE[0]
    assert found.maps.shape == (3, channels, *SHAPE[1:]) and entry.kind in comparison.KINDS
    if entry.kind in ("white box", "black box", "generative"):
        assert torch.equal(found.maps, found.explanation.delta)
        assert torch.equal(found.explanation.index, mistakes.index)
    else:
        assert found.explanation is None
    again = comparison.explain(name, subjects, mistakes)
    assert torch.equal(found.maps, again.maps)  # the same default generator


def test_a_missing_subject_or_method_is_named(subjects, mistakes):
    with pytest.raises(ValueError, match="surrogate"):
        comparison.explain("boundary", comparison.Subjects(subjects.model), mistakes)
    with pytest.raises(ValueError, match="name"):
        comparison.explain("lime", subjects, mistakes)
    with pytest.raises(TypeError, match="record"):
        comparison.explain("saliency", subjects, mistakes.x)
