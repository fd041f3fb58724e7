"""The API in a process of its own (``python -m helpers.serving``), as a provider runs it: to
measure it from outside, or to kill it with SIGKILL and start it again on the same port and
database (tests/test_remote_runs.py, benchmarks/serving.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # where ``helpers`` is imported from


class ServerProcess:
    """``python -m helpers.serving`` serving ``checkpoint`` with the keys file ``keys`` and
    the SQLite ``database``, on 127.0.0.1:``port`` (default: a port free now, kept for every
    restart). ``output`` holds what it printed."""

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        keys: str | Path,
        database: str | Path,
        port: int | None = None,
        num_threads: int = 1,
    ) -> None:
        port = port or _free_port()
        self.command = [
            sys.executable,
            "-m",
            "helpers.serving",
            "--checkpoint",
            str(checkpoint),
            "--keys",
            str(keys),
            "--database",
            str(database),
            "--port",
            str(port),
        ]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(num_threads)}
        self.url, self.output = f"http://127.0.0.1:{port}", []
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        """Start it and return once it listens."""
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for line in self.process.stdout:
            self.output.append(line)
            if line.strip() == "ready":  # from here on a thread reads what it prints
                threading.Thread(
                    target=self.output.extend, args=(self.process.stdout,), daemon=True
                ).start()
                return self
        raise RuntimeError("the server exited before it was ready:\n" + "".join(self.output))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; whatever was not committed is lost."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Stop it as Ctrl-C would (a graceful shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
