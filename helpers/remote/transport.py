"""HTTP to the API: one connection pool (httpx), and retries with back-off (tenacity) for what
passes: 429 with Retry-After (waited out exactly), 5xx, time-outs and dropped connections."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from socket import IPPROTO_TCP, TCP_NODELAY

import httpx
import tenacity

from helpers.blackbox import QueryBudgetExceeded
from helpers.serving.protocol import bearer

RETRIED = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
MAX_BACKOFF = 2.0  # seconds between attempts after a failure that names no Retry-After


class RemoteError(RuntimeError):
    """The API failed to answer within ``max_wait``, or answered something unexpected."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Transport:
    """Requests to the API at ``url`` with ``key``, each attempt within ``timeout`` seconds,
    retried for up to ``max_wait`` seconds in all."""

    def __init__(self, url: str, key: str, *, timeout: float, max_wait: float) -> None:
        self.url, self.max_wait = url.rstrip("/"), max_wait
        # TCP_NODELAY: a body sent after its headers is not held back by Nagle's algorithm
        # until the server's delayed acknowledgement (40 ms a request)
        nodelay = httpx.HTTPTransport(socket_options=[(IPPROTO_TCP, TCP_NODELAY, 1)])
        self._client = httpx.Client(
            base_url=self.url, headers=bearer(key), timeout=timeout, transport=nodelay
        )
        self._random = random.Random(0)  # back-off jitter; the global random state is left alone
        self.retries = 0  # failed attempts that were tried again

    def get(self, path: str) -> dict:
        return self._send("GET", path, None)

    def post(self, path: str, body: bytes) -> dict:
        return self._send("POST", path, body)

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, path: str, body: bytes | None) -> dict:
        retrying = tenacity.Retrying(
            retry=self._should_retry, wait=self._wait, before_sleep=self._count, reraise=True
        )
        try:
            return retrying(self._attempt, method, path, body)
        except _Retryable as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise RemoteError(
                f"{method} {self.url}{path} failed {attempts} times within max_wait="
                f"{self.max_wait:g} s; the last failure: {error}"
            ) from None

    def _attempt(self, method: str, path: str, body: bytes | None) -> dict:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            response = self._client.request(method, path, content=body, headers=headers)
        except RETRIED as error:
            raise _Retryable(f"{type(error).__name__}: {error or 'no detail'}") from error
        if response.status_code == 200:
            return response.json()
        raise _refusal(response)

    def _should_retry(self, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception()
        if not isinstance(error, _Retryable):
            return False
        return state.seconds_since_start + (error.retry_after or 0) <= self.max_wait

    def _wait(self, state: tenacity.RetryCallState) -> float:
        retry_after = state.outcome.exception().retry_after
        if retry_after is not None:  # as the server asks, and a little later, never sooner
            return retry_after * (1 + 0.1 * self._random.random())
        backoff = min(MAX_BACKOFF, 0.05 * 2 ** (state.attempt_number - 1))
        return backoff * (0.5 + 0.5 * self._random.random())

    def _count(self, state: tenacity.RetryCallState) -> None:
        self.retries += 1


def _refusal(response: httpx.Response) -> Exception:
    """The exception for a refused request, with the server's message."""
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    status, retry_after = response.status_code, _retry_after(response)
    where = f"{response.request.method} {response.request.url.path}: {status} {message}"
    if status == 429 and retry_after is not None or status >= 500:
        return _Retryable(where, retry_after)
    if status == 429:
        return QueryBudgetExceeded(where)
    if status in (401, 403):
        return PermissionError(where)
    if status in (400, 413, 422):
        return ValueError(where)
    return RemoteError(where)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (RFC 9110: whole seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
