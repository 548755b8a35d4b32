"""Server-wide session events for user interfaces (the /events websocket).

Queue and session-updated events are coalesced per session and sent once per loop turn, so a
burst (10,000 requests queued at once) costs one event, not 10,000.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from session_ext.store.records import session_model

if TYPE_CHECKING:
    from session_ext.session.session import ActiveSession

QUEUE_SUMMARY_LIMIT = 50

Subscriber = Callable[[str], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._dirty_queue: dict[str, ActiveSession] = {}
        self._dirty_update: dict[str, ActiveSession] = {}
        self._flush_scheduled = False

    def subscribe(self, subscriber: Subscriber, snapshot: list[dict[str, Any]]) -> None:
        subscriber(json.dumps({"event": "snapshot", "sessions": snapshot}))
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def publish(self, event: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        frame = json.dumps(event)
        for subscriber in list(self._subscribers):
            subscriber(frame)

    # Coalesced: the latest state is read when the event is sent.
    def queue_changed(self, session: ActiveSession) -> None:
        self._dirty_queue[session.session_id] = session
        self._schedule()

    def session_updated(self, session: ActiveSession) -> None:
        self._dirty_update[session.session_id] = session
        self._schedule()

    def session_deleted(self, session_id: str) -> None:
        self._dirty_queue.pop(session_id, None)
        self._dirty_update.pop(session_id, None)
        self.publish({"event": "session_deleted", "session_id": session_id})

    def _schedule(self) -> None:
        if self._flush_scheduled or not self._subscribers:
            if not self._subscribers:
                self._dirty_queue.clear()
                self._dirty_update.clear()
            return
        self._flush_scheduled = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        updates, self._dirty_update = self._dirty_update, {}
        queues, self._dirty_queue = self._dirty_queue, {}
        for session in updates.values():
            self.publish(
                {"event": "session_updated", "session": session_model(session, QUEUE_SUMMARY_LIMIT)}
            )
        for session_id, session in queues.items():
            summary = session.queue.summary(QUEUE_SUMMARY_LIMIT)
            self.publish({"event": "queue", "session_id": session_id, **summary})
