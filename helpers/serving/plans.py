"""What an API key buys (``Plan``): the answer format, the price, the quota and the rate; and
the keys file that maps keys to plans."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from helpers import validation

ANSWERS = ("label", "top_k", "probabilities")


@dataclass(frozen=True)
class Plan:
    """One API key's plan.

    Args:
        name: what the provider calls it ("label", "top5", ...).
        answer: "label" (the top class), "top_k" (the top_k classes, best first) or
            "probabilities" (the top_k classes with their probabilities, rounded to
            ``protocol.DECIMALS`` decimals; top_k = the number of classes gives them all).
        top_k: classes per answer; 1 for "label".
        price_per_1000: dollars per 1,000 images answered (a retried request is charged once).
        quota: images answered per ``quota_seconds`` (None: no quota); past it, 429.
        quota_seconds: the quota's window, fixed windows from the epoch (None: the quota is for
            the key's whole life, and waiting does not renew it).
        requests_per_second, burst: the request rate, a token bucket of ``burst`` requests
            refilled at ``requests_per_second``; past it, 429 with Retry-After.
    """

    name: str = "label"
    answer: str = "label"
    top_k: int = 1
    price_per_1000: float = 1.5
    quota: int | None = 100_000
    quota_seconds: float | None = None
    requests_per_second: float = 100.0
    burst: int = 100

    def __post_init__(self) -> None:
        validation.check_choice(self.answer, "answer", ANSWERS)
        validation.check_count(self.top_k, "top_k")
        if self.answer == "label" and self.top_k != 1:
            raise ValueError(f"a 'label' plan answers one class, got top_k={self.top_k}.")
        validation.check_non_negative(self.price_per_1000, "price_per_1000")
        if self.quota is not None:
            validation.check_count(self.quota, "quota", minimum=0)
        if self.quota_seconds is not None:
            validation.check_positive(self.quota_seconds, "quota_seconds")
        validation.check_positive(self.requests_per_second, "requests_per_second")
        validation.check_count(self.burst, "burst")

    def cost(self, num_images: int) -> float:
        """Dollars for ``num_images`` answered."""
        return num_images * self.price_per_1000 / 1000

    def to_dict(self) -> dict:
        return asdict(self)


# One plan per answer format, priced like a cloud vision API (about $1.50 per 1,000 labels)
PLANS = {
    "label": Plan("label", "label", 1, price_per_1000=1.5),
    "top5": Plan("top5", "top_k", 5, price_per_1000=2.0),
    "top5_probabilities": Plan("top5_probabilities", "probabilities", 5, price_per_1000=3.0),
}


def new_keys(plans: Mapping[str, Plan] | None = None) -> dict[str, Plan]:
    """A fresh random key for each plan (default: ``PLANS``): {key: plan}."""
    plans = PLANS if plans is None else plans
    return {f"key-{name}-{secrets.token_hex(8)}": plan for name, plan in plans.items()}


def save_keys(keys: Mapping[str, Plan], path: str | Path) -> Path:
    """Write ``keys`` ({key: plan}) as JSON to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({key: plan.to_dict() for key, plan in keys.items()}, indent=2))
    return path


def load_keys(path: str | Path) -> dict[str, Plan]:
    """Read a keys file written by ``save_keys``: {key: {"answer": ..., ...}, ...}."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path} must hold a JSON object {{key: plan}} with at least one key.")
    names = {f.name for f in fields(Plan)}
    keys = {}
    for key, plan in raw.items():
        unknown = set(plan) - names if isinstance(plan, dict) else {"(not an object)"}
        if unknown:
            raise ValueError(
                f"{path}: the plan of key {key!r} has unknown fields {sorted(unknown)}; a plan "
                f"has {sorted(names)}."
            )
        keys[key] = Plan(**plan)
    return keys
