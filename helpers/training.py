"""Train the CNN with a progress bar, and load it back (or retrain it) in later notebooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from helpers import architectures, checkpoints, evaluation, runtime, validation
from helpers.data import Dataset, Split

Transform = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (model, x, y) -> x
# (model, x, y, logits) -> a scalar added to the cross-entropy; x requires grad
Penalty = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class History:
    """Per-epoch training loss and accuracy, and the same on a held-out split if one was given."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def train(
    model: nn.Module,
    train_split: Split,
    *,
    num_epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    test_split: Split | None = None,
    progress: bool = True,
    transform: Transform | None = None,
    penalty: Penalty | None = None,
) -> History:
    """Train `model` in place with Adam on `train_split`, on the model's device.

    Args:
        train_split: images with labels (N,), or with probabilities (N, K) as soft targets
            (a surrogate trained on a black box's probabilities); accuracy uses their argmax.
        num_epochs: passes over the data (>= 1).
        generator: a CPU generator for the batch order and dropout (same seed, same model).
        test_split: evaluated after each epoch, for the learning curves.
        transform: ``transform(model, x, y) -> x`` changes each batch before the step (noise,
            or an attack for adversarial training); it runs with the model in train mode.
        penalty: ``penalty(model, x, y, logits) -> scalar`` added to the cross-entropy of each
            batch, with ``x`` requiring grad so it may use input gradients (``helpers.decoy``'s
            "right for the right reasons" penalty); None trains exactly as before.
    Returns:
        The `History`. The model is left in eval mode.
    """
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if batch_size < 1 or lr <= 0:
        raise ValueError(f"batch_size ({batch_size}) and lr ({lr}) must be positive")
    device = runtime.model_device(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    history = History()
    bar = progress_bar(num_epochs * -(-len(train_split) // batch_size), "training", progress)
    with seeded(generator, device):
        for epoch in range(num_epochs):
            model.train()
            total_loss, total_correct = 0.0, 0
            for batch in torch.randperm(len(train_split), generator=generator).split(batch_size):
                x, y = train_split.x[batch].to(device), train_split.y[batch].to(device)
                if transform is not None:
                    x = transform(model, x, y)
                    model.train()  # an attack in the transform may have switched modes
                if penalty is not None:
                    x = x.detach().requires_grad_(True)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                if penalty is not None:
                    loss = loss + penalty(model, x, y, logits)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(batch)
                labels = y.argmax(1) if y.dim() == 2 else y  # soft targets: their top class
                total_correct += (logits.argmax(1) == labels).sum().item()
                bar.update()
            history.loss.append(total_loss / len(train_split))
            history.accuracy.append(total_correct / len(train_split))
            postfix = {"epoch": epoch + 1, "loss": history.loss[-1], "acc": history.accuracy[-1]}
            if test_split is not None:
                result = evaluation.evaluate(model, test_split)
                history.test_loss.append(result.loss)
                history.test_accuracy.append(result.accuracy)
                postfix["test_acc"] = result.accuracy
            bar.set_postfix(postfix)
    bar.close()
    model.eval()
    return history


def progress_bar(total: int, desc: str, progress: bool = True) -> tqdm:
    """The training loops' bar: ``total`` batches, updated once per batch."""
    return tqdm(total=total, desc=desc, unit="batch", disable=not progress)


@contextmanager
def seeded(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Within the block, draws from the global RNG (dropout) are seeded from ``generator`` on a
    forked RNG: the same generator gives the same model, and the caller's random state is left
    alone."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        yield


def train_new_cnn(
    dataset: Dataset,
    *,
    num_epochs: int,
    seed: int,
    device: torch.device | str = "cpu",
    architecture: str = "SmallCNN",
    initial: nn.Module | None = None,
    **settings: Any,
) -> tuple[nn.Module, dict[str, Any], History]:
    """Train a new model (weights from `seed`) on `dataset.train`, evaluating on `dataset.test`
    after each epoch; return (model, its checkpoint metadata, history). `architecture` names a
    name of `architectures.classifiers()`, built with the dataset's shape, classes and
    statistics.
    `initial`, a model of that architecture built for this dataset, is a warm start: training
    starts from a copy of its weights (left unchanged) instead of new ones."""
    build = architectures.classifier(architecture)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the weights' init must not touch the global RNG
        torch.manual_seed(seed)
        model = build(dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std)
    if initial is not None:
        _check_initial(initial, model)
        model.load_state_dict(initial.state_dict())
    model.to(device)
    history = train(
        model,
        dataset.train,
        num_epochs=num_epochs,
        generator=generator,
        test_split=dataset.test,
        **settings,
    )
    metadata = checkpoint_metadata(
        dataset,
        seed=seed,
        num_epochs=num_epochs,
        test_accuracy=history.test_accuracy[-1],
        architecture=architecture,
    )
    return model, metadata, history


def _check_initial(initial: nn.Module, model: nn.Module) -> None:
    """Refuse a warm start whose weights cannot fit ``model`` (another class, width or data)."""
    if type(initial) is not type(model):
        raise TypeError(
            f"initial is a {type(initial).__name__}, but the model to train is a "
            f"{type(model).__name__}: pass a {type(model).__name__} or set architecture="
            f"{type(initial).__name__!r}"
        )
    if getattr(initial, "config", None) != model.config:
        raise ValueError(
            f"initial was built with {initial.config}, but this dataset needs {model.config}: "
            "start from a model trained on this dataset (e.g. course.model())"
        )


def matched_epochs(
    num_images: int, reference_images: int, reference_epochs: int, batch_size: int = 64
) -> int:
    """Epochs that give a set of ``num_images`` at least as many optimizer steps (batches of
    ``batch_size``) as ``reference_epochs`` over ``reference_images``: a small pool is then seen
    many more times, and trained as long as a large one."""
    counts = {
        "num_images": num_images,
        "reference_images": reference_images,
        "reference_epochs": reference_epochs,
        "batch_size": batch_size,
    }
    for name, value in counts.items():
        validation.check_count(value, name)
    batches = lambda n: -(-n // batch_size)
    return -(-reference_epochs * batches(reference_images) // batches(num_images))


def checkpoint_metadata(
    dataset: Dataset,
    *,
    seed: int,
    num_epochs: int,
    test_accuracy: float,
    architecture: str = "SmallCNN",
) -> dict[str, Any]:
    """The record saved with a checkpoint; `load_or_train` checks what `expected_metadata` lists."""
    return {
        **expected_metadata(dataset, seed=seed, num_epochs=num_epochs, architecture=architecture),
        "classes": list(dataset.classes),
        "test_accuracy": test_accuracy,
    }


def expected_metadata(
    dataset: Dataset, *, seed: int, num_epochs: int, architecture: str = "SmallCNN"
) -> dict[str, Any]:
    """What a checkpoint must match to be reused: the data (down to a hash of the training
    split, so relabelled data of the same size retrains), the seed and the epochs."""
    return {
        "dataset": dataset.name,
        "train_size": len(dataset.train),
        "train_fingerprint": dataset.train.fingerprint(),
        "seed": seed,
        "num_epochs": num_epochs,
        "architecture": architecture,
    }


def load_or_train(
    dataset: Dataset,
    path: str | Path,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    num_epochs: int,
    transform: Transform | None = None,
    tags: dict[str, Any] | None = None,
    architecture: str = "SmallCNN",
    initial: nn.Module | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A `SmallCNN`: the checkpoint at `path` if it was trained on `dataset.train` with `seed`
    for `num_epochs` (and `tags`, which name the `transform`, e.g. a defence and its eps, and
    from the weights of `initial`, if given, as `train_new_cnn` takes it), else a new one
    trained with `transform` and saved, with the seconds per epoch it took. It says which
    happened, and why."""
    expected = expected_metadata(
        dataset, seed=seed, num_epochs=num_epochs, architecture=architecture
    )
    expected.update(tags or {})
    if initial is not None:  # a retrained initial model retrains this one
        if not isinstance(initial, nn.Module):
            raise TypeError(
                f"initial must be a model to start from (an nn.Module), got {initial!r}"
            )
        expected["initial"] = checkpoints.fingerprint(initial)

    def build() -> tuple[nn.Module, dict[str, Any]]:
        start_from = "" if initial is None else " from the initial model's weights"
        print(f"Training a {architecture}{start_from} for {num_epochs} epoch(s) {tags or ''}.")
        start = time.perf_counter()
        model, metadata, _ = train_new_cnn(
            dataset,
            num_epochs=num_epochs,
            seed=seed,
            device=device,
            transform=transform,
            architecture=architecture,
            initial=initial,
        )
        metadata.update(expected, seconds_per_epoch=(time.perf_counter() - start) / num_epochs)
        return model, metadata

    return checkpoints.load_or_build(path, expected=expected, build=build, device=device)
