"""Training, evaluation and the runtime helpers, on small slices of the bundled data."""

import copy

import pytest
import torch
from torch import nn

from helpers import checkpoints, data, evaluation, models, runtime, training


@pytest.fixture(scope="module")
def small():
    return data.load_dataset(sizes=(600, 100, 200))


def new_model(dataset, seed=0):
    torch.manual_seed(seed)
    return models.SmallCNN(
        dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std, width=8
    )


def test_training_reduces_the_loss(small):
    model = new_model(small)
    before = evaluation.evaluate(model, small.train)
    history = training.train(
        model, small.train, num_epochs=2, generator=torch.Generator().manual_seed(0), progress=False
    )
    after = evaluation.evaluate(model, small.train)
    assert after.loss < 0.8 * before.loss and after.accuracy > 0.5 > before.accuracy
    assert history.loss[1] < history.loss[0] and len(history.accuracy) == 2
    assert not model.training


def test_same_generator_same_model_and_global_rng_untouched(small):
    weights = []
    for _ in range(2):
        model = new_model(small)
        state = torch.get_rng_state()
        training.train(
            model,
            small.train,
            num_epochs=1,
            generator=torch.Generator().manual_seed(5),
            progress=False,
        )
        assert torch.equal(torch.get_rng_state(), state)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_history_records_the_test_split_when_given(small):
    history = training.train(
        new_model(small), small.train, num_epochs=1, test_split=small.test, progress=False
    )
    assert len(history.test_accuracy) == 1 and 0 <= history.test_accuracy[0] <= 1


@pytest.mark.parametrize(
    "settings", [{"num_epochs": 0}, {"num_epochs": 1.5}, {"num_epochs": 1, "lr": 0}]
)
def test_bad_training_settings_are_rejected(small, settings):
    with pytest.raises(ValueError, match="must be"):
        training.train(new_model(small), small.train, progress=False, **settings)


def test_load_or_train_rebuilds_a_corrupt_checkpoint_then_loads_it(small, tmp_path, capsys):
    path = tmp_path / "cnn.pt"
    path.write_bytes(b"corrupt")
    model, metadata = training.load_or_train(small, path, num_epochs=1, seed=0)
    assert "Rebuilding" in capsys.readouterr().out
    assert metadata["dataset"] == "mnist-bundled" and metadata["train_size"] == 600
    again, _ = training.load_or_train(small, path, num_epochs=1, seed=0)
    assert "Loaded" in capsys.readouterr().out
    x = small.test.x[:8]
    torch.testing.assert_close(again(x), model(x))


def test_load_or_train_refuses_a_checkpoint_of_another_split(small, tmp_path, capsys):
    path = tmp_path / "cnn.pt"
    model, metadata, _ = training.train_new_cnn(small, num_epochs=1, seed=0, progress=False)
    checkpoints.save(model, path, metadata)
    bigger = data.load_dataset(sizes=(700, 100, 200))
    training.load_or_train(bigger, path, num_epochs=1, seed=0)
    assert "train_size=600 but 700" in capsys.readouterr().out


class FixedLogits(nn.Module):
    """A 'model' that ignores pixels and returns a logit row picked by the first pixel."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table), requires_grad=False)

    def forward(self, x):
        return self.table[x[:, 0, 0, 0].round().long()]


def test_find_misclassified_by_hand():
    # rows: confident 1, hesitant 0, very confident 2
    model = FixedLogits([[0.0, 5.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 9.0]])
    x = torch.zeros(4, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 1.0, 1.0]) * torch.tensor([0, 1, 1, 1])
    x[3, 0, 0, 0] = 2  # out of [0, 1], but this toy model only uses it as a row index
    split = data.Split(x, torch.tensor([1, 1, 0, 1]))  # image 1 is wrong (0), image 3 is wrong (2)
    mistakes = evaluation.find_misclassified(model, split)
    assert mistakes.index.tolist() == [3, 1]  # most confident first
    assert mistakes.y_pred.tolist() == [2, 0] and mistakes.y.tolist() == [1, 1]
    assert mistakes.confidence[0] > 0.99 and len(mistakes) == 2


def test_confusion_matrix_and_per_class_error_by_hand():
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 2, 2])
    matrix = evaluation.confusion_matrix(y, y_pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    torch.testing.assert_close(
        evaluation.per_class_error(matrix), torch.tensor([0.5, 1 / 3, 0.0]).double()
    )


def test_confusion_matrix_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        evaluation.confusion_matrix(torch.zeros(3).long(), torch.zeros(2).long(), 2)


def test_predict_logits_restores_the_model_mode(small):
    model = new_model(small).train()
    evaluation.predict_logits(model, small.test.x[:10])
    assert model.training


def test_seed_everything_makes_draws_repeatable():
    generator = runtime.seed_everything(7)
    first = (torch.rand(3), torch.rand(3, generator=generator))
    generator = runtime.seed_everything(7)
    assert torch.equal(first[0], torch.rand(3)) and torch.equal(
        first[1], torch.rand(3, generator=generator)
    )


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_seed_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="seed must be"):
        runtime.seed_everything(bad)


def test_device_is_chosen_at_call_time(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.default_device().type == "cuda"
    assert runtime.resolve_device("cpu").type == "cpu"


def test_thread_count_can_be_set():
    before = torch.get_num_threads()
    assert runtime.set_num_threads(1) == 1
    assert runtime.set_num_threads(None) == 1
    runtime.set_num_threads(before)
    with pytest.raises(ValueError, match="num_threads"):
        runtime.set_num_threads(0)


def test_soft_targets_train_like_their_one_hot_labels(small):
    """Probabilities (N, K) as targets: one-hot ones give the labels' model, up to rounding."""
    soft = data.Split(small.train.x, torch.nn.functional.one_hot(small.train.y, 10).float())
    models_, histories = [], []
    for split in (small.train, soft):
        model = new_model(small)
        histories.append(
            training.train(
                model,
                split,
                num_epochs=1,
                generator=torch.Generator().manual_seed(1),
                progress=False,
            )
        )
        models_.append(model)
    x = small.test.x[:16]
    torch.testing.assert_close(models_[1](x), models_[0](x), rtol=1e-4, atol=1e-4)
    assert histories[1].accuracy == pytest.approx(histories[0].accuracy, abs=0.01)


def test_relabelled_training_data_of_the_same_size_retrains(small, tmp_path, capsys):
    path = tmp_path / "cnn.pt"
    training.load_or_train(small, path, num_epochs=1, seed=0)
    flipped = small.train.y.clone()
    flipped[:5] = (flipped[:5] + 1) % 10
    relabelled = data.Dataset(
        small.name,
        small.classes,
        data.Split(small.train.x, flipped),
        small.pool,
        small.test,
        small.source,
    )
    assert relabelled.train.fingerprint() != small.train.fingerprint()
    assert (
        small.train.fingerprint()
        == data.Split(small.train.x.clone(), small.train.y.clone()).fingerprint()
    )
    capsys.readouterr()
    training.load_or_train(relabelled, path, num_epochs=1, seed=0)
    assert "train_fingerprint=" in capsys.readouterr().out


def test_a_transform_changes_every_batch_before_the_step(small):
    seen = []

    def transform(model, x, y):
        assert model.training and x.shape[1:] == (1, 28, 28) and len(x) == len(y)
        seen.append(len(x))
        return (x + 0.1).clamp(0, 1)

    model = new_model(small)
    training.train(
        model, small.train, num_epochs=1, batch_size=100, progress=False, transform=transform
    )
    assert seen == [100] * 6 and not model.training


def test_num_epochs_must_be_a_real_int(small):
    with pytest.raises(ValueError, match="num_epochs must be a positive int, got True"):
        training.train(new_model(small), small.train, num_epochs=True, progress=False)


def test_predict_gives_a_record_of_the_whole_split(small):
    model = new_model(small).eval()
    everything = evaluation.predict(model, small.test)
    assert everything.index.tolist() == list(range(len(small.test)))
    assert torch.equal(everything.logits, evaluation.predict_logits(model, small.test.x))
    mistakes = evaluation.find_misclassified(model, small.test)
    assert set(mistakes.index.tolist()) == set(everything.index[everything.misclassified].tolist())


def test_a_zero_penalty_trains_the_same_model_as_none(small):
    def zero(model, x, y, logits):
        assert model.training and x.requires_grad and logits.shape == (len(x), 10)
        return logits.sum() * 0.0

    weights = []
    for penalty in (None, zero):
        model = new_model(small)
        training.train(model, small.train, num_epochs=1, progress=False, penalty=penalty)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_penalty_is_added_to_the_loss_and_can_use_input_gradients(small):
    def favour_zero(model, x, y, logits):
        (grad,) = torch.autograd.grad(logits[:, 0].sum(), x, create_graph=True)
        assert grad.shape == x.shape  # the penalty may take input gradients
        return -10.0 * logits.log_softmax(1)[:, 0].mean()

    plain, pushed = new_model(small), new_model(small)
    training.train(plain, small.train, num_epochs=1, progress=False)
    training.train(pushed, small.train, num_epochs=1, progress=False, penalty=favour_zero)
    share = [
        (evaluation.predict(m, small.test).y_pred == 0).float().mean() for m in (plain, pushed)
    ]
    assert share[1] > 0.5 > share[0]


def test_a_warm_start_goes_on_from_the_initial_weights_and_leaves_them_alone(small):
    initial, _, _ = training.train_new_cnn(small, num_epochs=1, seed=0, progress=False)
    before = {name: value.clone() for name, value in initial.state_dict().items()}
    warm, _, _ = training.train_new_cnn(
        small, num_epochs=1, seed=1, initial=initial, progress=False
    )
    by_hand = copy.deepcopy(initial)  # what a warm start means: train on from these weights
    generator = torch.Generator().manual_seed(1)  # train_new_cnn's, from its seed
    training.train(by_hand, small.train, num_epochs=1, generator=generator, progress=False)
    for name, value in before.items():
        assert torch.equal(initial.state_dict()[name], value), name  # the start is untouched
        assert torch.equal(warm.state_dict()[name], by_hand.state_dict()[name]), name


def test_a_warm_start_that_cannot_fit_is_refused_before_training(small, tmp_path):
    other_width = new_model(small)  # width 8: train_new_cnn builds width 32
    surrogate_cnn = models.SurrogateCNN(small.image_shape, small.num_classes)
    with pytest.raises(ValueError, match="initial was built with"):
        training.train_new_cnn(small, num_epochs=1, seed=0, initial=other_width)
    with pytest.raises(TypeError, match="initial is a SurrogateCNN.*architecture='SurrogateCNN'"):
        training.train_new_cnn(small, num_epochs=1, seed=0, initial=surrogate_cnn)
    with pytest.raises(TypeError, match="initial must be a model"):
        training.load_or_train(small, tmp_path / "cnn.pt", num_epochs=1, seed=0, initial="cnn")
    assert not (tmp_path / "cnn.pt").exists()
