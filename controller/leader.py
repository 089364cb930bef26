"""Which controller acts: a lock that is held exactly as long as its holder lives.

With Postgres, a session advisory lock on a dedicated connection: a leader that dies
(kill -9, crash, lost host) loses its connection and with it the lock, at once for a dead
process and within the TCP keepalive time for a vanished host; a standby takes over at its
next tick. The lock key is per schema, so separate installations sharing a database do not
contend. With SQLite (one machine), an exclusive `flock` on a file beside the database does
the same. Every other controller serves the API (reads, and writes of desired state) but
starts no tick.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

LOCK_NAME = "spotserve-leader"
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "connect_timeout": 5,
}


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if free; True if this process now holds it."""
        ...

    def still_held(self) -> bool:
        """Whether the lock is still ours (a lost connection means it is not)."""
        ...

    def release(self) -> None: ...


class PostgresLeaderLock:
    """One dedicated connection holds the lock; `_use` serialises its use, because the
    fence asks `still_held` from every launch and terminate thread. The connection is named
    `spotserve-leader-<host>-<pid>` in `pg_stat_activity`, so an operator (or a test) can
    see who leads and cut it off."""

    def __init__(self, url: str):
        name = f"{LOCK_NAME}-{socket.gethostname()[:30]}-{os.getpid()}"
        self._engine = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={**KEEPALIVE, "application_name": name},
        )
        self._conn: Connection | None = None
        self._use = threading.RLock()

    def try_acquire(self) -> bool:
        with self._use:
            return self._try_acquire()

    def _try_acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(hashtext(current_schema() || :name))"),
                {"name": LOCK_NAME},
            ).scalar_one()
            return bool(got)
        except SQLAlchemyError as exc:
            log.warning("leader lock: database unreachable: %s", exc.__class__.__name__)
            self._drop()
            return False

    def still_held(self) -> bool:
        with self._use:
            return self._still_held()

    def _still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid()"
                )
            ).scalar_one()
            return int(held) > 0
        except SQLAlchemyError:
            self._drop()
            return False

    def release(self) -> None:
        with self._use:
            self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None


class FileLeaderLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def leader_lock(database_url: str, home: Path) -> LeaderLock:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresLeaderLock(database_url)
    db_file = url.database
    path = Path(db_file).with_suffix(".leader") if db_file else home / "controller.leader"
    return FileLeaderLock(path)
