"""Sessions persisted in sqlite, so a restarted server finds (and re-adopts) them.

All sqlite work happens on one worker thread, in submission order: the event loop only
queues writes. ``:memory:`` turns persistence off.

One server per database: ``open`` takes an exclusive OS lock (``flock`` on ``<db>.lock``)
held until ``close`` (or the process's death), so two servers never adopt one kernel. The
database and its ``-wal``/``-shm`` hold kernels' connection keys: they are created 0600.
A database that cannot be opened or written raises StoreError, which the API answers
with a 507.

In durable mode the execution queue is kept too (``queue``): a request's row is written when
it arrives, marked ``started_at`` before it is sent to the kernel, and deleted in the same
transaction that adds its history entry, so a restarted server runs exactly the requests that
had not finished.

The layers above keep their own small documents as named records (``save_record(kind, id,
record)``, ``load_records(kind)``): MCP workspaces are kind ``mcp_workspace``; the store
knows no kind's shape.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from session_ext.core.errors import STORAGE_ERROR, SupervisorError
from session_ext.core.private import open_private

try:
    import fcntl
except ImportError:  # Windows: no flock; one server per database is then up to the user
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2


class StoreError(SupervisorError):
    """The session database cannot be opened or written (nothing was changed)."""

    def __init__(self, message: str):
        super().__init__(507, STORAGE_ERROR, message)


SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    session_id TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_session ON history (session_id, seq);
CREATE TABLE IF NOT EXISTS queue (
    session_id TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL,
    request TEXT NOT NULL, started_at INTEGER
);
CREATE INDEX IF NOT EXISTS queue_by_request ON queue (session_id, msg_id);
CREATE TABLE IF NOT EXISTS cells (
    session_id TEXT NOT NULL, cell_id TEXT NOT NULL, notebook_uri TEXT, data TEXT NOT NULL,
    PRIMARY KEY (session_id, cell_id)
);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, record_id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, record_id)
);
"""
# Schema 1 kept one kind of record (MCP workspaces) in a table of its own: moved once into
# ``records`` (the kind's name in schema 2), then dropped.
LEGACY_RECORD_TABLES = {"mcp_workspaces": "mcp_workspace"}


class SessionStore:
    def __init__(self, path: str, history_size: int):
        self.path = path
        self.enabled = path != ":memory:"
        self.history_size = history_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-store")
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._appended = 0  # rows since the last pruning (worker thread only)

    def open(self) -> None:
        """Lock, open and write-check the database (at server start, before it serves).
        StoreError, naming the path, if it is locked by another server or unusable."""
        if self.enabled:
            self._executor.submit(self._open).result()

    def _open(self) -> sqlite3.Connection:
        db = None
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
            self._lock_fd = self._lock()
            for suffix in ("", "-wal", "-shm"):  # sqlite gives -wal/-shm the db's mode
                _make_private(self.path + suffix, create=not suffix)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            _move_legacy_records(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # a write: is it writable?
        except (OSError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            self._close()
            raise StoreError(f"Cannot use the session database {self.path}: {e}") from e
        self._db = db
        return db

    def _lock(self) -> int | None:
        if fcntl is None:
            return None
        fd = open_private(self.path + ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"The session database {self.path} is in use by another server (pid {holder}); "
                "one server per database: stop that server, or give this one its own "
                "--SessionExtApp.db_path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _connect(self) -> sqlite3.Connection:
        return self._db if self._db is not None else self._open()

    def _submit(self, fn, *args) -> asyncio.Future:
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn, *args)
        future.add_done_callback(_log_failure)
        return future

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"The session database {self.path} failed: {e}") from e

    @staticmethod
    def _nothing() -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    # --- writes (fire and forget, ordered) ---------------------------------------------

    def save(self, session_id: str, data: dict[str, Any]) -> asyncio.Future:
        """Write a session; the future fails with StoreError if it could not be stored."""
        if self.enabled:
            return self._submit(self._save, session_id, json.dumps(data))
        return self._nothing()

    def _save(self, session_id: str, data: str) -> None:
        db = self._connect()
        with db:
            db.execute(
                "INSERT INTO sessions (session_id, data) VALUES (?, ?) "
                "ON CONFLICT(session_id) DO UPDATE SET data = excluded.data",
                (session_id, data),
            )

    def delete(self, session_id: str) -> asyncio.Future:
        if self.enabled:
            return self._submit(self._delete, session_id)
        return self._nothing()

    def _delete(self, session_id: str) -> None:
        db = self._connect()
        with db:
            db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM history WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM queue WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM cells WHERE session_id = ?", (session_id,))

    def write_batch(
        self,
        history: list[tuple[str, dict[str, Any]]],
        queued: list[tuple[str, str, dict[str, Any]]] = (),
        started: list[tuple[str, str, int]] = (),
    ) -> asyncio.Future | None:
        """One transaction: queued requests (session_id, msg_id, record: JSON-encoded on the
        worker, bytes as base64), requests about to be sent (session_id, msg_id, started_at),
        and history entries (session_id, entry), each of which takes its request out of the
        queue. Done when it is on disk. The loop only hands over the objects (none is changed
        afterwards); encoding is the worker's."""
        if not self.enabled or not (history or queued or started):
            return None
        return self._submit(self._write_batch, history, queued, started)

    def _write_batch(
        self,
        history: list[tuple[str, dict[str, Any]]],
        queued: list[tuple[str, str, dict[str, Any]]],
        started: list[tuple[str, str, int]],
    ) -> None:
        db = self._connect()
        with db:
            if queued:  # first: a request may arrive and be aborted in one batch
                db.executemany(
                    "INSERT INTO queue (session_id, msg_id, request) VALUES (?, ?, ?)",
                    [
                        (sid, msg_id, json.dumps(record, default=_json_default))
                        for sid, msg_id, record in queued
                    ],
                )
            if started:
                db.executemany(
                    "UPDATE queue SET started_at = ? WHERE session_id = ? AND msg_id = ?",
                    [(at, sid, msg_id) for sid, msg_id, at in started],
                )
            if not history:
                return
            db.executemany(
                "INSERT INTO history (session_id, entry) VALUES (?, ?)",
                [(sid, json.dumps(entry)) for sid, entry in history],
            )
            db.executemany(
                "DELETE FROM queue WHERE session_id = ? AND msg_id = ?",
                [(sid, entry["msg_id"]) for sid, entry in history],
            )
            self._appended += len(history)
            if self._appended >= 100:  # now and then: keep each session's newest entries
                self._appended = 0
                for session_id in {sid for sid, _ in history}:
                    db.execute(
                        "DELETE FROM history WHERE session_id = ? AND seq NOT IN "
                        "(SELECT seq FROM history WHERE session_id = ? ORDER BY seq DESC LIMIT ?)",
                        (session_id, session_id, self.history_size),
                    )

    # --- notebook cells (cells.py) -----------------------------------------------------

    def write_cells(
        self, rows: list[tuple[str, str, str | None, str]], forget: list[str] = ()
    ) -> asyncio.Future | None:
        """Cells' latest executions (session_id, cell_id, notebook_uri, JSON, encoded on the
        loop: the cell changes afterwards) and the sessions whose cells go."""
        if not self.enabled or not (rows or forget):
            return None
        return self._submit(self._write_cells, rows, list(forget))

    def _write_cells(self, rows: list[tuple[str, str, str | None, str]], forget: list[str]) -> None:
        db = self._connect()
        with db:
            db.executemany("DELETE FROM cells WHERE session_id = ?", [(sid,) for sid in forget])
            db.executemany(
                "INSERT INTO cells (session_id, cell_id, notebook_uri, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(session_id, cell_id) DO UPDATE SET data = excluded.data, "
                "notebook_uri = excluded.notebook_uri",
                rows,
            )

    async def load_cells(self) -> dict[str, tuple[str | None, list[dict[str, Any]]]]:
        """Every stored session's cells: session_id -> (notebook_uri, cell records)."""
        if not self.enabled:
            return {}
        return await self._submit(self._load_cells)

    def _load_cells(self) -> dict[str, tuple[str | None, list[dict[str, Any]]]]:
        cells: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}
        for session_id, uri, data in self._connect().execute(
            "SELECT session_id, notebook_uri, data FROM cells"
        ):
            cells.setdefault(session_id, (uri, []))[1].append(json.loads(data))
        return cells

    # --- reads (startup) ---------------------------------------------------------------

    async def load(self) -> list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
        """Every stored session with its newest history entries and its queued requests
        (``{"msg_id", "request", "started_at"}``, in arrival order)."""
        if not self.enabled:
            return []
        return await self._submit(self._load)

    def _load(self) -> list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
        db = self._connect()
        result = []
        for session_id, data in db.execute("SELECT session_id, data FROM sessions").fetchall():
            rows = db.execute(
                "SELECT entry FROM history WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
                (session_id, self.history_size),
            ).fetchall()
            queued = [
                {"msg_id": msg_id, "request": json.loads(request), "started_at": started_at}
                for msg_id, request, started_at in db.execute(
                    "SELECT msg_id, request, started_at FROM queue WHERE session_id = ? "
                    "ORDER BY seq",
                    (session_id,),
                )
            ]
            result.append((json.loads(data), [json.loads(r[0]) for r in reversed(rows)], queued))
        return result

    # --- named records (a key-value API for the layers above, e.g. MCP workspaces) ------

    def save_record(self, kind: str, record_id: str, record: dict[str, Any]) -> asyncio.Future:
        """Write (or replace) one record of ``kind``; fails with StoreError if it could not
        be stored."""
        if self.enabled:
            return self._submit(self._save_record, kind, record_id, json.dumps(record))
        return self._nothing()

    def _save_record(self, kind: str, record_id: str, data: str) -> None:
        db = self._connect()
        with db:
            db.execute(
                "INSERT INTO records (kind, record_id, data) VALUES (?, ?, ?) "
                "ON CONFLICT(kind, record_id) DO UPDATE SET data = excluded.data",
                (kind, record_id, data),
            )

    def delete_record(self, kind: str, record_id: str) -> asyncio.Future:
        if self.enabled:
            return self._submit(self._delete_record, kind, record_id)
        return self._nothing()

    def _delete_record(self, kind: str, record_id: str) -> None:
        db = self._connect()
        with db:
            db.execute("DELETE FROM records WHERE kind = ? AND record_id = ?", (kind, record_id))

    async def load_records(self, kind: str) -> list[dict[str, Any]]:
        """Every stored record of ``kind``."""
        if not self.enabled:
            return []
        return await self._submit(self._load_records, kind)

    def _load_records(self, kind: str) -> list[dict[str, Any]]:
        rows = self._connect().execute("SELECT data FROM records WHERE kind = ?", (kind,))
        return [json.loads(data) for (data,) in rows]

    async def close(self) -> None:
        if self.enabled:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:  # releases the lock
            os.close(self._lock_fd)
            self._lock_fd = None


def _move_legacy_records(db: sqlite3.Connection) -> None:
    for table, kind in LEGACY_RECORD_TABLES.items():
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        )
        if found.fetchone() is None:
            continue
        with db:
            # (table names are ours, from LEGACY_RECORD_TABLES)
            db.execute(
                f"INSERT OR IGNORE INTO records (kind, record_id, data) SELECT ?, * FROM {table}",
                (kind,),
            )
            db.execute(f"DROP TABLE {table}")


def _make_private(path: str, create: bool) -> None:
    try:
        os.close(open_private(path, os.O_RDWR | (os.O_CREAT if create else 0)))
    except FileNotFoundError:  # a -wal or -shm not there (yet)
        pass


def _json_default(value: Any) -> Any:
    """A queued message's buffers (bytes) and a client's datetime header date."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("Persisting sessions failed: %s", future.exception())
