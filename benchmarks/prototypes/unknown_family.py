"""Prototype (issue 27): label-only explanations of a provider of unknown family, and the honest
benchmark that judges them.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/prototypes/unknown_family.py
    .venv/bin/python benchmarks/prototypes/unknown_family.py --families SmallCNN --max-images 20

Four providers, each of a different family, are trained on the bundled ``train`` split as
notebook 01 trains its SmallCNN (8 epochs, seed 0): SmallCNN, LeNetBN, SmallResNet, and
``PatchMixer``, a tiny MLP-Mixer that no candidate list of the package holds. For each, the end
user labels the 1,000 ``pool`` images through the black box (probabilities) and
``surrogate.train_surrogate`` chooses among ``CANDIDATES`` less the provider's own family (leave
one family out), then trains ``--num-members`` of the winner.

Two sets of mistakes per provider:

- the *tuning* set, its mistakes on the pool split (``--tune`` runs it, with the TUNING grid):
  ``SETTINGS`` were chosen on the SmallCNN and LeNetBN providers' pool mistakes, GeoDA's
  settings on the SmallCNN provider's; the SmallResNet and PatchMixer providers were not used
  for any choice, not even through their pool;
- the *reported* set, its mistakes on the test split (the first ``--max-images`` by index).

The surrogate was trained on the pool's answers, so it has seen the tuning images with the black
box's (wrong) answers; the current search's size on both sets (1.99× and 2.10× at 100 queries,
1.41× and 1.41× at 500, SmallCNN provider, all its mistakes) says that bias is small.

For every budget of ``BUDGETS`` black-box queries per image, each method's median L2 ÷ the
developer's explanation (``attacks.explain(provider, mistakes, "deepfool_refined")``, as
``metrics.budget_record`` computes) and its success rate: ``explain`` here ("ours"), the current
``boundary.explain`` with benchmarks/blackbox.py's settings ("baseline", same surrogate), and
ART's HopSkipJump, GeoDA and Sign-OPT, targeted to the true class from the nearest test image of
that class, counted through a ``BlackBox`` the same way. Writes
benchmarks/prototypes/unknown_family.json unless --output says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import curves as curves_  # noqa: E402  (benchmarks/curves.py: HopSkipJump's settings, starts)

from helpers import (  # noqa: E402
    attacks,
    blackbox,
    boundary,
    data,
    engine,
    evaluation,
    geometry,
    metrics,
    models,
    objectives,
    surrogate,
    training,
    validation,
    zoo,
)
from helpers.blackbox import BlackBox, Strategy  # noqa: E402
from helpers.decision import Labels, Points  # noqa: E402
from helpers.engine import Model  # noqa: E402
from helpers.records import Explanation, Predictions  # noqa: E402

BUDGETS = (10, 25, 50, 100, 250, 500)  # black-box queries per image
SCHEDULE_QUERIES = 20  # the surrogate-guided step's share of a budget, at most (as curves.py)
CANDIDATES = ("SurrogateCNN", "SmallCNN", "MLP", "LeNetBN")  # as benchmarks/curves.py
LABEL_QUERIES = 1000  # the end user's pool, labelled once
PAPER = metrics.PAPER_BLACKBOX  # >= 95% success at <= 8.73 queries per image
PAPER_POOL_SIZES = (15, 30, 75, 150)  # label curve: the paper's point from <= 150 labels

# explain's settings, chosen on the SmallCNN and LeNetBN providers' pool mistakes, see TUNING
SETTINGS = {"arc": True, "prior_sigma": 0.0, "num_directions": 80}
ARC_TOLERANCE = 0.01  # radians: the semicircle's bisection stops within this angle
# what was tried on the tuning set, each value changed alone (--tune runs them)
TUNING = {"arc": (False, True), "prior_sigma": (0.0, 1.0), "num_directions": (20, 40, 80)}


class PatchMixer(models.Classifier):
    """A tiny MLP-Mixer (Tolstikhin et al. 2021): 4x4 patches embedded in ``dim`` channels, then
    ``depth`` blocks that mix across patches and across channels, mean-pooled to logits.

    Args:
        shape: image_shape (H and W divisible by ``patch``), num_classes, mean, std, as
            `models.Classifier` takes them.
        patch, dim, depth: patch side in pixels, channels, number of blocks.
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(
        self, *shape: Any, patch: int = 4, dim: int = 64, depth: int = 2, **named: Any
    ) -> None:
        super().__init__(*shape, patch=patch, dim=dim, depth=depth, **named)
        channels, height, width = self.image_shape
        tokens = (height // patch) * (width // patch)
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.blocks = nn.ModuleList(MixerBlock(tokens, dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        z = self.embed(self.normalize(x)).flatten(2).transpose(1, 2)  # (N, tokens, dim)
        for block in self.blocks:
            z = block(z)
        return self.head(self.norm(z).mean(1))


class MixerBlock(nn.Module):
    """An MLP across the tokens, then one across the channels, each after a LayerNorm and with a
    shortcut: (N, tokens, dim) -> (N, tokens, dim)."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1, self.tokens = nn.LayerNorm(dim), _mlp(tokens)
        self.norm2, self.channels = nn.LayerNorm(dim), _mlp(dim)

    def forward(self, z: Tensor) -> Tensor:
        z = z + self.tokens(self.norm1(z).transpose(1, 2)).transpose(1, 2)
        return z + self.channels(self.norm2(z))


def _mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))


FAMILIES: dict[str, type[models.Classifier]] = {
    "SmallCNN": models.SmallCNN,
    "LeNetBN": zoo.LeNetBN,
    "SmallResNet": zoo.SmallResNet,
    "PatchMixer": PatchMixer,  # in no candidate list: the unknown family
}


# ---------------------------------------------------------------------------------------------
# The method: boundary.explain's search with a smoothed prior


def explain(
    black_box: BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    *,
    num_shrink_queries: int = 80,
    num_directions: int = SETTINGS["num_directions"],
    arc: bool = SETTINGS["arc"],
    prior_sigma: float = SETTINGS["prior_sigma"],
    starts: Tensor | None = None,
    strategy: Strategy | None = None,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    progress: list | None = None,
    **changes: Any,
) -> Explanation:
    """``boundary.explain`` whose step and search along the estimated normal are replaced by
    one bisection on a semicircle (CGBA, Reza et al. 2023), optionally with a blurred prior.

    Each round estimates the boundary's normal at x_adv as ``boundary.explain`` does (the
    surrogate's gradient, refined by the labels of ``num_directions`` probes). Instead of a step
    along it and a binary search back from x, the next point is found on the circle whose
    diameter is [x, x_adv], in the plane of x_adv - x and the normal: every point of it is
    nearer x than x_adv, and for a flat boundary the point where it leaves the y side is the
    boundary's point nearest x. A poor normal then costs a small gain, never a step wasted.

    Args:
        black_box, surrogate, x, y, index, num_shrink_queries, num_directions, strategy,
            generator, progress, changes: as for ``boundary.explain``.
        arc: the semicircle's bisection (False: ``boundary``'s step and search).
        prior_sigma: blurs the surrogate's gradient by a Gaussian of this many pixels (0: as
            is). With both at their ``boundary`` values this is ``boundary.explain``.
        starts: (N, C, H, W) in [0, 1] points the black box is known to answer y to, such as
            the user's own pool images it labelled y (``nearest_answered``): an image whose
            start is nearer x than the surrogate-guided step's point searches from its start,
            at no query (None: the step's point, as ``boundary.explain``).
    Returns: an ``Explanation``, as ``boundary.explain``'s.
    """
    validation.check_count(num_shrink_queries, "num_shrink_queries", minimum=0)
    validation.check_count(num_directions, "num_directions", minimum=0)
    if not 0 <= prior_sigma < math.inf:
        raise ValueError(f"prior_sigma must be >= 0 pixels, got {prior_sigma}.")
    x, y, from_record = attacks.unpack(x, y)
    strategy = (strategy or Strategy()).but(**changes)
    max_queries = strategy.max_queries + num_shrink_queries
    index = from_record if index is None else index
    if starts is not None and starts.shape != x.shape:
        raise ValueError(f"starts must be shaped like x {tuple(x.shape)}, got {starts.shape}.")
    first = blackbox.explain(black_box, surrogate, x, y, strategy, index=index)
    if starts is not None:
        first = _nearer_start(first, y, starts)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    labels = Labels(black_box, first.logits.shape[1], y, first.queries, max_queries)
    points = Points(
        first.x, first.x_adv.clone(), first.logits_adv.clone(), first.y_pred.clone(), progress
    )
    rows = (first.success & first.attacked).nonzero()[:, 0]
    with blackbox.evaluating(surrogate):
        boundary._search(labels, points, rows, points.x_adv[rows])
        iteration = 0
        while len(rows := rows[labels.left(rows) >= 2]) and not labels.exhausted:
            iteration += 1
            prior = _prior(surrogate, points, labels, rows, prior_sigma)
            normal = _normal(labels, points, rows, prior, num_directions, generator)
            if arc:
                _arc(labels, points, rows, normal)
                continue
            step = boundary.STEP / math.sqrt(iteration)
            moved, ends = boundary._step(labels, points, rows, normal, step)
            if len(moved):
                boundary._search(labels, points, moved, ends)
    if labels.exhausted:
        warnings.warn("the black box's budget ran out while shrinking.", stacklevel=2)
    return replace(
        first,
        x_adv=points.x_adv,
        logits_adv=points.logits_adv,
        queries=first.queries + labels.counter.queries,
        forward_passes=first.forward_passes + labels.counter.forward_passes,
        method=f"{first.method}_boundary_arc" if arc else f"{first.method}_boundary",
        settings={
            **first.settings,
            "num_shrink_queries": num_shrink_queries,
            "num_directions": num_directions,
            "arc": arc,
            "prior_sigma": prior_sigma,
        },
    )


def _nearer_start(first: Explanation, y: Tensor, starts: Tensor) -> Explanation:
    """``first`` with each attacked image's x_adv replaced by its start where that is nearer x
    (its answer, y, known: its logits are the log of y's one-hot, as ``blackbox.Answers``
    gives a labels-only answer)."""
    reach = torch.where(first.success, first.l2, torch.inf)  # (N,)
    distance = (starts - first.x).flatten(1).norm(dim=1)
    nearer = first.attacked & (distance > 0) & (distance < reach)  # x itself: no start
    known = F.one_hot(y, first.logits_adv.shape[1]).to(first.logits_adv).log()
    return replace(
        first,
        x_adv=torch.where(nearer[:, None, None, None], starts, first.x_adv),
        logits_adv=torch.where(nearer[:, None], known, first.logits_adv),
        success=first.success | nearer,
    )


def nearest_answered(x: Tensor, y: Tensor, pool: Tensor, answers: Tensor) -> Tensor:
    """(N, C, H, W): for each image of x (N, C, H, W), the image of ``pool`` (M, C, H, W)
    nearest it in L2 among those whose black-box answer, ``answers`` (M,), is its y (N,); an
    image with none keeps x itself, which the search then skips (x is answered otherwise)."""
    starts = x.clone()
    for i in range(len(x)):
        mine = pool[answers == y[i]]
        if len(mine):
            starts[i] = mine[(mine - x[i]).flatten(1).norm(dim=1).argmin()]
    return starts


def _arc(labels: Labels, points: Points, rows: Tensor, normal: Tensor) -> None:
    """Bisect on the angle theta of the circle x + r cos(theta) (cos(theta) u + sin(theta) v),
    u = unit(x_adv - x), v the unit part of ``normal`` (n, C, H, W) orthogonal to u, r the
    distance of x_adv: theta = 0 is x_adv (answered y), pi / 2 is x (answered otherwise).
    Every point answered y is kept if nearer x (the circle's points are, once clipped to
    [0, 1], nearly always)."""
    x, radius = points.x[rows], points.distance(rows)  # (n, C, H, W), (n,)
    u = geometry.unit(points.x_adv[rows] - x)
    v = geometry.unit(normal - (normal * u).flatten(1).sum(1)[:, None, None, None] * u)
    low, high = x.new_zeros(len(rows)), x.new_full((len(rows),), math.pi / 2)
    active = torch.arange(len(rows), device=x.device)
    while len(active := active[(high[active] - low[active]) > ARC_TOLERANCE]):
        middle = (low[active] + high[active]) / 2
        theta = middle[:, None, None, None]
        toward = theta.cos() * u[active] + theta.sin() * v[active]
        candidate = x[active] + radius[active, None, None, None] * theta.cos() * toward
        keep, logits = labels.ask(candidate.clamp(0, 1), rows[active])
        if not keep.any():
            break
        active, middle, candidate = active[keep], middle[keep], candidate[keep].clamp(0, 1)
        logits = logits[:, 0]
        reached = labels.reached(rows[active], logits[:, None])[:, 0]
        low[active] = torch.where(reached, middle, low[active])
        high[active] = torch.where(reached, high[active], middle)
        points.keep(rows[active], candidate, logits, reached, labels.used(rows[active]))
        points.other[rows[active][~reached]] = logits[~reached].argmax(1)
    points.gap[rows] = radius * (high - low)  # about the bracket's length, for the next probes


def blur(v: Tensor, sigma: float) -> Tensor:
    """``v`` (n, C, H, W), each channel convolved with a Gaussian of ``sigma`` pixels (zero
    padding; 0 returns ``v``)."""
    if sigma == 0:
        return v
    reach = max(1, math.ceil(3 * sigma))
    t = torch.arange(-reach, reach + 1, dtype=v.dtype, device=v.device)
    line = torch.exp(-(t**2) / (2 * sigma**2))
    line = line / line.sum()
    kernel = (line[:, None] * line[None])[None, None].expand(v.shape[1], 1, -1, -1)
    return F.conv2d(v, kernel, padding=reach, groups=v.shape[1])


def _prior(surrogate: Model, points: Points, labels: Labels, rows: Tensor, sigma: float) -> Tensor:
    """(n, C, H, W) unit, blurred surrogate gradients of z_y - z_other at ``x_adv[rows]``."""
    point, y, other = points.x_adv[rows], labels.y[rows], points.other[rows]
    _, _, grad = engine.objective_gradient(surrogate, point, y, objectives.pair(other))
    return geometry.unit(blur(grad, sigma))


def _normal(
    labels: Labels,
    points: Points,
    rows: Tensor,
    prior: Tensor,
    num_directions: int,
    generator: torch.Generator,
) -> Tensor:
    """``boundary._normal`` around a given ``prior`` (n, C, H, W): the prior weighed by its
    cosine with the normal as the probes estimate it, plus the probes' estimate of the rest."""
    asked = (labels.left(rows) >= num_directions + 1).nonzero()[:, 0]  # keep one to step with
    if num_directions and len(asked):
        boundary._probe(labels, points, rows[asked], prior[asked], num_directions, generator)
    agree = points.agree[rows] / points.mixed[rows].clamp(min=1)  # P(agree) = 1 - angle / pi
    has = points.mixed[rows] > 0
    cosine = torch.where(has, torch.cos(math.pi * (1 - agree)), torch.ones_like(agree))
    memory = points.memory[rows]
    along = (memory * prior).flatten(1).sum(1)[:, None, None, None]
    orthogonal = geometry.unit(memory - along * prior)
    dimension = prior[0].numel()
    trust = (2 * points.probes[rows] / (math.pi * dimension)).sqrt().clamp(max=1)
    weight = trust * (1 - cosine**2).clamp(min=0).sqrt()
    return geometry.unit(
        cosine[:, None, None, None] * prior + weight[:, None, None, None] * orthogonal
    )


# ---------------------------------------------------------------------------------------------
# The providers and the end user's surrogates


def train_provider(
    dataset: data.Dataset, family: str, *, seed: int, num_epochs: int, cache: Path
) -> nn.Module:
    """A provider of ``family`` trained as ``training.train_new_cnn`` trains one (weights from
    ``seed``, Adam, ``num_epochs`` over ``dataset.train``), loaded from ``cache`` if there."""
    with torch.random.fork_rng(devices=[]):  # the weights' init must not touch the global RNG
        torch.manual_seed(seed)
        model = FAMILIES[family](
            dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std
        )
    path = cache / f"provider_{family}_seed{seed}_{num_epochs}epochs.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        generator = torch.Generator().manual_seed(seed)
        training.train(
            model, dataset.train, num_epochs=num_epochs, generator=generator, progress=False
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval()


def train_user_surrogate(
    model: nn.Module,
    dataset: data.Dataset,
    family: str,
    *,
    seed: int,
    num_members: int,
    num_epochs: int,
) -> surrogate.Surrogate:
    """The end user's surrogate: 1,000 probability answers on the pool, the architecture chosen
    among CANDIDATES less ``family`` by held-out agreement, ``num_members`` of it."""
    candidates = [name for name in CANDIDATES if name != family]
    black_box = BlackBox(model, max_queries=LABEL_QUERIES)
    return surrogate.train_surrogate(
        black_box,
        dataset.pool.x,
        num_classes=dataset.num_classes,
        probabilities=True,
        num_epochs=num_epochs,
        architecture=candidates,
        num_members=num_members,
        generator=torch.Generator().manual_seed(seed),
    )


def mistakes_of(model: nn.Module, split: data.Split, max_images: int | None):
    """The model's mistakes on ``split``, the first ``max_images`` by their index in it (not the
    most confident ones, which ``find_misclassified`` puts first)."""
    mistakes = evaluation.find_misclassified(model, split)
    return mistakes[mistakes.index.argsort()[:max_images]]


# ---------------------------------------------------------------------------------------------
# The methods at a budget, each through a fresh black box


def ours(black_box, model, x, y, budget, settings):
    schedule = min(SCHEDULE_QUERIES, budget)
    return explain(
        black_box,
        model,
        x,
        y,
        max_queries=schedule,
        num_shrink_queries=budget - schedule,
        **settings,
    )


def baseline(black_box, model, x, y, budget, settings):
    schedule = min(SCHEDULE_QUERIES, budget)
    return boundary.explain(
        black_box, model, x, y, max_queries=schedule, num_shrink_queries=budget - schedule
    )


def budget_curve(run, name, model, net, mistakes, whitebox, settings=None) -> list[dict]:
    """``run`` at every budget, each through a fresh black box, with its checks."""
    records = []
    for budget in BUDGETS:
        black_box = BlackBox(model)
        start = time.perf_counter()
        result = run(black_box, net, mistakes.x, mistakes.y, budget, settings or {})
        assert black_box.queries == result.forward_passes.sum().item()
        assert (result.queries <= budget).all()
        fresh = evaluation.predict_logits(model, result.x_adv).argmax(1) == mistakes.y
        assert torch.equal(result.success, fresh)
        record = metrics.budget_record(name, budget, result, whitebox)
        records.append({**record, "seconds": time.perf_counter() - start})
    return records


# ---------------------------------------------------------------------------------------------
# Peers: ART's label-only attacks, one image at a time, through a BlackBox


PEERS = {  # GeoDA's chosen on the SmallCNN provider's pool mistakes; Sign-OPT's are ART's
    "HopSkipJump": curves_.HOPSKIPJUMP,
    "GeoDA": {"bin_search_tol": 0.001, "sigma": 0.0005},
    "Sign-OPT": {"k": 200},
}


class _Spent(Exception):
    """An image's budget is spent: the peer stops there."""


def peer_curve(name: str, model: nn.Module, mistakes, whitebox, starts: Tensor) -> list[dict]:
    """ART's ``name`` with PEERS[name], targeted to y, at every budget. Their settings do not
    depend on the budget, so one run of max(BUDGETS) queries per image gives each budget's
    result: the nearest point to x answered y within its first ``budget`` queries (the answer
    on x itself is free, as for ours)."""
    from art.attacks.evasion import GeoDA, HopSkipJump, SignOPTAttack
    from art.estimators.classification import BlackBoxClassifier

    if not hasattr(np, "mat"):
        np.mat = np.asmatrix  # ART 1.20's GeoDA still calls np.mat, which NumPy 2 removed
    x, y = mistakes.x, mistakes.y
    best = x.new_full((len(BUDGETS), len(x)), math.inf)
    x_best = starts[None].repeat(len(BUDGETS), 1, 1, 1, 1)  # the start is answered y
    limits = torch.tensor(BUDGETS)
    start = time.perf_counter()
    for i in range(len(x)):
        black_box = BlackBox(model, max_queries=max(BUDGETS) + 1)
        first = int(mistakes.y_pred[i])

        def predict(batch: np.ndarray, i=i, black_box=black_box, first=first) -> np.ndarray:
            images = torch.from_numpy(batch).to(x).clamp(0, 1)
            room = min(len(images), black_box.queries_left)
            spent = black_box.queries  # x's own answer among them
            answers = black_box.labels(images[:room])
            distance = (images[:room] - x[i]).flatten(1).norm(dim=1)
            for j in (answers == y[i]).nonzero()[:, 0].tolist():
                within = (limits >= spent + j) & (distance[j] < best[:, i])
                best[within, i], x_best[within, i] = distance[j], images[j]
            if room < len(images):
                raise _Spent
            if name == "GeoDA":  # untargeted away from x's answer: adversarial iff answered y
                answers = torch.where(answers == y[i], answers, first)
            return np.eye(whitebox.logits.shape[1], dtype=np.float32)[answers.cpu().numpy()]

        classifier = BlackBoxClassifier(
            predict, tuple(x.shape[1:]), whitebox.logits.shape[1], clip_values=(0, 1)
        )
        classifier.channels_first = True  # GeoDA reads it; images are (N, C, H, W)
        np.random.seed(i)  # ART draws from NumPy's global generator
        x_i, start_i = x[i : i + 1].cpu().numpy(), starts[i : i + 1].cpu().numpy()
        with contextlib.suppress(_Spent), tempfile.TemporaryDirectory() as folder:
            if name == "HopSkipJump":
                attack = HopSkipJump(classifier, targeted=True, verbose=False, **PEERS[name])
                attack.generate(x_i, y=np.array([int(y[i])]), x_adv_init=start_i)
            elif name == "Sign-OPT":
                attack = SignOPTAttack(
                    classifier,
                    targeted=True,
                    verbose=False,
                    max_iter=10**6,
                    query_limit=10**9,
                    **PEERS[name],
                )
                attack.generate(x_i, y=np.array([int(y[i])]), x_init=start_i)
            else:
                attack = GeoDA(classifier, verbose=False, max_iter=max(BUDGETS), **PEERS[name])
                attack._find_random_adversarial = _from_start(attack, start_i)
                with contextlib.chdir(folder):  # GeoDA saves its DCT basis in the working folder
                    attack.generate(x_i, y=np.array([first]))
    seconds = (time.perf_counter() - start) / len(BUDGETS)
    records = []
    for k, budget in enumerate(BUDGETS):
        result = _Found(model, x, y, x_best[k], budget)
        record = metrics.budget_record(name, budget, result, whitebox)
        records.append({**record, "seconds": seconds})
    return records


def _peer_run(name: str, model, net, mistakes, whitebox, *, starts: Tensor) -> list[dict]:
    """``peer_curve`` called as ``budget_curve``'s runs are (a peer has no surrogate)."""
    return peer_curve(name, model, mistakes, whitebox, starts)


def _from_start(attack, start: np.ndarray):
    """GeoDA's random search for a first adversarial point, replaced by the start (1 query)."""

    def first(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        attack.nb_calls += 1
        attack._is_adversarial(start, y)
        return start

    return first


class _Found:
    """The fields ``metrics.budget_record`` reads, for a peer's best points."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, budget: int):
        with torch.no_grad():
            self.success = model(x_adv).argmax(1) == y
        self.delta, self.queries = x_adv - x, torch.full((len(x),), budget)
        self.l2 = self.delta.flatten(1).norm(dim=1)


# ---------------------------------------------------------------------------------------------
# The label curve: the paper's point from few labels


def label_curve(
    model: nn.Module, dataset: data.Dataset, mistakes, *, seed: int, num_epochs: int
) -> list[dict]:
    """The default black-box explanation (``blackbox.explain``, 20 queries at most) through a
    course surrogate (SurrogateCNN, never a provider's family here) trained from each of
    PAPER_POOL_SIZES pool images, as many optimizer steps as from 1,000."""
    records = []
    for pool_size in PAPER_POOL_SIZES:
        epochs = training.matched_epochs(pool_size, LABEL_QUERIES, num_epochs)
        trained = surrogate.train_surrogate(
            BlackBox(model, max_queries=pool_size),
            dataset.pool.x,
            num_classes=dataset.num_classes,
            num_seed=pool_size,
            probabilities=True,
            num_epochs=epochs,
            generator=torch.Generator().manual_seed(seed),
        )
        result = blackbox.explain(BlackBox(model), trained.model, mistakes)
        records.append(metrics.label_record(pool_size, False, trained.label_queries, None, result))
    return records


# ---------------------------------------------------------------------------------------------
# The benchmark


def main() -> None:
    args = _parser().parse_args()
    torch.set_num_threads(args.num_threads)
    dataset = data.load_dataset()
    start = time.perf_counter()
    providers = {}
    for family in args.families:
        providers[family] = {}

        def save() -> None:
            _write(args, providers, time.perf_counter() - start)

        run_provider(family, dataset, args, providers[family], save)


def run_provider(
    family: str, dataset: data.Dataset, args: argparse.Namespace, record: dict, save
) -> None:
    """Fill ``record`` with everything the report holds about one provider, calling ``save``
    after each curve (a long run keeps what it has measured)."""
    seconds = {}
    clock = time.perf_counter()
    model = train_provider(
        dataset, family, seed=args.seed, num_epochs=args.num_epochs, cache=args.cache
    )
    seconds["provider"] = time.perf_counter() - clock
    clock = time.perf_counter()
    user = _cached_surrogate(model, dataset, family, args)
    seconds["surrogate"] = time.perf_counter() - clock
    net = user["model"]
    # the 1,000 answers the surrogate was trained on, already counted in its label queries
    answers = evaluation.predict_logits(model, dataset.pool.x).argmax(1)
    record.update(
        {
            "test_accuracy": evaluation.evaluate(model, dataset.test).accuracy,
            "surrogate": {k: v for k, v in user.items() if k != "model"},
            "seconds": seconds,
        }
    )
    print(
        f"{family}: test accuracy {record['test_accuracy']:.2%}; surrogate "
        f"{user['chosen']} x{args.num_members} of {user['candidates']}",
        flush=True,
    )
    roles = [("tuning", dataset.pool)] if args.tune else []
    for role, split in [*roles, ("reported", dataset.test)]:
        clock = time.perf_counter()
        mistakes = mistakes_of(model, split, args.max_images)
        whitebox = attacks.explain(model, mistakes, method="deepfool_refined")
        curves: dict[str, list[dict]] = {}
        record[role] = {
            "split": "pool" if role == "tuning" else "test",
            "num_mistakes": len(mistakes),
            "index": mistakes.index.tolist(),
            "whitebox_median_l2": whitebox.l2[whitebox.success].median().item(),
            "gradient_cosine": _gradient_cosine(model, net, mistakes, whitebox),
            "curves": curves,
        }
        pool_starts = nearest_answered(mistakes.x, mistakes.y, dataset.pool.x, answers)
        settings = {**SETTINGS, "starts": pool_starts}
        runs = {
            "ours": partial(budget_curve, ours, "ours", settings=settings),
            "baseline": partial(budget_curve, baseline, "baseline"),
        }
        if role == "reported":
            starts = curves_.starts_of_true_class(model, dataset.test, mistakes.x, mistakes.y)
            for name in PEERS:
                runs[name] = partial(_peer_run, name, starts=starts)
        for name, run in runs.items():
            if name not in args.methods:
                continue
            curves[name] = run(model, net, mistakes, whitebox)
            print(f"  {role:8} {name:24}" + _row(curves[name]), flush=True)
            save()
        if role == "tuning":
            curves.update(_tuning_curves(model, net, mistakes, whitebox, settings))
            save()
        seconds[role] = time.perf_counter() - clock
    if not args.skip_label_curve:
        clock = time.perf_counter()
        mistakes = mistakes_of(model, dataset.test, args.max_images)
        record["label_curve"] = label_curve(
            model, dataset, mistakes, seed=args.seed, num_epochs=args.surrogate_epochs
        )
        seconds["label_curve"] = time.perf_counter() - clock
    record["targets"] = _targets(record)
    save()


def _tuning_curves(model, net, mistakes, whitebox, chosen: dict) -> dict[str, list[dict]]:
    """``ours`` with each value of TUNING changed alone from ``chosen``, on the tuning set."""
    curves = {}
    for name, values in TUNING.items():
        for value in values:
            if value != SETTINGS[name]:
                settings = {**chosen, name: value}
                label = f"ours, {name}={value}"
                curves[label] = budget_curve(ours, label, model, net, mistakes, whitebox, settings)
    return curves


def _cached_surrogate(model, dataset, family, args) -> dict:
    """The end user's surrogate and what it cost, from ``args.cache`` when it was trained there
    with the same settings."""
    path = args.cache / (
        f"surrogate_{family}_seed{args.seed}_{args.num_members}x{args.surrogate_epochs}.pt"
    )
    if path.exists():
        return torch.load(path, weights_only=False)
    trained = train_user_surrogate(
        model,
        dataset,
        family,
        seed=args.seed,
        num_members=args.num_members,
        num_epochs=args.surrogate_epochs,
    )
    user = {
        "model": trained.model,
        "candidates": trained.candidates,
        "chosen": trained.settings["chosen"],
        "label_queries": trained.label_queries,
    }
    torch.save(user, path)
    return user


def _gradient_cosine(model, net, mistakes, whitebox) -> dict:
    """A diagnostic no user has (never an input): the median cosine of the surrogate's gradient,
    as is and blurred by SETTINGS' prior_sigma, with the provider's, at the developer's end
    points."""
    point, y, other = whitebox.x_adv, mistakes.y, mistakes.y_pred
    grads = [
        engine.objective_gradient(m, point, y, objectives.pair(other))[2] for m in (model, net)
    ]
    provider = geometry.unit(grads[0])
    cosine = {}
    for name, sigma in (("as_is", 0.0), ("blurred", SETTINGS["prior_sigma"])):
        values = (provider * geometry.unit(blur(grads[1], sigma))).flatten(1).sum(1)
        cosine[name] = values[whitebox.success].median().item()
    return cosine


def _targets(record: dict) -> dict:
    """Issue 27's targets for one provider, judged on the reported set."""
    curves = record["reported"]["curves"]
    ratio = {b["budget"]: b for b in curves["ours"]}
    peers = [name for name in PEERS if name in curves]
    smaller = all(
        point["median_l2_ratio_to_whitebox"] < peer["median_l2_ratio_to_whitebox"]
        for name in peers
        for point, peer in zip(curves["ours"], curves[name])
    )
    reached = [  # success rates are float32 means: 19 of 20 is 0.94999998
        r
        for r in record.get("label_curve", [])
        if round(r["success_rate"], 6) >= 0.95
        and r["mean_queries"] <= PAPER.mean_queries
        and r["label_queries"] <= 150
    ]
    return {
        "all_explained": all(point["success_rate"] == 1 for point in curves["ours"]),
        "within_1.5x_at_100": ratio[100]["median_l2_ratio_to_whitebox"] <= 1.5,
        "within_1.2x_at_500": ratio[500]["median_l2_ratio_to_whitebox"] <= 1.2,
        "smaller_than_peers_at_every_budget": smaller if peers else None,
        "paper_point_from_at_most_150_labels": bool(reached) if "label_curve" in record else None,
    }


def _row(curve: list[dict]) -> str:
    return "".join(
        f"  {p['budget']}: {p['median_l2_ratio_to_whitebox']:.3f}"
        + ("" if p["success_rate"] == 1 else f" ({p['success_rate']:.0%})")
        for p in curve
    )


def _write(args: argparse.Namespace, providers: dict, seconds: float) -> None:
    """The report: each provider, then the headline, the median over providers."""
    methods = ["ours", "baseline", *PEERS]
    headline = {}
    for name in methods:
        curves = [
            p["reported"]["curves"][name]
            for p in providers.values()
            if name in p.get("reported", {}).get("curves", {})
        ]
        if len(curves) == len(providers):
            headline[name] = [
                {
                    "budget": budget,
                    "median_over_providers": float(
                        np.median([c[k]["median_l2_ratio_to_whitebox"] for c in curves])
                    ),
                    "worst_provider": max(c[k]["median_l2_ratio_to_whitebox"] for c in curves),
                    "lowest_success_rate": min(c[k]["success_rate"] for c in curves),
                }
                for k, budget in enumerate(BUDGETS)
            ]
    report = {
        "dataset": data.BUNDLED,
        "budgets": list(BUDGETS),
        "settings": SETTINGS,
        "tuning_grid": {name: list(values) for name, values in TUNING.items()},
        "peers": PEERS,
        "candidates": list(CANDIDATES),
        "num_members": args.num_members,
        "surrogate_epochs": args.surrogate_epochs,
        "max_images": args.max_images,
        "providers": providers,
        "headline": headline,
        "seconds": seconds,
        "num_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "command": " ".join(["python", *sys.argv]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output} ({seconds:.0f} s so far)", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--max-images", type=int, default=40, help="reported and tuning mistakes")
    parser.add_argument("--num-members", type=int, default=8)
    parser.add_argument("--surrogate-epochs", type=int, default=40)
    parser.add_argument("--num-epochs", type=int, default=8, help="the providers' epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--tune", action="store_true", help="the tuning set too, with TUNING")
    methods = ["ours", "baseline", *PEERS]
    parser.add_argument("--methods", nargs="+", default=methods, choices=methods)
    parser.add_argument("--skip-label-curve", action="store_true")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "prototypes")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("unknown_family.json")
    )
    return parser


if __name__ == "__main__":
    main()
