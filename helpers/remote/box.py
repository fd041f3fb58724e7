"""``RemoteBlackBox``: the provider's model behind its HTTP API, with ``blackbox.BlackBox``'s
interface, so the black-box methods run over HTTP unchanged."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from helpers import validation
from helpers.blackbox import QueryBudgetExceeded
from helpers.remote.journal import Journal
from helpers.remote.transport import RemoteError, Transport
from helpers.serving import codec
from helpers.serving.protocol import CLASSIFY, SERVICE, USAGE, classify_body, key_id


@dataclass(frozen=True)
class TopK:
    """The API's answers as given: ``labels`` (N, k) int64, best first; ``probabilities``
    (N, k) float64 rounded as the API rounds them, or None for a plan without them."""

    labels: Tensor
    probabilities: Tensor | None


class RemoteBlackBox:
    """The provider's model behind its API: answers per image, counted, within a budget.

    Args:
        url, key: the API (``serving.serve``'s ``api.url``) and your API key.
        journal: SQLite file logging every answer (None: in memory). A run started again with
            the same journal and session asks the same questions in the same order: each is
            answered from the journal, unpaid, and the rest from the API.
        session: names the run within the journal (default: "default" with a journal, else a
            new random name). A request's id is a hash of the key, the session, the call's
            number, the chunk's and the images, so one image asked twice is charged twice,
            a retry once; two clients running at once need sessions of their own.
        max_queries: images it answers in all, over every call (None: the API's quota only).
        batch_size: images per request (default: the API's max_batch).
        timeout: seconds per attempt; max_wait: seconds to keep retrying one request.
    Every image is sent as its 8-bit PNG: the API answers ``quantize(x)``, not ``x``. One
    thread at a time (its counts are plain numbers); run concurrent clients as several boxes.
    """

    quantize = staticmethod(codec.quantize)

    def __init__(
        self,
        url: str,
        key: str,
        *,
        journal: str | Path | None = None,
        session: str | None = None,
        max_queries: int | None = None,
        batch_size: int | None = None,
        timeout: float = 10.0,
        max_wait: float = 60.0,
    ) -> None:
        if max_queries is not None:
            validation.check_count(max_queries, "max_queries", minimum=0)
        validation.check_positive(timeout, "timeout")
        validation.check_positive(max_wait, "max_wait")
        self._transport = Transport(url, key, timeout=timeout, max_wait=max_wait)
        self.service = self._transport.get(SERVICE)  # input, classes, limits, your plan
        self.plan: dict = self.service["plan"]
        self.input_shape = tuple(self.service["input"]["shape"])
        self.num_classes = len(self.service["classes"])
        self.batch_size = batch_size or self.service["limits"]["max_batch"]
        validation.check_count(self.batch_size, "batch_size")
        if session is None:
            session = "default" if journal is not None else secrets.token_hex(8)
        self.journal, self.session = Journal(journal), session
        self._prefix = f"{key_id(key)}/{session}"
        self._max_queries, self._queries, self._calls = max_queries, 0, 0
        self.charged = 0  # images the API charged to this object
        self.from_journal = 0  # images answered from the journal, unpaid

    @property
    def queries(self) -> int:
        """Images answered so far, over every call (from the API or the journal)."""
        return self._queries

    @property
    def calls(self) -> int:
        """Calls of labels, top_k or probabilities so far; each was sent as requests of at most
        ``batch_size`` images (the journal holds one entry per request)."""
        return self._calls

    @property
    def queries_left(self) -> int | None:
        """Images it will still answer (None: no limit of its own)."""
        return None if self._max_queries is None else self._max_queries - self._queries

    @property
    def answers_probabilities(self) -> bool:
        """Whether the plan answers probabilities (of its top_k classes)."""
        return self.plan["answer"] == "probabilities"

    @property
    def retries(self) -> int:
        """Attempts that failed and were tried again (time-outs, drops, 429, 5xx)."""
        return self._transport.retries

    def labels(self, x: Tensor) -> Tensor:
        """The API's class for each image x (N, C, H, W) in [0, 1]: (N,) int64; costs N."""
        return self.top_k(x).labels[:, 0]

    def top_k(self, x: Tensor) -> TopK:
        """The API's answers for x (N, C, H, W) in [0, 1], as given (see ``TopK``); costs N."""
        answers = self._ask(x)
        k = len(answers[0]["labels"]) if answers else self.plan["top_k"]
        labels = torch.tensor([a["labels"] for a in answers], dtype=torch.int64).view(-1, k)
        if not self.answers_probabilities:
            return TopK(labels.to(x.device), None)
        found = torch.tensor([a["probabilities"] for a in answers], dtype=torch.float64)
        return TopK(labels.to(x.device), found.view(-1, k).to(x.device))

    def probabilities(self, x: Tensor) -> Tensor:
        """The class probabilities of each image x (N, C, H, W) in [0, 1]: (N, K) in x's dtype;
        costs N. The API's top_k probabilities in place; the mass they leave spread evenly
        over the other classes; ties the rounding made broken by one float step, so that
        the classes keep the API's order (argmax is the API's label)."""
        if not self.answers_probabilities:
            raise PermissionError(
                f"the plan {self.plan['name']!r} answers {self.plan['answer']!r} without "
                "probabilities; call labels(x) or top_k(x), or use a key whose plan answers "
                "'probabilities'."
            )
        return spread(self.top_k(x), self.num_classes, x.dtype)

    def usage(self) -> dict:
        """Your key's usage and spend as the API counts them (free)."""
        return self._transport.get(USAGE)

    def close(self) -> None:
        self._transport.close()
        self.journal.close()

    def __enter__(self) -> RemoteBlackBox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        limit = "no limit" if self._max_queries is None else f"max_queries={self._max_queries}"
        plan = self.plan
        answer = (
            plan["answer"] if plan["answer"] == "label" else f"{plan['answer']}, k={plan['top_k']}"
        )
        return (
            f"RemoteBlackBox({self._transport.url}, plan {plan['name']!r} ({answer}, "
            f"${plan['price_per_1000']:g} per 1,000), {self._queries} queries so far "
            f"({self.charged} charged here, {self.from_journal} from the journal), {limit})"
        )

    def _ask(self, x: Tensor) -> list[dict]:
        validation.check_images(x, "x")
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x has images of shape {tuple(x.shape[1:])}; this API takes "
                f"{self.input_shape} (C, H, W)."
            )
        left = self.queries_left
        if left is not None and len(x) > left:
            raise QueryBudgetExceeded(
                f"asked about {len(x)} images, but only {left} of max_queries="
                f"{self._max_queries} are left ({self._queries} answered so far); ask about "
                "fewer images, or create a RemoteBlackBox with a larger max_queries."
            )
        pixels, call = codec.to_pixels(x), self._calls
        self._calls += 1
        answers = []
        for chunk, start in enumerate(range(0, len(pixels), self.batch_size)):
            answers += self._answer(call, chunk, pixels[start : start + self.batch_size])
        return answers

    def _answer(self, call: int, chunk: int, pixels: Tensor) -> list[dict]:
        """Answers for ``pixels`` (n, C, H, W) uint8, the ``chunk``-th request of call ``call``:
        from the journal if this run asked them before, else from the API (then logged)."""
        request_id = _request_id(f"{self._prefix}/{call}/{chunk}", pixels)
        answers = self.journal.get(request_id)
        if answers is not None:
            self.from_journal += len(pixels)
        else:
            body = classify_body(request_id, codec.encode(pixels))
            response = self._transport.post(CLASSIFY, body)
            answers, charged = response["answers"], response["charged"]
            if len(answers) != len(pixels) or response["request_id"] != request_id:
                raise RemoteError(
                    f"request {request_id} asked about {len(pixels)} images; the "
                    f"API answered {len(answers)} for {response['request_id']}."
                )
            where = dict(url=self._transport.url, session=self.session, call=call, chunk=chunk)
            self.journal.put(request_id, **where, charged=charged, answers=answers)
            self.charged += charged
        self._queries += len(pixels)
        return answers


def _request_id(position: str, pixels: Tensor) -> str:
    """The id of the request at ``position`` (key, session, call, chunk) for ``pixels``: the
    same in every run that asks the same images at the same position, and only there."""
    digest = hashlib.sha256(pixels.numpy().tobytes()).hexdigest()
    return hashlib.sha256(f"{position}/{tuple(pixels.shape)}/{digest}".encode()).hexdigest()[:32]


TIE = 2.0**-16  # a rounded tie is broken by this relative step: far below the API's 1e-4, and
# above the float32 spacing of log(p) for any p >= 1e-3, so the log the engine takes
# (``blackbox.Answers``) keeps the order; one float step is lost by the log one time in ten


def spread(answer: TopK, num_classes: int, dtype: torch.dtype) -> Tensor:
    """(N, K) probabilities in ``dtype`` from top-k ones: the answered ones in place, each
    strictly below the one before it (lowered by a relative ``TIE`` where rounding tied
    them), and the rest of the mass, 1 - their sum, shared evenly by the other classes, below
    the k-th. Their argmax, and the argmax of their log, is the API's label."""
    top = answer.probabilities.to(dtype, copy=True)  # (N, k)
    num_images, k = top.shape
    for i in range(1, k):  # keep the API's order, through the log too
        top[:, i] = torch.minimum(top[:, i], top[:, i - 1] * (1 - TIE))
    rest = (1 - top.sum(1, keepdim=True)).clamp(min=0) / max(num_classes - k, 1)  # (N, 1)
    rest = torch.minimum(rest, top[:, -1:] * (1 - TIE))
    probabilities = rest.expand(num_images, num_classes).clone()
    return probabilities.scatter(1, answer.labels, top)
