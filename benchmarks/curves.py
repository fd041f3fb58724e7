"""What benchmarks/blackbox.py measures on one provider: each method's budget curve (explanation
size against black-box queries per image), ours beside ART's label-only attacks, and the label
curve (the paper's point from surrogates trained on few labels)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from helpers import (
    blackbox,
    data,
    engine,
    evaluation,
    geometry,
    metrics,
    objectives,
    surrogate,
    training,
)
from helpers.attacks import boundary, transfer
from helpers.records import Explanation, Mistakes

BUDGETS = (10, 25, 50, 100, 250, 500)  # black-box queries per image
SCHEDULE_QUERIES = 20  # the surrogate-guided step's share of a budget, at most
MAIN_POOL = 1000  # the end user's pool: the label curve matches its optimizer steps
LABEL_BUDGET = 8  # ours' queries per image in the label curve: the paper's 8.73, rounded down,
# so that the mean cannot exceed it
# The peers' settings. HopSkipJump's are ART's defaults but for init_eval (10: its first
# rounds fit small budgets); GeoDA's were chosen on the SmallCNN provider's pool mistakes (the
# tuning set, never the reported mistakes; benchmarks/prototypes/), and it plans its queries for
# the largest budget whatever the run's; Sign-OPT's are ART's.
PEERS = {
    "HopSkipJump": {
        "norm": 2,
        "max_iter": 10_000,
        "init_eval": 10,
        "max_eval": 1000,
        "init_size": 1,
    },
    "GeoDA": {"bin_search_tol": 0.001, "sigma": 0.0005, "max_iter": max(BUDGETS)},
    "Sign-OPT": {"k": 200},
}
LABELS = {  # how tables call them
    "HopSkipJump": "HopSkipJump (ART, targeted)",
    "GeoDA": "GeoDA (ART)",
    "Sign-OPT": "Sign-OPT (ART, targeted)",
}


def clock() -> Callable[[], dict[str, float]]:
    """Start a clock; calling the result gives the wall and CPU seconds since (this process's
    CPU time: on a loaded machine, about what the work would take alone at 1 thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    return lambda: {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
    }


def gradient_cosine(model, net, mistakes: Mistakes, whitebox: Explanation) -> float:
    """Median cosine of ``net``'s and the provider's gradients (of y against the provider's
    answer) at the white-box end points: a diagnostic no user has."""
    point, y, other = whitebox.x_adv, mistakes.y, mistakes.y_pred
    grads = [
        engine.objective_gradient(m, point, y, objectives.pair(other))[2] for m in (model, net)
    ]
    cosine = (geometry.unit(grads[0]) * geometry.unit(grads[1])).flatten(1).sum(1)
    return cosine[whitebox.success].median().item()


def point(model, name: str, budget: int, result: Explanation, whitebox: Explanation) -> dict:
    """One point of a budget curve (``metrics.budget_record``) and ``rounded_rate``."""
    record = metrics.budget_record(name, budget, result, whitebox)
    return {**record, "success_after_rounding": rounded_rate(model, result)}


def rounded_rate(model, result: Explanation) -> float:
    """The share of ``result``'s images still explained once x_adv is rounded to 8 bits, as an
    API takes them (the model answers: the benchmark's referee, not a query)."""
    return metrics.success_after_rounding(model, result).float().mean().item()


def ours_curve(
    model,
    net,
    mistakes: Mistakes,
    whitebox: Explanation,
    budgets,
    name: str,
    bits: int | None = None,
    probe_seed: int = 0,
    **settings,
) -> list[dict]:
    """``boundary.explain`` with ``settings`` at every budget, each run alone through a fresh
    black box (its probes plan for the budget, so a longer run read at n would differ): the
    surrogate-guided step spends up to SCHEDULE_QUERIES, the search the rest. ``bits``: the
    black box answers about images rounded to that many bits, as an API that takes PNGs does,
    and the engine keeps the rounded image (None: unrounded images). ``probe_seed``: the seed
    of the search's random probes at every budget (0: ``boundary.explain``'s default)."""
    records = []
    for budget in budgets:
        black_box, elapsed = blackbox.BlackBox(model, bits=bits), clock()
        schedule = min(SCHEDULE_QUERIES, budget)
        result = boundary.explain(
            black_box,
            net,
            mistakes,
            max_queries=schedule,
            num_shrink_queries=budget - schedule,
            generator=torch.Generator().manual_seed(probe_seed),
            **settings,
        )
        check(model, mistakes, result, budget, black_box.queries)
        records.append({**point(model, name, budget, result, whitebox), **elapsed()})
    return records


def check(model, mistakes: Mistakes, result: Explanation, budget: int, answered: int) -> None:
    """What a curve's every point owes: the black boxes answered ``answered`` images, every
    one of them counted in ``result``; no image spent more than ``budget`` queries; and each
    success is a fresh prediction of y by the provider."""
    assert answered == result.forward_passes.sum().item()
    assert (result.queries <= budget).all()
    fresh = evaluation.predict_logits(model, result.x_adv).argmax(1) == mistakes.y
    assert torch.equal(result.success, fresh)


class Recorder(blackbox.BlackBox):
    """A ``BlackBox`` that keeps every image it answered about (as it answered: rounded where
    it rounds) and the probabilities it answered: the end user's own log of what they bought."""

    def __init__(self, model, **options) -> None:
        super().__init__(model, **options)
        self.asked: list[torch.Tensor] = []
        self.answered: list[torch.Tensor] = []

    def _ask(self, x: torch.Tensor) -> torch.Tensor:
        logits = super()._ask(x)
        self.asked.append(self.quantize(x.detach()))
        self.answered.append(logits.softmax(1))
        return logits


def halves_curve(
    model,
    net,
    mistakes: Mistakes,
    whitebox: Explanation,
    budgets,
    name: str,
    *,
    pool: tuple[torch.Tensor, torch.Tensor],
    refit_epochs: int,
    seed: int,
    starts: torch.Tensor | None = None,
    **settings,
) -> list[dict]:
    """``boundary.explain`` with ``settings`` in two halves of each budget: the first as
    ``ours_curve`` runs it, through ``net``; then a copy of ``net`` trained ``refit_epochs``
    more epochs on ``pool`` (the labelled pool's images and answers) and every image the first
    half asked about with its answer (points near the boundary: the most informative labels
    an end user buys; 0 epochs: ``net`` itself, the split's own cost); the second half searches
    from the first's points (as starts, at no query) through it, the surrogate-guided step
    cut to one query. Queries per image add up over the halves, within the budget; each point
    also has ``refit_gradient_cosine``, the refit surrogate's ``gradient_cosine``, if any."""
    if min(budgets) < 4:  # before any query: each half needs two
        raise ValueError(f"halves_curve needs budgets of at least 4, got {min(budgets)}.")
    records = []
    for budget in budgets:
        elapsed, half = clock(), budget // 2
        first_box, schedule = Recorder(model), min(SCHEDULE_QUERIES, half - 1)
        first = boundary.explain(
            first_box,
            net,
            mistakes,
            max_queries=schedule,
            num_shrink_queries=half - schedule,
            starts=starts,
            **settings,
        )
        refit = copy.deepcopy(net) if refit_epochs else net  # 0: the split's own cost
        if refit_epochs:
            x = torch.cat([pool[0], *first_box.asked])
            targets = torch.cat([pool[1], *first_box.answered])
            surrogate.fit(refit, x, targets, num_epochs=refit_epochs, seed=seed)
        begin = torch.where(first.success[:, None, None, None], first.x_adv, mistakes.x)
        second_box = blackbox.BlackBox(model)
        second = boundary.explain(
            second_box,
            refit.eval(),
            mistakes,
            max_queries=1,
            num_shrink_queries=budget - half - 1,
            starts=begin,
            **settings,
        )
        result = dataclasses.replace(
            second,
            queries=first.queries + second.queries,
            forward_passes=first.forward_passes + second.forward_passes,
        )
        check(model, mistakes, result, budget, first_box.queries + second_box.queries)
        assert (result.l2 <= first.l2 + 1e-6)[first.success].all()  # a start is never lost
        record = {**point(model, name, budget, result, whitebox), **elapsed()}
        if refit_epochs:  # the diagnostic, after the refit
            record["refit_gradient_cosine"] = gradient_cosine(model, refit, mistakes, whitebox)
        records.append(record)
    return records


class Spent(Exception):
    """An image's budget is spent: the peer stops there."""


def peer_curve(
    name: str, model, mistakes: Mistakes, whitebox: Explanation, starts: torch.Tensor, budgets
) -> list[dict]:
    """ART's ``name`` with PEERS[name], toward y, one image at a time from ``starts`` (points
    the black box answered y to, ours' starts), through a ``BlackBox``. Their settings do not
    depend on the budget, so one run of max(budgets) queries per image gives every budget's
    result exactly: the nearest point to x answered y within its first ``budget`` queries (the
    answer on x itself is free, as for ours; checking the start costs one)."""
    from art.attacks.evasion import GeoDA, HopSkipJump, SignOPTAttack
    from art.estimators.classification import BlackBoxClassifier

    if not hasattr(np, "mat"):
        np.mat = np.asmatrix  # ART 1.20's GeoDA still calls np.mat, which NumPy 2 removed
    x, y, num_classes = mistakes.x, mistakes.y, whitebox.logits.shape[1]
    limits = torch.tensor(budgets)
    # (B, N) and (B, N, C, H, W): the nearest point answered y so far, at first the start (a
    # start equal to x is none: x itself, unexplained, until the peer finds a point)
    distance = (starts - x).flatten(1).norm(dim=1)
    best = torch.where(distance > 0, distance, math.inf).repeat(len(budgets), 1)
    x_best = starts[None].repeat(len(budgets), 1, 1, 1, 1)
    spent = torch.zeros(len(x), dtype=torch.int64)
    elapsed = clock()
    for i in range(len(x)):
        black_box = blackbox.BlackBox(model, max_queries=max(budgets) + 1)  # x's answer too
        first = int(mistakes.y_pred[i])

        def predict(batch: np.ndarray, i=i, black_box=black_box, first=first) -> np.ndarray:
            images = torch.from_numpy(batch).to(x).clamp(0, 1)
            room = min(len(images), black_box.queries_left)
            before = black_box.queries  # the answer on x among them: the next is query `before`
            answers = black_box.labels(images[:room])
            distance = (images[:room] - x[i]).flatten(1).norm(dim=1)
            for j in (answers == y[i]).nonzero()[:, 0].tolist():
                within = (limits >= before + j) & (distance[j] < best[:, i])
                best[within, i], x_best[within, i] = distance[j], images[j]
            if room < len(images):
                raise Spent
            if name == "GeoDA":  # untargeted away from x's answer: adversarial iff answered y
                answers = torch.where(answers == y[i], answers, first)
            return np.eye(num_classes, dtype=np.float32)[answers.cpu().numpy()]

        classifier = BlackBoxClassifier(
            predict, tuple(x.shape[1:]), num_classes, clip_values=(0, 1)
        )
        classifier.channels_first = True  # GeoDA reads it; images are (N, C, H, W)
        np.random.seed(i)  # ART draws from NumPy's global generator: a script may seed it
        x_i, start_i = x[i : i + 1].cpu().numpy(), starts[i : i + 1].cpu().numpy()
        target = np.array([int(y[i])])
        with contextlib.suppress(Spent), tempfile.TemporaryDirectory() as folder:
            if name == "HopSkipJump":
                attack = HopSkipJump(classifier, targeted=True, verbose=False, **PEERS[name])
                attack.generate(x_i, y=target, x_adv_init=start_i)
            elif name == "Sign-OPT":
                attack = SignOPTAttack(
                    classifier,
                    targeted=True,
                    verbose=False,
                    max_iter=10**6,
                    query_limit=10**9,
                    **PEERS[name],
                )
                attack.generate(x_i, y=target, x_init=start_i)
            else:
                attack = GeoDA(classifier, verbose=False, **PEERS[name])
                attack._find_random_adversarial = _from_start(attack, start_i)
                with contextlib.chdir(folder):  # GeoDA saves its DCT basis in the working folder
                    attack.generate(x_i, y=np.array([first]))
        spent[i] = black_box.queries - 1  # less the answer on x
    seconds = {k: v / len(budgets) for k, v in elapsed().items()}  # one run serves them all
    records = []
    for k, budget in enumerate(budgets):
        queries = spent.clamp(max=budget)
        result = peer_record(model, mistakes, x_best[k], queries, name)
        records.append({**point(model, LABELS[name], budget, result, whitebox), **seconds})
    return records


def _from_start(attack, start: np.ndarray):
    """GeoDA's random search for a first adversarial point, replaced by the start (1 query)."""

    def first(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        attack.nb_calls += 1
        attack._is_adversarial(start, y)
        return start

    return first


def peer_record(model, mistakes: Mistakes, x_adv, queries, method: str) -> Explanation:
    """A peer's output images ``x_adv`` of the mistakes as the record ours return, the model's
    answers read once more here (not counted: the peer paid for them already)."""
    x, y = mistakes.x, mistakes.y
    with torch.no_grad():
        logits, logits_adv = model(x), model(x_adv)
    queries = queries.to(x.device)
    return Explanation(
        index=mistakes.index,
        x=x,
        y=y,
        logits=logits,
        x_adv=x_adv,
        logits_adv=logits_adv,
        attacked=logits.argmax(1) != y,
        success=logits_adv.argmax(1) == y,
        queries=queries,
        forward_passes=queries + 1,
        backward_passes=torch.zeros_like(queries),
        method=method,
    )


def label_curve(
    model,
    dataset: data.Dataset,
    mistakes: Mistakes,
    whitebox: Explanation,
    pool_sizes,
    *,
    num_epochs: int,
    seed: int,
    **settings,
) -> list[dict]:
    """The paper's point from few labels. For each of ``pool_sizes``, a course surrogate
    (SurrogateCNN, no provider's family) trained on the black box's probabilities for that many
    pool images, with as many optimizer steps as ``num_epochs`` over MAIN_POOL images, explains
    the mistakes twice: by the paper's default (``transfer.explain``, 20 queries at most;
    ``method`` "paper") and by ours (``boundary.explain`` with ``settings``, the same pool
    answers as starts, LABEL_BUDGET queries per image; ``method`` "ours"). Sizes against
    ``whitebox``; ``seconds`` and ``cpu_seconds`` time each explanation, ``training_seconds``
    and ``training_cpu_seconds`` the surrogate both share (once)."""
    records = []
    for pool_size in pool_sizes:
        elapsed = clock()
        epochs = training.matched_epochs(pool_size, MAIN_POOL, num_epochs)
        trained = surrogate.train_surrogate(
            blackbox.BlackBox(model, max_queries=pool_size),
            dataset.pool.x,
            num_classes=dataset.num_classes,
            num_seed=pool_size,
            probabilities=True,
            num_epochs=epochs,
            generator=torch.Generator().manual_seed(seed),
        )
        trained_seconds = elapsed()
        starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
        options = {**settings, "starts": starts if settings.get("starts", True) else None}
        for method in ("paper", "ours"):
            elapsed = clock()
            if method == "paper":
                result = transfer.explain(blackbox.BlackBox(model), trained.model, mistakes)
            else:
                result = boundary.explain(
                    blackbox.BlackBox(model),
                    trained.model,
                    mistakes,
                    max_queries=LABEL_BUDGET,
                    num_shrink_queries=0,
                    **options,
                )
            queries = trained.label_queries
            record = metrics.label_record(pool_size, False, queries, None, result, whitebox)
            record.update(method=method, success_after_rounding=rounded_rate(model, result))
            spent_training = {f"training_{k}": v for k, v in trained_seconds.items()}  # shared
            records.append({**record, **elapsed(), **spent_training})
    return records
