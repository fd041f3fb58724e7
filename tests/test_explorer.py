"""The explorer's callbacks, called as plain functions on a tiny model: no browser needed."""

import pytest
import torch
from torch import nn

from helpers import attacks, blackbox, explorer, records, widgets
from helpers.attacks import boundary


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
    mistakes = records.Mistakes(index=torch.tensor([7, 8, 9]), x=x, y=y, logits=model(x))
    assert mistakes.misclassified.all()
    return model, mistakes


def test_a_view_explains_and_describes_one_image(setting):
    model, mistakes = setting
    logic = explorer.Explorer(mistakes, "abc", model=model)
    view = logic.view("white box", "DeepFool", index=1, strength=0.05, max_queries=10)
    assert view.success and view.queries == 1 and int(view.result.y) == 0
    assert view.result.index.tolist() == [8]  # the image keeps its identity
    assert torch.equal(view.x, mistakes.x[1]) and model(view.x_adv[None]).argmax().item() == 0
    assert view.result.probs.argmax() == 1 and view.result.probs_adv.argmax() == 0
    assert view.text == f"true a · predicted b → a · explained in 1 query · L2 {view.l2:.3f}"
    # DeepFool's step is the exact distance to the boundary (|a - b| / sqrt 2), lengthened 5%
    assert view.l2 == pytest.approx(1.05 * 0.5 / 2**0.5, rel=1e-3)


def test_a_view_reports_a_failure_within_the_budget(setting):
    model, mistakes = setting
    logic = explorer.Explorer(mistakes, "abc", model=model)
    view = logic.view("white box", "iterative L∞", index=1, strength=0.002, max_queries=3)
    assert not view.success and view.queries == 3 and "not explained in 3 queries" in view.text


def test_the_budget_bounds_refinement_too(setting):
    model, mistakes = setting
    logic = explorer.Explorer(mistakes, "abc", model=model)
    label = "DeepFool + 10 refinement steps"
    view = logic.view("white box", label, index=1, strength=0.05, max_queries=2)
    assert view.success and view.queries == 2 and "explained in 2 queries" in view.text


@pytest.mark.parametrize(
    ("index", "strength", "error"), [(3, 0.05, IndexError), (0, 2.0, ValueError)]
)
def test_a_view_rejects_bad_choices(setting, index, strength, error):
    model, mistakes = setting
    logic = explorer.Explorer(mistakes, "abc", model=model)
    with pytest.raises(error, match="index=3|overshoot=2.0"):
        logic.view("white box", "DeepFool", index=index, strength=strength, max_queries=5)


@pytest.fixture
def panel(setting):
    model, mistakes = setting
    black_box = blackbox.BlackBox(model)
    logic = explorer.Explorer(mistakes, "abc", model=model, black_box=black_box, surrogate=model)
    return widgets.ExplorerPanel(logic, max_queries=10)


def test_the_panel_draws_at_once_and_on_every_control(panel):
    e = panel
    first = e.last_view
    assert first.index == 0 and first.method.label == "DeepFool" and first.text in e.status.value
    corrected = e.corrected.value
    e.strength.value = 0.5
    assert (
        e.last_view.strength == 0.5 and e.last_view.l2 > first.l2 and e.corrected.value != corrected
    )
    e.index.value = 2
    assert e.last_view.index == 2 and "predicted b" in e.status.value
    e.budget.value = 1
    assert e.last_view.max_queries == 1


def test_switching_method_resets_the_strength_knob(panel):
    e = panel
    e.method.value = "iterative L2"
    assert e.strength.description == "step size" and e.strength.value == 0.25
    assert (e.strength.min, e.strength.max) == (
        0.02,
        1.0,
    ) and e.last_view.method.label == "iterative L2"


def test_switching_mode_offers_that_modes_methods(panel):
    e = panel
    e.mode.value = "black box"
    labels = [m.label for m in attacks.methods("black box")]
    assert list(e.method.options) == labels and e.last_view.method.label == labels[0]
    assert e.strength.description == "growth" and e.strength.value == 1.5


def test_gallery_buttons_and_pair_picker_choose_the_image(panel):
    e = panel
    e.gallery.children[1].children[1].click()
    assert e.index.value == 1 and e.last_view.index == 1
    assert e.pair.value == (0, 1)  # the picker shows the pair of the image on display
    e.pair.value = (1, 0)  # the first image whose true class is b and prediction a
    assert e.index.value == 0 and e.last_view.index == 0
    e.index.value = 2
    assert e.pair.value == (0, 1)
    e.strength.value = 0.3
    assert e.pair.value == (0, 1) and e.index.value == 2  # a slider never moves the image
    e.pair.value = (1, 0)
    e.pair.value = (0, 1)  # choosing a pair jumps to its first image
    assert e.index.value == 1


def test_the_explorer_rejects_bad_inputs(setting):
    model, mistakes = setting
    with pytest.raises(ValueError, match="non-empty record"):
        explorer.Explorer(mistakes[:0], "abc", model=model)
    with pytest.raises(ValueError, match="pass model=...|no mode"):
        explorer.Explorer(mistakes, "abc", surrogate=model)
    logic = explorer.Explorer(mistakes, "abc", model=model)
    with pytest.raises(ValueError, match="no image has"):
        logic.first_index((2, 2))
    assert list(logic.modes) == ["white box"]


def test_explore_falls_back_to_a_static_panel(setting, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    model, mistakes = setting
    monkeypatch.setenv(widgets.MODE_VARIABLE, "static")
    shown = []
    monkeypatch.setattr(
        widgets.plt, "show", lambda: shown.append(widgets.plt.gcf().texts[0].get_text())
    )
    result = widgets.explore(mistakes, "abc", model=model, static_strengths=[0.0, 0.3])
    assert result is None and len(shown) == 2
    assert "overshoot 0.0" in shown[0] and "overshoot 0.3" in shown[1]


def test_the_static_figures_share_one_colour_scale(setting, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    model, mistakes = setting
    monkeypatch.setenv(widgets.MODE_VARIABLE, "static")
    limits = []  # the signed map's colour limits of each figure drawn

    def show():
        images = [im for ax in widgets.plt.gcf().axes for im in ax.images]
        limits.append([im.get_clim() for im in images if im.get_cmap().name == "RdBu_r"])

    monkeypatch.setattr(widgets.plt, "show", show)
    widgets.explore(mistakes, "abc", model=model, static_strengths=[0.0, 1.0])
    logic = explorer.Explorer(mistakes, "abc", model=model)
    label = logic.modes["white box"][0].label
    views = [logic.view("white box", label, index=0, strength=s, max_queries=20) for s in (0, 1)]
    largest = max(view.result.delta.abs().max().item() for view in views)
    assert views[0].result.delta.abs().max() < largest  # the two changes differ in size ...
    assert limits == [[(-largest, largest)]] * 2  # ... and both figures share its scale


def test_blackbox_methods_query_the_black_box_once_per_candidate_and_nothing_more(setting):
    model, mistakes = setting
    black_box = blackbox.BlackBox(model)
    logic = explorer.Explorer(mistakes, "abc", black_box=black_box, surrogate=model)
    methods = attacks.methods("black box")
    assert [m.knob for m in methods] == ["growth"] * 3 + ["num_shrink_queries"]
    for method in methods[:3]:
        before = black_box.queries
        view = logic.view("black box", method.label, index=0, strength=1.5, max_queries=10)
        extra = method.settings.get("num_shrink_steps", 0)
        assert view.success and view.queries == 1 + extra
        # the pass on the original image is the black box's too, but not an explanation query;
        # the probability bars read the answers already given: no further query
        assert black_box.queries - before == view.queries + 1
        assert torch.allclose(view.result.probs_adv, model(view.result.x_adv).softmax(1))


def test_the_boundary_search_runs_once_and_the_shrinking_slider_replays_it(setting):
    model, mistakes = setting
    black_box = blackbox.BlackBox(model)
    logic = explorer.Explorer(mistakes, "abc", black_box=black_box, surrogate=model)
    method = attacks.get("blackbox_deepfool_boundary")
    top = method.knob_range[1]
    first = logic.view("black box", method.label, index=0, strength=0, max_queries=10)
    spent = black_box.queries  # one search on every image, at the slider's top budget
    searched = boundary.explain(
        blackbox.BlackBox(model), model, mistakes, max_queries=10, num_shrink_queries=top
    )
    assert spent == searched.forward_passes.sum().item()
    views = [first]
    for budget in (20.0, 100, top):  # the slider answers floats; a whole one is the count
        views.append(
            logic.view("black box", method.label, index=0, strength=budget, max_queries=10)
        )
        assert views[-1].success and 1 <= views[-1].queries <= 10 + budget
        assert views[-1].l2 <= views[-2].l2
    assert black_box.queries == spent  # the slider replays the search: no query more
    assert torch.equal(views[-1].result.x_adv, searched[0].x_adv)
    assert views[-1].l2 < first.l2  # with its own model as the surrogate, it shrinks
    logic.view("black box", method.label, index=0, strength=20, max_queries=5)
    assert black_box.queries > spent  # another first step's budget: another search


def test_the_static_panel_draws_the_mode_asked_for(setting, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    model, mistakes = setting
    monkeypatch.setenv(widgets.MODE_VARIABLE, "static")
    shown = []
    monkeypatch.setattr(
        widgets.plt, "show", lambda: shown.append(widgets.plt.gcf().texts[0].get_text())
    )
    subjects = dict(model=model, black_box=blackbox.BlackBox(model), surrogate=model)
    widgets.explore(mistakes, "abc", static_strengths=[2.0], static_mode="black box", **subjects)
    assert len(shown) == 1 and shown[0].startswith("black box") and "growth 2.0" in shown[0]
    with pytest.raises(ValueError, match="static_mode"):
        widgets.explore(mistakes, "abc", static_mode="forward", **subjects)
