"""Train the GANs of notebook 15, make counterfactuals with one, and project onto the other's
range (Defense-GAN, notebook 16).

Both GANs share one training loop and one discriminator: a (K + 1)-way classifier that learns
real images by their class and generated ones as "fake" (index K); the generator learns to make
it answer the class it was asked for (Bischof et al. 2023). A conditional generator draws digits
from noise; a counterfactual generator turns an image into one of a target class, paying for
every pixel it changes and, if a ``judge`` is given, for every answer of the judge that is not
the target. ``project`` finds the image the conditional generator makes that is closest to x,
by gradient steps on z from random starts (Samangouei et al. 2018).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from helpers import checkpoints, engine, generators, records, runtime, training, validation
from helpers.data import Dataset, Split

# (x, y, generator) -> fakes, the class each should pass for, the generator's extra loss
Fakes = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor, Tensor]]


@dataclass
class GanHistory:
    """Per epoch: the discriminator's and the generator's mean loss, and the share of real
    training images the discriminator assigns to their class (the fake class included)."""

    discriminator_loss: list[float] = field(default_factory=list)
    generator_loss: list[float] = field(default_factory=list)
    real_accuracy: list[float] = field(default_factory=list)


def train(
    gan: generators.GAN,
    split: Split,
    *,
    num_epochs: int,
    batch_size: int = 64,
    lr: float = 4e-4,
    size_weight: float = 1.0,
    judge: nn.Module | None = None,
    judge_weight: float = 4.0,
    near_share: float = 0.5,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> GanHistory:
    """Train ``gan`` in place on ``split`` (images with labels), on the GAN's device, with Adam.

    Args:
        num_epochs: passes over the data (>= 1); generator: a CPU generator for the batch
            order, the latent codes, the target classes and dropout (same seed, same GAN).
        size_weight: counterfactual only: the weight of the mean L1 change per pixel ×
            ``x[0].numel() / 10``; judge: a classifier (frozen) that must answer each
            counterfactual's target class, with weight ``judge_weight`` (None: the
            discriminator is the only judge, as in Bischof et al.).
        near_share: counterfactual only: the share of target classes that are the judge's
            (else the discriminator's) second choice on x, the near counterfactuals a mistake
            asks for; the others are drawn uniformly.
    Returns: the `GanHistory`; the GAN is left in eval mode.
    """
    validation.check_images(split.x, "split.x")
    validation.check_labels(split.y, len(split), gan.num_classes, name="split.y")
    validation.check_count(num_epochs, "num_epochs")
    validation.check_non_negative(size_weight, "size_weight")
    validation.check_non_negative(judge_weight, "judge_weight")
    if not 0 <= near_share <= 1:
        raise ValueError(f"near_share must be in [0, 1], got {near_share!r}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = runtime.model_device(gan)

    def fakes(x: Tensor, y: Tensor, rng: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Fake images, the class each should pass for, and the generator's extra loss."""
        if gan.kind == "conditional":  # one fake per real image, of the same class
            z = torch.randn(len(x), gan.latent_size, generator=rng).to(device)
            fake = gan.generator(z, y)
            return fake, y, fake.new_zeros(())
        target = torch.randint(gan.num_classes, (len(x),), generator=rng).to(device)
        near = (torch.rand(len(x), generator=rng) < near_share).to(device)
        with torch.no_grad():
            second = (judge or gan.discriminator)(x).topk(2, dim=1).indices[:, 1]
        target = torch.where(near, second, target)
        fake = gan.generator(x, target)
        loss = size_weight * (fake - x).abs().flatten(1).mean(1).mean() * x[0].numel() / 10
        if judge is not None:
            loss = loss + judge_weight * F.cross_entropy(judge(fake), target)
        return fake, target, loss

    with _frozen(judge) if judge is not None else contextlib.nullcontext():
        return _train_pair(
            gan,
            split,
            fakes,
            num_epochs=num_epochs,
            batch_size=batch_size,
            lr=lr,
            generator=generator,
            progress=progress,
        )


def _train_pair(
    gan, split, fakes: Fakes, *, num_epochs, batch_size, lr, generator, progress
) -> GanHistory:
    """The one loop: a discriminator step on real and fake images, then a generator step."""
    device, fake_class = runtime.model_device(gan), gan.num_classes
    betas = (0.5, 0.999)  # DCGAN's
    optimizers = [
        torch.optim.Adam(part.parameters(), lr=lr, betas=betas)
        for part in (gan.discriminator, gan.generator)
    ]
    history = GanHistory()
    bar = training.progress_bar(num_epochs * -(-len(split) // batch_size), gan.kind, progress)
    with training.seeded(generator, device):
        for epoch in range(num_epochs):
            gan.train()
            sums = [0.0, 0.0, 0]  # summed losses, right answers on real images
            for batch in torch.randperm(len(split), generator=generator).split(batch_size):
                x, y = split.x[batch].to(device), split.y[batch].to(device)
                fake, target, extra = fakes(x, y, generator)
                real_scores = gan.discriminator.scores(x)
                fake_class_labels = torch.full_like(y, fake_class)
                d_loss = F.cross_entropy(real_scores, y) + F.cross_entropy(
                    gan.discriminator.scores(fake.detach()), fake_class_labels
                )
                _step(optimizers[0], d_loss)
                g_loss = F.cross_entropy(gan.discriminator.scores(fake), target) + extra
                _step(optimizers[1], g_loss)
                sums[0] += d_loss.item() * len(batch)
                sums[1] += g_loss.item() * len(batch)
                sums[2] += (real_scores.argmax(1) == y).sum().item()
                bar.update()
            history.discriminator_loss.append(sums[0] / len(split))
            history.generator_loss.append(sums[1] / len(split))
            history.real_accuracy.append(sums[2] / len(split))
            bar.set_postfix(
                epoch=epoch + 1,
                d_loss=history.discriminator_loss[-1],
                g_loss=history.generator_loss[-1],
            )
    bar.close()
    gan.eval()
    return history


def _step(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode with no parameter gradients for the block, then as it was."""
    was_training, flags = model.training, [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield
    finally:
        model.train(was_training)
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)


def load_or_train(
    dataset: Dataset,
    path: str | Path,
    *,
    kind: str,
    seed: int,
    num_epochs: int,
    device: torch.device | str = "cpu",
    judge: nn.Module | None = None,
    progress: bool = True,
    **settings: Any,
) -> tuple[generators.GAN, dict[str, Any]]:
    """A GAN of ``kind``: the checkpoint at ``path`` if it was trained on ``dataset.train`` with
    ``seed``, ``num_epochs``, ``settings`` (of ``train``) and the same judge, else a new one
    trained and saved, with the seconds it took. Says which happened, and why."""
    expected = training.expected_metadata(
        dataset, seed=seed, num_epochs=num_epochs, architecture=f"GAN:{kind}"
    )
    expected.update(settings, judge=checkpoints.fingerprint(judge) if judge is not None else None)

    def build() -> tuple[nn.Module, dict[str, Any]]:
        print(f"Training a {kind} GAN for {num_epochs} epoch(s).")
        with torch.random.fork_rng(devices=[]):  # the weights' init must not touch the RNG
            torch.manual_seed(seed)
            gan = generators.GAN(
                dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std, kind=kind
            ).to(device)
        start = time.perf_counter()
        history = train(
            gan,
            dataset.train,
            num_epochs=num_epochs,
            judge=judge,
            generator=torch.Generator().manual_seed(seed),
            progress=progress,
            **settings,
        )
        seconds = time.perf_counter() - start
        return gan, {**expected, "seconds": seconds, "history": vars(history)}

    gan, metadata = checkpoints.load_or_build(path, expected=expected, build=build, device=device)
    return gan, metadata  # type: ignore[return-value]


@torch.no_grad()
def counterfactuals(
    gan: generators.GAN, model: nn.Module, mistakes: records.Predictions, *, max_queries: int = 3
) -> records.Explanation:
    """The counterfactual of each image toward its true class y, checked by ``model``: an
    ``Explanation`` whose ``x_adv`` is G(x, y) (``success``: ``model`` answers y there).
    With ``max_queries`` > 1, an image the model does not yet read as y is passed through the
    generator again, G(G(x, y), y), and so on: one query of ``model`` per pass, counted and
    bounded by the engine's ``Run`` as every method's are."""
    if not isinstance(gan, generators.GAN) or gan.kind != "counterfactual":
        kind = gan.kind if isinstance(gan, generators.GAN) else type(gan).__name__
        raise TypeError(f"counterfactuals need a counterfactual GAN, got a {kind} one")
    if not isinstance(mistakes, records.Predictions):
        raise TypeError(
            f"mistakes must be a record of images, got {type(mistakes).__name__}; pass "
            "evaluation.find_misclassified(model, split)."
        )
    validation.check_images(mistakes.x, "mistakes.x")
    validation.check_labels(mistakes.y, len(mistakes), gan.num_classes, name="mistakes.y")
    validation.check_count(max_queries, "max_queries")
    x, y, index = mistakes.x, mistakes.y, mistakes.index
    run = engine.Run(model, x, y, index=index, max_queries=max_queries)
    with runtime.eval_mode(gan), torch.no_grad(), run:
        while len(rows := run.active()):  # not yet read as y, with a query left
            parts = zip(run.x_adv[rows].split(500), run.y[rows].split(500))
            candidate = torch.cat([gan.generator(part, part_y) for part, part_y in parts])
            run.keep(run.query(candidate, rows))
        return run.finish("gan_counterfactual", {"max_queries": max_queries})


@torch.no_grad()
def fakeness(gan: generators.GAN, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """(N,) the discriminator's probability that each image of ``x`` is generated."""
    validation.check_images(x, "x")
    with runtime.eval_mode(gan):
        return torch.cat([gan.discriminator.fakeness(part) for part in x.split(batch_size)])


@dataclass(frozen=True, eq=False)
class Projection:
    """The closest images the generator makes: ``x`` (N, C, H, W), their codes ``z`` (N, D)
    and classes ``y`` (N,), and the squared L2 ``error`` (N,) to the images projected."""

    x: Tensor
    z: Tensor
    y: Tensor
    error: Tensor


def project(
    gan: generators.GAN,
    x: Tensor,
    *,
    num_steps: int = 50,
    num_restarts: int = 1,
    lr: float = 0.4,
    generator: torch.Generator | None = None,
    batch_size: int = 100,
) -> Projection:
    """Defense-GAN's projection: min over z and class of ||G(z, class) − x||², by ``num_steps``
    Adam steps from ``num_restarts`` random starts for each of the K classes (K × restarts
    codes per image, all batched); the best code of each image wins. x (N, C, H, W) in [0, 1]."""
    if gan.kind != "conditional":
        raise TypeError(f"project needs a conditional GAN, got a {gan.kind} one")
    validation.check_images(x, "x")
    validation.check_count(num_steps, "num_steps")
    validation.check_count(num_restarts, "num_restarts")
    validation.check_positive(lr, "lr")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    # The same starts for every image, so that its projection never depends on its batch,
    # drawn restart by restart: the first restart's starts are those of a single restart.
    shape = (gan.num_classes, gan.latent_size)  # (K, D)
    starts = torch.stack([torch.randn(shape, generator=generator) for _ in range(num_restarts)])
    starts = starts[:, None].expand(-1, len(x), -1, -1).to(x.device)  # (R, N, K, D)
    x = x.detach()
    parts = [
        _project(gan, x[i : i + batch_size], starts[:, i : i + batch_size], num_steps, lr)
        for i in range(0, len(x), batch_size)
    ]
    return Projection(
        *(torch.cat([getattr(p, name) for p in parts]) for name in ("x", "z", "y", "error"))
    )


def _project(gan, x: Tensor, starts: Tensor, num_steps: int, lr: float) -> Projection:
    shape = starts.shape[:3]  # (R, N, K)
    z = starts.flatten(0, 2).clone().requires_grad_(True)  # (R N K, D)
    classes = torch.arange(shape[2], device=x.device).expand(shape).flatten()
    target = x[None, :, None].expand(*shape, *x.shape[1:]).flatten(0, 2)  # (R N K, C, H, W)
    optimizer = torch.optim.Adam([z], lr=lr)
    with runtime.eval_mode(gan), torch.enable_grad():
        for _ in range(num_steps):
            error = (gan.generator(z, classes) - target).flatten(1).pow(2).sum(1)
            (z.grad,) = torch.autograd.grad(error.sum(), z)  # the generator's weights stay put
            optimizer.step()
        with torch.no_grad():
            images = gan.generator(z, classes)
    error = (images - target).flatten(1).pow(2).sum(1)  # (R N K,)
    best = error.view(shape).transpose(0, 1).flatten(1).argmin(1)  # (N,): over (R, K)
    image = torch.arange(shape[1], device=x.device)
    rows = ((best // shape[2]) * shape[1] + image) * shape[2] + best % shape[2]
    return Projection(images[rows], z.detach()[rows], classes[rows], error[rows])


__all__ = [
    "GanHistory",
    "Projection",
    "counterfactuals",
    "fakeness",
    "load_or_train",
    "project",
    "train",
]
