"""The supervisor's periodic tick (every 250 ms): kernel exits noticed, sessions culled,
resource usage sampled (off the loop), and the standalone server's idle shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import psutil

from session_ext.core.config import SupervisorConfig
from session_ext.kernel.resources import ResourceSampler
from session_ext.supervisor.events import EventBus

if TYPE_CHECKING:
    from session_ext.session.session import ActiveSession

IDLE_SHUTDOWN_ZERO = 30.0  # seconds: idle_shutdown_hours=0 means "after 30 s idle" (Kallichore)

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25


class Housekeeping:
    def __init__(
        self, config: SupervisorConfig, sessions: dict[str, ActiveSession], events: EventBus
    ):
        self.config = config
        self.sessions = sessions  # the supervisor's registry (read only here)
        self.events = events
        self.last_active = time.monotonic()  # for idle shutdown
        # Called once when idle_shutdown_hours pass with nothing going on (standalone only).
        self.on_idle_timeout: Callable[[], None] | None = None
        self.heartbeats: dict[int | None, float] = {}  # client process id -> last heartbeat
        self._resources = ResourceSampler()
        self._task: asyncio.Task | None = None
        self._culling: set[asyncio.Task] = set()  # held: the loop keeps only weak references

    def client_heartbeat(self, process_id: int | None) -> None:
        """A client says it is alive (Kallichore's idle shutdown waits for live clients)."""
        self.heartbeats[process_id] = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._tick())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _tick(self) -> None:
        next_sample = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for session in list(self.sessions.values()):
                try:
                    await session.check_alive()
                except Exception:
                    log.exception("Checking session %s", session.session_id)
            await self._cull()
            self._check_idle_shutdown()
            interval = self.config.resource_sample_interval_ms / 1000
            if interval > 0 and time.monotonic() >= next_sample:
                next_sample = time.monotonic() + interval
                await self._sample_resources(interval)

    async def _cull(self) -> None:
        """Shut down sessions idle (or busy) longer than their timeout."""
        config = self.config
        for session in list(self.sessions.values()):
            if session.connected and not config.cull_connected:
                continue
            idle_limit, busy_limit = config.cull_idle_timeout, config.cull_busy_timeout
            if (
                idle_limit > 0 and session.status == "idle" and session.idle_seconds >= idle_limit
            ) or (
                busy_limit > 0 and session.status == "busy" and session.busy_seconds >= busy_limit
            ):
                log.info("Culling session %s (%s)", session.session_id, session.status)
                task = asyncio.ensure_future(session.shutdown("culled"))
                self._culling.add(task)
                task.add_done_callback(self._culling.discard)

    async def _sample_resources(self, interval: float) -> None:
        running = {s.session_id: s.process_id for s in self.sessions.values() if s.process_id}
        samples = await asyncio.to_thread(self._resources.sample, running, int(interval * 1000))
        for session_id, usage in samples.items():
            session = self.sessions.get(session_id)
            if session is not None and session.process_id:
                session.set_resource_usage(usage)
                self.events.publish(
                    {"event": "resource_usage", "session_id": session_id, "resource_usage": usage}
                )

    def _check_idle_shutdown(self) -> None:
        now = time.monotonic()
        if not self.is_idle():
            self.last_active = now
            return
        hours = self.config.idle_shutdown_hours
        wait = hours * 3600 if hours > 0 else IDLE_SHUTDOWN_ZERO  # 0: soon after going idle
        if self.on_idle_timeout is not None and hours >= 0 and now - self.last_active >= wait:
            log.info("No activity for %s hours: shutting down", hours)
            callback, self.on_idle_timeout = self.on_idle_timeout, None
            callback()

    def is_idle(self) -> bool:
        """No session busy or connected, and no heartbeat client alive (idle shutdown)."""
        if any(s.status == "busy" or s.connected for s in self.sessions.values()):
            return False
        return not any(pid is not None and psutil.pid_exists(pid) for pid in self.heartbeats)
