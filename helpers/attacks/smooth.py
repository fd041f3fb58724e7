"""Smooth inverted explanations: the smallest change that makes the model answer the true class,
measured in a norm that charges a change for differing between neighbouring pixels of like shade.

Zhang, Avrithis, Furon and Amsaleg ("Smooth adversarial examples", EURASIP Journal on
Information Security 2020, arXiv 1903.11862) shape an attack's perturbation with Laplacian
smoothing on a graph built from the image, so that it is smooth on the image's flat areas and
may be sharp across its edges. Their body was not at hand; this is our reading of their
abstract with the Laplacian smoothing of graph signal processing (Zhou et al. 2004), and the
choices marked *ours* are ours:

- the graph joins each pixel p to its 8 neighbours q with weight
  w_pq = exp(-|x_p - x_q|^2 / sigma^2) (*ours*: the 8 neighbours, sigma), built from ``x``;
- with D the degrees and W_n = D^-1/2 W D^-1/2, the smoothing operator is
  S = (1 - alpha) (I - alpha W_n)^-1, applied by conjugate gradients: symmetric, positive
  definite, eigenvalues in [(1 - alpha) / (1 + alpha), 1], S = I at alpha = 0;
- S^-1 = I + alpha / (1 - alpha) L_n with L_n = I - W_n, so the size of a change delta is
  |delta|_S^2 = delta^T S^-1 delta = |delta|^2 + alpha / (1 - alpha) delta^T L_n delta: its L2
  size plus the Laplacian's charge on differences between similar neighbours;
- the search (*ours*) is DeepFool's along S g (g the gradient of the margin, pixels the [0, 1]
  box blocks left out): each step goes to the nearest point, in |.|_S, of the margin
  linearized where it stands; after a success, refinement steps slide toward the nearest point
  to x of that linearized boundary (half as far after a miss); the success of smallest
  |delta|_S is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import validation
from helpers.engine import Model, Run
from helpers.objectives import margin
from helpers.records import Explanation

OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))  # 8 neighbours
CG_STEPS = 200  # most conjugate-gradient steps per smoothing (alpha = 0.99 needs about 100)
CG_TOLERANCE = 1e-6  # relative residual at which conjugate gradients stop
TINY = 1e-4  # margin aimed past the boundary, so that a tie is not a target


def smooth_explanation(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    alpha: float = 0.9,
    sigma: float = 0.25,
    max_queries: int = 30,
    overshoot: float = 0.02,
    num_refine_steps: int = 10,
    index: Tensor | None = None,
) -> Explanation:
    """The smallest change, in |.|_S, that makes ``model`` answer y: a smooth explanation.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        alpha: in [0, 1), how smooth (0: plain L2, the explanation DeepFool would find).
        sigma: > 0, the shade difference at which neighbours stop being alike.
        max_queries: candidates per image in all; overshoot: >= 0, how far past the
            linearized boundary each step aims; num_refine_steps: steps after the first success.
    Returns: an ``Explanation``; each candidate costs one query and, unless it is the last, one
        backward pass. Images the model already gets right come back untouched.
    """
    validation.check_images(x, "x")
    _check_alpha(alpha)
    validation.check_positive(sigma, "sigma")
    validation.check_count(max_queries, "max_queries")
    validation.check_non_negative(overshoot, "overshoot")
    validation.check_count(num_refine_steps, "num_refine_steps", minimum=0)
    settings = dict(
        alpha=alpha,
        sigma=sigma,
        max_queries=max_queries,
        overshoot=overshoot,
        num_refine_steps=num_refine_steps,
    )
    run = Run(model, x, y, objective=margin, index=index, max_queries=max_queries)
    with run:
        x = run.x
        weights = _graph(x, sigma)  # (N, 8, H, W)
        search = _Search(x.clone(), run.value.clone(), run.grad.clone(), run.attacked)
        best = x.new_full((len(x),), torch.inf)  # (N,) |delta|_S of the success kept
        for step in range(max_queries):
            rows = (run.attacked & (search.refined <= num_refine_steps)).nonzero()[:, 0]
            rows = rows[run.within(rows)]  # the engine keeps each image's budget
            if len(rows) == 0:
                break
            candidate = _step(x[rows], search, rows, weights[rows], alpha, overshoot)
            going_on = (search.refined[rows] < num_refine_steps) | ~search.right[rows]
            probe = run.query(
                candidate, rows, margin, need_grad=going_on & (step < max_queries - 1)
            )
            search.update(rows, candidate, probe.value, probe.grad, probe.reached)
            size = _smooth_norm(candidate - x[rows], weights[rows], alpha)
            better = probe.reached & (size < best[rows])
            best[rows[better]] = size[better]
            run.keep(probe, better)
        return run.finish("smooth", settings)


def smoothing(z: Tensor, x: Tensor, *, alpha: float = 0.9, sigma: float = 0.25) -> Tensor:
    """S z: signals ``z`` smoothed on the graphs of the images ``x``, as each step of
    ``smooth_explanation`` smooths the gradient.

    Args:
        z: (N, C, H, W) signals, e.g. gradients; x: (N, C, H, W) in [0, 1], the images whose
            graphs (8 neighbours, weights exp(-|x_p - x_q|^2 / sigma^2)) smooth them.
        alpha: in [0, 1), how smooth (0: S = I); sigma: > 0, the shade difference at which
            neighbours stop being alike.
    Returns: (N, C, H, W) S z = (1 - alpha) (I - alpha W_n)^-1 z, in z's dtype.
    """
    validation.check_images(x, "x")
    _check_alpha(alpha)
    validation.check_positive(sigma, "sigma")
    if z.shape != x.shape:
        raise ValueError(f"z must be shaped like x {tuple(x.shape)}, got {tuple(z.shape)}")
    return _smooth(z, _graph(x.to(z.dtype), sigma), alpha)


def _check_alpha(alpha: object) -> None:
    validation.check_non_negative(alpha, "alpha")
    if not alpha < 1:
        raise ValueError(
            f"alpha must be in [0, 1), got {alpha!r}; e.g. alpha=0.9 (0: no smoothing)."
        )


class _Search:
    """Where each image's search stands (N rows): its point (N, C, H, W), the margin there
    (N,) and its gradient (N, C, H, W); whether the point is right (N,); how far the next
    refinement step slides (N,); and how many steps it took since its first success (N,)."""

    def __init__(self, point: Tensor, value: Tensor, grad: Tensor, attacked: Tensor) -> None:
        self.point, self.value, self.grad = point, value, grad
        self.right = torch.zeros_like(attacked)
        self.fraction = value.new_ones(len(value))
        self.refined = torch.zeros(len(value), dtype=torch.int64, device=value.device)

    def update(self, rows: Tensor, point: Tensor, value: Tensor, grad: Tensor, reached: Tensor):
        """The candidates ``point`` of ``rows`` become where they stand, whatever the answer:
        a slide grows 1.5 times after a success and halves after a miss."""
        slid = self.right[rows]
        fraction = self.fraction[rows]
        grown = torch.where(reached, (fraction * 1.5).clamp(max=1), fraction / 2)
        self.fraction[rows] = torch.where(slid, grown, fraction)
        self.point[rows], self.value[rows], self.grad[rows] = point, value, grad
        self.refined[rows] += (slid | reached).long()
        self.right[rows] = reached


def _step(
    x: Tensor, search: _Search, rows: Tensor, weights: Tensor, alpha: float, overshoot: float
) -> Tensor:
    """The next candidates (n, C, H, W) of ``rows``: a DeepFool step along the smoothed
    gradient where the point is wrong; where it is right, a slide toward the point nearest
    ``x`` (n, C, H, W) of the margin linearized there."""
    point, value, grad = search.point[rows], search.value[rows], search.grad[rows]
    blocked = ((point <= 0) & (grad < 0)) | ((point >= 1) & (grad > 0))  # the box stops them
    direction = _smooth(torch.where(blocked, 0, grad), weights, alpha)  # (n, C, H, W)
    slope = _dot(grad, direction)  # (n,) the margin's rate along it
    uphill = slope > 0
    direction = torch.where(uphill[:, None, None, None], direction, grad)
    slope = torch.where(uphill, slope, _dot(grad, grad)).clamp(min=1e-30)
    wide = lambda t: t[:, None, None, None]  # noqa: E731
    stepped = point + wide((1 + overshoot) * (TINY - value) / slope) * direction
    need = (_dot(grad, point - x) - value + TINY).clamp(min=0)  # (n,) g.delta on the boundary
    target = x + wide((1 + overshoot) * need / slope) * direction
    slid = point + wide(search.fraction[rows]) * (target - point)
    return torch.where(wide(search.right[rows]), slid, stepped).clamp(0, 1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def _shift(z: Tensor, dy: int, dx: int) -> Tensor:
    """z (..., H, W) read at (row + dy, col + dx), zero outside the image."""
    height, width = z.shape[-2:]
    padded = F.pad(z, (1, 1, 1, 1))
    return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


def _graph(x: Tensor, sigma: float) -> Tensor:
    """The normalized weights W_n (N, 8, H, W) of each pixel to its neighbour at OFFSETS[k]:
    w_pq / sqrt(d_p d_q), with w_pq = exp(-|x_p - x_q|^2 / sigma^2), 0 outside the image."""
    inside = torch.ones_like(x[:, :1])  # (N, 1, H, W)
    weights = torch.stack(
        [
            torch.exp(-(x - _shift(x, dy, dx)).pow(2).sum(1) / sigma**2)
            * _shift(inside, dy, dx)[:, 0]
            for dy, dx in OFFSETS
        ],
        1,
    )
    root = weights.sum(1, keepdim=True).sqrt()  # (N, 1, H, W): sqrt of each pixel's degree
    neighbour_roots = torch.cat([_shift(root, dy, dx) for dy, dx in OFFSETS], 1)  # (N, 8, H, W)
    return weights / (root * neighbour_roots).clamp(min=1e-30)


def _adjacency(z: Tensor, weights: Tensor) -> Tensor:
    """W_n z for signals z (n, C, H, W) on the graphs ``weights`` (n, 8, H, W)."""
    return sum(weights[:, k, None] * _shift(z, dy, dx) for k, (dy, dx) in enumerate(OFFSETS))


def _smooth(z: Tensor, weights: Tensor, alpha: float) -> Tensor:
    """S z = (1 - alpha) (I - alpha W_n)^-1 z (n, C, H, W), by conjugate gradients per image."""
    if alpha == 0:
        return z.clone()
    apply = lambda v: v - alpha * _adjacency(v, weights)  # noqa: E731  (symmetric, > 0)
    wide = lambda t: t[:, None, None, None]  # noqa: E731
    solution, residual = torch.zeros_like(z), z.clone()
    direction, power = residual.clone(), _dot(residual, residual)  # (n,)
    goal = CG_TOLERANCE**2 * power
    for _ in range(CG_STEPS):
        if bool((power <= goal).all()):
            break
        pushed = apply(direction)
        length = power / _dot(direction, pushed).clamp(min=1e-30)
        solution = solution + wide(length) * direction
        residual = residual - wide(length) * pushed
        new_power = _dot(residual, residual)
        direction = residual + wide(new_power / power.clamp(min=1e-30)) * direction
        power = new_power
    return (1 - alpha) * solution


def _smooth_norm(delta: Tensor, weights: Tensor, alpha: float) -> Tensor:
    """|delta|_S = sqrt(delta^T S^-1 delta) = sqrt((|delta|^2 - alpha delta^T W_n delta) /
    (1 - alpha)), (n,): never below the L2 norm."""
    inner = _dot(delta, delta) - alpha * _dot(delta, _adjacency(delta, weights))
    return (inner / (1 - alpha)).clamp(min=0).sqrt()


__all__ = ["smooth_explanation", "smoothing"]
