"""The end user's surrogate: a different CNN trained on the user's own images, labelled by the
black box, optionally grown with Jacobian-based dataset augmentation (Papernot et al. 2017); or
the architecture, among candidates, that best predicts a held-out share of those answers, as an
ensemble of several members (no extra label query: the same answers decide).

Every image the black box labels is a *label query*; ``Surrogate.label_queries`` reports them,
apart from the queries that explanations spend later.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from helpers import (
    architectures,
    checkpoints,
    defences,
    engine,
    evaluation,
    models,
    objectives,
    runtime,
    training,
    validation,
)
from helpers.blackbox import BlackBox
from helpers.data import Dataset, Split


@dataclass(frozen=True)
class Round:
    """One round of training: label queries spent so far, training images, and the agreement
    with the black box on the check split (None without one)."""

    label_queries: int
    num_images: int
    agreement: float | None


@dataclass(frozen=True, eq=False)
class Surrogate:
    """A trained surrogate and what it cost.

    ``x`` (M, C, H, W): the images it was trained on (pool images, then synthetic ones);
    ``targets``: the black box's answers for them, labels (M,) or probabilities (M, K);
    ``candidates``: each candidate architecture's agreement on the held-out share of the pool
    images (empty when one architecture was given).
    """

    model: nn.Module
    x: Tensor
    targets: Tensor
    label_queries: int
    rounds: list[Round]
    settings: dict[str, object] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        """Agreement with the black box on the check split after the last round."""
        return self.rounds[-1].agreement


def nearest_answered(x: Tensor, y: Tensor, pool: Tensor, answers: Tensor) -> Tensor:
    """For each image, the nearest (L2) image of ``pool`` that the black box answered y to: a
    point known to be answered y, at no query (``boundary.explain``'s starts).

    Args:
        x: (N, C, H, W) in [0, 1], the images to explain; y: (N,) their true classes.
        pool: (M, C, H, W) images the black box answered, such as a ``Surrogate``'s ``x``;
            answers: its answers, labels (M,) or probabilities (M, K) (read by their argmax),
            such as the ``Surrogate``'s ``targets``.
    Returns: (N, C, H, W) in [0, 1]; an image whose class no answer gave keeps x itself, which
        ``boundary.explain`` reads as no start.
    """
    validation.check_images(x, "x")
    validation.check_labels(y, len(x), device=x.device)
    validation.check_images(pool, "pool")
    if answers.shape[:1] != pool.shape[:1] or answers.dim() not in (1, 2):
        raise ValueError(
            f"answers must be one label (M,) or one row of probabilities (M, K) per pool image, "
            f"M = {len(pool)}; got shape {tuple(answers.shape)}."
        )
    if len(pool) == 0:
        return x.clone()
    pool = pool.to(x.device, x.dtype)
    labels = (answers.argmax(1) if answers.dim() == 2 else answers).to(x.device)
    distance = torch.cdist(x.flatten(1), pool.flatten(1))  # (N, M)
    distance[labels[None] != y[:, None]] = torch.inf
    nearest = distance.argmin(1)  # (N,)
    found = torch.isfinite(distance.gather(1, nearest[:, None]))[:, 0]
    return torch.where(found[:, None, None, None], pool[nearest], x)


def new_surrogate(
    image_shape: tuple[int, int, int],
    num_classes: int,
    x_pool: Tensor,
    *,
    seed: int,
    architecture: str | Sequence[str] = "SurrogateCNN",
    num_members: int = 1,
    **config: Any,
) -> models.Classifier:
    """A fresh model of ``architecture`` (a name of `architectures.classifiers()`; an `Ensemble` of
    ``num_members`` of them if more than one; several names: an `Ensemble` of ``num_members``
    of each) normalized with the statistics of the user's images ``x_pool``; its weights come
    from ``seed``, and the global random state is left alone."""
    names = [architecture] if isinstance(architecture, str) else list(architecture)
    for name in names or [""]:
        architectures.classifier(name)  # a clear error for an unknown name
    validation.check_count(num_members, "num_members")
    mean = tuple(x_pool.mean(dim=(0, 2, 3)).tolist())
    std = tuple(x_pool.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist())
    if num_members > 1 or not isinstance(architecture, str):  # the Ensemble keeps the names
        config = dict(architecture=architecture, num_members=num_members, **config)
        architecture = "Ensemble"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build = architectures.classifier(architecture)
        return build(image_shape, num_classes, mean, std, **config)


def jacobian_augment(model: nn.Module, x: Tensor, y: Tensor, step_size: float) -> Tensor:
    """Papernot et al.'s new points x + step_size · sign(∂F_y/∂x), clipped to [0, 1].

    Args: ``model`` the surrogate, ``x`` (N, C, H, W) in [0, 1], ``y`` (N,) the black box's
    labels, F the surrogate's softmax; a negative ``step_size`` steps the other way, as in
    Papernot et al.'s periodic step size. Returns (N, C, H, W); the model is left as it was.
    """
    validation.check_images(x, "x")
    validation.check_model(model, x)
    _check_step_size(step_size)
    with runtime.eval_mode(model):
        _, _, grad = engine.objective_gradient(model, x, y, objectives.probability)
    return (x + step_size * grad.sign()).clamp(0, 1)


def _check_noise(noise: object) -> None:
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a real number, got {noise!r}.")
    if not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise}.")


def _check_step_size(step_size: object) -> None:
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real):
        raise TypeError(f"step_size must be a real number, got {step_size!r}.")
    if not 0 < abs(step_size) < math.inf:
        raise ValueError(f"step_size must be nonzero and finite, got {step_size}.")


def train_surrogate(
    black_box: BlackBox,
    x_pool: Tensor,
    *,
    num_classes: int,
    num_seed: int | None = None,
    num_rounds: int = 0,
    step_size: float = -0.1,
    probabilities: bool = False,
    num_epochs: int = 40,
    batch_size: int = 64,
    architecture: str | Sequence[str] = "SurrogateCNN",
    num_members: int = 1,
    combine: bool = False,
    noise: float = 0.0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    check: Split | None = None,
    progress: bool = False,
) -> Surrogate:
    """Label ``num_seed`` of the user's images through the black box, train, and grow the set.

    Args:
        black_box: the provider's model; each image it labels is one label query.
        x_pool: (M, C, H, W) in [0, 1], the user's own unlabelled images.
        num_seed: pool images labelled first, drawn with ``generator`` (None: all of them).
        num_rounds, step_size: Jacobian augmentation rounds; each doubles the set with
            ``jacobian_augment`` and labels the new images, so the total is num_seed·2^rounds.
            The default steps against the gradient (-0.1), toward the other classes, as the
            authors' tutorial does in its first rounds (cleverhans ``mnist_blackbox.py``);
            notebook 04 measures +0.1 staying flat where -0.1 gains agreement.
        probabilities: train on the black box's probabilities instead of its labels.
        num_epochs: passes over the set in each round; every round retrains from the same start.
        architecture: a name of `architectures.classifiers()`, or several: each is trained on 80% of
            the labelled pool images and the one that agrees best with the black box on the
            other 20% is kept (``Surrogate.candidates``), then trained on them all.
        num_members: more than 1 trains an `Ensemble` of that many, each on its own.
        combine: with several architectures, train an `Ensemble` of ``num_members`` of each
            instead of choosing one (no held-out share): their gradients average into one, a
            prior for a provider whose family is none of them (``benchmarks/blackbox.py``).
        noise: if positive, every model it trains sees its images with Gaussian noise of this
            standard deviation added to each batch (``defences.gaussian_noise``), as in
            randomized smoothing, which smooths its gradient; whether that makes a better prior
            for a boundary search depends on the provider (``benchmarks/blackbox.py --routes``
            measures it on each).
        temperature: with probabilities, every model it trains is distilled at this
            temperature (``fit``): the small probabilities weigh in, and so the margins between
            the classes the black box thought unlikely, which a boundary search's prior needs.
        check: images with the black box's labels, to record the agreement after each round.
    Returns: a `Surrogate` (its model in eval mode on ``x_pool``'s device), with its cost and
        one `Round` per round.
    """
    validation.check_images(x_pool, "x_pool")
    num_seed = len(x_pool) if num_seed is None else num_seed
    validation.check_count(num_seed, "num_seed")
    validation.check_count(num_rounds, "num_rounds", minimum=0)
    validation.check_count(num_epochs, "num_epochs")
    validation.check_count(num_members, "num_members")
    _check_noise(noise)
    _check_temperature(temperature, probabilities)
    names = [architecture] if isinstance(architecture, str) else list(architecture) or [""]
    for name in names:
        architectures.classifier(name)
    _check_step_size(step_size)
    if num_seed > len(x_pool):
        raise ValueError(f"num_seed={num_seed} exceeds the {len(x_pool)} images of x_pool.")
    if not isinstance(combine, bool):
        raise TypeError(f"combine must be True or False, got {combine!r}.")
    if len(names) > 1 and not combine and num_seed < 5:
        raise ValueError(
            f"choosing among {names} holds out a fifth of the {num_seed} labelled "
            "images: label at least 5 (num_seed)."
        )
    planned, left = num_seed * 2**num_rounds, black_box.queries_left
    if left is not None and planned > left:
        raise ValueError(
            f"num_seed={num_seed} with num_rounds={num_rounds} needs {planned} label queries, "
            f"but the black box has {left} left; use fewer images or rounds."
        )
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    x_pool = x_pool.detach()
    x = x_pool[torch.randperm(len(x_pool), generator=generator)[:num_seed]]
    ask = black_box.probabilities if probabilities else black_box.labels
    start = black_box.queries
    targets = ask(x)
    rounds: list[Round] = []
    fitting = dict(
        num_epochs=num_epochs,
        batch_size=batch_size,
        seed=seed,
        noise=noise,
        temperature=temperature,
    )
    if combine and len(names) > 1:
        candidates, chosen = {}, names
    else:
        candidates = _held_out(names, x, targets, x_pool, num_classes, **fitting)
        chosen = max(candidates, key=candidates.get) if candidates else names[0]
    build = dict(seed=seed, architecture=chosen, num_members=num_members)

    def train_round() -> nn.Module:  # every round retrains from the same start
        model = new_surrogate(tuple(x.shape[1:]), num_classes, x_pool, **build)
        model.to(x_pool.device, x_pool.dtype)  # the user's images decide the precision
        fit(model, x, targets, **fitting)
        agreement = evaluation.evaluate(model, check).accuracy if check is not None else None
        rounds.append(Round(black_box.queries - start, len(x), agreement))
        if progress:
            print(f"round {len(rounds) - 1}: {rounds[-1]}")
        return model

    model = train_round()
    for _ in range(num_rounds):  # the last round's surrogate proposes the new images
        labels = targets.argmax(1) if probabilities else targets
        x_new = jacobian_augment(model, x, labels, step_size)
        x, targets = torch.cat([x, x_new]), torch.cat([targets, ask(x_new)])
        model = train_round()
    settings = dict(num_seed=num_seed, num_rounds=num_rounds, step_size=step_size)
    settings.update(probabilities=probabilities, num_epochs=num_epochs, batch_size=batch_size)
    settings.update(
        architecture=architecture if isinstance(architecture, str) else names,
        num_members=num_members,
        combine=combine,
        noise=noise,
        temperature=temperature,
        chosen=chosen,
    )
    return Surrogate(model, x, targets, black_box.queries - start, rounds, settings, candidates)


def _held_out(
    names: list[str],
    x: Tensor,
    targets: Tensor,
    x_pool: Tensor,
    num_classes: int,
    **fitting: Any,
) -> dict[str, float]:
    """Each architecture's agreement with ``targets`` on a held-out fifth of ``x``, trained on
    the rest ({} for one name: nothing to choose)."""
    if len(names) == 1:
        return {}
    seed = fitting["seed"]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    held, kept = order[: len(x) // 5], order[len(x) // 5 :]
    answers = targets[held].argmax(1) if targets.dim() == 2 else targets[held]
    agreement = {}
    for name in names:
        model = new_surrogate(tuple(x.shape[1:]), num_classes, x_pool, seed=seed, architecture=name)
        model.to(x_pool.device, x_pool.dtype)
        fit(model, x[kept], targets[kept], **fitting)
        agree = evaluation.predict_logits(model, x[held]).argmax(1) == answers
        agreement[name] = agree.float().mean().item()
    return agreement


def fit(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    *,
    num_epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    noise: float = 0.0,
    transform: training.Transform | None = None,
    temperature: float = 1.0,
) -> None:
    """Train ``model`` in place on images ``x`` (M, C, H, W) and the black box's labels (M,)
    or probabilities (M, K), with ``training.train``; the batch order comes from ``seed`` (an
    `Ensemble`'s members are trained one by one, member i with ``seed + i``). ``noise``: the
    standard deviation of Gaussian noise added to each batch (``defences.gaussian_noise``,
    drawn from ``seed``); ``transform``: any other change of each batch, as ``training.train``
    takes it (with noise, the noise is added after it). ``temperature``: distillation (Hinton
    et al. 2015), for probabilities only: the model's softmax at this temperature is fitted to
    the answers at it (``soften``), which weighs the small probabilities, and so the margins
    between the classes the black box thought unlikely, more than the answers themselves do;
    1 fits the answers as they are."""
    _check_temperature(temperature, targets.dim() == 2)
    if isinstance(model, architectures.Ensemble):
        for i, member in enumerate(model.members):
            fit(
                member,
                x,
                targets,
                num_epochs=num_epochs,
                batch_size=batch_size,
                lr=lr,
                seed=seed + i,
                noise=noise,
                transform=transform,
                temperature=temperature,
            )
        model.eval()
        return
    generator = torch.Generator().manual_seed(seed)
    if noise > 0:
        transform = _then_noise(transform, noise, torch.Generator().manual_seed(seed + 2**31))
    if temperature != 1:
        model, targets = _Tempered(model, temperature), soften(targets, temperature)
    training.train(
        model,
        Split(x, targets),
        num_epochs=num_epochs,
        batch_size=batch_size,
        lr=lr,
        generator=generator,
        progress=False,
        transform=transform,
    )


def soften(probabilities: Tensor, temperature: float) -> Tensor:
    """The black box's answers (M, K) at ``temperature``: p^(1/T), normalized, which is the
    softmax of its logits divided by T, computed from its probabilities alone."""
    _check_temperature(temperature, probabilities=True)
    softened = probabilities.clamp(min=0) ** (1 / temperature)
    return softened / softened.sum(1, keepdim=True)


class _Tempered(nn.Module):
    """``model``'s logits divided by ``temperature``: its softmax at that temperature, for
    training (its parameters are the model's)."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) / self.temperature


def _check_temperature(temperature: object, probabilities: bool) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a real number, got {temperature!r}.")
    if not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be finite and positive, got {temperature}.")
    if temperature != 1 and not probabilities:
        raise ValueError(
            f"temperature={temperature} softens probabilities: train on the black box's "
            "probabilities (probabilities=True; targets (M, K)), not its labels."
        )


def _then_noise(
    transform: training.Transform | None, noise: float, generator: torch.Generator
) -> training.Transform:
    """``transform`` (or none), then Gaussian noise of standard deviation ``noise``."""
    noisy = defences.gaussian_noise(noise, generator)

    def both(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return noisy(model, transform(model, x, y) if transform else x, y)

    return both


def save_surrogate(result: Surrogate, path: str | Path, *, dataset: Dataset, seed: int) -> Path:
    """Save ``result.model`` with what `load_or_train` checks and what it cost."""
    return checkpoints.save(result.model, path, _metadata(result, dataset, seed))


def _metadata(result: Surrogate, dataset: Dataset, seed: int) -> dict[str, Any]:
    metadata = _expected(dataset, seed, result.settings)
    return {**metadata, "label_queries": result.label_queries, "agreement": result.agreement}


def _expected(dataset: Dataset, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """What a saved surrogate must match: the user's pool (down to a hash), seed, settings."""
    pool = {"pool_size": len(dataset.pool), "pool_fingerprint": dataset.pool.fingerprint()}
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    return {"dataset": dataset.name, **pool, "seed": seed, **settings}


def load_or_train(
    dataset: Dataset,
    path: str | Path,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    black_box: BlackBox,
    **settings: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """The user's surrogate: the checkpoint at ``path`` if it was trained on ``dataset.pool``
    with ``seed`` and ``settings`` (keyword arguments of `train_surrogate`), else a new one
    trained on ``dataset.pool.x``, spending label queries of ``black_box``, and saved. It says
    which happened, and why."""

    def build() -> tuple[nn.Module, dict[str, Any]]:
        generator = torch.Generator().manual_seed(seed)
        pool = dataset.pool.x.to(device)
        result = train_surrogate(
            black_box, pool, num_classes=dataset.num_classes, generator=generator, **settings
        )
        print(f"Trained a surrogate with {result.label_queries} label queries.")
        return result.model, _metadata(result, dataset, seed)

    expected = _expected(dataset, seed, settings)
    return checkpoints.load_or_build(path, expected=expected, build=build, device=device)


__all__ = [
    "Round",
    "Surrogate",
    "fit",
    "jacobian_augment",
    "load_or_train",
    "nearest_answered",
    "new_surrogate",
    "save_surrogate",
    "soften",
    "train_surrogate",
]
