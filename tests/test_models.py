"""The CNN, its built-in normalization, and checkpoints that round-trip or fail clearly."""

import pytest
import torch

from helpers import checkpoints, models


@pytest.fixture
def model():
    torch.manual_seed(0)
    return models.SmallCNN((1, 28, 28), 10, mean=(0.13,), std=(0.31,)).eval()


def test_forward_maps_pixels_to_logits(model):
    x = torch.rand(5, 1, 28, 28)
    assert model(x).shape == (5, 10)


def test_colour_images_of_another_size_work():
    model = models.SmallCNN((3, 32, 32), 4, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_normalization_lives_inside_the_model(model):
    x = torch.rand(3, 1, 28, 28)
    by_hand = model.classifier(model.features((x - 0.13) / 0.31))
    torch.testing.assert_close(model(x), by_hand)


@pytest.mark.parametrize(
    ("mean", "std"), [((0.5,), (0.0,)), ((0.5, 0.5), (0.2,))], ids=["zero-std", "mismatch"]
)
def test_normalize_rejects_bad_statistics(mean, std):
    with pytest.raises(ValueError, match="per channel"):
        models.Normalize(mean, std)


def test_image_size_must_survive_two_poolings():
    with pytest.raises(ValueError, match="divisible by 4"):
        models.SmallCNN((1, 30, 30))


def test_checkpoint_round_trip_keeps_outputs_and_metadata(model, tmp_path):
    metadata = {"dataset": "mnist-bundled", "seed": 0, "test_accuracy": 0.97, "classes": ["0", "1"]}
    path = checkpoints.save(model, tmp_path / "sub" / "cnn.pt", metadata)
    loaded, loaded_metadata = checkpoints.load(path, expected={"dataset": "mnist-bundled"})
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded_metadata == metadata and not loaded.training
    assert loaded.config == model.config


def test_missing_checkpoint_says_to_train_first(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint at .* yet"):
        checkpoints.load(tmp_path / "nothing.pt")


def test_corrupt_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "cnn.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(checkpoints.CheckpointError, match="not a readable checkpoint"):
        checkpoints.load(path)


def test_foreign_file_is_rejected(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(checkpoints.CheckpointError, match="not written by checkpoints.save"):
        checkpoints.load(path)


def test_checkpoint_for_another_dataset_is_rejected(model, tmp_path):
    path = checkpoints.save(model, tmp_path / "cnn.pt", {"dataset": "cifar10"})
    with pytest.raises(checkpoints.CheckpointError, match="dataset='cifar10' but 'mnist-bundled'"):
        checkpoints.load(path, expected={"dataset": "mnist-bundled"})


def test_weights_that_do_not_fit_are_rejected(model, tmp_path):
    path = checkpoints.save(model, tmp_path / "cnn.pt", {})
    record = torch.load(path, weights_only=True)
    record["config"]["width"] = 16  # the saved weights are for width 32
    torch.save(record, path)
    with pytest.raises(checkpoints.CheckpointError, match="weights do not fit SmallCNN"):
        checkpoints.load(path)


def test_unknown_architecture_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="cannot save a Linear"):
        checkpoints.save(torch.nn.Linear(2, 2), tmp_path / "x.pt", {})


def test_checkpoint_loads_without_executing_pickled_code(model, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.CHECKPOINT_FORMAT, "payload": Evil()}, path)
    with pytest.raises(checkpoints.CheckpointError, match="not a readable checkpoint"):
        checkpoints.load(path)
