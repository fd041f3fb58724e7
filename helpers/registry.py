"""One registry of methods: the explorer, the benchmarks, ``attacks.explain`` and the tests all
read it. A new method, forward or inverted, white box or black box, is one ``register`` call.

A method's function takes its subjects by keyword (``model``; or ``black_box`` and
``surrogate``), then the images ``x`` (N, C, H, W) and labels ``y`` (N,), then settings, and
returns a ``records.Explanation``. One setting is its *knob*: the one a strength slider moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import Tensor

from helpers import validation
from helpers.records import Explanation

KINDS = ("white box", "black box", "forward")


@dataclass(frozen=True)
class Method:
    """A registered method.

    ``name``: its key; ``label``: how menus and tables call it; ``kind``: one of ``KINDS``;
    ``function``: what runs it; ``needs``: the subjects it takes by keyword; ``knob``: the
    setting a slider moves, over ``knob_range`` (min, max, step); ``settings``: fixed keyword
    arguments, the knob's default among them. ``replay``, if given, takes what ``function``
    takes and runs it once at the knob's top, returning an object whose ``at(knob)`` is the
    result at any smaller knob (a budget spent in order): a slider then redraws without running.
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
        subjects = {name: arguments.pop(name) for name in _SUBJECTS if name in arguments}
        missing = [name for name in self.needs if name not in subjects]
        if missing:
            raise TypeError(f"method {self.name!r} needs {', '.join(missing)}; pass it by name.")
        mine = {name: subjects[name] for name in self.needs}
        return function(**mine, x=x, y=y, **{**self.settings, **arguments})


_SUBJECTS = ("model", "black_box", "surrogate")
_REGISTRY: dict[str, Method] = {}
REGISTRY: Mapping[str, Method] = MappingProxyType(_REGISTRY)  # read-only view, name -> Method


def register(method: Method) -> Method:
    """Add ``method`` (its name must be new and its knob one of its settings); return it."""
    validation.check_choice(method.kind, "kind", KINDS)
    if method.name in _REGISTRY:
        raise ValueError(f"a method named {method.name!r} is already registered; pick a new name")
    if method.knob not in method.settings:
        raise ValueError(f"method {method.name!r}: its knob {method.knob!r} needs a default")
    low, high, _ = method.knob_range
    if not low <= method.knob_default <= high:
        raise ValueError(f"method {method.name!r}: default outside its range {method.knob_range}")
    _REGISTRY[method.name] = method
    return method


def methods(kind: str) -> list[Method]:
    """The registered methods of ``kind``, in registration order."""
    validation.check_choice(kind, "kind", KINDS)
    return [method for method in _REGISTRY.values() if method.kind == kind]


def get(name: str, kind: str | None = None) -> Method:
    """The method called ``name`` (of ``kind``, if given), or a clear error listing the names."""
    names = [m.name for m in _REGISTRY.values() if kind is None or m.kind == kind]
    validation.check_choice(name, "method", names)
    return _REGISTRY[name]


__all__ = ["KINDS", "REGISTRY", "Method", "get", "methods", "register"]
