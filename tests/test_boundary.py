"""Shrinking a black-box explanation toward the boundary, from label answers only."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_blackbox import NUM_CLASSES, Provider, binary_case, make_surrogate
from tiny import make_batch

from helpers import attacks, blackbox, engine, geometry
from helpers.attacks import boundary, transfer
from helpers.blackbox import BlackBox

BUDGETS = st.tuples(st.integers(1, 8), st.integers(0, 40), st.integers(0, 5))


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_images=st.integers(1, 6),
    budgets=BUDGETS,
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_invariants(seed, num_images, budgets, dtype):
    """budgets: the schedule's max_queries, num_shrink_queries and num_directions."""
    max_queries, num_shrink_queries, num_directions = budgets
    model, surrogate = Provider(seed, dtype), make_surrogate(seed, dtype)  # model: no backward
    x, y = make_batch(seed, num_images, dtype)
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
    # a success stays a success, and shrinking never moves it farther from x
    assert torch.equal(result.success, first.success)
    assert (result.l2 <= first.l2).all()
    assert torch.equal(result.x_adv[~result.misclassified], x[~result.misclassified])
    again = run(BlackBox(model))
    assert torch.equal(result.x_adv, again.x_adv) and torch.equal(result.queries, again.queries)


@pytest.mark.parametrize("num_directions", [0, 4])
def test_a_flat_boundary_is_found_to_within_the_search_tolerance(num_directions):
    # the surrogate's margin has the provider's direction; its boundary is nearer x (0.1 vs
    # 0.3): the schedule overshoots, and the binary search comes back to 0.3
    provider, surrogate, x, y = binary_case(0.1, 0.3)
    first = transfer.explain(BlackBox(provider), surrogate, x, y, min_radius=0.05)
    result = boundary.explain(
        BlackBox(provider), surrogate, x, y, min_radius=0.05, num_directions=num_directions
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
    [({"num_shrink_queries": -1}, "num_shrink_queries"), ({"num_directions": 1.5}, "directions")],
)
def test_bad_settings_are_rejected_before_any_query(settings, message):
    black_box = BlackBox(Provider(0))
    x, y = make_batch(0, 3)
    with pytest.raises((TypeError, ValueError), match=message):
        boundary.explain(black_box, make_surrogate(0), x, y, **settings)
    assert black_box.queries == 0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), num_images=st.integers(1, 5), budgets=BUDGETS)
def test_a_track_replays_the_search_at_every_smaller_budget(seed, num_images, budgets):
    max_queries, num_shrink_queries, num_directions = budgets
    model, surrogate = Provider(seed, torch.float64), make_surrogate(seed, torch.float64)
    x, y = make_batch(seed, num_images, torch.float64)
    options = dict(max_queries=max_queries, num_directions=num_directions)
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


@pytest.mark.parametrize("seed", [0, 7, 10])
def test_without_probes_a_track_at_n_is_the_search_with_budget_n(seed):
    # probing is the only step that plans for the budget left (it keeps a query to step with):
    # without it, each image's queries are the same prefix whatever its budget
    model, surrogate = Provider(seed, torch.float64), make_surrogate(seed, torch.float64)
    x, y = make_batch(seed, 8, torch.float64)
    track = boundary.track(
        BlackBox(model), surrogate, x, y, max_queries=20, num_shrink_queries=30, num_directions=0
    )
    assert (track.at(30).l2 < track.at(0).l2).sum() >= 2  # several images did shrink
    for n in (0, 1, 5, 17, 30):
        alone = boundary.explain(
            BlackBox(model), surrogate, x, y, max_queries=20, num_shrink_queries=n, num_directions=0
        )
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
        boundary._probe(run, search, torch.arange(2), prior, 8, generator)

    moved = recorder.asked[-1].unflatten(0, (2, 8)) - x_adv[:, None]  # (2, 8, 1, 6, 6)
    assert (moved[..., 0, :] == 0).all() and (moved[..., 5, :] == 0).all()
    assert (moved[..., 1:5, :] != 0).all()
    along = (moved * prior[:, None]).flatten(2).sum(2)  # (2, 8)
    free = round(boundary.FREE_SHARE * 8)
    torch.testing.assert_close(along[:, free:], torch.zeros(2, 8 - free), atol=1e-6, rtol=0)
    assert (along[:, :free].abs() > 1e-4).all()
    assert torch.equal(run.counter.queries, torch.tensor([8, 8]))
    assert torch.equal(search.probes, torch.tensor([8.0, 8.0])) and (search.mixed <= free).all()
