"""Pure, batched geometry that more than one attack uses: no model, no queries.

``project_to_halfspace``, ``project_to_polytope`` and ``boundary_point`` find the point of the
[0, 1] box nearest to an anchor where one or several linearized margins are non-negative
(DeepFool's steps and the refinement); ``direction``, ``project_to_ball`` and
``random_in_ball`` serve gradient steps that stay in an L∞ or L2 ball (the iterative methods,
FGSM and PGD); ``unit`` scales directions to unit length.
"""

import torch
from torch import Tensor

_LINE_SEARCH_STEPS = 16  # halvings of a Newton step tried before giving up on it
TINY = 1e-4  # extra L2 distance past a linearized boundary, so that a tie is not a target


def project_to_polytope(
    anchor: Tensor, grads: Tensor, bounds: Tensor, *, num_steps: int = 50
) -> tuple[Tensor, Tensor]:
    """Point nearest to ``anchor`` in {z in [0, 1]^D : grads[j]·z >= bounds[j] for every j}.

    Args:
        anchor: (n, D) in [0, 1]; grads: (n, m, D); bounds: (n, m). A zero row of ``grads``
            with a bound <= 0 always holds: use it to pad images with fewer constraints.
    Returns: ``z`` (n, D) and ``feasible`` (n,) bool. Where the nearest point of the most
        violated half-space meets the other constraints, it is the answer; elsewhere Newton's
        method on the dual (m variables per image, z = clip(anchor + grads^T mu, 0, 1) with
        mu >= 0) finds it in a few steps. Where no point of the box meets every constraint,
        ``feasible`` is False and ``z`` trades distance for violation with a large, bounded mu.
    """
    if grads.dim() != 3 or anchor.shape != (grads.shape[0], grads.shape[2]):
        raise ValueError(
            f"need anchor (n, D), grads (n, m, D), bounds (n, m); got {tuple(anchor.shape)}, "
            f"{tuple(grads.shape)}, {tuple(bounds.shape)}"
        )
    if bounds.shape != grads.shape[:2]:
        raise ValueError(f"bounds must have shape {tuple(grads.shape[:2])}, got {bounds.shape}")
    # where the nearest point of the most violated half-space meets the others, it is the answer
    norms = grads.norm(dim=2)  # (n, m)
    gap = (bounds - (grads @ anchor[:, :, None]).squeeze(2)) / norms.clamp(min=1e-30)  # (n, m)
    first = gap.argmax(1)  # (n,)
    rows = torch.arange(len(anchor), device=anchor.device)
    z = project_to_halfspace(anchor, grads[rows, first], bounds[rows, first])
    tol = 10 * torch.finfo(anchor.dtype).eps * (1 + anchor.shape[1] ** 0.5)
    feasible = ((grads @ z[:, :, None]).squeeze(2) - bounds >= -tol * norms).all(1)  # (n,)
    if feasible.all():
        return z, feasible
    rest = (~feasible).nonzero()[:, 0]
    z[rest], feasible[rest] = _project_by_newton(anchor[rest], grads[rest], bounds[rest], num_steps)
    return z, feasible


def _project_by_newton(
    anchor: Tensor, grads: Tensor, bounds: Tensor, num_steps: int
) -> tuple[Tensor, Tensor]:
    """``project_to_polytope`` by Newton's method on the dual, for any number of constraints."""
    dtype, size = anchor.dtype, anchor.shape[1]
    norms = grads.norm(dim=2)  # (n, m); rows are scaled to unit length so mu is a distance
    scale = torch.where(norms > 0, 1 / torch.where(norms > 0, norms, 1), 0)
    unit, level = grads * scale[..., None], torch.where(norms > 0, bounds * scale, -1)
    eps = torch.finfo(dtype).eps
    tol = 10 * eps * (1 + size**0.5)  # in pixel-space distance, below attacks.TINY
    cap = 1e4 * (1 + size**0.5)  # bounds mu where the constraints cannot all be met
    mu = anchor.new_zeros(norms.shape)  # (n, m)
    damping = anchor.new_full((len(mu),), 16 * eps)  # (n,): Levenberg-Marquardt, if singular
    w, slack, value = _evaluate(anchor, unit, level, mu)
    for _ in range(num_steps):
        residual = torch.where(mu > 0, slack.abs(), (-slack).clamp(min=0))
        residual = torch.where(mu >= cap, slack.clamp(min=0), residual)
        if residual.amax().item() <= tol:
            break
        fixed = ((mu <= 0) & (slack > 0)) | ((mu >= cap) & (slack < 0))  # (n, m) at a bound
        inside = ((w > 0) & (w < 1)).to(dtype)  # (n, D): pixels the dual can still move
        hessian = (unit * inside[:, None, :]) @ unit.transpose(1, 2)  # (n, m, m), entries <= 1
        both = fixed[:, :, None] | fixed[:, None, :]
        scale = hessian.diagonal(dim1=1, dim2=2).amax(1, keepdim=True).clamp(min=1)  # (n, 1)
        diagonal = torch.where(fixed, 1, damping[:, None] * scale)
        hessian = torch.where(both, 0, hessian) + torch.diag_embed(diagonal)
        rhs = torch.where(fixed, 0, -slack)  # (n, m)
        newton, info = torch.linalg.solve_ex(hessian, rhs)  # (n, m); info > 0: singular
        newton = torch.where((info > 0)[:, None], rhs, newton)  # then a gradient step
        # backtrack from the full step, halving it where Armijo's condition fails
        ceiling = value + 10 * eps * (1 + value.abs())  # below this, values tie
        trial, full = mu.clone(), torch.zeros_like(value, dtype=torch.bool)
        new_w, new_slack, new_value = w.clone(), slack.clone(), value.clone()
        rows, length = torch.arange(len(mu), device=mu.device), 1.0
        for _ in range(_LINE_SEARCH_STEPS):
            step = (mu[rows] + length * newton[rows]).clamp(0, cap)  # (r, m)
            w_r, slack_r, value_r = _evaluate(anchor[rows], unit[rows], level[rows], step)
            decrease = ((step - mu[rows]) * slack[rows]).sum(1)  # (r,) <= 0
            good = value_r <= ceiling[rows] + 1e-4 * decrease
            done = rows[good]
            trial[done], new_w[done], new_slack[done] = step[good], w_r[good], slack_r[good]
            new_value[done], full[done] = value_r[good], length == 1.0
            rows, length = rows[~good], length / 2
            if len(rows) == 0:
                break
        found = torch.ones_like(full)
        found[rows] = False  # no step found: keep mu and damp more, toward a gradient step
        mu, w, slack, value = trial, new_w, new_slack, new_value
        damping = torch.where(found, damping / torch.where(full, 10, 1), damping * 100)
        damping = damping.clamp(16 * eps, unit.shape[1])  # |hessian| <= m: 1/m is safe
    z = w.clamp(0, 1)
    feasible = ((grads @ z[:, :, None]).squeeze(2) - bounds >= -tol * norms).all(1)
    return z, feasible


def _evaluate(anchor: Tensor, unit: Tensor, level: Tensor, mu: Tensor):
    """At duals ``mu`` (n, m): the unclipped primal point w (n, D), the dual gradient (n, m)
    and the dual objective to minimize, -min_z (|z - anchor|^2 / 2 - mu·(unit z - level))."""
    w = anchor + (mu[:, None, :] @ unit).squeeze(1)  # (n, D)
    z = w.clamp(0, 1)
    slack = (unit @ z[:, :, None]).squeeze(2) - level  # (n, m)
    return w, slack, -0.5 * ((z - anchor) ** 2).sum(1) + (mu * slack).sum(1)


def project_to_halfspace(anchor: Tensor, grad: Tensor, bound: Tensor) -> Tensor:
    """Point nearest to ``anchor`` in {z in [0, 1]^D : grad·z >= bound}, exactly.

    Args: ``anchor`` (n, D) in [0, 1], ``grad`` (n, D), ``bound`` (n,). The answer is
    clip(anchor + lam * grad, 0, 1) for the smallest lam >= 0 that reaches ``bound``; an
    unreachable bound gives the corner of the box that maximizes grad·z.
    Returns: (n, D). grad·z is concave and piecewise linear in lam, so Newton's method from
    lam = 0 never passes the answer and is exact once a step crosses no pixel's face.
    """
    face = (grad > 0).to(anchor.dtype)  # each coordinate moves toward this face of the box
    moving = grad != 0
    breaks = torch.where(moving, (face - anchor) / torch.where(moving, grad, 1), torch.inf)
    squares = grad**2  # (n, D)
    lam = anchor.new_zeros(len(anchor))  # (n,)
    for _ in range(anchor.shape[1] + 1):  # each step but the last crosses a face
        reached = (grad * (anchor + lam[:, None] * grad).clamp(0, 1)).sum(1)
        slope = (squares * (breaks > lam[:, None])).sum(1)  # d(grad·z)/d(lam) just after lam
        step = torch.where((reached < bound) & (slope > 0), (bound - reached) / slope, 0)
        new = lam + step
        crossed = ((breaks > lam[:, None]) & (breaks < new[:, None])).any(1)
        lam = new
        if not crossed.any():
            break
    return torch.where(moving, (anchor + lam[:, None] * grad).clamp(0, 1), anchor)


def boundary_point(point: Tensor, grad: Tensor, value: Tensor, anchor: Tensor) -> Tensor:
    """Nearest point to ``anchor`` (n, C, H, W) in the box where the margin, ``value`` (n,) with
    gradient ``grad`` (n, C, H, W) at ``point`` (n, C, H, W), linearized, reaches TINY·|grad|."""
    grad_flat = grad.flatten(1)  # (n, D)
    bound = (grad_flat * point.flatten(1)).sum(1) - value + TINY * grad_flat.norm(dim=1)
    return project_to_halfspace(anchor.flatten(1), grad_flat, bound).view_as(anchor)


def direction(grad: Tensor, norm: str) -> Tensor:
    """The unit step (n, C, H, W) along ``grad``: its sign (linf) or its direction (l2)."""
    if norm == "linf":
        return grad.sign()
    return grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]


def project_to_ball(delta: Tensor, norm: str, eps: float | None) -> Tensor:
    """``delta`` (n, C, H, W) brought into the ``norm`` ball of radius ``eps`` (None: as is)."""
    if eps is None:
        return delta
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / delta.flatten(1).norm(dim=1).clamp(min=1e-12)).clamp(max=1)
    return delta * scale[:, None, None, None]


def random_in_ball(x: Tensor, norm: str, eps: float, generator: torch.Generator) -> Tensor:
    """A random start (n, C, H, W): uniform in the linf ball, or on the l2 sphere, of ``eps``."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    return eps * (noise if norm == "linf" else direction(noise, "l2"))


def unit(v: Tensor) -> Tensor:
    """``v`` (n, ...) with each row scaled to unit L2 norm (a zero row stays zero)."""
    return v / v.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (v.dim() - 1))


__all__ = [
    "TINY",
    "boundary_point",
    "direction",
    "project_to_ball",
    "project_to_halfspace",
    "project_to_polytope",
    "random_in_ball",
    "unit",
]
