"""A content edit turned around: the "transparent fix", from label answers only.

Borkar and Chen (*Simple Transparent Adversarial Examples*, 2021) fool cloud vision APIs by
pasting faint, transparent text onto an image and searching its opacity and position with label
answers only. Turned around, such an edit explains a mistake: blend a faint template of the true
class y onto the image,

    x(α) = (1 - α) x + α T_y shifted by (rows, columns),

and find the smallest opacity α that the black box answers y to. The template is the mean of the
user's own images that the black box labelled y (``class_templates``): no provider data. At each
offset one query asks about the blend at ``max_opacity``; where it is answered y, a bisection on
α (``engine.bisect``, one query a step) brings it toward x. Every answer goes through the
engine's ``Run``, counted per image, within each image's budget.
"""

from __future__ import annotations

import torch
from torch import Tensor

from helpers import blackbox, engine, validation
from helpers.engine import Run
from helpers.records import Explanation, Predictions

OFFSETS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (rows down, columns right), in pixels


def class_templates(x: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The mean image of each class: x (M, C, H, W) in [0, 1] labelled ``labels`` (M,) ->
    (num_classes, C, H, W) in [0, 1]; NaN for a class no image is labelled."""
    validation.check_images(x, "x")
    validation.check_count(num_classes, "num_classes")
    validation.check_labels(labels, len(x), num_classes, device=x.device, name="labels")
    sums = x.new_zeros(num_classes, *x.shape[1:]).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=num_classes).to(x.dtype)  # (K,)
    return sums / counts[:, None, None, None]  # 0 / 0 = NaN where a class has no image


def shift(images: Tensor, offset: tuple[int, int]) -> Tensor:
    """``images`` (N, C, H, W) moved ``offset`` = (rows down, columns right) pixels; what
    moves out is dropped and what comes in is 0 (black), never wrapped around."""
    rows, columns = offset
    height, width = images.shape[-2:]
    if abs(rows) >= height or abs(columns) >= width:
        raise ValueError(f"offset={offset} moves the {height}×{width} images out of the frame.")
    moved = torch.zeros_like(images)
    into = (..., _span(rows, height), _span(columns, width))
    moved[into] = images[..., _span(-rows, height), _span(-columns, width)]
    return moved


def _span(step: int, size: int) -> slice:
    """The pixels of a row or column of ``size`` that a move by ``step`` lands on."""
    return slice(max(step, 0), size + min(step, 0))


def explain(
    black_box: blackbox.BlackBox,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    *,
    templates: Tensor,
    offsets: tuple[tuple[int, int], ...] = OFFSETS,
    max_opacity: float = 1.0,
    num_steps: int = 7,
    index: Tensor | None = None,
) -> Explanation:
    """Explain the black box's mistakes on ``x`` by blending in a template of the true class.

    Args:
        black_box: a ``BlackBox`` or anything with its interface; it answers the originals
            (not queries) and one query per blend.
        x (N, C, H, W) in [0, 1], y (N,): images and true labels, or a record.
        templates: (K, C, H, W) in [0, 1], one per class (``class_templates``); each y's must
            be finite.
        offsets: (rows down, columns right) shifts of the template, tried in order.
        max_opacity: in (0, 1], the blend first asked at each offset.
        num_steps: bisection steps on the opacity after a hit at an offset.
    Returns: an ``Explanation`` whose x_adv is the blend nearest x (L2) that the black box
        answered y to, as the 8-bit image it answered if it rounds (``quantize``); at most
        len(offsets) · (1 + num_steps) queries per image.
    """
    blackbox.check_black_box(black_box)
    x, y, from_record = engine.unpack(x, y)
    validation.check_images(x, "x")
    validation.check_images(templates, "templates")  # NaN (a class never labelled) is refused
    if templates.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"templates has images of shape {tuple(templates.shape[1:])}, x of "
            f"{tuple(x.shape[1:])}; build them from images like x (class_templates)."
        )
    validation.check_labels(y, len(x), len(templates), device=x.device)
    if not offsets:
        raise ValueError("offsets is empty: give at least one (rows, columns), e.g. (0, 0).")
    for offset in offsets:
        shift(templates[:1], offset)  # a clear error for an offset out of the frame
    validation.check_positive(max_opacity, "max_opacity")
    if max_opacity > 1:
        raise ValueError(f"max_opacity must be at most 1 (the template alone), got {max_opacity}.")
    validation.check_count(num_steps, "num_steps", minimum=0)
    index = from_record if index is None else index
    answers = blackbox.Answers(black_box, len(templates))
    budget = len(offsets) * (1 + num_steps)
    run = Run(answers, x, y, index=index, name="black box", max_queries=budget)
    with run:
        rows = run.attacked.nonzero()[:, 0]
        for offset in offsets:
            if run.exhausted:
                break
            _at_offset(run, rows, templates, offset, max_opacity, num_steps)
        settings = dict(offsets=list(offsets), max_opacity=max_opacity, num_steps=num_steps)
        return run.finish("transparent_fix", settings)


def _at_offset(
    run: Run,
    rows: Tensor,
    templates: Tensor,
    offset: tuple[int, int],
    max_opacity: float,
    num_steps: int,
) -> None:
    """Ask about the blend at ``max_opacity`` for ``rows``, keep the hits nearer x than what
    the run holds, and bisect on the opacity of each hit."""
    x = run.x[rows]
    template = shift(templates[run.y[rows]], offset)  # (n, C, H, W)
    end = ((1 - max_opacity) * x + max_opacity * template).clamp(0, 1)  # float error past 1
    probe = run.query(end, rows)  # the black box may answer only a prefix
    hits = probe.reached
    distance = (probe.x - run.x[probe.rows]).flatten(1).norm(dim=1)
    held = (run.x_adv[probe.rows] - run.x[probe.rows]).flatten(1).norm(dim=1)
    run.keep(probe, hits & (~run.success[probe.rows] | (distance < held)))
    if hits.any() and num_steps:
        engine.bisect(run, probe.rows[hits], end[: len(probe.rows)][hits], num_steps=num_steps)


__all__ = ["OFFSETS", "class_templates", "explain", "shift"]
