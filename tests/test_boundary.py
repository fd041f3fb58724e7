"""Shrinking a black-box explanation toward the boundary, from label answers only."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_blackbox import NUM_CLASSES, Provider, binary_case, make_surrogate
from tiny import linear_model, make_batch

from helpers import attacks, blackbox, engine, geometry, surrogate
from helpers.attacks import boundary, transfer
from helpers.blackbox import BlackBox

BUDGETS = st.tuples(st.integers(1, 8), st.integers(0, 40), st.integers(0, 5))


def pool_starts(model, x, y, seed: int, num_pool: int = 40):
    """``surrogate.nearest_answered`` on a pool of random images the provider labelled: the
    starts an end user has at no query."""
    pool, _ = make_batch(seed + 1, num_pool, x.dtype)
    return surrogate.nearest_answered(x, y, pool, BlackBox(model).labels(pool))


@settings(max_examples=16, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 6),
    budgets=BUDGETS,
    dtype=st.sampled_from([torch.float32, torch.float64]),
    step=st.sampled_from(boundary.STEPS),
    directions=st.sampled_from(boundary.DIRECTIONS),
    with_starts=st.booleans(),
)
def test_invariants(seed, num_images, budgets, dtype, step, directions, with_starts):
    """budgets: the schedule's max_queries, num_shrink_queries and num_directions."""
    max_queries, num_shrink_queries, num_directions = budgets
    model, surrogate = Provider(seed, dtype), make_surrogate(seed, dtype)  # model: no backward
    x, y = make_batch(seed, num_images, dtype)
    starts = pool_starts(model, x, y, seed) if with_starts else None
    x_before, rng = x.clone(), torch.get_rng_state()
    first = transfer.explain(BlackBox(model), surrogate, x, y, max_queries=max_queries)
    black_box = BlackBox(model)
    run = lambda box: boundary.explain(
        box,
        surrogate,
        x,
        y,
        max_queries=max_queries,
        num_shrink_queries=num_shrink_queries,
        num_directions=num_directions,
        step=step,
        directions=directions,
        starts=starts,
    )
    result = run(black_box)

    assert torch.equal(x, x_before) and torch.equal(torch.get_rng_state(), rng)
    assert result.x_adv.dtype == dtype and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    with torch.no_grad():  # success, and the answer kept, are the provider's fresh answers
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
        assert torch.equal(result.y_adv, model(result.x_adv).argmax(1))
    # every query went through the black box, counted per image, within each image's budget
    assert black_box.queries == result.forward_passes.sum().item()
    assert torch.equal(result.queries, result.forward_passes - 1)
    assert (result.queries <= max_queries + num_shrink_queries).all()
    assert (result.backward_passes == 0).all()
    # a success stays a success, and shrinking never moves it farther from x (a start may
    # explain what the first step left unexplained)
    assert (result.success >= first.success).all()
    assert with_starts or torch.equal(result.success, first.success)
    assert (result.l2[first.success] <= first.l2[first.success]).all()
    assert torch.equal(result.x_adv[~result.misclassified], x[~result.misclassified])
    again = run(BlackBox(model))
    assert torch.equal(result.x_adv, again.x_adv) and torch.equal(result.queries, again.queries)


@pytest.mark.parametrize("step", boundary.STEPS)
@pytest.mark.parametrize("num_directions", [0, 4])
def test_a_flat_boundary_is_found_to_within_the_search_tolerance(num_directions, step):
    # the surrogate's margin has the provider's direction; its boundary is nearer x (0.1 vs
    # 0.3): the schedule overshoots, and the binary search comes back to 0.3
    provider, surrogate, x, y = binary_case(0.1, 0.3)
    first = transfer.explain(BlackBox(provider), surrogate, x, y, min_radius=0.05)
    result = boundary.explain(
        BlackBox(provider),
        surrogate,
        x,
        y,
        min_radius=0.05,
        num_directions=num_directions,
        step=step,
    )
    assert first.l2.item() > 0.33 and result.success.item()
    assert result.l2.item() == pytest.approx(0.3, rel=boundary.TOLERANCE * 1.5)


def test_shrinking_spends_what_the_schedule_left_and_no_more():
    provider, surrogate, x, y = binary_case(0.1, 0.3)
    result = boundary.explain(
        BlackBox(provider),
        surrogate,
        x,
        y,
        min_radius=0.05,
        max_queries=5,
        num_shrink_queries=3,
    )
    # four schedule queries (radii 0.1, 0.15, 0.225, 0.3375), then 4 of the search's
    assert result.queries.item() == 8 and result.success.item()
    assert 0.3 < result.l2.item() < 0.3375


def test_a_spent_black_box_stops_shrinking_and_keeps_every_success():
    model, surrogate = Provider(0), make_surrogate(0)
    x, y = make_batch(0, 12)
    first = transfer.explain(BlackBox(model), surrogate, x, y, max_queries=10)
    assert first.success[first.misclassified].sum() == 6
    black_box = BlackBox(model, max_queries=12 + first.queries.sum().item() + 7)
    with pytest.warns(UserWarning, match="budget ran out"):
        result = boundary.explain(black_box, surrogate, x, y, max_queries=10)
    assert black_box.queries_left == 0 and result.queries.sum() == black_box.queries - 12
    assert torch.equal(result.success, first.success) and (result.l2 <= first.l2).all()


def test_it_is_registered_with_the_shrinking_budget_as_its_knob():
    method = attacks.get("blackbox_deepfool_boundary", "black box")
    assert method.knob == "num_shrink_queries" and method.needs == ("black_box", "surrogate")
    provider, surrogate, x, y = binary_case(0.1, 0.3)
    result = method(x, y, black_box=BlackBox(provider), surrogate=surrogate, min_radius=0.05)
    assert result.method == "blackbox_deepfool_boundary" and result.success.item()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"num_shrink_queries": -1}, "num_shrink_queries"),
        ({"num_directions": 1.5}, "directions"),
        ({"directions": "stripes"}, "directions"),
    ],
)
def test_bad_settings_are_rejected_before_any_query(settings, message):
    black_box = BlackBox(Provider(0))
    x, y = make_batch(0, 3)
    with pytest.raises((TypeError, ValueError), match=message):
        boundary.explain(black_box, make_surrogate(0), x, y, **settings)
    assert black_box.queries == 0


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 5),
    budgets=BUDGETS,
    step=st.sampled_from(boundary.STEPS),
)
def test_a_track_replays_the_search_at_every_smaller_budget(seed, num_images, budgets, step):
    max_queries, num_shrink_queries, num_directions = budgets
    model, surrogate = Provider(seed, torch.float64), make_surrogate(seed, torch.float64)
    x, y = make_batch(seed, num_images, torch.float64)
    options = dict(max_queries=max_queries, num_directions=num_directions, step=step)
    black_box = BlackBox(model)
    track = boundary.track(
        black_box, surrogate, x, y, num_shrink_queries=num_shrink_queries, **options
    )
    final = boundary.explain(
        BlackBox(model), surrogate, x, y, num_shrink_queries=num_shrink_queries, **options
    )
    assert torch.equal(track.final.x_adv, final.x_adv)
    assert torch.equal(track.final.queries, final.queries)
    assert black_box.queries == final.forward_passes.sum().item()  # replaying asks nothing
    first = transfer.explain(BlackBox(model), surrogate, x, y, max_queries=max_queries)
    previous = track.at(0)  # shrinking already spends what the first step left of max_queries
    assert torch.equal(previous.success, first.success) and (previous.l2 <= first.l2).all()
    assert torch.equal(track.at(num_shrink_queries).x_adv, final.x_adv)
    for n in range(1, num_shrink_queries + 1):
        now = track.at(n)
        with torch.no_grad():  # every point replayed is one the black box answered y to
            assert torch.equal(now.success, model(now.x_adv).argmax(1) == y)
        assert (now.queries <= max_queries + n).all() and (now.queries >= previous.queries).all()
        assert (now.l2 <= previous.l2).all()
        previous = now
    assert black_box.queries == final.forward_passes.sum().item()
    with pytest.raises(ValueError, match="this track ran"):
        track.at(num_shrink_queries + 1)


@pytest.mark.parametrize("step", boundary.STEPS)
@pytest.mark.parametrize("seed, with_starts", [(0, False), (7, False), (10, False), (0, True)])
def test_without_probes_a_track_at_n_is_the_search_with_budget_n(seed, with_starts, step):
    # probing is the only part that plans for the budget left (it keeps a query to step
    # with): without it, each image's queries are the same prefix whatever its budget
    model, surrogate = Provider(seed, torch.float64), make_surrogate(seed, torch.float64)
    x, y = make_batch(seed, 8, torch.float64)
    options = dict(max_queries=20, num_directions=0, step=step)
    options["starts"] = pool_starts(model, x, y, seed) if with_starts else None
    track = boundary.track(BlackBox(model), surrogate, x, y, num_shrink_queries=30, **options)
    assert (track.at(30).l2 < track.at(0).l2).sum() >= 2  # several images did shrink
    for n in (0, 1, 5, 17, 30):
        alone = boundary.explain(BlackBox(model), surrogate, x, y, num_shrink_queries=n, **options)
        replayed = track.at(n)
        assert torch.equal(replayed.x_adv, alone.x_adv), n
        # the same images, answered in batches of other sizes: equal up to the last bit or two
        assert torch.allclose(replayed.logits_adv, alone.logits_adv, rtol=0, atol=1e-12), n


class Recorder(torch.nn.Module):
    """A provider that keeps a copy of every batch it is asked about."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.asked = model, []

    def forward(self, x):
        self.asked.append(x.clone())
        return self.model(x)


def test_probes_leave_pixels_at_0_or_1_alone_and_most_are_orthogonal_to_the_prior():
    generator = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand((2, 1, 6, 6), generator=generator)
    x_adv = x.clone()
    x_adv[:, :, 0], x_adv[:, :, 5] = 0.0, 1.0  # the current points: a row at 0, a row at 1
    prior = geometry.unit(torch.randn((2, 1, 6, 6), generator=generator))
    recorder = Recorder(Provider(0))
    y = torch.zeros(2, dtype=torch.int64)
    answers = blackbox.Answers(BlackBox(recorder), NUM_CLASSES)
    with engine.Run(answers, x, y, max_queries=100) as run:
        run.x_adv = x_adv
        search = boundary.Search.start(run)
        probes = boundary.Probes(8, "content", generator)
        boundary._probe(run, search, torch.arange(2), prior, probes)

    moved = recorder.asked[-1].unflatten(0, (2, 8)) - x_adv[:, None]  # (2, 8, 1, 6, 6)
    assert (moved[..., 0, :] == 0).all() and (moved[..., 5, :] == 0).all()
    assert (moved[..., 1:5, :] != 0).all()
    along = (moved * prior[:, None]).flatten(2).sum(2)  # (2, 8)
    free = round(boundary.FREE_SHARE * 8)
    torch.testing.assert_close(along[:, free:], torch.zeros(2, 8 - free), atol=1e-6, rtol=0)
    assert (along[:, :free].abs() > 1e-4).all()
    assert torch.equal(run.counter.queries, torch.tensor([8, 8]))
    assert torch.equal(search.probes, torch.tensor([8.0, 8.0])) and (search.mixed <= free).all()


def test_the_step_keeps_a_landing_answered_y_that_is_nearer_x():
    # class 1 where p0 + p1 > 1; x = (0.2, 0.2) is class 0, x_adv = (0.9, 0.3) class 1, 0.707
    # from x. Along (-1, 1) / sqrt(2) the step lands on (0.4, 0.8), class 1 and 0.632 from x:
    # kept by the step itself, even if no point of the search after it is answered y. Along
    # (1, 0) it lands on (1.0, 0.3) (clamped), class 1 but 0.806 from x: not kept.
    provider = linear_model([[0.0, 0.0], [1.0, 1.0]], [0.0, -1.0])
    x = torch.tensor([[[[0.2, 0.2]]]] * 2, dtype=torch.float64)
    y = torch.tensor([1, 1])
    normal = torch.tensor([[[[-1.0, 1.0]]], [[[1.0, 0.0]]]], dtype=torch.float64)
    normal = geometry.unit(normal)
    with engine.Run(blackbox.Answers(BlackBox(provider), 2), x, y, max_queries=10) as run:
        run.x_adv = torch.tensor([[[[0.9, 0.3]]]] * 2, dtype=torch.float64)
        run.success[:] = True
        moved, ends = boundary._step(run, torch.arange(2), normal, 1.0)
    assert torch.equal(moved, torch.tensor([0, 1])) and torch.equal(run.counter.queries, y)
    torch.testing.assert_close(ends.flatten(1), torch.tensor([[0.4, 0.8], [1.0, 0.3]]).double())
    torch.testing.assert_close(
        run.x_adv.flatten(1), torch.tensor([[0.4, 0.8], [0.9, 0.3]]).double()
    )
    assert run.success.all() and run.logits_adv[0].argmax() == 1  # the landing's own answer


def test_the_semicircle_ends_where_it_crosses_a_flat_boundary():
    # class 1 where the first pixel is above 0.6; x = (0.3, 0.5) is class 0, x_adv = (0.7, 0.8)
    # class 1, 0.5 from x. With the exact normal (1, 0), u = (0.8, 0.6) and v = (0.6, -0.8):
    # the half circle on the diameter [x, x_adv] (centre (0.5, 0.65), radius 0.25) leaves
    # x_adv along v and first meets the boundary at (0.6, 0.65 - sqrt(0.25² - 0.1²)) =
    # (0.6, 0.4209), 0.3103 from x (the segment [x, x_adv] meets it 0.375 from x)
    provider = linear_model([[0.0, 0.0], [1.0, 0.0]], [0.0, -0.6])
    x, y = torch.tensor([[[[0.3, 0.5]]]], dtype=torch.float64), torch.tensor([1])
    normal = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    with engine.Run(blackbox.Answers(BlackBox(provider), 2), x, y, max_queries=100) as run:
        run.x_adv = torch.tensor([[[[0.7, 0.8]]]], dtype=torch.float64)
        search = boundary.Search.start(run)
        boundary._semicircle(run, search, torch.tensor([0]), normal)
    crossing = torch.tensor([0.6, 0.65 - math.sqrt(0.25**2 - 0.1**2)], dtype=torch.float64)
    # the bracket's arc, r · (high - low) with r = 0.5, is at most 0.5 · ARC_TOLERANCE
    assert (run.x_adv.flatten() - crossing).norm() <= 0.5 * boundary.ARC_TOLERANCE
    assert run.x_adv[0, 0, 0, 0] > 0.6 and run.success.item()  # answered y
    assert 0.3103 < (run.x_adv - x).norm() < 0.3103 + 0.5 * boundary.ARC_TOLERANCE
    # one query per halving of pi / 2 down to the tolerance: ceil(log2(157.08)) = 8
    assert run.counter.queries.item() == math.ceil(math.log2(math.pi / 2 / boundary.ARC_TOLERANCE))
    assert search.other.item() == 0 and search.gap.item() <= 0.5 * boundary.ARC_TOLERANCE


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), num_images=st.integers(1, 6))
def test_every_point_the_semicircle_keeps_is_answered_y_and_nearer_x(seed, num_images):
    model, surrogate = Provider(seed, torch.float64), make_surrogate(seed, torch.float64)
    x, y = make_batch(seed, num_images, torch.float64)
    first = transfer.explain(BlackBox(model), surrogate, x, y, max_queries=20)
    rows = (first.success & first.attacked).nonzero()[:, 0]
    assume(len(rows) > 0)
    generator = torch.Generator().manual_seed(seed)
    normal = geometry.unit(torch.randn(x[rows].shape, generator=generator, dtype=x.dtype))
    progress: list = []
    answers = blackbox.Answers(BlackBox(model), NUM_CLASSES)
    with engine.Run(answers, x, y, max_queries=100, progress=progress) as run:
        run.x_adv, run.success = first.x_adv.clone(), first.success.clone()
        boundary._semicircle(run, boundary.Search.start(run), rows, normal)
    distance = first.l2.clone()
    for kept, _, candidate, logits in progress:  # in the order found
        with torch.no_grad():
            assert (model(candidate).argmax(1) == y[kept]).all()
        assert torch.equal(logits.argmax(1), y[kept])
        now = (candidate - x[kept]).flatten(1).norm(dim=1)
        assert (now < distance[kept]).all()
        distance[kept] = now
    assert torch.equal((run.x_adv - x).flatten(1).norm(dim=1), distance)  # the nearest kept
    assert (run.counter.queries <= 8).all() and (run.counter.queries[rows] >= 1).all()


def test_a_start_is_used_at_no_query_and_only_where_it_is_nearer_x():
    # the black box's boundary is 0.3 from x along w = (0.6, -0.8); four schedule queries end
    # 0.3375 from x (radii 0.1, 0.15, 0.225, 0.3375) and leave nothing to shrink with
    provider, surrogate, x, y = binary_case(0.1, 0.3)
    w = torch.tensor([0.6, -0.8], dtype=torch.float64).view(1, 1, 1, 2)
    options = dict(min_radius=0.05, max_queries=4, num_shrink_queries=0, overshoot=0.0)
    alone = boundary.explain(BlackBox(provider), surrogate, x, y, **options)
    assert alone.queries.item() == 4 and alone.l2.item() == pytest.approx(0.3375, rel=1e-3)
    for distance, used in ((0.32, True), (0.4, False)):
        start = x + distance * w  # answered y: past the boundary
        black_box = BlackBox(provider)
        result = boundary.explain(black_box, surrogate, x, y, starts=start, **options)
        assert result.queries.item() == 4 and black_box.queries == 5  # x's answer, then 4
        assert torch.equal(result.x_adv, start if used else alone.x_adv)
        assert result.success.item() and result.settings["starts"]


def test_a_start_explains_what_the_step_left_unexplained():
    # the boundary is 0.5 away: two schedule queries (radii 0.1, 0.15) both miss
    provider, surrogate, x, y = binary_case(0.1, 0.5)
    w = torch.tensor([0.6, -0.8], dtype=torch.float64).view(1, 1, 1, 2)
    options = dict(min_radius=0.05, max_queries=2, num_shrink_queries=0)
    assert not boundary.explain(BlackBox(provider), surrogate, x, y, **options).success.item()
    start = x + 0.55 * w
    result = boundary.explain(BlackBox(provider), surrogate, x, y, starts=start, **options)
    assert result.success.item() and torch.equal(result.x_adv, start)
    assert result.queries.item() == 2 and result.y_adv.item() == 1


def test_nearest_answered_picks_the_nearest_pool_image_of_the_class_asked_for():
    pool = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.4], [0.4, 0.9]]).view(4, 1, 1, 2)
    labels = torch.tensor([0, 1, 1, 3])
    x = torch.tensor([[0.4, 0.4], [0.4, 0.4], [0.4, 0.4], [0.9, 0.9]]).view(4, 1, 1, 2)
    y = torch.tensor([1, 0, 2, 1])
    # (0.5, 0.4) is 0.1 from (0.4, 0.4), (1, 1) 0.85; no image was answered 2: x itself
    expected = torch.stack([pool[2], pool[0], x[2], pool[1]])
    for answers in (labels, torch.nn.functional.one_hot(labels, 4).float() * 0.7 + 0.075):
        assert torch.equal(surrogate.nearest_answered(x, y, pool, answers), expected)
    with pytest.raises(ValueError, match="one label .M,. or one row"):
        surrogate.nearest_answered(x, y, pool, labels[:3])
