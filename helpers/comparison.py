"""Every explanation of the course beside captum's attributions, as maps of the same mistakes:
one table that the faithfulness benchmark and notebook read (notebook 14).

An inverted explanation's map is its change ``delta`` (N, C, H, W) and comes with its
``Explanation``; an attribution's map is ``attributions.attribute``'s (the margin of the true
class over the model's answer); the GAN counterfactual's is G(x, y) - x. "random" draws a map
of uniform noise: the chance level of every measure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from helpers import (
    attacks,
    attributions,
    blackbox,
    generative,
    generators,
    runtime,
    surrogate,
    validation,
)
from helpers.records import Explanation, Predictions

KINDS = ("white box", "black box", "generative", "attribution", "reference")


@dataclass(frozen=True)
class Subjects:
    """What the methods explain: the ``model``; the end user's ``surrogate`` of it (the
    black-box methods); a counterfactual ``gan`` judged by it (the GAN counterfactuals)."""

    model: nn.Module
    surrogate: nn.Module | None = None
    gan: generators.GAN | None = None


@dataclass(frozen=True)
class Map:
    """A method's ``maps`` (N, C or 1, H, W) of the mistakes, and its ``explanation`` (None for
    an attribution or the reference)."""

    maps: Tensor
    explanation: Explanation | None = None


@dataclass(frozen=True)
class Entry:
    """A row of the table: ``label``, ``kind`` (one of ``KINDS``), the ``needs`` of ``Subjects``
    it takes, and ``run(subjects, mistakes, generator) -> Map``."""

    label: str
    kind: str
    run: Callable[[Subjects, Predictions, torch.Generator], Map]
    needs: tuple[str, ...] = ("model",)


def _changed(result: Explanation) -> Map:
    return Map(result.delta, result)


def _whitebox(method: str, subjects: Subjects, mistakes: Predictions, generator) -> Map:
    return _changed(attacks.explain(subjects.model, mistakes, method=method))


def _smooth(alpha: float, subjects: Subjects, mistakes: Predictions, generator) -> Map:
    x, y, index = mistakes.x, mistakes.y, mistakes.index
    return _changed(
        attacks.smooth.smooth_explanation(subjects.model, x, y, alpha=alpha, index=index)
    )


def _transfer(subjects: Subjects, mistakes: Predictions, generator) -> Map:
    black_box = blackbox.BlackBox(subjects.model)
    return _changed(attacks.transfer.explain(black_box, subjects.surrogate, mistakes))


def _boundary(subjects: Subjects, mistakes: Predictions, generator) -> Map:
    black_box = blackbox.BlackBox(subjects.model)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    probes = torch.Generator().manual_seed(seed)
    result = attacks.boundary.explain(black_box, subjects.surrogate, mistakes, generator=probes)
    return _changed(result)


def _gan(subjects: Subjects, mistakes: Predictions, generator) -> Map:
    return _changed(generative.counterfactuals(subjects.gan, subjects.model, mistakes))


def _attribution(method: str, subjects: Subjects, mistakes: Predictions, generator) -> Map:
    return Map(attributions.attribute(subjects.model, mistakes, method=method, generator=generator))


def _random(subjects: Subjects, mistakes: Predictions, generator) -> Map:
    noise = torch.rand(mistakes.x.shape, generator=generator, dtype=mistakes.x.dtype)
    return Map(noise.to(mistakes.x.device))


METHODS: dict[str, Entry] = {
    "deepfool": Entry("DeepFool", "white box", partial(_whitebox, "deepfool")),
    "deepfool_refined": Entry(
        "DeepFool + 10 refinement steps", "white box", partial(_whitebox, "deepfool_refined")
    ),
    "smooth": Entry("smooth (α = 0.9)", "white box", partial(_smooth, 0.9)),
    "smooth_unsmoothed": Entry("smooth search, α = 0", "white box", partial(_smooth, 0.0)),
    "transfer": Entry("transfer schedule", "black box", _transfer, ("model", "surrogate")),
    "boundary": Entry("boundary search", "black box", _boundary, ("model", "surrogate")),
    "gan": Entry("GAN counterfactual", "generative", _gan, ("model", "gan")),
    **{
        name: Entry(method.label, "attribution", partial(_attribution, name))
        for name, method in attributions.METHODS.items()
    },
    "random": Entry("random map (chance)", "reference", _random),
}


def explain(
    name: str,
    subjects: Subjects,
    mistakes: Predictions,
    *,
    generator: torch.Generator | None = None,
) -> Map:
    """The maps of method ``name`` (a key of ``METHODS``) for ``mistakes`` (a record: images
    (N, C, H, W) in [0, 1], labels, the model's answers), explaining ``subjects``.

    Args:
        generator: the random draws of the boundary search's probes, KernelSHAP's samples and
            the random map (default: seeded with 0).
    """
    validation.check_choice(name, "name", list(METHODS))
    if not isinstance(mistakes, Predictions):
        raise TypeError(f"mistakes must be a record (records.Predictions), got {type(mistakes)}")
    entry = METHODS[name]
    missing = [need for need in entry.needs if getattr(subjects, need) is None]
    if missing:
        raise ValueError(f"{name} needs Subjects({', '.join(missing)}=...): pass it")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    validation.check_generator(generator, torch.device("cpu"))
    return entry.run(subjects, mistakes, generator)


def user_surrogate(
    model: nn.Module, x_pool: Tensor, *, num_epochs: int = 20, seed: int = 0
) -> nn.Module:
    """The end user's surrogate of ``model`` as notebook 04 trains it: a SurrogateCNN on the
    black box's probabilities for every image of ``x_pool`` (N, C, H, W), one label query each,
    for ``num_epochs`` from ``seed``; in eval mode."""
    validation.check_images(x_pool, "x_pool")
    with torch.no_grad(), runtime.eval_mode(model):
        num_classes = validation.check_logits(model(x_pool[:1]), 1)
    black_box = blackbox.BlackBox(model, max_queries=len(x_pool))
    result = surrogate.train_surrogate(
        black_box,
        x_pool,
        num_classes=num_classes,
        probabilities=True,
        num_epochs=num_epochs,
        generator=torch.Generator().manual_seed(seed),
    )
    return result.model


__all__ = ["KINDS", "METHODS", "Entry", "Map", "Subjects", "explain", "user_surrogate"]
