"""What follows from a session's changes: the /events stream and the store.

Every ActiveSession reports to this observer (its ``SessionListener``). Events go out at once
(the bus coalesces queue and model events per loop turn); writes are batched per loop turn
(``PendingWrites``). Two kinds of session keep their stored row as it is: one being deleted
(a save after its delete would bring the row back) and a restored one whose kernel is not
re-attached yet (the row holds the connection info a later server needs, which the session
does not have until then).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from session_ext.store.persistence import PendingWrites
from session_ext.store.records import session_model
from session_ext.supervisor.events import QUEUE_SUMMARY_LIMIT, EventBus

if TYPE_CHECKING:
    from session_ext.session.cells import CellExecution
    from session_ext.session.session import ActiveSession
    from session_ext.store.database import SessionStore


class SessionObserver:
    def __init__(self, events: EventBus, store: SessionStore, sessions: dict[str, ActiveSession]):
        self.events = events
        self.deleting: set[str] = set()  # ids being deleted from the store
        self.reattaching: set[str] = set()  # restored, their kernels not re-attached yet
        self.writes = PendingWrites(store, sessions, self.deleting, self.reattaching)

    # --- the registry's changes --------------------------------------------------------

    def session_added(self, session: ActiveSession) -> None:
        self.events.publish(
            {"event": "session_created", "session": session_model(session, QUEUE_SUMMARY_LIMIT)}
        )

    def session_removed(self, session_id: str) -> None:
        self.writes.forget(session_id)
        self.events.session_deleted(session_id)

    async def flush(self) -> None:
        """Write what is pending now (a create or start is acknowledged once it is on disk)."""
        await asyncio.gather(*self.writes.flush())

    # --- SessionListener ---------------------------------------------------------------

    def session_status(self, session: ActiveSession) -> None:
        self.events.publish(
            {
                "event": "status",
                "session_id": session.session_id,
                "status": session.status,
                "reason": session.reason,
                "timestamp": session.status_timestamp,
            }
        )

    def session_queue(self, session: ActiveSession) -> None:
        self.events.queue_changed(session)

    def session_updated(self, session: ActiveSession) -> None:
        self.events.session_updated(session)
        self.writes.session(session)

    def history_added(self, session: ActiveSession, entry: dict[str, Any]) -> None:
        self.writes.history(session.session_id, entry)

    def cell_changed(self, session: ActiveSession, cell: CellExecution, urgent: bool) -> None:
        self.writes.cell(session, cell, urgent)

    def persist_request(self, session: ActiveSession, *write: Any) -> None:
        """A durable queue's row (``PendingWrites.request``)."""
        self.writes.request(session, *write)
