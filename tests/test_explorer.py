"""The explorer's callbacks, called as plain functions on a tiny model: no browser needed."""

import pytest
import torch
from torch import nn

from helpers import blackbox, explorer, widgets


class TwoPixelModel(nn.Module):
    """Class 0 if pixel (0, 0) is brighter than pixel (0, 1), else 1; class 2 never wins."""

    def forward(self, x):
        a, b = x[:, 0, 0, 0], x[:, 0, 0, 1]
        return torch.stack([4 * (a - b), 4 * (b - a), torch.full_like(a, -9.0)], dim=1)


@pytest.fixture
def setting():
    x = torch.zeros(3, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.6, 0.2, 0.45])
    x[:, 0, 0, 1] = torch.tensor([0.4, 0.7, 0.55])
    y = torch.tensor([1, 0, 0])  # all three are misclassified
    model = TwoPixelModel().eval()
    y_pred = model(x).argmax(1)
    assert (y_pred != y).all()
    return model, x, y, y_pred


def test_compute_view_explains_and_describes_one_image(setting):
    model, x, y, _ = setting
    method = explorer.whitebox_methods(model)[0]
    view = explorer.compute_view(
        method,
        explorer.model_probabilities(model),
        x,
        y,
        "abc",
        index=1,
        strength=0.05,
        max_queries=10,
    )
    assert view.success and view.queries == 1 and view.y == 0
    assert torch.equal(view.x, x[1]) and model(view.x_adv[None]).argmax().item() == 0
    assert view.probs.argmax() == 1 and view.probs_adv.argmax() == 0
    assert view.text == f"true a · predicted b → a · explained in 1 query · L2 {view.l2:.3f}"
    # DeepFool's step is the exact distance to the boundary (|a - b| / sqrt 2), lengthened 5%
    assert view.l2 == pytest.approx(1.05 * 0.5 / 2**0.5, rel=1e-3)


def test_compute_view_reports_a_failure_within_the_budget(setting):
    model, x, y, _ = setting
    method = explorer.whitebox_methods(model)[2]  # iterative L∞ with tiny steps
    view = explorer.compute_view(
        method,
        explorer.model_probabilities(model),
        x,
        y,
        "abc",
        index=1,
        strength=0.002,
        max_queries=3,
    )
    assert not view.success and view.queries == 3 and "not explained in 3 queries" in view.text


@pytest.mark.parametrize(
    ("index", "strength", "error"), [(3, 0.05, IndexError), (0, 2.0, ValueError)]
)
def test_compute_view_rejects_bad_choices(setting, index, strength, error):
    model, x, y, _ = setting
    method = explorer.whitebox_methods(model)[0]
    with pytest.raises(error, match="index=3|overshoot=2.0"):
        explorer.compute_view(
            method,
            explorer.model_probabilities(model),
            x,
            y,
            "abc",
            index=index,
            strength=strength,
            max_queries=5,
        )


@pytest.fixture
def explorer_widget(setting):
    model, x, y, y_pred = setting
    methods = {
        "white box": explorer.whitebox_methods(model),
        "also white": explorer.whitebox_methods(model)[2:],
    }
    probabilities = {mode: explorer.model_probabilities(model) for mode in methods}
    return widgets.Explorer(x, y, y_pred, "abc", methods, probabilities, max_queries=10)


def test_explorer_draws_at_once_and_on_every_control(explorer_widget):
    e = explorer_widget
    first = e.last_view
    assert first.index == 0 and first.method == "DeepFool" and first.text in e.status.value
    corrected = e.corrected.value
    e.strength.value = 0.5
    assert (
        e.last_view.strength == 0.5 and e.last_view.l2 > first.l2 and e.corrected.value != corrected
    )
    e.index.value = 2
    assert e.last_view.index == 2 and "predicted b" in e.status.value
    e.budget.value = 1
    assert e.last_view.max_queries == 1


def test_switching_method_resets_the_strength_knob(explorer_widget):
    e = explorer_widget
    e.method.value = "iterative L2"
    assert e.strength.description == "step size" and e.strength.value == 0.25
    assert (e.strength.min, e.strength.max) == (0.02, 1.0) and e.last_view.method == "iterative L2"


def test_switching_mode_offers_that_modes_methods(explorer_widget):
    e = explorer_widget
    e.mode.value = "also white"
    assert list(e.method.options) == ["iterative L∞", "iterative L2"]
    assert e.last_view.method == "iterative L∞" and e.strength.value == 0.02


def test_gallery_buttons_and_pair_picker_choose_the_image(explorer_widget):
    e = explorer_widget
    e.gallery.children[1].children[1].click()
    assert e.index.value == 1 and e.last_view.index == 1
    e.pair.value = (0, 1)  # the first image whose true class is a and prediction b
    assert e.index.value == 1
    e.pair.value = (1, 0)
    assert e.index.value == 0
    e.index.value = 2
    e.pair.value = "any"  # back to any pair: the image stays
    assert e.index.value == 2 and e.pair.options[0] == ("any", "any")


def test_explorer_rejects_mismatched_inputs(setting):
    model, x, y, y_pred = setting
    methods = {"white box": explorer.whitebox_methods(model)}
    with pytest.raises(ValueError, match="as many labels as images"):
        widgets.Explorer(
            x, y[:2], y_pred, "abc", methods, {"white box": explorer.model_probabilities(model)}
        )
    with pytest.raises(ValueError, match="same, non-empty set of modes"):
        widgets.Explorer(x, y, y_pred, "abc", methods, {})


def test_explore_falls_back_to_a_static_panel(setting, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    model, x, y, y_pred = setting
    monkeypatch.setenv(widgets.MODE_VARIABLE, "static")
    shown = []
    monkeypatch.setattr(
        widgets.plt, "show", lambda: shown.append(widgets.plt.gcf().texts[0].get_text())
    )
    methods = {"white box": explorer.whitebox_methods(model)}
    result = widgets.explore(
        x,
        y,
        y_pred,
        "abc",
        methods,
        {"white box": explorer.model_probabilities(model)},
        static_strengths=[0.0, 0.3],
    )
    assert result is None and len(shown) == 2
    assert "overshoot 0.0" in shown[0] and "overshoot 0.3" in shown[1]


def test_blackbox_methods_query_the_black_box_once_per_candidate(setting):
    model, x, y, _ = setting
    black_box = blackbox.BlackBox(model)
    display = blackbox.BlackBox(model)
    methods = explorer.blackbox_methods(black_box, model, num_shrink_steps=2)  # a perfect surrogate
    assert [m.strength_name for m in methods] == ["growth"] * 3
    for method, extra in zip(methods, (0, 2, 0)):
        before = black_box.queries
        view = explorer.compute_view(
            method, display.probabilities, x, y, "abc", index=0, strength=1.5, max_queries=10
        )
        assert view.success and view.queries == 1 + extra
        # the pass on the original image is the black box's too, but not an explanation query
        assert black_box.queries - before == view.queries + 1
    assert display.queries == 2 * len(methods)  # the probability bars: x and x_adv each time
