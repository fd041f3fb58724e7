"""The transparent fix: a template of the true class blended in, its opacity bisected, from label
answers only, counted by the engine's Run in process and over HTTP alike."""

import pytest
import tiny
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import remote, serving, transparent
from helpers.blackbox import BlackBox
from helpers.serving.plans import Plan


def threshold_model() -> torch.nn.Module:
    """Two classes on (1, 2, 2) images: class 1 iff the pixels sum to more than 2.1."""
    return tiny.linear_model([[0.0] * 4, [1.0] * 4], [0.0, -2.1])


def black_and_white() -> tuple[torch.Tensor, torch.Tensor]:
    """A black image (class 0, a mistake for y = 1) and templates: black for 0, white for 1."""
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    return x, torch.cat([torch.zeros_like(x), torch.ones_like(x)])


def test_class_templates_are_the_mean_image_of_each_label():
    x = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    templates = transparent.class_templates(x, torch.tensor([0, 0, 1]), num_classes=3)
    assert templates.shape == (3, 1, 2, 2)
    assert (templates[0] == 0.25).all() and (templates[1] == 1.0).all()
    assert templates[2].isnan().all()  # no image labelled 2


def test_shift_moves_the_template_and_fills_with_black():
    image = torch.arange(1.0, 10.0).view(1, 1, 3, 3) / 10
    down = transparent.shift(image, (1, 0))
    assert torch.equal(down[0, 0], torch.tensor([[0, 0, 0], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
    left = transparent.shift(image, (0, -2))
    assert torch.equal(left[0, 0], torch.tensor([[0.3, 0, 0], [0.6, 0, 0], [0.9, 0, 0]]))
    assert torch.equal(transparent.shift(image, (0, 0)), image)
    with pytest.raises(ValueError, match=r"offset=\(3, 0\) moves the 3×3 images out"):
        transparent.shift(image, (3, 0))


def test_the_opacity_is_bisected_by_hand():
    """At opacity t every pixel is t, rounded to k/255: answered 1 iff k >= 134. The white
    template's hit (1 query), then 0.5 -> 128 (a miss), 0.75 -> 191, 0.625 -> 159 (hits);
    shifted one row down, the template is half black and its blend is never answered 1."""
    x, templates = black_and_white()
    y = torch.tensor([1])
    box = BlackBox(threshold_model(), probabilities=False, bits=8)
    offsets = ((1, 0), (0, 0))
    result = transparent.explain(box, x, y, templates=templates, offsets=offsets, num_steps=3)
    assert result.success.tolist() == [True] and result.queries.tolist() == [1 + 1 + 3]
    assert torch.equal(result.x_adv, torch.full_like(x, 159 / 255))
    assert box.queries == result.forward_passes.sum().item() == 6  # with the original's answer
    assert result.settings == {"offsets": [(1, 0), (0, 0)], "max_opacity": 1.0, "num_steps": 3}


def test_a_fix_never_found_leaves_the_image_and_says_so():
    x, templates = black_and_white()
    box = BlackBox(threshold_model(), probabilities=False, bits=8)
    result = transparent.explain(
        box, x, torch.tensor([1]), templates=templates, max_opacity=0.5, num_steps=2
    )
    # each offset's blend at opacity 0.5 is answered 0: one query each, no bisection
    assert result.success.tolist() == [False]
    assert result.queries.tolist() == [len(transparent.OFFSETS)]
    assert torch.equal(result.x_adv, x)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), num_images=st.integers(1, 6), num_steps=st.integers(0, 4))
def test_invariants(seed, num_images, num_steps):
    model = tiny.make_cnn(seed)
    x, y = tiny.make_batch(seed, num_images)
    pool, _ = tiny.make_batch(seed + 1, 40)
    pool_labels = BlackBox(model).labels(pool)
    templates = transparent.class_templates(pool, pool_labels, 4)
    templates = torch.where(templates.isnan(), 0.5, templates)  # a class nobody labelled
    x_before, rng = x.clone(), torch.get_rng_state()
    box = BlackBox(model, probabilities=False, bits=8)
    explain = lambda offsets: transparent.explain(  # noqa: E731
        BlackBox(model, bits=8), x, y, templates=templates, offsets=offsets, num_steps=num_steps
    )
    result = transparent.explain(box, x, y, templates=templates, num_steps=num_steps)
    assert torch.equal(x, x_before) and torch.equal(torch.get_rng_state(), rng)
    with torch.no_grad():  # success is the provider's fresh answer on the 8-bit image kept
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
    fixed = result.x_adv[result.success & result.misclassified]  # the 8-bit images answered
    assert torch.equal(fixed, fixed.mul(255).round().div(255))
    assert box.queries == result.forward_passes.sum().item()
    assert (result.queries <= len(transparent.OFFSETS) * (1 + num_steps)).all()
    assert torch.equal(result.x_adv[~result.misclassified], x[~result.misclassified])
    assert (result.queries[~result.misclassified] == 0).all()
    fewer = explain(transparent.OFFSETS[:2])  # more offsets never give a larger fix
    assert (result.success >= fewer.success).all()
    assert (result.l2[fewer.success] <= fewer.l2[fewer.success] + 1e-6).all()


def test_bad_input_is_refused_before_any_query():
    x, templates = black_and_white()
    y = torch.tensor([1])
    box = BlackBox(threshold_model(), bits=8)
    with pytest.raises(ValueError, match="templates contains NaN"):
        transparent.explain(box, x, y, templates=torch.full_like(templates, float("nan")))
    with pytest.raises(ValueError, match="max_opacity must be at most 1"):
        transparent.explain(box, x, y, templates=templates, max_opacity=1.5)
    with pytest.raises(ValueError, match="moves the 2×2 images out of the frame"):
        transparent.explain(box, x, y, templates=templates, offsets=((0, 2),))
    with pytest.raises(ValueError, match="offsets is empty"):
        transparent.explain(box, x, y, templates=templates, offsets=())
    with pytest.raises(ValueError, match=r"templates has images of shape \(1, 3, 3\)"):
        transparent.explain(box, x, y, templates=torch.zeros(2, 1, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y"):
        transparent.explain(box, x, torch.tensor([2]), templates=templates)
    assert box.queries == 0


def test_through_the_api_it_is_counted_as_in_process():
    """The same fix over HTTP and in process on 8-bit images, and one count everywhere: the
    engine's per-image counts, the client's, its journal's and the server's books."""
    model = tiny.make_cnn(0)
    pool, _ = tiny.make_batch(1, 60)
    x, y = tiny.make_batch(2, 8)
    keys = {"label": Plan("label")}
    with serving.serve(model, keys=keys, input_shape=tiny.SHAPE, max_batch=4) as api:
        box = remote.RemoteBlackBox(api.url, "label")
        templates = transparent.class_templates(pool, box.labels(pool), 4)
        templates = torch.where(templates.isnan(), 0.5, templates)
        result = transparent.explain(box, x, y, templates=templates, num_steps=3)
        books = box.usage()
    here = transparent.explain(
        BlackBox(model, probabilities=False, bits=8), x, y, templates=templates, num_steps=3
    )
    assert torch.equal(result.x_adv, here.x_adv) and torch.equal(result.queries, here.queries)
    assert torch.equal(result.success, here.success) and result.attacked.any()
    answered = 60 + result.forward_passes.sum().item()
    assert box.queries == answered == books["images"] == box.journal.totals()[1]
