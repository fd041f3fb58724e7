"""The provider's books in SQLite: every answered request (the answer log) and each key's usage,
committed before the answer leaves, so a server killed and restarted loses no count.

uvicorn answers on many threads: each operation borrows a connection from a pool (one thread
at a time; kept open, since closing the last connection to the file checkpoints it, a disk
flush each time). WAL lets readers go on while one writer commits; ``write`` takes the write
lock at once (BEGIN IMMEDIATE), so a request id is looked up and charged in one step and two
retries of one request cannot both be charged. Writers of one process queue on a lock of their
own before they ask SQLite: a writer SQLite finds busy polls with sleeps of up to 100 ms, which
put a tail on the latency of concurrent requests (docs/serving.md, "Latency under load").
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key_id TEXT NOT NULL, request_id TEXT NOT NULL, digest TEXT NOT NULL,
    images INTEGER NOT NULL, cost REAL NOT NULL, time REAL NOT NULL, answers TEXT NOT NULL,
    PRIMARY KEY (key_id, request_id)
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (key_id, time);
CREATE TABLE IF NOT EXISTS usage (
    key_id TEXT PRIMARY KEY, requests INTEGER NOT NULL, images INTEGER NOT NULL,
    cost REAL NOT NULL, replays INTEGER NOT NULL
);
"""
BUSY_SECONDS = 30.0  # how long a writer waits for another's commit before failing


@dataclass(frozen=True)
class Logged:
    """A request answered before: its images' digest, how many, and the answers sent."""

    digest: str
    images: int
    answers: list


@dataclass(frozen=True)
class Usage:
    """A key's books: requests charged, images charged, dollars, and retries answered free."""

    requests: int = 0
    images: int = 0
    cost: float = 0.0
    replays: int = 0


class Ledger:
    """The queries of one connection; ``Store.read`` or ``Store.write`` opens it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def find(self, key_id: str, request_id: str) -> Logged | None:
        row = self.db.execute(
            "SELECT digest, images, answers FROM requests WHERE key_id = ? AND request_id = ?",
            (key_id, request_id),
        ).fetchone()
        return None if row is None else Logged(row[0], row[1], json.loads(row[2]))

    def usage(self, key_id: str) -> Usage:
        row = self.db.execute(
            "SELECT requests, images, cost, replays FROM usage WHERE key_id = ?", (key_id,)
        ).fetchone()
        return Usage() if row is None else Usage(*row)

    def requests(self, key_id: str) -> dict[str, int]:
        """Every request charged to the key: {request id: images}."""
        rows = self.db.execute(
            "SELECT request_id, images FROM requests WHERE key_id = ?", (key_id,)
        ).fetchall()
        return dict(rows)

    def images_since(self, key_id: str, since: float) -> int:
        """Images charged to the key at or after ``since`` (seconds from the epoch)."""
        return self.db.execute(
            "SELECT COALESCE(SUM(images), 0) FROM requests WHERE key_id = ? AND time >= ?",
            (key_id, since),
        ).fetchone()[0]

    def charge(
        self,
        key_id: str,
        request_id: str,
        digest: str,
        images: int,
        cost: float,
        answers: list,
        time: float,
    ) -> None:
        """Log the request with its answers and add it to the key's usage."""
        self.db.execute(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key_id, request_id, digest, images, cost, time, json.dumps(answers)),
        )
        self._add(key_id, 1, images, cost, 0)

    def count_replay(self, key_id: str) -> None:
        """Count a retried request answered from the log (charged nothing)."""
        self._add(key_id, 0, 0, 0.0, 1)

    def _add(self, key_id: str, requests: int, images: int, cost: float, replays: int) -> None:
        self.db.execute(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET "
            "requests = requests + excluded.requests, images = images + excluded.images, "
            "cost = cost + excluded.cost, replays = replays + excluded.replays",
            (key_id, requests, images, cost, replays),
        )


class Store:
    """The SQLite file at ``path`` (created with its tables if new)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._opened: list[sqlite3.Connection] = []
        self._writer = threading.Lock()  # one writer of this process at a time, woken in turn
        with self._connect() as db:
            db.execute("PRAGMA journal_mode = WAL")  # persistent: readers never block a writer
            db.executescript(SCHEMA)

    @contextmanager
    def read(self) -> Iterator[Ledger]:
        """A connection for reading; each statement sees the last committed state."""
        with self._connect() as db:
            yield Ledger(db)

    @contextmanager
    def write(self) -> Iterator[Ledger]:
        """One transaction holding the write lock; committed (on disk) when the block ends
        without an exception, rolled back otherwise. Another process writing the same file
        is waited for by SQLite (up to BUSY_SECONDS)."""
        with self._writer, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield Ledger(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every connection (when no request is running)."""
        for db in self._opened:
            db.close()
        self._opened.clear()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            db = sqlite3.connect(
                self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA synchronous = FULL")  # a commit reaches the disk before we answer
            self._opened.append(db)
        try:
            yield db
        finally:
            self._idle.put(db)
