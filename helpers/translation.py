"""A surrogate averaged over small shifts of its input: a smoother prior for a black-box search.

What a surrogate gets wrong about another network's gradient is mostly its fine detail, which
moves with the exact position of each stroke. The translation-invariant attack (Dong et al.
2019) blurs the gradient for that reason; averaging the surrogate over the image shifted by up
to ``reach`` pixels each way does it by the model's own means:

    f̃(x) = mean over |dy|, |dx| <= reach of log softmax f(shift(x, dy, dx))

Its input gradient is the surrogate's gradient at each shifted image, shifted back and
averaged, so a search takes it as its prior unchanged, and it costs computing time only, never
a query. The shift repeats the edge pixels rather than wrapping them around: on images with
blank borders, such as MNIST's, its output equals a roll's, and so does its gradient but on the
outermost pixels, which also collect the gradient of their repeated copies.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from helpers import validation


class ShiftAveraged(nn.Module):
    """``net`` averaged over its input shifted by up to ``reach`` pixels each way.

    Args:
        net: a model of images (N, C, H, W) to logits (N, K), such as a trained surrogate.
        reach: the largest shift, in pixels (0: ``net``'s log-probabilities, unshifted); the
            average is over (2 reach + 1)^2 shifts, each a forward pass of ``net``.
    Output: the mean of ``net``'s log-probabilities over the shifted images (N, K), the way an
    ``architectures.Ensemble`` averages its members'. Its train or eval mode is ``net``'s.
    """

    def __init__(self, net: nn.Module, reach: int = 2) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}.")
        validation.check_count(reach, "reach", minimum=0)
        self.net, self.reach = net, reach

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be images (N, C, H, W), got shape {tuple(x.shape)}.")
        r = self.reach
        height, width = x.shape[-2:]
        padded = F.pad(x, (r, r, r, r), mode="replicate") if r else x
        total = None
        for top in range(2 * r + 1):
            for left in range(2 * r + 1):
                shifted = padded[..., top : top + height, left : left + width]
                log_probabilities = self.net(shifted).log_softmax(1)
                total = log_probabilities if total is None else total + log_probabilities
        return total / (2 * r + 1) ** 2


__all__ = ["ShiftAveraged"]
