"""Sliders over plain render functions, with a static fallback when no widget front end is present.

A render function takes keyword values and draws or prints one view. `show` wires it to
ipywidgets controls in JupyterLab, Colab or VS Code; executed by nbconvert, nbval or a script,
where nobody can drag a slider, it renders a few fixed settings instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from helpers import attacks, plotting, validation
from helpers.explorer import Explorer, View
from helpers.records import Predictions

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


def _probability_bars_html(probs, probs_adv, y: int, classes: Sequence[str]) -> str:
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


class ExplorerPanel:
    """The explorer's controls and pictures over an ``explorer.Explorer``.

    Every control calls `redraw`, a plain method that tests can call too. The pair picker
    always shows the pair of the image on display; choosing a pair jumps to its first image.
    """

    def __init__(self, logic: Explorer, *, max_queries: int = 20, gallery_size: int = 16) -> None:
        validation.check_count(max_queries, "max_queries")
        self.logic = logic
        self._quiet = False
        self.last_view: View | None = None
        self.last_seconds = float("nan")
        self._build_controls(max_queries)
        self._build_outputs(gallery_size)
        self._configure_strength()
        self.redraw()

    def _build_controls(self, max_queries: int) -> None:
        logic, wide = self.logic, ipywidgets.Layout(width="460px")
        self.mode = ipywidgets.ToggleButtons(options=list(logic.modes), description="explain as")
        self.method = ipywidgets.Dropdown(
            options=self._labels(self.mode.value), description="method", layout=wide
        )
        self.index = ipywidgets.IntSlider(0, 0, len(logic.mistakes) - 1, description="image")
        options = logic.pair_options()
        self.pair = ipywidgets.Dropdown(
            options=options, value=logic.pairs[0], description="true → pred"
        )
        self.strength = ipywidgets.FloatSlider(description="strength", continuous_update=False)
        self.budget = ipywidgets.IntSlider(
            max_queries, 1, max(100, max_queries), description="max queries"
        )
        self.budget.continuous_update = False
        for name in ("index", "strength", "budget", "pair", "method"):
            getattr(self, name).add_class(f"explorer-{name}")
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

        self.original, self.delta, self.corrected = map(picture, ("original", "delta", "corrected"))
        self.bars, self.status, self.scale = ipywidgets.HTML(), ipywidgets.HTML(), ipywidgets.HTML()
        self.status.add_class("explorer-status")
        self.gallery = ipywidgets.GridBox(
            [self._tile(i) for i in range(min(gallery_size, len(self.logic.mistakes)))],
            layout=ipywidgets.Layout(grid_template_columns="repeat(8, 88px)"),
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
        choices = [self.mode, self.method, self.pair, self.index, self.strength, self.budget]
        self.widget = ipywidgets.VBox(
            [*choices, self.status, pictures, ipywidgets.HTML("<b>gallery</b>"), self.gallery]
        )

    def _tile(self, i: int) -> ipywidgets.VBox:
        true, predicted = self.logic.pairs[i]
        classes = self.logic.classes
        button = ipywidgets.Button(description=f"{i}: {classes[true]}→{classes[predicted]}")
        button.layout.width = "84px"
        button.add_class("explorer-gallery-button")
        button.on_click(lambda _, i=i: setattr(self.index, "value", i))
        thumb = plotting.image_png(self.logic.mistakes.x[i].mean(0).cpu().numpy(), scale=2)
        return ipywidgets.VBox([ipywidgets.Image(value=thumb, width=56), button])

    def _labels(self, mode: str) -> list[str]:
        return [method.label for method in self.logic.modes[mode]]

    def _configure_strength(self) -> None:
        method = self.logic.method(self.mode.value, self.method.value)
        low, high, step = method.knob_range
        self._quiet = True  # one redraw after the slider is reconfigured, not one per trait
        self.strength.min = min(low, self.strength.min)
        self.strength.max = max(high, self.strength.max)
        self.strength.step, self.strength.value = step, method.knob_default
        self.strength.min, self.strength.max = low, high
        self.strength.description = method.knob.replace("_", " ")
        self._quiet = False

    def _on_mode(self, change) -> None:
        self._quiet = True
        self.method.options = self._labels(change["new"])
        self._quiet = False
        self._on_method(None)

    def _on_method(self, _) -> None:
        if self._quiet:
            return
        self._configure_strength()
        self.redraw()

    def _on_pair(self, change) -> None:
        if not self._quiet:
            self.index.value = self.logic.first_index(change["new"])

    def redraw(self) -> View | None:
        """Explain the chosen image with the chosen settings and update every output."""
        if self._quiet:
            return None
        start = time.perf_counter()
        view = self.logic.view(
            self.mode.value,
            self.method.value,
            index=self.index.value,
            strength=self.strength.value,
            max_queries=self.budget.value,
        )
        self._quiet = True  # the picker follows the image without jumping back
        self.pair.value = self.logic.pairs[view.index]
        self._quiet = False
        signed, limit = plotting.signed_map(view.x_adv - view.x)
        self.original.value = plotting.image_png(view.x.mean(0).cpu().numpy())
        self.delta.value = plotting.image_png(signed, cmap=plotting.SIGNED_CMAP, limit=limit)
        self.corrected.value = plotting.image_png(view.x_adv.mean(0).cpu().numpy())
        self.scale.value = f"<small>red adds ink, blue removes; ±{limit:.3f}</small>"
        result, classes = view.result, self.logic.classes
        probs, probs_adv = result.probs[0], result.probs_adv[0]
        self.bars.value = _probability_bars_html(probs, probs_adv, int(result.y), classes)
        mark = "✔" if view.success else "✘"
        self.status.value = f"<span style='font-size:110%'>{mark} {view.text}</span>"
        self.last_view, self.last_seconds = view, time.perf_counter() - start
        return view


def explore(
    mistakes: Predictions,
    classes: Sequence[str],
    *,
    static_strengths: Sequence[float] | None = None,
    static_mode: str | None = None,
    max_queries: int = 20,
    gallery_size: int = 16,
    methods: tuple[attacks.Method, ...] = attacks.METHODS,
    **subjects: Any,
) -> ExplorerPanel | None:
    """Show the explorer on ``mistakes`` for the ``subjects`` given (``model=``, and/or
    ``black_box=`` with ``surrogate=``) with the table of ``methods``; with no widget front
    end, draw the first method of ``static_mode`` (default: the first mode) on image 0 at each
    of ``static_strengths`` (default: its default strength) instead.
    """
    logic = Explorer(mistakes, classes, methods=methods, **subjects)
    if static_mode is not None:
        validation.check_choice(static_mode, "static_mode", tuple(logic.modes))
    if has_frontend():
        panel = ExplorerPanel(logic, max_queries=max_queries, gallery_size=gallery_size)
        display(panel.widget)
        return panel
    mode = static_mode or next(iter(logic.modes))
    method = logic.modes[mode][0]
    strengths = static_strengths or [method.knob_default]
    views = [
        logic.view(mode, method.label, index=0, strength=strength, max_queries=max_queries)
        for strength in strengths
    ]
    # one colour scale for every strength, so that the figures compare at a glance
    limit = plotting.shared_limit(torch.cat([view.result.delta for view in views]))
    knob = method.knob.replace("_", " ")
    for strength, view in zip(strengths, views):
        title = f"{mode}, {method.label}, {knob} {strength}: {view.text}"
        plotting.show_explanations(view.result, classes, suptitle=title, limit=limit)
        plt.show()
    return None
