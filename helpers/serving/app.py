"""The HTTP face of ``Service``: FastAPI routes, the body-size limit, refusals as JSON with
Retry-After, and the work done on the server's own worker threads (the event loop keeps
accepting), joined when it stops."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from helpers.serving.protocol import CLASSIFY, HEALTH, SERVICE, USAGE, ApiError
from helpers.serving.service import Service

WORKERS = 8  # threads that decode, answer and write the books; the forward pass takes a lock


def build_app(service: Service) -> FastAPI:
    """The API: ``GET /health``, and with a key ``GET /v1/service``, ``GET /v1/usage`` and
    ``POST /v1/classify``."""

    workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="serving worker")

    async def work(function: Callable, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(workers, functools.partial(function, *args))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        workers.shutdown(wait=True)  # after the last request: no thread outlives the server
        service.store.close()

    app = FastAPI(
        title=f"{service.name} classifier", docs_url=None, redoc_url=None, lifespan=lifespan
    )

    @app.exception_handler(ApiError)
    async def refuse(request: Request, error: ApiError) -> JSONResponse:
        headers = {}
        if error.retry_after is not None:  # RFC 9110: whole seconds, rounded up
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error.body(), status_code=error.status, headers=headers)

    @app.get(HEALTH)
    async def health() -> dict:
        return {"status": "ok"}

    @app.get(SERVICE)
    async def describe(request: Request) -> dict:
        key = service.authorize(request.headers.get("authorization"))
        return service.describe(key)

    @app.get(USAGE)
    async def usage(request: Request) -> dict:
        key = service.authorize(request.headers.get("authorization"))
        return await work(service.usage, key)

    @app.post(CLASSIFY)
    async def classify(request: Request) -> dict:
        key = service.authorize(request.headers.get("authorization"))
        body = await read_body(request, service.max_body_bytes)
        return await work(service.classify, key, body)

    return app


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, refused with a 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(len(body), max_bytes)
    return bytes(body)


def _too_large(size: int, max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the body has {size} bytes or more, above max_body_bytes={max_bytes}; send fewer "
        "images per request.",
    )
