"""The zoo's architectures: pixels in, logits out, checkpoints that round-trip, fixed seeds."""

import pytest
import torch

from helpers import architectures, checkpoints, data, training, zoo

SHAPES = [((1, 28, 28), 10), ((3, 32, 32), 4)]


CLASSIFIERS = architectures.classifiers()


def fit_and_save(dataset, path, **settings):
    """A new model trained as notebook 01 trains one, saved to ``path``."""
    model, metadata, history = training.train_new_cnn(dataset, **settings)
    checkpoints.save(model, path, metadata)
    return model, metadata, history


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize(("image_shape", "num_classes"), SHAPES)
def test_each_architecture_maps_pixels_to_logits_and_round_trips(
    name, image_shape, num_classes, tmp_path
):
    torch.manual_seed(0)
    channels = image_shape[0]
    build = architectures.classifier(name)
    model = build(image_shape, num_classes, (0.4,) * channels, (0.3,) * channels)
    x = torch.rand(3, *image_shape)
    assert model.eval()(x).shape == (3, num_classes)
    path = checkpoints.save(model, tmp_path / f"{name}.pt", {"seed": 0})
    loaded, metadata = checkpoints.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_normalization_lives_inside_the_model(name):
    # shifting the pixel statistics by hand must match a model built with other statistics
    build = architectures.classifier(name)
    torch.manual_seed(0)
    model = build((1, 28, 28), 10, (0.0,), (1.0,)).eval()
    torch.manual_seed(0)
    shifted = build((1, 28, 28), 10, (0.2,), (0.5,)).eval()
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(shifted(x), model((x - 0.2) / 0.5))


def test_lenet_rejects_images_too_small_for_its_convolutions():
    with pytest.raises(ValueError, match="at least 12"):
        zoo.LeNetBN((1, 10, 10))


def test_patch_mixer_mixes_the_patches_of_an_image_and_rejects_a_partial_patch():
    model = zoo.PatchMixer((1, 28, 28), 10, (0.5,), (0.5,), patch=4, dim=8, depth=1).eval()
    # 28 / 4 = 7 patches a side: the token MLP mixes 49 tokens, the channel MLP 8 channels
    block = model.blocks[0]
    assert block.tokens[0].in_features == 49 and block.channels[0].in_features == 8
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[:, :, :4, :4] = 1 - changed[:, :, :4, :4]  # one patch only
    assert not torch.allclose(model(changed), model(x))  # every token reaches the logits
    with pytest.raises(ValueError, match="multiples of patch=4"):
        zoo.PatchMixer((1, 30, 30), 10, (0.5,), (0.5,))


def test_train_new_cnn_trains_any_architecture_of_the_table_from_a_seed(tmp_path):
    small = data.load_dataset(sizes=(200, 50, 50))
    first, metadata, _ = fit_and_save(
        small, tmp_path / "a.pt", num_epochs=1, seed=3, architecture="MLP", progress=False
    )
    again, _, _ = fit_and_save(
        small, tmp_path / "b.pt", num_epochs=1, seed=3, architecture="MLP", progress=False
    )
    assert isinstance(first, zoo.MLP) and metadata["num_epochs"] == 1
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())
    loaded, _ = training.load_or_train(
        small, tmp_path / "a.pt", num_epochs=1, seed=3, architecture="MLP"
    )
    torch.testing.assert_close(loaded(small.test.x), first(small.test.x))


def test_load_or_train_retrains_a_checkpoint_of_another_architecture(tmp_path, capsys):
    small = data.load_dataset(sizes=(200, 50, 50))
    path = tmp_path / "model.pt"
    fit_and_save(small, path, num_epochs=1, seed=0, architecture="MLP", progress=False)
    model, _ = training.load_or_train(small, path, num_epochs=1, seed=0, architecture="LeNetBN")
    assert "architecture='MLP' but 'LeNetBN'" in capsys.readouterr().out
    assert isinstance(model, zoo.LeNetBN)


def test_unknown_architecture_names_the_choices(tmp_path):
    small = data.load_dataset(sizes=(200, 50, 50))
    with pytest.raises(ValueError, match="architecture must be one of"):
        training.train_new_cnn(small, num_epochs=1, seed=0, architecture="VGG")


def test_an_ensemble_answers_the_mean_of_its_members_log_probabilities():
    torch.manual_seed(0)
    ensemble = architectures.Ensemble(
        (1, 28, 28), 10, (0.1,), (0.3,), architecture="MLP", num_members=3
    )
    x = torch.rand(4, 1, 28, 28)
    votes = [member.eval()(x).log_softmax(1) for member in ensemble.members]
    torch.testing.assert_close(ensemble.eval()(x), sum(votes) / 3)
    assert all(isinstance(m, zoo.MLP) and m.config["mean"] == [0.1] for m in ensemble.members)
    assert not torch.equal(votes[0], votes[1])  # each member has its own initial weights


def test_an_ensemble_of_several_families_has_members_of_each_and_is_rebuilt_from_its_config():
    ensemble = architectures.Ensemble(
        (1, 28, 28), 10, (0.1,), (0.3,), architecture=("MLP", "LeNetBN"), num_members=2
    )
    kinds = [type(member) for member in ensemble.members]
    assert kinds == [zoo.MLP, zoo.MLP, zoo.LeNetBN, zoo.LeNetBN]
    assert ensemble.config["architecture"] == ["MLP", "LeNetBN"]
    again = architectures.build("Ensemble", ensemble.config)
    again.load_state_dict(ensemble.state_dict())
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(again.eval()(x), ensemble.eval()(x))


@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"architecture": "VGG"}, ValueError, "architecture must be one of"),
        ({"architecture": "Ensemble"}, ValueError, "architecture must be one of"),
        ({"num_members": 0}, ValueError, "num_members must be >= 1"),
        ({"num_members": True}, TypeError, "num_members must be an int"),
        ({"architecture": []}, ValueError, "at least one family"),
        ({"architecture": ["MLP", "VGG"]}, ValueError, "architecture must be one of"),
    ],
)
def test_an_ensemble_rejects_bad_members(settings, error, message):
    with pytest.raises(error, match=message):
        architectures.Ensemble((1, 28, 28), 10, **settings)
