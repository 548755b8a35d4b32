"""A session's status and how long it has been in it (idle_seconds, busy_seconds).

uninitialized → starting → idle ⇄ busy; offline while the heartbeat is lost; exited.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from .queue import now_ms

RUNNING_STATUSES = ("starting", "idle", "busy", "offline")
CONNECTED_STATUSES = ("idle", "busy", "offline")


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class SessionStatus:
    def __init__(self, status: str = "uninitialized", reason: str = "created"):
        self.status = status
        self.reason = reason
        self.timestamp = now_ms()  # when the status last changed (ms, for events)
        self._since = time.monotonic()

    def set(self, status: str, reason: str) -> bool:
        """Change it; False if nothing changed."""
        if status == self.status and reason == self.reason:
            return False
        if status != self.status:
            self._since = time.monotonic()
            self.timestamp = now_ms()
        self.status, self.reason = status, reason
        return True

    def seconds_in(self, status: str) -> int:
        return int(time.monotonic() - self._since) if self.status == status else 0
