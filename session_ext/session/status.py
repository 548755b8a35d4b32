"""A session's status machine: its status, why it last changed, when, and how long it has
been idle or busy (Kallichore's idle_seconds / busy_seconds).

uninitialized → starting → idle ⇄ busy; offline while the heartbeat is lost; exited.
"""

from __future__ import annotations

import time

from session_ext.core.clock import now_ms

RUNNING_STATUSES = ("starting", "idle", "busy", "offline")
CONNECTED_STATUSES = ("idle", "busy", "offline")


class StatusMachine:
    def __init__(self, status: str = "uninitialized", reason: str = "created"):
        self.status = status
        self.reason = reason
        self.status_timestamp = now_ms()  # when the status last changed (ms, for events)
        self._status_since = time.monotonic()

    def change_status(self, status: str, reason: str) -> bool:
        """Change it; False if nothing changed (a new reason alone is a change)."""
        if status == self.status and reason == self.reason:
            return False
        if status != self.status:
            self._status_since = time.monotonic()
            self.status_timestamp = now_ms()
        self.status, self.reason = status, reason
        return True

    def _seconds_in(self, status: str) -> int:
        return int(time.monotonic() - self._status_since) if self.status == status else 0

    @property
    def idle_seconds(self) -> int:
        return self._seconds_in("idle")

    @property
    def busy_seconds(self) -> int:
        return self._seconds_in("busy")

    @property
    def is_running(self) -> bool:
        return self.status in RUNNING_STATUSES
