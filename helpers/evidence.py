"""What a change does inside the network: Grad-CAM before and after, how far it shifts
(NISSIM, MOD, VID), whether it promotes the class it reaches or suppresses the one it leaves,
and which hidden units it moves.

Grad-CAM (Selvaraju et al. 2017) comes from captum's ``LayerGradCam``; SSIM (Wang et al. 2004)
from scikit-image. NISSIM = (1 - SSIM) / 2, MOD and VID follow Chakraborty et al. (2022). The
promotion/suppression split is the course's own version of Xu et al. (2019), whose exact
formulas are not public; class selectivity is Morcos et al.'s (2018) index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from helpers import evaluation, runtime, validation
from helpers.records import Explanation

CATEGORIES = ("suppression", "balanced", "promotion", "neither")  # codes 0, 1, 2, 3
PROMOTION_ABOVE, SUPPRESSION_BELOW = 2 / 3, 1 / 3  # thresholds on the promotion share


def conv_layers(model: nn.Module) -> list[str]:
    """Names (as ``model.named_modules()`` gives them) of the model's 2-d convolutions."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule of ``model`` named ``layer`` (e.g. "features.3"), else a clear error."""
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or layer not in modules or layer == "":
        raise ValueError(
            f"layer={layer!r} is not a module of {type(model).__name__}; its conv layers are "
            f"{conv_layers(model)} (any name of model.named_modules() works)."
        )
    return modules[layer]


def grad_cam(
    model: nn.Module, x: Tensor, target: Tensor, layer: str, *, batch_size: int = 500
) -> Tensor:
    """Grad-CAM of class ``target[i]`` for each image ``x[i]`` at ``layer``, upsampled to the
    image (bilinear) and scaled to [0, 1] by each map's maximum (an all-zero map stays zero).

    Args:
        model: the classifier, x -> logits (N, K); its mode is left as it was (eval inside).
        x: (N, C, H, W) images in [0, 1]; target: (N,) int64, one class per image.
        layer: a module name whose output is (N, C', H', W'), e.g. a conv layer.
    Returns: (N, H, W) maps on ``x``'s device.
    """
    validation.check_images(x, "x")
    validation.check_labels(target, len(x), device=x.device, name="target")
    validation.check_count(batch_size, "batch_size")
    cam = LayerGradCam(model, find_layer(model, layer))
    if len(x) == 0:  # nothing to map: no forward pass
        return x.new_zeros(0, *x.shape[2:])
    with torch.no_grad(), runtime.eval_mode(model):
        num_classes = validation.check_logits(model(x[:1]), 1)
    validation.check_labels(target, len(x), num_classes, name="target")
    maps = []
    with runtime.eval_mode(model):
        for rows in torch.arange(len(x), device=x.device).split(batch_size):
            coarse = cam.attribute(x[rows], target=target[rows], relu_attributions=True)
            if coarse.dim() != 4:
                raise ValueError(
                    f"layer={layer!r} outputs shape {tuple(coarse.shape)}, not a map (N, C, H, W); "
                    f"choose a conv layer: {conv_layers(model)}."
                )
            fine = LayerAttribution.interpolate(coarse, tuple(x.shape[2:]), "bilinear")  # (n,1,H,W)
            fine = fine[:, 0].detach().clamp(min=0)  # bilinear weights keep it >= 0; rounding
            top = fine.flatten(1).amax(1).view(-1, 1, 1)
            maps.append(torch.where(top > 0, fine / top.clamp(min=1e-12), fine))
    return torch.cat(maps)


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM (Wang et al. 2004) of each pair of maps, by scikit-image: Gaussian window of
    σ = 1.5 (11×11), K1 = 0.01, K2 = 0.03, data range 1, mean over the positions where the
    window fits.

    Args: a, b: (N, H, W) maps in [0, 1] of the same shape, H and W at least 11.
    Returns: (N,) float64 on ``a``'s device.
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape != b.shape:
        raise ValueError(
            f"a and b must be tensors of the same shape (N, H, W), got {_shape(a)} and "
            f"{_shape(b)}; compare maps of the same images at the same size."
        )
    if a.dim() != 3 or min(a.shape[1:]) < 11:
        raise ValueError(
            f"maps must have shape (N, H, W) with H, W >= 11 (the Gaussian window is 11×11), "
            f"got {tuple(a.shape)}; upsample them to the image size first (grad_cam does)."
        )
    for name, maps in (("a", a), ("b", b)):
        if not torch.isfinite(maps).all():
            bad = (~torch.isfinite(maps)).flatten(1).any(1).nonzero()[:, 0].tolist()
            raise ValueError(
                f"{name} holds NaN or infinite values in maps {bad[:10]}; a map of a model that "
                "returned NaN has no similarity: repair or drop those images first."
            )
    left, right = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    values = [
        structural_similarity(
            p,
            q,
            gaussian_weights=True,
            sigma=1.5,
            K1=0.01,
            K2=0.03,
            use_sample_covariance=False,
            data_range=1.0,
        )
        for p, q in zip(left, right)
    ]
    return torch.tensor(np.asarray(values, dtype=np.float64), device=a.device)


def nissim(a: Tensor, b: Tensor) -> Tensor:
    """(N,) normalized inverse SSIM, (1 - SSIM) / 2: 0 for identical maps, at most 1."""
    return (1 - ssim(a, b)) / 2


def mod_curves(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    layers: Sequence[str],
    epsilons: Sequence[float],
    attack: Callable[..., Explanation],
) -> dict[str, Tensor]:
    """MOD (Chakraborty et al. 2022) per layer and strength: the mean NISSIM between the
    Grad-CAM map of the predicted class on ``x`` and that of the predicted class on
    ``attack(model, x, y, eps=eps).x_adv``.

    Args: x (N, C, H, W) in [0, 1] and y (N,) (e.g. correctly classified test images); attack:
        e.g. ``forward.fgsm``, run once per ε and shared by the layers.
    Returns: layer -> (S,) float64 MOD at each of the S ``epsilons``.
    """
    target = evaluation.predict_logits(model, x).argmax(1)
    clean = {layer: grad_cam(model, x, target, layer) for layer in layers}  # layer -> (N, H, W)
    mods: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    for eps in epsilons:
        attacked = attack(model, x, y, eps=eps)
        for layer in layers:
            after = grad_cam(model, attacked.x_adv, attacked.y_adv, layer)
            mods[layer].append(nissim(clean[layer], after).mean())
    return {layer: torch.stack(values).cpu() for layer, values in mods.items()}


def vid(mods: Tensor) -> float:
    """Variation in dissimilarity: the standard deviation (population, ddof 0) of the MOD
    values (S,) measured at S strengths."""
    return mods.double().std(unbiased=False).item() if len(mods) > 1 else 0.0


@dataclass(frozen=True)
class Shift:
    """Where a flip's change of logits came from, per image (all (N,)).

    ``rise``: how much the class reached (target) gained; ``fall``: how much the class left
    lost (each clamped at 0); ``share``: rise / (rise + fall), the promotion share (nan where
    both are 0); ``category``: codes of ``CATEGORIES`` by ``PROMOTION_ABOVE`` and
    ``SUPPRESSION_BELOW``.
    """

    rise: Tensor
    fall: Tensor
    share: Tensor
    category: Tensor

    def shares(self) -> dict[str, float]:
        """The fraction of the images in each category (empty batch: nan)."""
        total = max(len(self.category), 1)
        counts = torch.bincount(self.category, minlength=len(CATEGORIES))
        return {
            name: counts[k].item() / total if len(self.category) else float("nan")
            for k, name in enumerate(CATEGORIES)
        }


def promotion(logits: Tensor, logits_adv: Tensor, target: Tensor, left: Tensor) -> Shift:
    """Promotion or suppression, at the image level, from logits before and after a change.

    Args:
        logits, logits_adv: (N, K) on x and on x + delta; target: (N,) the class the change
            aims at (the true class for an explanation); left: (N,) the class it leaves (the
            wrong prediction for an explanation, the true class for a forward attack).
    Returns: a ``Shift``.
    """
    if logits.shape != logits_adv.shape or logits.dim() != 2:
        raise ValueError(
            f"logits {_shape(logits)} and logits_adv {_shape(logits_adv)} must both be (N, K)."
        )
    validation.check_labels(target, len(logits), logits.shape[1], logits.device, "target")
    validation.check_labels(left, len(logits), logits.shape[1], logits.device, "left")
    change = (logits_adv - logits).double()  # (N, K)
    rise = change.gather(1, target[:, None])[:, 0].clamp(min=0)
    fall = (-change.gather(1, left[:, None])[:, 0]).clamp(min=0)
    total = rise + fall
    share = torch.where(total > 0, rise / total.clamp(min=1e-300), torch.nan)
    category = torch.full_like(target, 3)
    category[share < SUPPRESSION_BELOW] = 0
    category[(share >= SUPPRESSION_BELOW) & (share <= PROMOTION_ABOVE)] = 1
    category[share > PROMOTION_ABOVE] = 2
    return Shift(rise, fall, share, category)


def contributions(
    model: nn.Module, x: Tensor, delta: Tensor, target: Tensor, left: Tensor
) -> tuple[Tensor, Tensor]:
    """Promotion and suppression at the pixel level: gradient × delta at ``x``.

    Returns (promoting, suppressing), each (N, C, H, W): grad z_target · delta (>0 where the
    change raises the class reached) and -grad z_left · delta (>0 where it lowers the class
    left). Their sums over pixels are the first-order ``rise`` and ``fall`` (exact for a
    linear model).
    """
    validation.check_images(x, "x")
    if delta.shape != x.shape:
        raise ValueError(f"delta {tuple(delta.shape)} must have x's shape {tuple(x.shape)}.")
    gradients = []
    with runtime.eval_mode(model), torch.enable_grad():
        for classes in (target, left):
            validation.check_labels(classes, len(x), device=x.device, name="target/left")
            inputs = x.detach().requires_grad_(True)
            score = model(inputs).gather(1, classes[:, None]).sum()  # images are independent
            gradients.append(torch.autograd.grad(score, inputs)[0])  # (N, C, H, W)
    return gradients[0] * delta, -gradients[1] * delta


def activations(model: nn.Module, x: Tensor, layer: str, *, batch_size: int = 500) -> Tensor:
    """(N, C') each channel's activation at ``layer``, averaged over its positions."""
    validation.check_images(x, "x")
    module, outputs = find_layer(model, layer), []
    hook = module.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    try:
        with runtime.eval_mode(model), torch.no_grad():
            for batch in x.split(batch_size):
                model(batch)
    finally:
        hook.remove()
    if outputs and outputs[0].dim() != 4:
        raise ValueError(f"layer={layer!r} outputs {tuple(outputs[0].shape)}, not (N, C, H, W).")
    return torch.cat([out.mean((2, 3)) for out in outputs]) if outputs else x.new_zeros(0, 0)


def sensitivity(model: nn.Module, x: Tensor, x_adv: Tensor, layer: str) -> Tensor:
    """(C',) per channel of ``layer``, the mean over images of |activation(x_adv) -
    activation(x)| (each a channel's mean over positions): how much the changes moved it."""
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv {tuple(x_adv.shape)} must have x's shape {tuple(x.shape)}.")
    return (activations(model, x_adv, layer) - activations(model, x, layer)).abs().mean(0)


def class_selectivity(features: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """(C,) Morcos et al.'s index (mu_max - mu_rest) / (mu_max + mu_rest) per channel, from
    class-mean activations (mu_rest: the mean over the other classes); 0 for a dead channel.

    Args: features: (N, C) non-negative activations (after a ReLU); y: (N,) labels.
    """
    validation.check_labels(y, len(features), num_classes, features.device)
    if (features < 0).any():
        raise ValueError("features must be non-negative (take a layer after a ReLU).")
    means = torch.stack([features[y == k].mean(0) for k in range(num_classes)])  # (K, C)
    top = means.amax(0)
    rest = (means.sum(0) - top) / (num_classes - 1)
    total = top + rest
    return torch.where(total > 0, (top - rest) / total.clamp(min=1e-12), 0.0)


def _shape(value: object) -> object:
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__


__all__ = [
    "CATEGORIES",
    "Shift",
    "activations",
    "class_selectivity",
    "contributions",
    "conv_layers",
    "find_layer",
    "grad_cam",
    "mod_curves",
    "nissim",
    "promotion",
    "sensitivity",
    "ssim",
    "vid",
]
