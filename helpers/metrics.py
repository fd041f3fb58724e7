"""Summaries of results, how alike two explanations are, and the published figures we compare
with, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from helpers import validation
from helpers.blackbox import quantize
from helpers.records import Explanation


@dataclass(frozen=True)
class Reference:
    """A published result: success rate in [0, 1] at a mean number of queries per image."""

    label: str
    success_rate: float
    mean_queries: float

    def row(self) -> str:
        """Its cells in ``summary_markdown``'s table."""
        return f"{self.success_rate:.2%} | {self.mean_queries:.2f} | – | – | –"


# Haffar, Jebreel, Domingo-Ferrer, Sánchez, MDAI 2021 (their model and data, not named)
PAPER_WHITEBOX = Reference("Haffar et al. 2021, method 1 (their model and data)", 0.9967, 1.96)
PAPER_BLACKBOX = Reference("Haffar et al. 2021, method 2 (their model and data)", 0.7308, 8.73)


def summarize(result: Explanation) -> dict[str, float]:
    """Success rate, mean and median queries, and median L2 / L∞ over the attacked images.

    Norms are medians over the successful attacked images; nan where there are none.
    """
    explained = result.success & result.attacked
    queries = result.queries[result.attacked].double()
    nan = float("nan")
    l2, linf = result.l2[explained], result.linf[explained]
    return {
        "success_rate": result.success_rate,
        "mean_queries": queries.mean().item() if len(queries) else nan,
        "median_queries": queries.median().item() if len(queries) else nan,
        "median_l2": l2.median().item() if len(l2) else nan,
        "median_linf": linf.median().item() if len(linf) else nan,
    }


def robust_accuracy(result: Explanation) -> float:
    """Fraction of the images a model still gets right after a forward attack: those it got
    right (attacked) that the attack did not fool; images it got wrong to begin with count as
    wrong."""
    return (result.attacked & ~result.success).float().mean().item()


def success_after_rounding(
    model: Callable[[Tensor], Tensor], result: Explanation, bits: int = 8
) -> Tensor:
    """(N,) bool: each successful explanation of ``result`` is still read as its true class y
    once its x_adv is rounded to ``bits`` bits a pixel, as an image sent to an API or saved as
    an 8-bit PNG is (``blackbox.quantize``). ``model`` answers: the model, or a black box's
    ``labels`` wrapped as logits (it pays for the images)."""
    with torch.no_grad():
        y_adv = model(quantize(result.x_adv, bits)).argmax(1)
    return result.success & (y_adv == result.y)


def summary_markdown(
    results: dict[str, Explanation], references: tuple[Reference, ...] = ()
) -> str:
    """A Markdown table of ``summarize`` for each named result, then the ``references``."""
    lines = [
        "| method | success | mean queries | median queries | median L2 | median L∞ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        s = summarize(result)
        lines.append(
            f"| {name} | {s['success_rate']:.2%} | {s['mean_queries']:.2f} | "
            f"{s['median_queries']:.0f} | {s['median_l2']:.3f} | {s['median_linf']:.3f} |"
        )
    lines += [f"| {reference.label} | {reference.row()} |" for reference in references]
    return "\n".join(lines)


def table_markdown(
    rows: dict[str, dict[str, float | None]], *, first: str = "model", formats: dict | None = None
) -> str:
    """A Markdown table: one row per name, one column per key of the first row. Values are
    percentages unless ``formats`` gives a column another spec (e.g. {"seconds": ".1f"});
    None prints as "–"."""
    columns = list(next(iter(rows.values()), {}))
    formats = {column: ".1%" for column in columns} | (formats or {})
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in rows.items():
        cells = ["–" if row.get(c) is None else f"{row[c]:{formats[c]}}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class Similarity:
    """How alike two explanations are, per image (N,): the cosine of their perturbations, and
    the fraction of the top-k pixels (largest |delta|, summed over channels) they share."""

    cosine: Tensor
    overlap: Tensor

    def __getitem__(self, rows: int | slice | Tensor) -> Similarity:
        """The similarity of ``rows`` only, sliced like the records they compare."""
        rows = slice(rows, rows + 1 or None) if isinstance(rows, int) else rows
        return Similarity(cosine=self.cosine[rows], overlap=self.overlap[rows])


def similarity(delta: Tensor, reference: Tensor, *, top_k: int = 50) -> Similarity:
    """Compare perturbations ``delta`` and ``reference`` (N, C, H, W) image by image.

    A zero perturbation has cosine 0. Two random choices of k of the H·W pixels share k/(H·W).
    """
    if delta.shape != reference.shape or delta.dim() != 4:
        raise ValueError(
            f"delta and reference must both be (N, C, H, W), got {tuple(delta.shape)} and "
            f"{tuple(reference.shape)}."
        )
    validation.check_count(top_k, "top_k")
    if top_k > delta[0, 0].numel():
        raise ValueError(f"top_k={top_k} exceeds the {delta[0, 0].numel()} pixels of an image.")
    a, b = delta.flatten(1), reference.flatten(1)
    cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)
    top_a = delta.abs().sum(1).flatten(1).topk(top_k, dim=1).indices  # (N, k)
    top_b = reference.abs().sum(1).flatten(1).topk(top_k, dim=1).indices
    shared = (top_a[:, :, None] == top_b[:, None, :]).any(2).sum(1)
    return Similarity(cosine=cosine, overlap=shared.to(delta.dtype) / top_k)


def auroc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve of ``scores`` (N,) against the bool mask ``positive`` (N,): the
    chance that a positive image outscores a negative one, ties counting half (Mann-Whitney)."""
    if len(scores) == 0:
        raise ValueError("the ranking is empty: pass one score per image (N >= 1)")
    if scores.shape != positive.shape or positive.dtype != torch.bool:
        raise ValueError(
            f"positive must be a bool mask shaped like scores {tuple(scores.shape)}, got "
            f"{positive.dtype} {tuple(positive.shape)}"
        )
    yes, no = scores[positive].double(), scores[~positive].double()
    if len(yes) == 0 or len(no) == 0:
        raise ValueError("AUROC needs both positive and negative images in the ranking")
    greater = (yes[:, None] > no[None, :]).double()
    ties = (yes[:, None] == no[None, :]).double()
    return (greater + 0.5 * ties).mean().item()


def budget_record(method: str, budget: int, result: Explanation, whitebox: Explanation) -> dict:
    """One point of a budget curve: ``result``'s success, and its median size (L2 ÷ the
    ``whitebox`` explanation's) and cosine with it, on the images both explain; the record
    ``plotting.plot_budget_curve`` draws and ``benchmarks/blackbox.py`` writes."""
    both = result.success & whitebox.success
    nan = float("nan")
    ratio = (result.l2 / whitebox.l2)[both].median().item() if both.any() else nan
    cosine = similarity(result.delta, whitebox.delta).cosine[both]
    return {
        "method": method,
        "budget": budget,
        "success_rate": result.success_rate,
        "median_l2_ratio_to_whitebox": ratio,
        "median_cosine": cosine.median().item() if both.any() else nan,
        "mean_queries": result.queries.double().mean().item(),
    }


def label_record(
    pool_size: int,
    jacobian: bool,
    label_queries: int,
    agreement: float | None,
    result: Explanation,
    whitebox: Explanation | None = None,
) -> dict:
    """One point of a label curve: a surrogate trained from ``pool_size`` unlabelled images
    (with Jacobian augmentation or not) at a cost of ``label_queries``, its ``agreement`` with
    the black box, and the success and mean queries of ``result``, the black-box explanation
    through it; with ``whitebox`` (the same images' white-box explanations), also the median
    size of ``result``'s changes ÷ the white box's on the images both explain
    (``median_l2_ratio_to_whitebox``, NaN if none). The record ``plotting.plot_label_curve``
    draws and ``benchmarks/blackbox.py`` writes."""
    record = {
        "pool_size": pool_size,
        "jacobian": jacobian,
        "label_queries": label_queries,
        "agreement": agreement,
        "success_rate": result.success_rate,
        "mean_queries": result.mean_queries,
    }
    if whitebox is not None:
        sized = budget_record("", 0, result, whitebox)
        record["median_l2_ratio_to_whitebox"] = sized["median_l2_ratio_to_whitebox"]
    return record


__all__ = [
    "PAPER_BLACKBOX",
    "PAPER_WHITEBOX",
    "Reference",
    "Similarity",
    "auroc",
    "budget_record",
    "label_record",
    "robust_accuracy",
    "success_after_rounding",
    "similarity",
    "summarize",
    "summary_markdown",
    "table_markdown",
]
