"""The provider's API without the HTTP: who may ask (keys), what a request must hold, what it
costs, and the rule that a request id is answered once and charged once."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

from helpers.serving import codec, limits, predict
from helpers.serving.plans import Plan
from helpers.serving.predict import Predictor
from helpers.serving.protocol import CLASSIFY, DECIMALS, ApiError, key_id, parse_classify
from helpers.serving.store import Ledger, Logged, Store


class Service:
    """Answers classify requests for the keys ``keys`` ({key: plan}), with its books in
    ``store``; ``max_batch`` images and ``max_body_bytes`` bytes per request at most."""

    def __init__(
        self,
        predictor: Predictor,
        keys: Mapping[str, Plan],
        store: Store,
        *,
        max_batch: int,
        max_body_bytes: int,
        name: str = "model",
        classes: list[str] | None = None,
    ) -> None:
        if not keys:
            raise ValueError("keys is empty: give at least one {key: Plan}, or keys=None.")
        self.predictor, self.store, self.name = predictor, store, name
        self.plans = {key_id(key): plan for key, plan in keys.items()}
        self.max_batch, self.max_body_bytes = max_batch, max_body_bytes
        if predictor.input_shape[0] not in codec.CHANNELS:
            raise ValueError(
                f"input_shape={predictor.input_shape}: an 8-bit PNG carries 1 "
                "channel (grayscale) or 3 (RGB)."
            )
        num_classes = predictor.num_classes
        self.classes = (
            list(classes) if classes is not None else [str(k) for k in range(num_classes)]
        )
        if len(self.classes) != num_classes:
            raise ValueError(
                f"classes has {len(self.classes)} names, the model {num_classes} classes."
            )
        self.rate = limits.RateLimiter()

    def authorize(self, authorization: str | None) -> str:
        """The key id of an ``Authorization: Bearer <key>`` header, or a 401."""
        if not authorization:
            raise ApiError(
                401, "no_key", "no API key: send the header 'Authorization: Bearer <key>'."
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "no_key", "the Authorization header must read 'Bearer <key>'.")
        found = key_id(key.strip())
        if found not in self.plans:
            raise ApiError(401, "unknown_key", f"unknown API key ending in {key.strip()[-4:]!r}.")
        return found

    def describe(self, key: str) -> dict:
        """The service as the key's holder sees it: input, classes, answer, limits, price."""
        channels, height, width = self.predictor.input_shape
        return {
            "model": self.name,
            "input": {
                "shape": [channels, height, width],
                "format": f"8-bit PNG, {codec.COLOUR_TYPES[codec.CHANNELS[channels]]}",
                "encoding": "base64 in JSON",
            },
            "classes": self.classes,
            "request": f"POST {CLASSIFY} {{'request_id': str, 'images': [base64 PNG, ...]}}",
            "answer": _answer_format(self.plans[key], len(self.classes)),
            "limits": {"max_batch": self.max_batch, "max_body_bytes": self.max_body_bytes},
            "plan": self.plans[key].to_dict(),
        }

    def usage(self, key: str) -> dict:
        """The key's own usage and spend, and its quota left in the current window."""
        plan, now = self.plans[key], time.time()
        with self.store.read() as ledger:
            usage = ledger.usage(key)
            used = self._used(ledger, key, plan, now)
        left = None if plan.quota is None else max(plan.quota - used, 0)
        return {
            "plan": plan.name,
            "requests": usage.requests,
            "images": usage.images,
            "spend_usd": round(usage.cost, 6),
            "replayed_requests": usage.replays,
            "quota": plan.quota,
            "quota_left": left,
        }

    def classify(self, key: str, body: bytes) -> dict:
        """Answer the images of ``body`` ({"request_id", "images"}), charged once per id."""
        plan = self.plans[key]
        self.rate.take(key, plan)
        request_id, images = parse_classify(body, self.max_batch)
        pixels = _decode(images, self.predictor.input_shape)
        digest = hashlib.sha256(pixels.numpy().tobytes()).hexdigest()
        with self.store.read() as ledger:
            found = ledger.find(key, request_id)
            if found is None:  # refuse before the forward pass if the quota cannot cover it
                self._check_quota(ledger, key, len(pixels))
        if found is None:
            answers = predict.answers(self.predictor.probabilities(pixels), plan)
            cost = plan.cost(len(pixels))
            with self.store.write() as ledger:  # the id may have been answered since we looked
                found = ledger.find(key, request_id)
                if found is None:
                    now = self._check_quota(ledger, key, len(pixels))
                    ledger.charge(key, request_id, digest, len(pixels), cost, answers, now)
            if found is None:  # committed: now the answer may leave
                return _response(request_id, answers, charged=len(pixels), cost=cost)
        return self._replay(key, request_id, digest, found)

    def _replay(self, key: str, request_id: str, digest: str, found: Logged) -> dict:
        """The logged answer to a retried request, charged nothing."""
        if found.digest != digest:
            message = f"request_id {request_id!r} was already used for other images"
            raise ApiError(409, "request_id_reused", f"{message}; give each request its own id.")
        with self.store.write() as ledger:
            ledger.count_replay(key)
        return _response(request_id, found.answers, charged=0, cost=0.0)

    def _check_quota(self, ledger: Ledger, key: str, num_images: int) -> float:
        """Raise a 429 unless the key's quota covers ``num_images`` more; return the time."""
        plan, now = self.plans[key], time.time()
        limits.check_quota(plan, self._used(ledger, key, plan, now), num_images, now)
        return now

    @staticmethod
    def _used(ledger: Ledger, key: str, plan: Plan, now: float) -> int:
        """Images the key has spent of its current quota window."""
        since = limits.quota_since(plan, now)
        return ledger.usage(key).images if since is None else ledger.images_since(key, since)


def _answer_format(plan: Plan, num_classes: int) -> str:
    """What each image's answer holds under ``plan``, in words."""
    top_k = min(plan.top_k, num_classes)
    labels = "the top class" if top_k == 1 else f"the top {top_k} classes, best first"
    if plan.answer != "probabilities":
        return f"{{'labels': [{labels}]}}"
    return f"{{'labels': [{labels}], 'probabilities': [theirs, rounded to {DECIMALS} decimals]}}"


def _decode(images: list, shape: tuple[int, int, int]):
    try:
        return codec.decode(images, shape)
    except ValueError as error:
        raise ApiError(422, "bad_image", str(error)) from None


def _response(request_id: str, answers: list, charged: int, cost: float) -> dict:
    return {
        "request_id": request_id,
        "replayed": charged == 0,
        "images": len(answers),
        "charged": charged,
        "cost_usd": round(cost, 6),
        "answers": answers,
    }
