"""The end user's own record of every request the API answered, in SQLite: a run killed half-way
and started again finds its answers here and pays for none of them twice."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    request_id TEXT PRIMARY KEY, url TEXT NOT NULL, session TEXT NOT NULL,
    call INTEGER NOT NULL, chunk INTEGER NOT NULL, images INTEGER NOT NULL,
    charged INTEGER NOT NULL, answers TEXT NOT NULL, time REAL NOT NULL
);
"""


class Journal:
    """Answered requests by request id, in the SQLite file ``path`` (None: in memory only).

    Each answer is committed as soon as it arrives; several clients may share one file.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if self.path is None else str(self.path)
        self._db = sqlite3.connect(
            target, timeout=30, isolation_level=None, check_same_thread=False
        )  # guarded by the lock below
        self._lock = threading.Lock()
        with self._lock:
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL: a commit survives the process being killed, not a power cut; an answer
            # lost that way is asked again under its own id, and the server's log answers it
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(SCHEMA)

    def get(self, request_id: str) -> list | None:
        """The answers logged for ``request_id``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT answers FROM answers WHERE request_id = ?", (request_id,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(
        self,
        request_id: str,
        *,
        url: str,
        session: str,
        call: int,
        chunk: int,
        charged: int,
        answers: list,
    ) -> None:
        """Log the ``answers`` to ``request_id`` (``charged``: images the server charged)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    url,
                    session,
                    call,
                    chunk,
                    len(answers),
                    charged,
                    json.dumps(answers),
                    time.time(),
                ),
            )

    def entries(self) -> dict[str, int]:
        """Every logged request: {request id: images}."""
        with self._lock:
            return dict(self._db.execute("SELECT request_id, images FROM answers").fetchall())

    def totals(self, session: str | None = None) -> tuple[int, int]:
        """(requests, images) logged, for ``session`` or all."""
        where, args = ("WHERE session = ?", (session,)) if session is not None else ("", ())
        with self._lock:
            requests, images = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(images), 0) FROM answers {where}", args
            ).fetchone()
        return requests, images

    def close(self) -> None:
        with self._lock:
            self._db.close()
