"""Course set-up in one call: seeding, device, threads, artifacts, the dataset, and the models
each notebook builds on (loaded, or rebuilt and saved, with the same signature).

A notebook's set-up cell is ``course = course.setup(seed=SEED, device=DEVICE, ...)``; then
``course.model()`` is the provider's CNN of notebook 01 and ``course.surrogate(...)`` the end
user's surrogate of notebook 04, each loaded from ``artifacts/`` when it matches, else rebuilt.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from IPython.display import Code
from torch import nn

from helpers import (
    blackbox,
    checkpoints,
    data,
    defences,
    generative,
    generators,
    runtime,
    surrogate,
    training,
)


@dataclass(frozen=True)
class Course:
    """What every notebook shares: the data, the device, the seed, and where artifacts go."""

    dataset: data.Dataset
    device: torch.device
    seed: int
    num_epochs: int
    generator: torch.Generator
    artifacts: Path
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # by kind, once loaded

    def path(self, kind: str) -> Path:
        """Where a model of ``kind`` ("cnn", "surrogate", ...) for this dataset is saved."""
        return self.artifacts / f"{kind}_{self.dataset.name}.pt"

    def model(self) -> nn.Module:
        """The provider's CNN (notebook 01): loaded if it was trained on this exact training
        split with this seed and number of epochs, else trained now and saved."""
        model, metadata = training.load_or_train(
            self.dataset,
            self.path("cnn"),
            seed=self.seed,
            device=self.device,
            num_epochs=self.num_epochs,
        )
        print(f"The provider's CNN: test accuracy {metadata['test_accuracy']:.2%}.")
        self.metadata["cnn"] = metadata
        return model

    def robust_model(
        self,
        defence: str = "fgsm_rs",
        *,
        num_epochs: int | None = None,
        start_from: nn.Module | None = None,
        **settings: Any,
    ) -> nn.Module:
        """A CNN trained with ``defence`` ("noise", "fgsm_rs" or "pgd") and its ``settings``
        (e.g. eps=0.3): loaded if it matches, else trained now and saved (notebook 10). Each
        recipe has its own file, so a notebook's short recipe and a benchmark's full one never
        overwrite each other. ``start_from``: a warm start, training goes on from a copy of
        this model's weights (e.g. ``course.model()``, left unchanged) instead of new ones; its
        fingerprint is part of the recipe, so a retrained start retrains this model."""
        generator = torch.Generator(self.device).manual_seed(self.seed)
        num_epochs = num_epochs or self.num_epochs
        recipe = dict(settings)
        if start_from is not None:
            recipe["from"] = checkpoints.fingerprint(start_from)[:8]
        model, metadata = training.load_or_train(
            self.dataset,
            self.recipe_path(f"cnn_{defence}", recipe, num_epochs),
            seed=self.seed,
            device=self.device,
            num_epochs=num_epochs,
            transform=defences.make_transform(defence, settings, generator),
            tags={"defence": defence, **settings},
            initial=start_from,
        )
        print(f"The {defence} CNN: test accuracy {metadata['test_accuracy']:.2%}.")
        self.metadata[f"cnn_{defence}"] = metadata
        return model

    def gan(
        self,
        kind: str = "conditional",
        *,
        num_epochs: int,
        judge: nn.Module | None = None,
        progress: bool = True,
        **settings: Any,
    ) -> generators.GAN:
        """A GAN of ``kind`` ("conditional" or "counterfactual", notebook 15; notebook 16 loads
        the conditional one) trained for ``num_epochs`` with ``settings`` (of
        ``generative.train``) and ``judge``: loaded if it matches (the judge's weights included),
        else trained now (with a progress bar unless ``progress`` is False) and saved."""
        gan, metadata = generative.load_or_train(
            self.dataset,
            self.recipe_path(f"gan_{kind}", settings, num_epochs),
            kind=kind,
            seed=self.seed,
            device=self.device,
            num_epochs=num_epochs,
            judge=judge,
            progress=progress,
            **settings,
        )
        print(f"The {kind} GAN took {metadata['seconds']:.0f} s to train.")
        self.metadata[f"gan_{kind}"] = metadata
        return gan

    def recipe_path(self, kind: str, settings: dict[str, Any], num_epochs: int) -> Path:
        """Where a model of ``kind`` trained with ``settings`` for ``num_epochs`` is saved: each
        recipe has its own file, so a notebook's short one never overwrites a benchmark's."""
        recipe = [f"{name}{value}" for name, value in sorted(settings.items())]
        return self.path("_".join([kind, *recipe, f"{num_epochs}epochs"]))

    def surrogate(self, black_box: blackbox.BlackBox, **settings: Any) -> nn.Module:
        """The user's surrogate (notebook 04), trained on the pool through ``black_box`` with
        ``settings`` (keyword arguments of ``surrogate.train_surrogate``), or loaded."""
        model, metadata = surrogate.load_or_train(
            self.dataset,
            self.path("surrogate"),
            seed=self.seed,
            device=self.device,
            black_box=black_box,
            **settings,
        )
        print(f"The user's surrogate cost {metadata['label_queries']} label queries.")
        self.metadata["surrogate"] = metadata
        return model


def setup(
    *,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    dataset: str = data.BUNDLED,
    num_epochs: int = 8,
    num_threads: int | None = None,
) -> Course:
    """Seed everything once, choose the device and threads, and load ``dataset``.

    Args:
        seed: seeds Python, NumPy and torch (call it from the parameters' cell, never on import).
        device: "auto" picks CUDA, then MPS, then the CPU.
        dataset: a name of ``data.DATASETS``; num_epochs: how long ``Course.model`` trains.
        num_threads: torch's CPU threads (None keeps torch's choice).
    """
    generator = runtime.seed_everything(seed)
    runtime.set_num_threads(num_threads)
    chosen = runtime.resolve_device(device)
    loaded = data.load_dataset(dataset)
    course = Course(loaded, chosen, seed, num_epochs, generator, runtime.artifacts_dir())
    print(
        f"{loaded.name}: {len(loaded.train):,} training, {len(loaded.pool):,} pool and "
        f"{len(loaded.test):,} test images; device {chosen}, seed {seed}."
    )
    return course


def show_code(function: Any) -> Code:
    """The source of a helper (a function, class or method), highlighted, for a notebook to
    show beside the prose that teaches it: ``course.show_code(attacks.deepfool)``."""
    return Code(inspect.getsource(function), language="python")


__all__ = ["Course", "setup", "show_code"]
