"""Each key's limits: a request rate (token buckets, in memory) and a query quota (counted in
the store, so that it survives a restart)."""

from __future__ import annotations

import math
import threading
import time

from helpers.serving.plans import Plan
from helpers.serving.protocol import ApiError


class RateLimiter:
    """One token bucket per key: ``burst`` requests at once, refilled at
    ``requests_per_second``. In memory: a restarted server starts every bucket full."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key_id: str, plan: Plan) -> None:
        """Spend one request of the key's rate, or raise a 429 saying when one is free."""
        now = time.monotonic()
        with self._lock:
            tokens, when = self._buckets.get(key_id, (plan.burst, now))
            tokens = min(plan.burst, tokens + (now - when) * plan.requests_per_second)
            if tokens < 1:
                wait = (1 - tokens) / plan.requests_per_second
                self._buckets[key_id] = (tokens, now)
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many requests: your plan {plan.name!r} allows "
                    f"{plan.requests_per_second:g} per second (bursts of {plan.burst}); retry "
                    f"after {wait:.3f} s.",
                    retry_after=wait,
                )
            self._buckets[key_id] = (tokens - 1, now)


def quota_since(plan: Plan, now: float) -> float | None:
    """When the key's current quota window began (seconds from the epoch; None: its whole
    life counts)."""
    if plan.quota_seconds is None:
        return None
    return math.floor(now / plan.quota_seconds) * plan.quota_seconds


def check_quota(plan: Plan, used: int, num_images: int, now: float) -> None:
    """Raise a 429 if ``num_images`` more would take the key past its quota, ``used`` of it
    spent in the current window; with Retry-After when the next window would answer it."""
    if plan.quota is None or used + num_images <= plan.quota:
        return
    left = max(plan.quota - used, 0)
    window = "" if plan.quota_seconds is None else f" per {plan.quota_seconds:g} s"
    message = (
        f"quota exceeded: your plan {plan.name!r} answers {plan.quota} images{window}; "
        f"{used} are spent, {left} left, and this request asks for {num_images}"
    )
    if plan.quota_seconds is None or num_images > plan.quota:
        advice = "ask for fewer images, or buy a larger quota (waiting does not renew it)."
        raise ApiError(429, "quota_exceeded", f"{message}: {advice}")
    start = quota_since(plan, now)
    wait = start + plan.quota_seconds - now
    raise ApiError(429, "quota_exceeded", f"{message}; the quota renews in {wait:.3f} s.", wait)
