"""The shift-averaged surrogate: its output, its gradient and its checks."""

import pytest
import torch
from tiny import make_cnn
from torch import nn
from torch.nn import functional as F

from helpers import engine, objectives
from helpers.attacks import boundary
from helpers.blackbox import BlackBox
from helpers.translation import ShiftAveraged


def blank_bordered(seed: int, num_images: int, border: int) -> torch.Tensor:
    """Images (N, 1, 6, 6) whose outer ``border`` pixels are 0, as MNIST's are."""
    x = torch.rand((num_images, 1, 6, 6), generator=torch.Generator().manual_seed(seed))
    x[..., :border, :] = x[..., -border:, :] = 0
    x[..., :, :border] = x[..., :, -border:] = 0
    return x


def test_reach_0_is_the_net_s_log_probabilities():
    net, x = make_cnn(0), torch.rand(3, 1, 6, 6)
    torch.testing.assert_close(ShiftAveraged(net, 0)(x), net(x).log_softmax(1))


@pytest.mark.parametrize("reach", [1, 2])
def test_its_output_is_the_mean_over_shifted_images(reach):
    net, x = make_cnn(1), blank_bordered(2, 3, reach)
    span = range(-reach, reach + 1)
    expected = torch.stack(
        [
            net(torch.roll(x, shifts=(dy, dx), dims=(-2, -1))).log_softmax(1)
            for dy in span
            for dx in span
        ]
    ).mean(0)
    torch.testing.assert_close(ShiftAveraged(net, reach)(x), expected)


@pytest.mark.parametrize("reach", [1, 2])
def test_its_gradient_is_the_net_s_at_each_shift_shifted_back_and_averaged(reach):
    """What a search takes as its prior: the transfer attacks' smoothed gradient. Judged on
    the pixels at least ``reach`` from the edge, where a roll and the repeated edge agree."""
    net, x = make_cnn(3), blank_bordered(4, 4, reach)
    y, other = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 0])
    objective = objectives.pair(other)
    wrapped = ShiftAveraged(net, reach)
    grad = engine.objective_gradient(wrapped, x, y, objective)[2]
    log_softmax_net = nn.Sequential(net, nn.LogSoftmax(1))
    span = range(-reach, reach + 1)
    expected = torch.zeros_like(x)
    for dy in span:
        for dx in span:
            moved = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
            at = engine.objective_gradient(log_softmax_net, moved, y, objective)[2]
            expected += torch.roll(at, shifts=(-dy, -dx), dims=(-2, -1))
    inside = (..., slice(reach, -reach), slice(reach, -reach))
    assert expected[inside].abs().sum() > 0
    torch.testing.assert_close(grad[inside], expected[inside] / len(span) ** 2)


@pytest.mark.parametrize("reach", [1, 2])
def test_on_any_image_its_gradient_puts_each_shift_s_back_into_its_window(reach):
    """Without blank borders: each shift is a window of the edge-padded image; the gradient at
    it goes back into that window. The outermost pixels also collect their copies' gradient."""
    net, x = make_cnn(8), torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(9))
    y, other = torch.tensor([0, 1, 2]), torch.tensor([3, 0, 1])
    objective = objectives.pair(other)
    grad = engine.objective_gradient(ShiftAveraged(net, reach), x, y, objective)[2]
    log_softmax_net = nn.Sequential(net, nn.LogSoftmax(1))
    padded = F.pad(x, (reach,) * 4, mode="replicate")
    total = torch.zeros_like(padded)
    for top in range(2 * reach + 1):
        for left in range(2 * reach + 1):
            window = (..., slice(top, top + 6), slice(left, left + 6))
            total[window] += engine.objective_gradient(
                log_softmax_net, padded[window], y, objective
            )[2]
    expected = total[..., reach : reach + 6, reach : reach + 6] / (2 * reach + 1) ** 2
    inside = (..., slice(1, -1), slice(1, -1))
    torch.testing.assert_close(grad[inside], expected[inside])
    assert not torch.allclose(grad[..., 0, :], expected[..., 0, :])  # the edge collects more


def test_edges_are_repeated_not_wrapped_around():
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[0, 0] = 1.0  # logit 0 reads the top-left pixel only
    x = torch.zeros(1, 1, 6, 6)
    x[..., -1, -1] = 1.0  # bottom-right: a roll would bring it to the top-left
    torch.testing.assert_close(ShiftAveraged(net, 1)(x), net(x).log_softmax(1))


def test_its_mode_is_the_net_s():
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(36, 2))
    wrapped = ShiftAveraged(net, 1).train()
    assert net.training
    wrapped.eval()
    assert not net.training


@pytest.mark.parametrize(
    ("reach", "error", "message"),
    [(-1, ValueError, "reach must be >= 0"), (1.5, TypeError, "reach must be an int")],
)
def test_a_bad_reach_is_rejected(reach, error, message):
    with pytest.raises(error, match=message):
        ShiftAveraged(make_cnn(0), reach)


def test_a_net_that_is_not_a_module_and_images_that_are_not_are_rejected():
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        ShiftAveraged(lambda x: x, 1)
    with pytest.raises(ValueError, match=r"x must be images \(N, C, H, W\)"):
        ShiftAveraged(make_cnn(0), 1)(torch.rand(1, 6, 6))


def test_a_search_takes_it_as_its_surrogate_and_counts_every_query():
    model, surrogate_net = make_cnn(5), make_cnn(6)
    x = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(7))
    y = (model(x).argmax(1) + 1) % 4  # every image is a mistake for this label
    black_box = BlackBox(model, max_queries=10_000)
    result = boundary.explain(
        black_box, ShiftAveraged(surrogate_net, 1), x, y, num_shrink_queries=40
    )
    assert black_box.queries == result.forward_passes.sum().item()
    assert result.success.any()
    explained = result.success
    assert (model(result.x_adv[explained]).argmax(1) == y[explained]).all()
