"""The one table of the architectures the course builds and checkpoints, by name.

``ARCHITECTURES`` maps a name to its class: the course's CNNs (``helpers.models``), the zoo's
MLP, LeNet, ResNet and MLP-Mixer (``helpers.zoo``), an ``Ensemble`` of any of them (here, since
it builds its members by name) and the GAN of notebook 15 (``helpers.generators``).
``classifiers()`` names those that map images to logits. Every model keeps its constructor's
arguments in ``config``, so ``build(name, config)`` makes it again (``helpers.checkpoints``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from helpers import generators, models, validation, zoo


class Ensemble(models.Classifier):
    """Members that vote: its logits are the mean of their log-probabilities (a geometric mean
    of their probabilities, up to normalization).

    Args:
        shape: image_shape, num_classes, mean, std, as `models.Classifier` takes them; each
            member normalizes with them.
        architecture: a name of ``classifiers()`` (not an ensemble), or several: members of
            each family, whose gradients then average into one (a surrogate for a provider of
            unknown family); num_members: how many of each.
    Input (N, C, H, W) in [0, 1]; output (N, K). Each member is trained on its own (see
    ``surrogate.fit``), so members of one family differ only by their initial weights and
    batch order.
    """

    def __init__(
        self,
        *shape: Any,
        architecture: str | Sequence[str] = "SmallCNN",
        num_members: int = 4,
        **named: Any,
    ) -> None:
        names = [architecture] if isinstance(architecture, str) else list(architecture)
        stored = architecture if isinstance(architecture, str) else names
        super().__init__(*shape, architecture=stored, num_members=num_members, **named)
        members = [name for name in classifiers() if name != "Ensemble"]
        if not names:
            raise ValueError("architecture must name at least one family.")
        for name in names:
            validation.check_choice(name, "architecture", members)
        validation.check_count(num_members, "num_members")
        statistics = self.config["mean"], self.config["std"]
        self.members = nn.ModuleList(
            ARCHITECTURES[name](self.image_shape, self.num_classes, *map(tuple, statistics))
            for name in names
            for _ in range(num_members)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        votes = torch.stack([member(x).log_softmax(1) for member in self.members])
        return votes.mean(0)  # (N, K)


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "SmallCNN": models.SmallCNN,
    "SurrogateCNN": models.SurrogateCNN,
    "MLP": zoo.MLP,
    "LeNetBN": zoo.LeNetBN,
    "SmallResNet": zoo.SmallResNet,
    "PatchMixer": zoo.PatchMixer,  # no surrogate candidate list holds it: the unknown family
    "Ensemble": Ensemble,
    "GAN": generators.GAN,
}


def classifiers() -> list[str]:
    """The names of the table's classifiers (images in, logits out), in the table's order."""
    return [name for name, kind in ARCHITECTURES.items() if issubclass(kind, models.Classifier)]


def classifier(name: str) -> type[models.Classifier]:
    """The classifier class called ``name``, or a clear error listing ``classifiers()``."""
    validation.check_choice(name, "architecture", classifiers())
    return ARCHITECTURES[name]


def build(name: str, config: dict[str, Any]) -> nn.Module:
    """A new model of architecture ``name`` from its ``config`` (as a checkpoint stores it:
    lists where the constructor took tuples)."""
    validation.check_choice(name, "architecture", tuple(ARCHITECTURES))
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return ARCHITECTURES[name](**arguments)


__all__ = ["ARCHITECTURES", "Ensemble", "build", "classifier", "classifiers"]
