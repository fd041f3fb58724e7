"""What the serving tests share: a tiny checkpoint, and a TCP proxy on 127.0.0.1 that drops or
delays answers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import torch

from helpers import checkpoints, models

SHAPE = (1, 8, 8)  # the tiny checkpoint's images (C, H, W)


def save_tiny_checkpoint(path: Path) -> Path:
    """A SmallCNN for (1, 8, 8) images and 4 classes, 2 channels wide, random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = models.SmallCNN(SHAPE, 4, width=2)
    return checkpoints.save(model, path, {"dataset": "tiny"})


class Proxy:
    """A TCP proxy in front of 127.0.0.1:``port``. ``drop(n)``: the next n answers never reach
    the client (the server has answered, the connection is closed); ``delay(n, seconds)``:
    the next n answers are held that long first."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._drops, self._delays, self._seconds = 0, 0, 0.0
        self._lock, self._sockets, self._closed = threading.Lock(), [], False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop(self, count: int) -> None:
        with self._lock:
            self._drops = count

    def delay(self, count: int, seconds: float) -> None:
        with self._lock:
            self._delays, self._seconds = count, seconds

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.upstream)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self._fault():
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            sock.close()

    def _fault(self) -> bool:
        """Whether to drop this answer (after holding it, if it is to be delayed)."""
        with self._lock:
            drop, self._drops = self._drops > 0, max(self._drops - 1, 0)
            seconds = self._seconds if self._delays > 0 else 0.0
            self._delays = max(self._delays - 1, 0)
        time.sleep(seconds)
        return drop
