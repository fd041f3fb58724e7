"""Sliders over plain render functions, with a static fallback when no widget front end is present.

A render function takes keyword values and draws or prints one view. `show` wires it to
ipywidgets controls in JupyterLab, Colab or VS Code; executed by nbconvert, nbval or a script,
where nobody can drag a slider, it renders a few fixed settings instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets
import matplotlib.pyplot as plt
from IPython.display import display

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
