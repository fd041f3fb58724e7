"""The slider helper: front-end detection, the static fallback, and the interactive wiring."""

import sys

import ipywidgets
import matplotlib
import pytest

from helpers import widgets

matplotlib.use("Agg")


@pytest.fixture
def calls():
    return []


@pytest.fixture
def render(calls):
    def render(index, strength):
        calls.append((index, strength))
        return f"image {index} at {strength}"

    return render


def controls():
    return {
        "index": ipywidgets.IntSlider(0, 0, 5),
        "strength": ipywidgets.FloatSlider(value=0.1, min=0, max=1),
    }


def test_static_mode_renders_every_fixed_setting(monkeypatch, render, calls):
    monkeypatch.setenv(widgets.MODE_VARIABLE, "static")
    box = widgets.show(
        render, controls(), [{"index": 1, "strength": 0.5}, {"index": 2, "strength": 0.0}]
    )
    assert box is None and calls == [(1, 0.5), (2, 0.0)]


def test_interactive_mode_wires_the_controls_to_render(monkeypatch, render, calls):
    monkeypatch.setenv(widgets.MODE_VARIABLE, "interactive")
    sliders = controls()
    box = widgets.show(render, sliders, [{"index": 1, "strength": 0.5}])
    assert isinstance(box, ipywidgets.VBox) and calls == [(0, 0.1)]  # drawn once, at the start
    sliders["strength"].value = 0.7
    sliders["index"].value = 3
    assert calls[-2:] == [(0, 0.7), (3, 0.7)]


def test_no_frontend_without_a_jupyter_server(monkeypatch):
    for name in (widgets.MODE_VARIABLE, "JPY_SESSION_NAME", "VSCODE_PID"):
        monkeypatch.delenv(name, raising=False)
    assert widgets.has_frontend() is False


def test_jupyter_server_kernel_counts_as_a_frontend(monkeypatch):
    monkeypatch.delenv(widgets.MODE_VARIABLE, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/08_explore.ipynb")
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert widgets.has_frontend() is True


def test_unknown_mode_is_rejected(monkeypatch, render):
    monkeypatch.setenv(widgets.MODE_VARIABLE, "sometimes")
    with pytest.raises(ValueError, match="COURSE_WIDGETS='sometimes'"):
        widgets.show(render, controls(), [])


def test_static_values_must_match_the_controls(render):
    with pytest.raises(ValueError, match="must set exactly the controls"):
        widgets.show(render, controls(), [{"index": 1}])


def test_empty_controls_are_rejected(render):
    with pytest.raises(ValueError, match="controls is empty"):
        widgets.show(render, {}, [])
