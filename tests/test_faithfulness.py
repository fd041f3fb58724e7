"""The faithfulness measures on maps and models small enough to check by hand."""

import pytest
import torch
from scipy.stats import spearmanr
from tiny import make_model
from torch import nn

from helpers import faithfulness


def masks_of(*pixels: tuple[int, int], size: int = 3) -> torch.Tensor:
    masks = torch.zeros(1, 1, size, size, dtype=torch.bool)
    for row, col in pixels:
        masks[0, 0, row, col] = True
    return masks


def test_mass_share_reads_magnitudes_summed_over_channels():
    maps = torch.zeros(1, 2, 3, 3)
    maps[0, 0, 0, 0], maps[0, 1, 0, 0], maps[0, 0, 2, 2] = 1.0, -2.0, 1.0  # 3 inside, 1 outside
    assert faithfulness.mass_share(maps, masks_of((0, 0))).item() == pytest.approx(0.75)
    assert faithfulness.mass_share(torch.zeros(1, 1, 3, 3), masks_of((0, 0))).isnan().all()


def test_mask_auroc_by_hand():
    masks = masks_of((0, 0), (1, 1))
    ranked = torch.arange(9.0).flip(0).view(1, 1, 3, 3)  # (0, 0) first, (1, 1) fifth of nine
    # (0, 0) beats all 7 others, (1, 1) beats 4 of them: (7 + 4) / 14
    assert faithfulness.mask_auroc(ranked, masks).item() == pytest.approx(11 / 14)
    assert faithfulness.mask_auroc(torch.ones(1, 1, 3, 3), masks).item() == 0.5
    assert faithfulness.mask_auroc(-ranked, masks).item() == pytest.approx(11 / 14)  # magnitude


def test_the_pointing_game_with_its_tolerance_and_ties():
    maps = torch.zeros(1, 1, 3, 3)
    maps[0, 0, 1, 1] = 5.0
    assert faithfulness.pointing_game(maps, masks_of((1, 1)), tolerance=0).item()
    assert not faithfulness.pointing_game(maps, masks_of((0, 0)), tolerance=0).item()
    assert faithfulness.pointing_game(maps, masks_of((0, 0)), tolerance=1).item()  # diagonal
    tied = maps.clone()
    tied[0, 0, 0, 0] = 5.0  # two top pixels, one outside a mask of (1, 1) alone
    assert not faithfulness.pointing_game(tied, masks_of((1, 1)), tolerance=0).item()
    assert not faithfulness.pointing_game(torch.zeros(1, 1, 3, 3), masks_of((0, 0))).item()


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match="masks must be bool"):
        faithfulness.mass_share(torch.ones(2, 1, 3, 3), masks_of((0, 0)))
    with pytest.raises(ValueError, match="masks must be bool"):
        faithfulness.mask_auroc(torch.ones(1, 1, 3, 3), masks_of((0, 0)).float())


class Summed(nn.Module):
    """Two classes: logits (sum of pixels, 0), so p(0) = sigmoid(sum)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x.flatten(1).sum(1)
        return torch.stack([total, torch.zeros_like(total)], 1)


def test_insertion_and_deletion_by_hand():
    # pixels (1, 0.5, 0.25, 0) ranked in this order by the map; two per step
    x = torch.tensor([1.0, 0.5, 0.25, 0.0]).view(1, 1, 2, 2)
    maps = torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 1, 2, 2)
    curves = faithfulness.insertion_deletion(Summed(), x, torch.tensor([0]), maps, step=2)
    sigmoid = lambda v: 1 / (1 + torch.exp(torch.tensor(-v, dtype=torch.float64)))  # noqa: E731
    assert curves.fraction.tolist() == [0.0, 0.5, 1.0]
    assert torch.allclose(
        curves.deletion[0], torch.stack([sigmoid(1.75), sigmoid(0.25), sigmoid(0.0)])
    )
    assert torch.allclose(
        curves.insertion[0], torch.stack([sigmoid(0.0), sigmoid(1.5), sigmoid(1.75)])
    )
    area = 0.25 * (sigmoid(1.75) + 2 * sigmoid(0.25) + sigmoid(0.0))
    assert curves.deletion_auc.item() == pytest.approx(area.item())


def test_insertion_and_deletion_leave_the_model_as_it_was():
    model = make_model("lenet_bn", 0).train()
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    curves = faithfulness.insertion_deletion(model, x, torch.tensor([0, 1]), x, step=7)
    assert model.training and curves.insertion.shape == (2, 7)  # 0, 7, ..., 35, 36 pixels
    with pytest.raises(ValueError, match="maps must be"):
        faithfulness.insertion_deletion(model, x, torch.tensor([0, 1]), x[:1])


def test_rank_correlation_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, 4, (3, 1, 4, 4), generator=generator).float()  # many ties
    second = first + torch.rand(3, 1, 4, 4, generator=generator) * 3
    found = faithfulness.rank_correlation(first, second)
    expected = [spearmanr(a.flatten(), b.flatten()).statistic for a, b in zip(first, second)]
    assert torch.allclose(found, torch.tensor(expected, dtype=torch.float64))
    assert faithfulness.rank_correlation(first, first).tolist() == pytest.approx([1.0] * 3)
    assert faithfulness.rank_correlation(first, torch.ones_like(first)).isnan().all()


def test_randomized_resets_the_last_layers_only_and_leaves_the_model_alone():
    model = make_model("mlp", 0)  # linear layers 36 -> 16 -> 8 -> 4
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    shaken = faithfulness.randomized(model, 2, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    changed = {k for k, v in shaken.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"3.weight", "3.bias", "5.weight", "5.bias"}
    again = faithfulness.randomized(model, 2, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in shaken.state_dict().items())
    with pytest.raises(ValueError, match="num_layers=4"):
        faithfulness.randomized(model, 4, generator=torch.Generator())
