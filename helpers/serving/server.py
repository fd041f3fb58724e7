"""Run the API: ``serve`` in a background thread for a notebook or a test (a ``uvicorn.Server``
on its own event loop; ``uvicorn.run`` cannot start inside a running kernel), or in the
foreground for ``python -m helpers.serving``."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from torch import Tensor, nn

from helpers.serving import plans
from helpers.serving.app import build_app
from helpers.serving.plans import Plan
from helpers.serving.predict import Predictor
from helpers.serving.protocol import MAX_BATCH, MAX_BODY_BYTES
from helpers.serving.service import Service
from helpers.serving.store import Store

START_SECONDS = 30.0  # how long serve() waits for the server to listen


@dataclass(frozen=True)
class Api:
    """A running API: its ``url``, its keys ({key: plan}) and its SQLite ``database``."""

    url: str
    keys: dict[str, Plan]
    database: Path

    def key(self, plan: str) -> str:
        """The (first) key whose plan is named ``plan``."""
        for key, found in self.keys.items():
            if found.name == plan:
                return key
        raise KeyError(
            f"no key has a plan named {plan!r}; plans: {[p.name for p in self.keys.values()]}"
        )


def build_server(
    model: nn.Module | Callable[[Tensor], Tensor],
    *,
    keys: Mapping[str, Plan],
    database: str | Path,
    input_shape: tuple[int, int, int] | None = None,
    classes: list[str] | None = None,
    name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> tuple[uvicorn.Server, socket.socket, Api]:
    """The server, its bound socket (port 0: a free one) and the ``Api`` it will serve."""
    shape = input_shape or getattr(model, "image_shape", None)
    if shape is None:
        raise ValueError("input_shape is needed (C, H, W): the model has no image_shape attribute.")
    predictor = Predictor(model, tuple(shape))
    name = name or getattr(model, "name", None) or type(model).__name__
    service = Service(
        predictor,
        keys,
        Store(database),
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        name=name,
        classes=classes,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart takes the port back
    # connections inherit it: an answer written in two parts is not held back 40 ms by Nagle's
    # algorithm waiting for the client's delayed acknowledgement of the first
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(
        build_app(service),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    api = Api(f"http://{host}:{sock.getsockname()[1]}", dict(keys), Path(database))
    return uvicorn.Server(config), sock, api


@contextmanager
def serve(
    model: nn.Module | Callable[[Tensor], Tensor],
    *,
    keys: Mapping[str, Plan] | None = None,
    database: str | Path | None = None,
    **settings: Any,
) -> Iterator[Api]:
    """Serve ``model`` on 127.0.0.1 for the block: ``with serve(model) as api: ... api.url``.

    Args:
        model: any classifier x (N, C, H, W) in [0, 1] -> logits (N, K).
        keys: {key: Plan} (default: a new key for each of ``plans.PLANS``; see ``api.keys``).
        database: the SQLite file of usage and answers (default: a temporary one, deleted
            after the block).
        settings: for ``build_server``: input_shape (default: ``model.image_shape``), classes,
            name, host, port (default: a free one), max_batch, max_body_bytes.
    Returns: the running ``Api``. After the block the server has stopped, its thread is
        joined and its port is free.
    """
    keys = plans.new_keys() if keys is None else keys
    with tempfile.TemporaryDirectory(prefix="serving-") as folder:
        database = Path(folder) / "serving.sqlite" if database is None else database
        server, sock, api = build_server(model, keys=keys, database=database, **settings)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"serving {api.url}"
        )
        thread.start()
        try:
            _wait_until_started(server, thread)
            yield api
        finally:
            server.should_exit = True
            thread.join()
            sock.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start (see the log above).")
        time.sleep(0.01)
