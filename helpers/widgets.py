"""Sliders over plain render functions, with a static fallback when no widget front end is present.

A render function takes keyword values and draws or prints one view. `show` wires it to
ipywidgets controls in JupyterLab, Colab or VS Code; executed by nbconvert, nbval or a script,
where nobody can drag a slider, it renders a few fixed settings instead.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from torch import Tensor

from helpers import plotting
from helpers.explorer import Method, View, compute_view

MODE_VARIABLE = "COURSE_WIDGETS"  # "interactive" or "static" forces a mode


def has_frontend() -> bool:
    """Best guess whether a person is looking at this kernel through a widget-capable front end.

    Jupyter Server (JupyterLab, Notebook 7) sets JPY_SESSION_NAME in the kernels it starts;
    Colab imports google.colab; VS Code sets VSCODE_PID. nbconvert and nbval set none of them.
    """
    forced = os.environ.get(MODE_VARIABLE, "")
    if forced in ("interactive", "static"):
        return forced == "interactive"
    if forced:
        raise ValueError(
            f"{MODE_VARIABLE}={forced!r}: use 'interactive', 'static' or leave it unset"
        )
    in_kernel = "ipykernel" in sys.modules
    markers = (
        "JPY_SESSION_NAME" in os.environ,
        "google.colab" in sys.modules,
        "VSCODE_PID" in os.environ,
    )
    return in_kernel and any(markers)


def show(
    render: Callable[..., Any],
    controls: Mapping[str, ipywidgets.ValueWidget],
    static_values: Sequence[Mapping[str, Any]],
) -> ipywidgets.Widget | None:
    """Render `render(**values)` under `controls`, or each of `static_values` without a front end.

    Args:
        render: draws one view (a matplotlib figure it shows, or printed text) from keyword values.
        controls: name -> widget; each name is one keyword argument of `render`.
        static_values: settings rendered one after another when `has_frontend()` is False.
    Returns:
        The widget box in interactive mode, else None.
    """
    if not controls:
        raise ValueError("controls is empty: give at least one name -> widget")
    for values in static_values:
        if set(values) != set(controls):
            raise ValueError(
                f"static value {dict(values)} must set exactly the controls {sorted(controls)}"
            )
    if not has_frontend():
        for values in static_values:
            _render_and_show(render, values)
        return None
    output = ipywidgets.interactive_output(
        lambda **values: _render_and_show(render, values), dict(controls)
    )
    box = ipywidgets.VBox([ipywidgets.HBox(list(controls.values())), output])
    display(box)
    return box


def _render_and_show(render: Callable[..., Any], values: Mapping[str, Any]) -> None:
    result = render(**values)
    if isinstance(result, plt.Figure):
        plt.show()


def image_png(
    image: np.ndarray, *, cmap: str = "gray", limit: float | None = None, scale: int = 5
) -> bytes:
    """PNG bytes of a (H, W) array, upscaled `scale` times with crisp pixels.

    Grey images are drawn on [0, 1]; with `limit`, a diverging map on [-limit, limit].
    """
    vmin, vmax = (0.0, 1.0) if limit is None else (-limit, limit)
    buffer = io.BytesIO()
    plt.imsave(
        buffer,
        np.kron(image, np.ones((scale, scale))),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        format="png",
    )
    return buffer.getvalue()


def probability_bars_html(probs, probs_adv, y: int, classes: Sequence[str]) -> str:
    """Two horizontal bars per class, before (grey) and after (blue); the true class in green."""
    rows = []
    for k, name in enumerate(classes):
        colour = "green" if k == y else "inherit"
        before, after = float(probs[k]) * 100, float(probs_adv[k]) * 100
        rows.append(
            f"<tr><td style='color:{colour};padding-right:6px'>{name}</td><td style='width:160px'>"
            f"<div style='background:#999;height:6px;width:{before:.1f}%'></div>"
            f"<div style='background:#1f77b4;height:6px;width:{after:.1f}%'></div></td>"
            f"<td style='font-size:80%'>{before:.0f}% → {after:.0f}%</td></tr>"
        )
    legend = "<div style='font-size:85%'>probability before (grey) and after (blue)</div>"
    return (
        legend
        + "<table style='border-collapse:collapse;line-height:1'>"
        + "".join(rows)
        + "</table>"
    )


class Explorer:
    """Pick a misclassified image and a method, drag the strength, and watch the explanation.

    Args:
        x: (N, C, H, W) misclassified images; y, y_pred: (N,) true and predicted labels.
        methods: mode ("white box", "black box", ...) -> the methods offered in that mode.
        probabilities: mode -> function mapping images (n, C, H, W) to probabilities (n, K).
    Every control calls `redraw`, a plain method that tests can call too.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        y_pred: Tensor,
        classes: Sequence[str],
        methods: Mapping[str, Sequence[Method]],
        probabilities: Mapping[str, Callable[[Tensor], Tensor]],
        *,
        max_queries: int = 20,
        gallery_size: int = 16,
    ) -> None:
        if not len(x) or not len(x) == len(y) == len(y_pred):
            raise ValueError(
                f"need as many labels as images, got {len(x)}, {len(y)}, {len(y_pred)}"
            )
        if not methods or set(methods) != set(probabilities):
            raise ValueError(
                f"methods {sorted(methods)} and probabilities {sorted(probabilities)} "
                "must name the same, non-empty set of modes"
            )
        self.x, self.y, self.classes = x, y, classes
        self.methods, self.probabilities = methods, probabilities
        self.pairs = [(int(t), int(p)) for t, p in zip(y, y_pred)]
        self._quiet = False
        self.last_view: View | None = None
        self.last_seconds = float("nan")
        self._build_controls(max_queries)
        self._build_outputs(gallery_size)
        self._configure_strength()
        self.redraw()

    def _build_controls(self, max_queries: int) -> None:
        modes = list(self.methods)
        self.mode = ipywidgets.ToggleButtons(options=modes, description="explain as")
        self.method = ipywidgets.Dropdown(
            options=self._method_names(modes[0]), description="method"
        )
        self.index = ipywidgets.IntSlider(0, 0, len(self.x) - 1, description="image")
        counts = Counter(self.pairs)
        labels = [
            (f"{self.classes[t]} → {self.classes[p]} ({n})", (t, p))
            for (t, p), n in sorted(counts.items())
        ]
        self.pair = ipywidgets.Dropdown(
            options=[("any", "any"), *labels], description="true → pred"
        )
        self.strength = ipywidgets.FloatSlider(description="strength", continuous_update=False)
        self.budget = ipywidgets.IntSlider(
            max_queries, 1, 100, description="max queries", continuous_update=False
        )
        for widget, name in (
            (self.index, "index"),
            (self.strength, "strength"),
            (self.budget, "budget"),
        ):
            widget.add_class(f"explorer-{name}")
        for control in (self.mode, self.method, self.index, self.pair, self.strength, self.budget):
            control.style.description_width = "90px"  # room for "max queries"
        self.mode.observe(self._on_mode, "value")
        self.method.observe(self._on_method, "value")
        self.pair.observe(self._on_pair, "value")
        for widget in (self.index, self.strength, self.budget):
            widget.observe(lambda _: self.redraw(), "value")

    def _build_outputs(self, gallery_size: int) -> None:
        def picture(name: str) -> ipywidgets.Image:
            image = ipywidgets.Image(format="png", width=140, height=140)
            image.add_class(f"explorer-{name}")
            return image

        self.original, self.delta, self.corrected = (
            picture("original"),
            picture("delta"),
            picture("corrected"),
        )
        self.bars, self.status, self.scale = ipywidgets.HTML(), ipywidgets.HTML(), ipywidgets.HTML()
        self.status.add_class("explorer-status")
        tiles = []
        for i in range(min(gallery_size, len(self.x))):
            true, predicted = self.pairs[i]
            button = ipywidgets.Button(
                description=f"{i}: {self.classes[true]}→{self.classes[predicted]}"
            )
            button.layout.width = "84px"
            button.add_class("explorer-gallery-button")
            button.on_click(lambda _, i=i: setattr(self.index, "value", i))
            thumb = ipywidgets.Image(
                value=image_png(self.x[i].mean(0).cpu().numpy(), scale=2), width=56
            )
            tiles.append(ipywidgets.VBox([thumb, button]))
        self.gallery = ipywidgets.GridBox(
            tiles, layout=ipywidgets.Layout(grid_template_columns="repeat(8, 88px)")
        )
        self.gallery.add_class("explorer-gallery")

        def column(title: str, *children) -> ipywidgets.VBox:
            return ipywidgets.VBox([ipywidgets.HTML(f"<b>{title}</b>"), *children])

        pictures = ipywidgets.HBox(
            [
                column("original", self.original),
                column("signed change δ", self.delta, self.scale),
                column("corrected", self.corrected),
                column("probabilities", self.bars),
            ]
        )
        controls = ipywidgets.VBox(
            [
                self.mode,
                ipywidgets.HBox([self.method, self.pair]),
                self.index,
                self.strength,
                self.budget,
            ]
        )
        self.widget = ipywidgets.VBox(
            [controls, self.status, pictures, ipywidgets.HTML("<b>gallery</b>"), self.gallery]
        )

    def _method_names(self, mode: str) -> list[str]:
        return [method.name for method in self.methods[mode]]

    def current_method(self) -> Method:
        return next(m for m in self.methods[self.mode.value] if m.name == self.method.value)

    def _configure_strength(self) -> None:
        method = self.current_method()
        low, high, step = method.strength_range
        self._quiet = True  # one redraw after the slider is reconfigured, not one per trait
        self.strength.min, self.strength.max = (
            min(low, self.strength.min),
            max(high, self.strength.max),
        )
        self.strength.step, self.strength.value = step, method.strength_default
        self.strength.min, self.strength.max = low, high
        self.strength.description = method.strength_name
        self._quiet = False

    def _on_mode(self, change) -> None:
        self._quiet = True
        self.method.options = self._method_names(change["new"])
        self._quiet = False
        self._on_method(None)

    def _on_method(self, _) -> None:
        if self._quiet:
            return
        self._configure_strength()
        self.redraw()

    def _on_pair(self, change) -> None:
        if change["new"] != "any":  # None would show an empty box in JupyterLab
            self.index.value = self.pairs.index(change["new"])

    def redraw(self) -> View | None:
        """Explain the chosen image with the chosen settings and update every output."""
        if self._quiet:
            return None
        start = time.perf_counter()
        view = compute_view(
            self.current_method(),
            self.probabilities[self.mode.value],
            self.x,
            self.y,
            self.classes,
            index=self.index.value,
            strength=self.strength.value,
            max_queries=self.budget.value,
        )
        delta = (view.x_adv - view.x).mean(0).cpu().numpy()  # (H, W)
        limit = max(float(np.abs(delta).max()), 1e-8)
        self.original.value = image_png(view.x.mean(0).cpu().numpy())
        self.delta.value = image_png(delta, cmap="RdBu_r", limit=limit)
        self.corrected.value = image_png(view.x_adv.mean(0).cpu().numpy())
        self.scale.value = f"<small>red adds ink, blue removes; ±{limit:.3f}</small>"
        self.bars.value = probability_bars_html(view.probs, view.probs_adv, view.y, self.classes)
        mark = "✔" if view.success else "✘"
        self.status.value = f"<span style='font-size:110%'>{mark} {view.text}</span>"
        self.last_view, self.last_seconds = view, time.perf_counter() - start
        return view


def explore(
    x: Tensor,
    y: Tensor,
    y_pred: Tensor,
    classes: Sequence[str],
    methods: Mapping[str, Sequence[Method]],
    probabilities: Mapping[str, Callable[[Tensor], Tensor]],
    *,
    static_strengths: Sequence[float] | None = None,
    max_queries: int = 20,
    **settings: Any,
) -> Explorer | None:
    """Show an `Explorer`; with no widget front end, draw its first method on image 0 instead.

    Args:
        static_strengths: strengths drawn one after another in the static fallback
            (default: the first method's default strength).
        max_queries, settings: passed on to `Explorer`.
    """
    if has_frontend():
        explorer = Explorer(
            x, y, y_pred, classes, methods, probabilities, max_queries=max_queries, **settings
        )
        display(explorer.widget)
        return explorer
    mode = next(iter(methods))
    method = methods[mode][0]
    for strength in static_strengths or [method.strength_default]:
        view = compute_view(
            method,
            probabilities[mode],
            x,
            y,
            classes,
            index=0,
            strength=strength,
            max_queries=max_queries,
        )
        plotting.show_explanations(
            view.x[None],
            view.x_adv[None],
            view.probs[None],
            view.probs_adv[None],
            torch.tensor([view.y]),
            classes,
            suptitle=f"{mode}, {method.name}, {method.strength_name} {strength}: {view.text}",
        )
        plt.show()
    return None
