"""The DeepFool geometry against references: brute force on tiny inputs, bisection, by hand."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import geometry
from helpers.attacks import boundary
from helpers.attacks.deepfool import curvature_scale, next_step_scale, step_curvature


def brute_force_projection(anchor, grads, bounds):
    """Nearest point to ``anchor`` (D,) in {z in [0, 1]^D : grads z >= bounds}, or None.

    The answer has some pixels at 0, some at 1, the rest at anchor + grads_S^T nu for the set S
    of constraints that hold with equality: try every choice and keep the nearest feasible one.
    """
    size, count = len(anchor), len(bounds)
    best, best_distance = None, float("inf")
    for states in itertools.product((0.0, 1.0, None), repeat=size):
        free = torch.tensor([s is None for s in states])
        z0 = torch.tensor([0.0 if s is None else s for s in states], dtype=anchor.dtype)
        z0 = torch.where(free, anchor, z0)
        for num_active in range(count + 1):
            for active in itertools.combinations(range(count), num_active):
                z = z0.clone()
                if active and free.any():
                    rows = grads[list(active)]  # (k, D)
                    gap = bounds[list(active)] - rows @ z0
                    gram = rows[:, free] @ rows[:, free].T
                    nu = torch.linalg.lstsq(gram, gap[:, None]).solution[:, 0]
                    z[free] = z0[free] + rows[:, free].T @ nu
                inside = (z >= -1e-12).all() and (z <= 1 + 1e-12).all()
                if inside and (grads @ z >= bounds - 1e-10).all():
                    distance = (z - anchor).norm().item()
                    if distance < best_distance:
                        best, best_distance = z, distance
    return best


def random_problem(seed: int, num_images: int, size: int, count: int):
    """Anchors (n, D) with some pixels at 0 or 1; constraints whose bound lies a random
    fraction in [-0.2, 1.2] of the way from grads·anchor to the best corner (> 1: unreachable).
    """
    generator = torch.Generator().manual_seed(seed)
    anchor = torch.rand(num_images, size, generator=generator, dtype=torch.float64).round(
        decimals=1
    )
    grads = torch.randn(num_images, count, size, generator=generator, dtype=torch.float64)
    reach = torch.rand(num_images, count, generator=generator, dtype=torch.float64)
    reach = reach * 1.4 - 0.2
    start = (grads @ anchor[:, :, None]).squeeze(2)  # (n, m)
    bounds = start + reach * (grads.clamp(min=0).sum(2) - start)
    return anchor, grads, bounds


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 4), count=st.integers(1, 3))
def test_project_to_polytope_matches_brute_force(seed, size, count):
    anchor, grads, bounds = random_problem(seed, 3, size, count)
    z, feasible = geometry.project_to_polytope(anchor, grads, bounds)
    for i in range(3):
        expected = brute_force_projection(anchor[i], grads[i], bounds[i])
        assert feasible[i].item() == (expected is not None)
        if expected is not None:
            assert torch.allclose(z[i], expected, atol=1e-8)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    count=st.integers(1, 9),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_project_to_polytope_is_a_projection_on_large_inputs(seed, count, dtype):
    # for the nearest point z of a convex set to a, (a - z)·(w - z) <= 0 for every w in the set;
    # the answers for other anchors are such points w. The set holds a random point of the box.
    generator = torch.Generator().manual_seed(seed)
    anchor = torch.rand(6, 300, generator=generator, dtype=dtype).round(decimals=1)
    grads = torch.randn(1, count, 300, generator=generator, dtype=dtype).expand(6, -1, -1)
    inside = 0.5 + 0.4 * grads[:1].sum(1).sign()  # a point of the box, far along the grads
    bounds = (grads @ inside[:, :, None]).squeeze(2)  # (6, m)
    z, feasible = geometry.project_to_polytope(anchor, grads, bounds)
    assert feasible.all() and z.min() >= 0 and z.max() <= 1
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    slack = (grads @ z[:, :, None]).squeeze(2) - bounds
    assert (slack >= -tol * grads.norm(dim=2)).all()
    angles = ((anchor[:, None] - z[:, None]) * (z[None] - z[:, None])).sum(2)  # (n, n)
    assert (angles <= tol).all()
    assert not torch.equal(z, anchor)  # the constraints bind somewhere


def test_project_to_polytope_with_one_constraint_is_project_to_halfspace():
    anchor, grads, bounds = random_problem(3, 20, 50, 1)
    z, feasible = geometry.project_to_polytope(anchor, grads, bounds)
    expected = geometry.project_to_halfspace(anchor, grads[:, 0], bounds[:, 0])
    assert torch.allclose(z[feasible], expected[feasible], atol=1e-9)


def test_project_to_polytope_by_hand_and_padding():
    # from (0.5, 0.5): z0 >= 0.7 and z1 >= 0.6 move each pixel on its own, to (0.7, 0.6); a zero
    # row with bound 0 (padding) changes nothing, and z0 + z1 >= 2.5 cannot hold in the box
    anchor = torch.full((2, 2), 0.5, dtype=torch.float64)
    grads = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0, 0], [0, 0]]])
    bounds = torch.tensor([[0.7, 0.6, 0.0], [2.5, 0.0, 0.0]], dtype=torch.float64)
    z, feasible = geometry.project_to_polytope(anchor, grads.double(), bounds)
    assert torch.allclose(z[0], torch.tensor([0.7, 0.6], dtype=torch.float64))
    assert feasible.tolist() == [True, False]
    assert torch.allclose(z[1], torch.ones(2, dtype=torch.float64))  # as close as the box allows


def test_project_to_polytope_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="grads"):
        geometry.project_to_polytope(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2))


def test_next_step_scale_grows_with_curvature_and_brackets_after_bad_steps():
    # margins -1 -> predicted +0.1 at scale 1.1: got -0.45 (rho 0.5): the next step 2.2x its
    # linear step, capped at 2; got +0.1 (rho 1): the base 1.1; got -1.2 (lower): half
    scale = torch.tensor([1.1, 1.1, 1.3, 1.3])
    failures = torch.tensor([0, 0, 0, 1])
    margin, linear = torch.full((4,), -1.0), torch.full((4,), 0.1)
    margin_new = torch.tensor([-0.45, 0.1, -1.2, -1.0])
    new, failures_new, improved = next_step_scale(
        scale, failures, 1.1, margin, linear, margin_new, max_scale=3.0
    )
    assert improved.tolist() == [True, True, False, False]
    assert new[:3].tolist() == pytest.approx([2.2, 1.1, 0.65])
    assert new[3].item() == pytest.approx(1.3 * 4)  # after 1/2 comes 2: four times as long
    assert failures_new.tolist() == [0, 0, 1, 2]
    capped, _, _ = next_step_scale(scale, failures, 1.1, margin, linear, margin_new)
    assert capped[0].item() == 2.0  # max_scale


def test_the_bracket_after_bad_steps_alternates_shorter_and_longer():
    scale, failures, lengths = torch.ones(1), torch.zeros(1, dtype=torch.int64), []
    for _ in range(6):
        scale, failures, _ = next_step_scale(
            scale, failures, 1.1, -torch.ones(1), torch.zeros(1), -torch.ones(1)
        )
        lengths.append(scale.item())
    assert lengths == [0.5, 2.0, 0.25, 4.0, 0.125, 8.0]


def test_curvature_of_a_parabola_gives_the_step_that_reaches_its_root():
    # margin(t) = -1 + 2t - t^2 along a unit direction: the linear step from t = 0 stops at 0.5
    # and finds -0.25 there: curvature -2; from t = 0.5 (margin -0.25, slope 1) the linear
    # step is 0.25 but the root is at 0.5 further: twice as long
    curvature = step_curvature(
        torch.tensor([-1.0]), torch.tensor([0.0]), torch.tensor([-0.25]), torch.tensor([0.5])
    )
    assert curvature.item() == pytest.approx(-2.0)
    scale = curvature_scale(torch.tensor([-0.25]), torch.tensor([0.25]), curvature)
    assert scale.item() == pytest.approx(2.0)
    flat = curvature_scale(torch.tensor([-0.25]), torch.tensor([0.25]), torch.zeros(1))
    assert flat.item() == 1.0
    never = curvature_scale(torch.tensor([-1.0]), torch.tensor([1.0]), curvature)
    assert never.item() == 3.0  # the parabola turns before 0: the longest step allowed
    assert step_curvature(-torch.ones(1), torch.zeros(1), torch.ones(1), torch.ones(1)) == 0


def test_content_weights_by_hand():
    x = torch.full((2, 1, 7, 7), 0.2)  # image 0: one bright pixel on a flat background
    x[0, 0, 3, 3] = 1.0
    weights = boundary.content_weights(x, radius=1, floor=0.05)
    expected = torch.full((7, 7), 0.05)
    expected[2:5, 2:5] = 1.05  # the pixel spread one pixel each way, scaled to 1
    torch.testing.assert_close(weights[0, 0], expected)
    torch.testing.assert_close(weights[1], torch.full((1, 7, 7), 0.05))  # flat: the floor only
    colour = boundary.content_weights(torch.rand(3, 3, 8, 8), radius=2)
    assert colour.shape == (3, 3, 8, 8) and torch.equal(colour[:, 0], colour[:, 2])


def test_uniform_probes_vary_every_pixel_alike_and_content_probes_the_strokes():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # one stroke pixel on a blank image
    inside = torch.ones_like(x, dtype=torch.bool)
    inside[0, 0, 0, 0] = False  # a pixel at 0 or 1 the search does not probe
    for directions, low, high in (("content", 0, 0.1), ("uniform", 0.8, 1.25)):
        probes = boundary.Probes(4000, directions, torch.Generator().manual_seed(0))
        energy = probes.draw(x, inside).pow(2).mean(1)[0, 0]  # (9, 9) each pixel's share
        assert (energy[0, 0] == 0).all()
        far, near = energy[8, 8], energy[4, 4]  # a blank corner, the stroke
        assert low <= far / near <= high, directions
    double = boundary.Probes(3, "uniform", torch.Generator().manual_seed(0))
    assert double.draw(x.double(), inside).dtype == torch.float64  # the images' precision


def test_weighted_directions_are_unit_follow_their_weights_and_leave_the_global_rng_alone():
    weights = torch.ones(2, 1, 4, 4)
    weights[:, :, :, :2] = 0.0  # no variation on the left half
    state = torch.random.get_rng_state()
    first = boundary.weighted_directions(weights, 5, torch.Generator().manual_seed(0))
    again = boundary.weighted_directions(weights, 5, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state) and torch.equal(first, again)
    assert first.shape == (2, 5, 1, 4, 4)
    torch.testing.assert_close(first.flatten(2).norm(dim=2), torch.ones(2, 5))
    assert (first[..., :2] == 0).all() and (first[..., 2:] != 0).all()
