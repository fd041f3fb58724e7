"""The explorer's logic, free of widgets: what it offers, what one view shows, how the image
pickers agree. ``helpers.widgets.explore`` draws it; tests and benchmarks call it directly.

The explorer holds a record of misclassified images (``records.Predictions``) and the
subjects the methods need (``model``; ``black_box`` and ``surrogate``). A mode is a kind of
method of the table (``attacks.METHODS``, or a table of one's own) whose subjects were given;
each view runs one method of the table on one row of the record, and reads everything it shows
from the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from helpers import attacks
from helpers.records import Explanation, Predictions

MODES = ("white box", "black box")  # the kinds of method the explorer can offer


@dataclass(frozen=True)
class View:
    """Everything the explorer shows for one (image, method, strength, budget) choice.

    ``result`` is the method's record of that one image (a batch of one).
    """

    index: int  # the image's row in the explorer's record
    mode: str
    method: attacks.Method
    strength: float
    max_queries: int
    result: Explanation
    text: str  # one status line: prediction before → after, success, queries, L2

    @property
    def success(self) -> bool:
        return bool(self.result.success.item())

    @property
    def queries(self) -> int:
        return int(self.result.queries.item())

    @property
    def l2(self) -> float:
        return self.result.l2.item()

    @property
    def x(self) -> Tensor:
        """(C, H, W) the misclassified image."""
        return self.result.x[0]

    @property
    def x_adv(self) -> Tensor:
        """(C, H, W) the image the method ended on."""
        return self.result.x_adv[0]


class Explorer:
    """Pick a misclassified image and a method, set the strength and budget, get a ``View``.

    Args:
        mistakes: the images to explain (at least one), their labels and the logits on them.
        classes: the class names, indexed by label.
        methods: the table of methods to offer (default ``attacks.METHODS``; add a row of your
            own to try a method of yours).
        subjects: ``model=`` for the white box; ``black_box=`` and ``surrogate=`` for the
            black box. The modes offered are those whose subjects are all given.
    """

    def __init__(
        self,
        mistakes: Predictions,
        classes: Sequence[str],
        *,
        methods: tuple[attacks.Method, ...] = attacks.METHODS,
        **subjects: Any,
    ) -> None:
        if not isinstance(mistakes, Predictions) or len(mistakes) == 0:
            raise ValueError(
                "mistakes must be a non-empty record of images, e.g. "
                "evaluation.find_misclassified(model, dataset.test)"
            )
        self.mistakes, self.classes, self.subjects = mistakes, classes, subjects
        for method in methods:
            if not isinstance(method, attacks.Method):
                raise TypeError(f"methods must hold attacks.Method rows, got {method!r}")
        self.modes = {
            mode: of_mode
            for mode in MODES
            if (of_mode := attacks.methods(mode, methods))
            and set(of_mode[0].needs) <= set(subjects)
        }
        if not self.modes:
            raise ValueError(
                f"no mode has its subjects: got {sorted(subjects)}; pass model=... for the "
                "white box, or black_box=... and surrogate=... for the black box."
            )
        self.pairs = [(int(t), int(p)) for t, p in zip(mistakes.y, mistakes.y_pred)]
        self.replays: dict[tuple[str, int], Any] = {}  # (method, max_queries) -> its replay

    def method(self, mode: str, label: str) -> attacks.Method:
        """The method of ``mode`` whose label is ``label``."""
        labels = [method.label for method in self.modes[mode]]
        if label not in labels:
            raise ValueError(f"method {label!r} is not one of {mode}'s: {labels}")
        return self.modes[mode][labels.index(label)]

    def pair_options(self) -> list[tuple[str, tuple[int, int]]]:
        """(label, value) for the pair picker: each (true, predicted) pair, with its count."""
        return [
            (f"{self.classes[t]} → {self.classes[p]} ({n})", (t, p))
            for (t, p), n in sorted(self.mistakes.pairs())
        ]

    def first_index(self, pair: tuple[int, int]) -> int:
        """The first image of ``pair`` (true, predicted): where choosing that pair jumps."""
        if pair not in self.pairs:
            raise ValueError(f"no image has (true, predicted) = {pair}; pick one of {self.pairs}")
        return self.pairs.index(pair)

    def view(self, mode: str, label: str, *, index: int, strength: float, max_queries: int) -> View:
        """Explain image ``index`` with a method of ``mode`` and describe the result."""
        if not 0 <= index < len(self.mistakes):
            last = len(self.mistakes) - 1
            raise IndexError(f"index={index} is outside the {last + 1} images; pick 0..{last}")
        method = self.method(mode, label)
        low, high, _ = method.knob_range
        if not low <= strength <= high:
            raise ValueError(f"{method.knob}={strength} is outside [{low}, {high}]")
        if all(isinstance(v, int) for v in method.knob_range) and float(strength).is_integer():
            strength = int(strength)  # a count, such as a budget: the slider answers floats
        if method.replay is not None:  # one run for every image at the knob's top, replayed
            result = self._replay(method, max_queries).at(strength)[index]
        else:
            row = self.mistakes[index]
            settings = {method.knob: strength, "max_queries": max_queries}
            result = method(row.x, row.y, index=row.index, **self.subjects, **settings)
        return View(index, mode, method, strength, max_queries, result, self._text(result))

    def _replay(self, method: attacks.Method, max_queries: int) -> Any:
        """``method``'s replay on every image with this budget: run once, then kept."""
        key = (method.name, max_queries)
        if key not in self.replays:
            mistakes = self.mistakes
            self.replays[key] = method.replayable(
                mistakes.x,
                mistakes.y,
                index=mistakes.index,
                max_queries=max_queries,
                **self.subjects,
            )
        return self.replays[key]

    def _text(self, result: Explanation) -> str:
        name = self.classes
        before, after = name[int(result.y_pred)], name[int(result.y_adv)]
        queries = int(result.queries.item())
        cost = f"{queries} {'query' if queries == 1 else 'queries'}"
        outcome = f"explained in {cost}" if result.success.item() else f"not explained in {cost}"
        return (
            f"true {name[int(result.y)]} · predicted {before} → {after} · {outcome} · "
            f"L2 {result.l2.item():.3f}"
        )


__all__ = ["MODES", "Explorer", "View"]
