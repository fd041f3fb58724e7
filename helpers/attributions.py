"""Attribution maps from captum, one explicit table: the methods a practitioner reaches for to
ask which pixels a model's answer rests on, each with its settings stated.

Every method explains one number per image, the *margin* z_y - z_other: the true class's logit
over the wrong class the model answered (``other``, by default its prediction). A mistake is a
choice between those two classes, and it is the number whose sign an inverted explanation flips,
so every method answers the same question; ``target="true"`` (z_y) and ``target="predicted"``
(z_other) ask the others. Maps are signed; the measures of ``helpers.faithfulness`` read their
magnitude. The model's mode, and each submodule's, is left exactly as it was (eval inside), and
captum's random draws (KernelSHAP) come from ``generator``, never the global random state.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from captum import attr
from torch import Tensor, nn

from helpers import evidence, records, validation

TARGETS = ("margin", "true", "predicted")
BLOCK = 4  # side of the squares that Occlusion hides and KernelSHAP switches on and off


@dataclass(frozen=True)
class Attribution:
    """One method of the table: ``label`` for menus and tables, ``function(forward, model, x,
    args, generator, **settings)`` returning maps (N, C or 1, H, W), its ``settings``, and
    ``note``: what they mean."""

    label: str
    function: Callable[..., Tensor]
    settings: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# Each function takes (forward, model, x, args, generator, **settings): ``forward(x, *args)``
# gives the number explained, (n,), and captum repeats ``args`` alongside any copies of x.


def _saliency(forward, model, x, args, generator) -> Tensor:
    return attr.Saliency(forward).attribute(x, abs=False, additional_forward_args=args)


def _input_x_gradient(forward, model, x, args, generator) -> Tensor:
    return attr.InputXGradient(forward).attribute(x, additional_forward_args=args)


def _integrated_gradients(forward, model, x, args, generator, *, n_steps: int) -> Tensor:
    method = attr.IntegratedGradients(forward)
    return method.attribute(
        x,
        baselines=0.0,
        n_steps=n_steps,
        additional_forward_args=args,
        internal_batch_size=len(x) * 8,
    )


def _occlusion(forward, model, x, args, generator, *, window: int, stride: int) -> Tensor:
    channels = x.shape[1]
    return attr.Occlusion(forward).attribute(
        x,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=0.0,
        additional_forward_args=args,
        perturbations_per_eval=64,
    )


def _grad_cam(forward, model, x, args, generator) -> Tensor:
    layers = evidence.conv_layers(model)
    if not layers:
        raise TypeError(
            f"Grad-CAM needs a model with a conv layer; {type(model).__name__} has none"
        )
    cam = attr.LayerGradCam(forward, evidence.find_layer(model, layers[-1]))
    coarse = cam.attribute(x, additional_forward_args=args, relu_attributions=False)  # signed
    return attr.LayerAttribution.interpolate(coarse, tuple(x.shape[2:]), "bilinear")


def _kernel_shap(forward, model, x, args, generator, *, n_samples: int) -> Tensor:
    squares = block_features(tuple(x.shape[1:]), BLOCK).to(x.device)
    with _seeded(generator):
        return attr.KernelShap(forward).attribute(
            x,
            baselines=0.0,
            feature_mask=squares,
            n_samples=n_samples,
            additional_forward_args=args,
            perturbations_per_eval=50,
        )


METHODS: dict[str, Attribution] = {
    "saliency": Attribution("Saliency", _saliency, {}, "the signed input gradient"),
    "input_x_gradient": Attribution(
        "Input × Gradient", _input_x_gradient, {}, "x times the input gradient"
    ),
    "integrated_gradients": Attribution(
        "Integrated Gradients",
        _integrated_gradients,
        {"n_steps": 32},
        "from a black image, 32 Gauss-Legendre steps",
    ),
    "occlusion": Attribution(
        "Occlusion",
        _occlusion,
        {"window": BLOCK, "stride": 2},
        "a 4 x 4 black square slid by 2 pixels; the drop it causes, averaged per pixel",
    ),
    "grad_cam": Attribution(
        "Grad-CAM",
        _grad_cam,
        {},
        "at the last conv layer, no ReLU (the cause of a mistake argues against y), "
        "upsampled bilinearly to the image",
    ),
    "kernel_shap": Attribution(
        "KernelSHAP",
        _kernel_shap,
        {"n_samples": 200},
        "4 x 4 squares switched to black, 200 samples per image",
    ),
}


def attribute(
    model: nn.Module,
    x: Tensor | records.Predictions,
    y: Tensor | None = None,
    method: str = "saliency",
    *,
    other: Tensor | None = None,
    target: str = "margin",
    generator: torch.Generator | None = None,
    **settings: Any,
) -> Tensor:
    """The attribution maps of ``method`` (a name of ``METHODS``) for each image.

    Args:
        model: the classifier, x -> logits (N, K).
        x, y: images (N, C, H, W) in [0, 1] and labels (N,), or a record whose ``x``, ``y`` and
            ``y_pred`` (the answer it holds, never asked again) are used.
        other: (N,) the wrong class each margin is taken against (default: the record's
            ``y_pred``, else the model's answer on ``x``).
        target: "margin" (z_y - z_other), "true" (z_y) or "predicted" (z_other).
        generator: KernelSHAP's random draws (default: seeded with 0); settings override the
            table's.
    Returns: (N, C, H, W) maps, or (N, 1, H, W) for Grad-CAM, detached, in ``x``'s dtype and
        on its device.
    """
    if isinstance(x, records.Predictions):
        if y is not None:
            raise ValueError("pass either a record or images x with labels y, not both")
        x, y, other = x.x, x.y, x.y_pred if other is None else other
    validation.check_choice(method, "method", list(METHODS))
    validation.check_choice(target, "target", TARGETS)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    validation.check_images(x, "x")
    validation.check_model(model, x)
    if y is None:
        raise TypeError("y is missing: pass labels y (N,) with the images, or pass a record")
    validation.check_labels(y, len(x), device=x.device)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    chosen = METHODS[method]
    unknown = set(settings) - set(chosen.settings)
    if unknown:
        raise TypeError(f"{method} takes the settings {sorted(chosen.settings)}, not {unknown}")
    if len(x) == 0:
        return x.new_zeros(0, 1 if method == "grad_cam" else x.shape[1], *x.shape[2:])
    with _eval_modes(model):
        if other is None:
            with torch.no_grad():
                other = model(x).argmax(1)
        validation.check_labels(other, len(x), device=x.device, name="other")
        forward = _scalar(model, target)
        with warnings.catch_warnings():  # captum's notes on what we chose: batches, fresh x
            warnings.filterwarnings("ignore", "Input Tensor 0 did not already require gradients")
            warnings.filterwarnings("ignore", "You are providing multiple inputs for Lime")
            maps = chosen.function(
                forward, model, x, (y, other), generator, **{**chosen.settings, **settings}
            )
    return maps.detach().to(x.dtype)


def _scalar(model: nn.Module, target: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """(x (n, C, H, W), y (n,), other (n,)) -> (n,): the number explained for each image."""

    def forward(x: Tensor, y: Tensor, other: Tensor) -> Tensor:
        logits = model(x)
        true = logits.gather(1, y[:, None])[:, 0]
        wrong = logits.gather(1, other[:, None])[:, 0]
        return {"margin": true - wrong, "true": true, "predicted": wrong}[target]

    return forward


def block_features(shape: tuple[int, int, int], size: int) -> Tensor:
    """KernelSHAP's features (1, C, H, W) int64: the ``size`` x ``size`` squares of the image,
    numbered row by row (all channels of a square together)."""
    _, height, width = shape
    rows = torch.arange(height)[:, None] // size
    cols = torch.arange(width)[None, :] // size
    numbers = rows * -(-width // size) + cols  # (H, W)
    return numbers.expand(1, shape[0], height, width).clone()


@contextmanager
def _eval_modes(model: nn.Module) -> Iterator[None]:
    """The model in eval mode for the block, then every submodule back in its own mode."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


@contextmanager
def _seeded(generator: torch.Generator) -> Iterator[None]:
    """captum's draws from the global RNG, seeded from ``generator`` on a forked RNG."""
    validation.check_generator(generator, torch.device("cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        yield


__all__ = ["BLOCK", "METHODS", "TARGETS", "Attribution", "attribute", "block_features"]
