"""The attack wing: one file per method, and the one table that lists them.

Every method takes its subjects by keyword (``model``; or ``black_box`` and ``surrogate``), then
images ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (N,), then settings, and returns a
``records.Explanation``. An inverted method (white box or black box) changes each misclassified
image as little as it can until the model answers y; a forward method changes each right answer
until the model is wrong. Images that need no change come back untouched, at zero queries.

| file | method |
|---|---|
| ``iterative.py`` | iterative gradient steps (L∞ or L2), one query each |
| ``deepfool.py`` | targeted DeepFool with its step policy, and the refinement toward the boundary |
| ``smooth.py`` | the smallest change in a norm that charges differences between neighbouring pixels
  of like shade (after Zhang et al. 2020): smooth on flat areas, sharp across edges |
| ``transfer.py`` | the black box's mistakes explained with a surrogate's gradients, each candidate
  checked with one black-box query (the paper's method) |
| ``boundary.py`` | the label-only boundary search that shrinks a black-box explanation |
| ``forward.py`` | FGSM, PGD and untargeted DeepFool: fool a model that is right |

``METHODS`` is the table the explorer, the benchmarks, ``explain`` and the tests read. Adding a
method is one new file here and one line in the table; nothing registers itself on import.
(``attacks.deepfool`` is the function; the file is ``helpers/attacks/deepfool.py``.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import Tensor

from helpers import validation
from helpers.attacks import boundary, forward, smooth, transfer
from helpers.attacks.deepfool import deepfool, refine
from helpers.attacks.iterative import iterative_gradient
from helpers.engine import Model, unpack
from helpers.records import Explanation, Predictions

KINDS = ("white box", "black box", "forward")
SUBJECTS = ("model", "black_box", "surrogate")  # what a method may need, passed by keyword


@dataclass(frozen=True)
class Method:
    """One row of the table of methods.

    ``name``: its key; ``label``: how menus and tables call it; ``kind``: one of ``KINDS``;
    ``function``: what runs it; ``knob``: the setting a strength slider moves, over
    ``knob_range`` (min, max, step); ``settings``: fixed keyword arguments, the knob's default
    among them; ``needs``: the subjects it takes by keyword. ``replay``, if given, takes what
    ``function`` takes and runs it once at the knob's top, returning an object whose ``at(knob)``
    is the result at any smaller knob (a budget spent in order): a slider then redraws without
    running.
    """

    name: str
    label: str
    kind: str
    function: Callable[..., Explanation]
    knob: str
    knob_range: tuple[float, float, float]
    settings: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ("model",)
    replay: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        validation.check_choice(self.kind, "kind", KINDS)
        for subject in self.needs:
            validation.check_choice(subject, "needs", SUBJECTS)
        if self.knob not in self.settings:
            raise ValueError(f"method {self.name!r}: its knob {self.knob!r} needs a default")
        low, high, _ = self.knob_range
        if not low <= self.knob_default <= high:
            raise ValueError(f"method {self.name!r}: default outside its range {self.knob_range}")
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def knob_default(self) -> float:
        return self.settings[self.knob]

    def __call__(self, x: Tensor, y: Tensor, /, **arguments: Any) -> Explanation:
        """Run it on ``x``, ``y``: ``arguments`` holds the subjects it needs (others are
        ignored, so one dict of subjects serves every method) and settings that override."""
        return self._run(self.function, x, y, arguments)

    def replayable(self, x: Tensor, y: Tensor, /, **arguments: Any) -> Any:
        """``replay`` run on ``x``, ``y`` as ``__call__`` runs the method, at the knob's top."""
        if self.replay is None:
            raise TypeError(f"method {self.name!r} has no replay; call it for each setting")
        return self._run(self.replay, x, y, {**arguments, self.knob: self.knob_range[1]})

    def _run(self, function: Callable[..., Any], x: Tensor, y: Tensor, arguments: dict) -> Any:
        subjects = {name: arguments.pop(name) for name in SUBJECTS if name in arguments}
        missing = [name for name in self.needs if name not in subjects]
        if missing:
            raise TypeError(f"method {self.name!r} needs {', '.join(missing)}; pass it by name.")
        mine = {name: subjects[name] for name in self.needs}
        return function(**mine, x=x, y=y, **{**self.settings, **arguments})


OVERSHOOT = (0.0, 1.0, 0.01)
GROWTH = (1.1, 3.0, 0.05)
SURROGATE = ("black_box", "surrogate")
METHODS: tuple[Method, ...] = (
    Method(
        "deepfool", "DeepFool", "white box", deepfool, "overshoot", OVERSHOOT, {"overshoot": 0.05}
    ),
    Method(
        "deepfool_refined",
        "DeepFool + 10 refinement steps",
        "white box",
        deepfool,
        "overshoot",
        OVERSHOOT,
        {"overshoot": 0.05, "num_refine_steps": 10},
    ),
    Method(
        "iterative_linf",
        "iterative L∞",
        "white box",
        iterative_gradient,
        "step_size",
        (0.002, 0.1, 0.002),
        {"norm": "linf", "step_size": 0.02},
    ),
    Method(
        "iterative_l2",
        "iterative L2",
        "white box",
        iterative_gradient,
        "step_size",
        (0.02, 1.0, 0.02),
        {"norm": "l2", "step_size": 0.25},
    ),
    Method(
        "smooth",
        "smooth (Laplacian, Zhang et al. 2020)",
        "white box",
        smooth.smooth_explanation,
        "alpha",
        (0.0, 0.99, 0.01),
        {"alpha": 0.9},
    ),
    Method(
        "blackbox_deepfool",
        "surrogate DeepFool, step schedule",
        "black box",
        transfer.explain,
        "growth",
        GROWTH,
        {"growth": 1.5},
        SURROGATE,
    ),
    Method(
        "blackbox_deepfool_shrink",
        "surrogate DeepFool, schedule + 3 shrink steps",
        "black box",
        transfer.explain,
        "growth",
        GROWTH,
        {"growth": 1.5, "num_shrink_steps": 3},
        SURROGATE,
    ),
    Method(
        "blackbox_iterative_l2",
        "surrogate iterative L2, step schedule",
        "black box",
        transfer.explain,
        "growth",
        GROWTH,
        {"growth": 1.5, "method": "iterative_l2"},
        SURROGATE,
    ),
    Method(
        "blackbox_deepfool_boundary",
        "surrogate DeepFool, schedule + boundary search",
        "black box",
        boundary.explain,
        "num_shrink_queries",
        (0, 500, 10),
        {"num_shrink_queries": 80, "growth": 1.5},
        SURROGATE,
        replay=boundary.track,
    ),
    Method("fgsm", "FGSM", "forward", forward.fgsm, "eps", (0.01, 0.5, 0.01), {"eps": 0.1}),
    Method(
        "pgd_linf",
        "PGD L∞",
        "forward",
        forward.pgd,
        "eps",
        (0.01, 0.5, 0.01),
        {"eps": 0.1, "norm": "linf", "num_steps": 40},
    ),
    Method(
        "pgd_l2",
        "PGD L2",
        "forward",
        forward.pgd,
        "eps",
        (0.1, 5.0, 0.1),
        {"eps": 1.5, "norm": "l2", "num_steps": 40},
    ),
    Method(
        "deepfool_fool",
        "untargeted DeepFool",
        "forward",
        forward.deepfool,
        "overshoot",
        OVERSHOOT,
        {"overshoot": 0.02},
    ),
)


def methods(kind: str, table: tuple[Method, ...] = METHODS) -> list[Method]:
    """The methods of ``kind`` in ``table`` (default: ``METHODS``), in the table's order."""
    validation.check_choice(kind, "kind", KINDS)
    return [method for method in table if method.kind == kind]


def get(name: str, kind: str | None = None, table: tuple[Method, ...] = METHODS) -> Method:
    """The method called ``name`` (of ``kind``, if given), or a clear error listing the names."""
    names = [m.name for m in table if kind is None or m.kind == kind]
    validation.check_choice(name, "method", names)
    return next(method for method in table if method.name == name)


def explain(
    model: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    method: str = "deepfool",
    *,
    index: Tensor | None = None,
    **settings: object,
) -> Explanation:
    """Explain why ``model`` misclassifies ``x`` with the white-box ``method`` of ``METHODS``.

    Args:
        model: the classifier. x, y: images (N, C, H, W) and labels (N,), or a record (such as
            ``evaluation.find_misclassified``'s) whose ``x``, ``y`` and ``index`` are used.
        method: a name of ``methods("white box")``; settings override its defaults.
        index: (N,) the images' rows in their source split (a record brings its own).
    Returns: its ``Explanation``.
    """
    chosen = get(method, "white box")
    x, y, from_record = unpack(x, y)
    index = from_record if index is None else index
    return chosen(x, y, model=model, index=index, **settings)


__all__ = [
    "KINDS",
    "METHODS",
    "Method",
    "deepfool",
    "explain",
    "get",
    "iterative_gradient",
    "methods",
    "refine",
]
