"""What the store is to write, batched once per event-loop turn: the sessions that changed
(each written once, however often it changed), the history entries, and in durable mode the
execution queues' rows. History and queue rows go in one transaction (a request's history
entry takes its row out of the queue); the writes themselves are the store's worker's.

A notebook cell whose status changed is written with the next batch; one whose outputs only
grew waits up to ``CELL_OUTPUT_DELAY`` (a cell printing fast is not rewritten per message)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from session_ext.core.clock import now_ms
from session_ext.session.cells import CellExecution
from session_ext.session.queue import QueuedRequest
from session_ext.session.session import ActiveSession
from session_ext.store.database import SessionStore
from session_ext.store.records import request_record, session_record

CELL_OUTPUT_DELAY = 1.0  # seconds


class PendingWrites:
    def __init__(
        self,
        store: SessionStore,
        sessions: dict[str, ActiveSession],
        deleting: set[str],
        reattaching: set[str] = frozenset(),
    ):
        self.store = store
        self.sessions = sessions  # the live ones: a removed session's late writes are dropped
        self.deleting = deleting  # a save after its delete would bring the row back
        # restored sessions whose kernels are not re-attached yet: their stored rows hold
        # the connection info, which they do not have yet (their saves wait until then)
        self.reattaching = reattaching
        self._sessions: dict[str, ActiveSession] = {}
        self._history: list[tuple[str, dict[str, Any]]] = []
        # (session, request, queued, started, done): a durable queue's row
        self._requests: list[tuple[ActiveSession, QueuedRequest, bool, bool, Any]] = []
        self._cells: dict[tuple[str, str], tuple[ActiveSession, CellExecution]] = {}
        self._forget_cells: list[str] = []
        self._scheduled = False
        self._cells_timer: asyncio.TimerHandle | None = None

    def session(self, session: ActiveSession) -> None:
        """Save the session on the next loop turn. jupyter_server's own sessions are its
        session manager's to keep."""
        if self.store.enabled and not session.owned_by_server:
            self._schedule()
            self._sessions[session.session_id] = session

    def history(self, session_id: str, entry: dict[str, Any]) -> None:
        if self.store.enabled:
            self._schedule()
            self._history.append((session_id, entry))

    def request(
        self,
        session: ActiveSession,
        request: QueuedRequest,
        queued: bool,
        started: bool,
        done: Callable[[bool], None],
    ) -> None:
        """A durable queue's row: written (``queued``) and/or marked as the one sent
        (``started``) with this turn's batch; ``done(ok)`` once on disk."""
        if not self.store.enabled:
            done(True)
            return
        self._schedule()
        self._requests.append((session, request, queued, started, done))

    def cell(self, session: ActiveSession, cell: CellExecution, urgent: bool) -> None:
        if not self.store.enabled:
            return
        self._cells[(session.session_id, cell.cell_id)] = (session, cell)
        if urgent:
            self._schedule()
        elif self._cells_timer is None and not self._scheduled:
            self._cells_timer = asyncio.get_running_loop().call_later(CELL_OUTPUT_DELAY, self.flush)

    def forget_cells(self, session_id: str) -> None:
        """A session's stored cells go (a jupyter_server session that was deleted, or cells
        taken over by a later session of the same notebook)."""
        if self.store.enabled:
            self._schedule()
            self._forget_cells.append(session_id)

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> list[asyncio.Future]:
        """Hand this turn's writes to the store; the sessions' saves (to await)."""
        self._scheduled = False
        live = self.sessions
        self._flush_cells()
        history = [(sid, e) for sid, e in self._history if sid in live]
        requests = [r for r in self._requests if r[0].session_id in live]
        self._history, self._requests = [], []
        queued = [(s.session_id, r.msg_id, request_record(r)) for s, r, q, _, _ in requests if q]
        at = now_ms()
        started = [(s.session_id, r.msg_id, at) for s, r, _, st, _ in requests if st]
        batch = self.store.write_batch(history, queued, started)
        if requests and batch is not None:
            batch.add_done_callback(lambda f: _requests_stored(f, requests))
        pending, self._sessions = self._sessions, {}
        kept = self.deleting | self.reattaching  # their stored rows stay as they are
        return [
            self.store.save(session_id, session_record(session))
            for session_id, session in pending.items()
            if session_id in live and session_id not in kept
        ]

    def _flush_cells(self) -> None:
        if self._cells_timer is not None:
            self._cells_timer.cancel()
            self._cells_timer = None
        cells, self._cells = self._cells, {}
        forget, self._forget_cells = self._forget_cells, []
        rows = [
            (sid, cell.cell_id, session.spec.notebook_uri, json.dumps(cell.record(), default=str))
            for (sid, _), (session, cell) in cells.items()
            if sid in self.sessions and sid not in self.deleting
        ]
        self.store.write_cells(rows, forget)


def _requests_stored(future: asyncio.Future, requests: list[tuple]) -> None:
    ok = not future.cancelled() and future.exception() is None
    for _, _, _, _, done in requests:
        done(ok)
