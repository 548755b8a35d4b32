"""The registry of ActiveSessions: create, list, get, delete; server status; the periodic
tick that notices exits; the bridge from session changes to the events stream."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import psutil

from . import __version__, mirror
from .events import EventBus
from .launch import load_kernelspec
from .models import (
    SESSION_EXISTS,
    SESSION_RUNNING,
    TOO_MANY_SESSIONS,
    SessionSpec,
    StartupError,
    SupervisorConfig,
    SupervisorError,
    bad_request,
    get_enum,
    get_number,
    not_found,
    parse_new_session,
    require_object,
)
from .persistence import PendingWrites
from .records import restored_session
from .resources import ResourceSampler
from .session import ActiveSession
from .status import rfc3339
from .store import SessionStore

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class Supervisor:
    def __init__(
        self,
        config: SupervisorConfig,
        kernel_manager: Any,
        events: EventBus,
        store: SessionStore,
    ):
        self.config = config
        self.kernel_manager = kernel_manager
        self.events = events
        self.store = store
        self.sessions: dict[str, ActiveSession] = {}
        self._by_kernel: dict[str, ActiveSession] = {}  # kernel_id -> session (fixed per session)
        self.started = time.time()
        self.last_active = time.monotonic()  # for idle shutdown
        self._tick_task: asyncio.Task | None = None
        self.writes = PendingWrites(store, self.sessions)  # written once per loop turn
        self._resources = ResourceSampler()
        # Called once when idle_shutdown_hours pass with nothing going on (standalone only).
        self.on_idle_timeout: Any = None
        self.heartbeats: dict[int | None, float] = {}  # client process id -> last heartbeat

    # --- registry ----------------------------------------------------------------------

    def get(self, session_id: str) -> ActiveSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise not_found(session_id)
        return session

    def all_sessions(self) -> list[ActiveSession]:
        return list(self.sessions.values())

    async def create(self, body: Any) -> ActiveSession:
        """A new session, on disk before the client hears of it."""
        session = self._create(body)
        await self.flush()
        return session

    def _create(self, body: Any) -> ActiveSession:
        fields, kernel_name = parse_new_session(
            body,
            {"username": self.config.username, "working_directory": self.config.server_root},
        )
        if fields["session_id"] in self.sessions:
            raise SupervisorError(
                400, SESSION_EXISTS, f"Session {fields['session_id']!r} already exists"
            )
        if self.config.max_sessions and len(self.sessions) >= self.config.max_sessions:
            raise SupervisorError(
                409,
                TOO_MANY_SESSIONS,
                f"The server allows at most {self.config.max_sessions} sessions; "
                "delete one first",
            )
        self._apply_kernelspec_defaults(fields, kernel_name)
        for name in ("display_name", "language"):
            if fields[name] is None:
                raise bad_request(f"Field '{name}' is required when 'argv' is given")
        session = ActiveSession(SessionSpec(**fields), self.config, self.kernel_manager, self)
        self._add(session)
        return session

    def _add(self, session: ActiveSession) -> None:
        self.sessions[session.session_id] = session
        self._by_kernel[session.kernel_id] = session
        self.events.publish({"event": "session_created", "session": session.to_json(50)})
        self.writes.session(session)

    def _apply_kernelspec_defaults(self, fields: dict[str, Any], kernel_name: str | None) -> None:
        if kernel_name is None and fields["argv"] is None:
            kernel_name = fields["kernel_name"] = self.kernel_manager.default_kernel_name
        if kernel_name is not None:
            spec = load_kernelspec(self.kernel_manager.kernel_spec_manager, kernel_name)
            fields["argv"] = fields["argv"] or list(spec.argv)
            fields["language"] = fields["language"] or spec.language
            fields["display_name"] = fields["display_name"] or spec.display_name
            fields["interrupt_mode"] = fields["interrupt_mode"] or spec.interrupt_mode
        elif self.config.allow_argv == "kernelspecs-only" and not self._argv_of_a_kernelspec(
            fields["argv"]
        ):
            raise SupervisorError(
                403,
                "forbidden",
                "This server only runs installed kernelspecs: give 'kernel_name', or the argv "
                "of an installed kernelspec",
            )
        fields["interrupt_mode"] = fields["interrupt_mode"] or "signal"

    def _argv_of_a_kernelspec(self, argv: list[str]) -> bool:
        ksm = self.kernel_manager.kernel_spec_manager
        for name in ksm.find_kernel_specs():
            try:
                if ksm.get_kernel_spec(name).argv == argv:
                    return True
            except Exception:
                continue
        return False

    async def delete(self, session_id: str, force: bool = False) -> None:
        session = self.get(session_id)
        if session.is_running:
            if not force:
                raise SupervisorError(
                    400,
                    SESSION_RUNNING,
                    f"Session {session_id!r} is running; shut it down first or use ?force=true",
                )
            await session.shutdown("deleted")
        self._remove(session_id)

    def _remove(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            self._by_kernel.pop(session.kernel_id, None)
            self.writes.forget(session_id)
            self.store.delete(session_id)
            self.events.session_deleted(session_id)

    # --- server ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        sessions = self.all_sessions()
        busy = [s for s in sessions if s.status == "busy"]
        active = [s for s in sessions if s.is_running]
        return {
            "sessions": len(sessions),
            "active": len(active),
            "busy": bool(busy),
            "idle_seconds": 0 if busy else min((s.idle_seconds for s in active), default=0),
            "busy_seconds": max((s.busy_seconds for s in busy), default=0),
            "uptime_seconds": int(time.time() - self.started),
            "version": __version__,
            "process_id": os.getpid(),
            "started": rfc3339(self.started),
        }

    # --- jupyter_server's sessions (notebooks and consoles) -----------------------------

    def session_for_kernel(self, kernel_id: str) -> ActiveSession | None:
        """Called for every message JupyterLab sends: a dict lookup, not a scan."""
        session = self._by_kernel.get(kernel_id)
        return session if session is not None and session.is_running else None

    async def mirror_jupyter_session(self, model: dict[str, Any]) -> None:
        """A session of /api/sessions was created or changed: show it as an ActiveSession
        (same id, its kernel, notebook_uri) and attach to its kernel."""
        kernel_id = (model.get("kernel") or {}).get("id")
        session = self.sessions.get(model["id"])
        path = model.get("path") or ""
        notebook_uri = mirror.notebook_uri(self.config, model)
        if session is not None and session.kernel_id == kernel_id:
            if session.spec.notebook_uri != notebook_uri or session.spec.metadata.get("path") != path:
                session.spec.notebook_uri = notebook_uri
                session.spec.metadata["path"] = path
                self.session_updated(session)
            return
        if session is not None:  # the notebook changed kernels
            await self._drop(session)
        if not kernel_id or kernel_id not in self.kernel_manager:
            return
        kernel_spec = self.kernel_manager.get_kernel(kernel_id).kernel_spec
        session = ActiveSession(
            mirror.mirrored_spec(self.config, model, kernel_spec),
            self.config,
            self.kernel_manager,
            self,
            kernel_id=kernel_id,
            owned_by_server=True,
        )
        self._add(session)
        try:
            await session.attach_server_kernel()
        except StartupError as e:
            log.warning("Could not attach to the kernel of %s: %s", model["id"], e)

    def forget_jupyter_session(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.owned_by_server:
            asyncio.ensure_future(self._drop(session))

    async def _drop(self, session: ActiveSession) -> None:
        """Stop mirroring a jupyter_server session (its kernel is the server's business)."""
        await session.detach_kernel()
        if session.is_running:
            session.on_kernel_exited(None, "session closed")
        self._remove(session.session_id)

    def on_kernel_action(self, kernel_id: str, action: str | None) -> None:
        """jupyter_server interrupted or restarted a kernel (e.g. JupyterLab's buttons)."""
        session = self.session_for_kernel(kernel_id)
        if session is None:
            return
        if action == "interrupt":
            session.on_interrupted()
        elif action == "restart":
            session.on_kernel_restarted()

    def client_heartbeat(self, process_id: int | None) -> None:
        """A client says it is alive (Kallichore's idle shutdown waits for live clients)."""
        self.heartbeats[process_id] = time.monotonic()

    def server_configuration(self) -> dict[str, Any]:
        return {
            "idle_shutdown_hours": self.config.idle_shutdown_hours,
            "resource_sample_interval_ms": self.config.resource_sample_interval_ms,
            "log_level": self.config.log_level,
        }

    def update_server_configuration(self, body: Any) -> None:
        body = require_object(body)
        hours = get_number(body, "idle_shutdown_hours", None, minimum=-1)
        if hours is not None and (hours > 65535 or hours != int(hours)):
            raise bad_request("Field 'idle_shutdown_hours' must be an integer from -1 to 65535")
        interval = get_number(body, "resource_sample_interval_ms", None, minimum=0)
        if interval is not None and interval != int(interval):
            raise bad_request("Field 'resource_sample_interval_ms' must be an integer")
        level = get_enum(body, "log_level", tuple(LOG_LEVELS), None)
        if hours is not None:
            self.config.idle_shutdown_hours = int(hours)
        if interval is not None:
            self.config.resource_sample_interval_ms = int(interval)
        if level is not None:
            self.config.log_level = level
            logging.getLogger("session_ext").setLevel(LOG_LEVELS[level])

    async def restore(self) -> None:
        """Sessions stored by an earlier server: listed again, and in durable mode their
        live kernels re-attached (same ids, metadata, history, kernel state)."""
        reattaching = []
        for data, history, queued in await self.store.load():
            if data["spec"]["session_id"] in self.sessions:
                continue
            session = restored_session(
                data, history, queued, self.config, self.kernel_manager, self
            )
            self._add(session)
            if data.get("connection_info") and data.get("status") not in ("exited", "uninitialized"):
                reattaching.append(self._reattach(session, data))
            elif queued:
                session.router.abandon_queue("the kernel had exited")
        await asyncio.gather(*reattaching)

    async def _reattach(self, session: ActiveSession, data: dict[str, Any]) -> None:
        try:
            await session.reattach(data)
            log.info("Re-attached session %s to its kernel", session.session_id)
        except StartupError as e:
            log.warning("Session %s: kernel not re-attached: %s", session.session_id, e)
            session.mark_exited("kernel exited while the server was down")
        except Exception:
            log.exception("Re-attaching session %s", session.session_id)
            session.mark_exited("could not re-attach the kernel")
        self.writes.session(session)

    def start(self) -> None:
        self._tick_task = asyncio.ensure_future(self._tick())

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
            if (idle_limit > 0 and session.status == "idle" and session.idle_seconds >= idle_limit) or (
                busy_limit > 0 and session.status == "busy" and session.busy_seconds >= busy_limit
            ):
                log.info("Culling session %s (%s)", session.session_id, session.status)
                asyncio.ensure_future(session.shutdown("culled"))

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
        if self.on_idle_timeout is not None and hours >= 0 and now - self.last_active >= hours * 3600:
            log.info("No activity for %s hours: shutting down", hours)
            callback, self.on_idle_timeout = self.on_idle_timeout, None
            callback()

    def is_idle(self) -> bool:
        """No session busy or connected, and no heartbeat client alive (idle shutdown)."""
        if any(s.status == "busy" or s.connected for s in self.sessions.values()):
            return False
        return not any(pid is not None and psutil.pid_exists(pid) for pid in self.heartbeats)

    async def shutdown_all(self) -> None:
        """Shut every kernel down (POST /shutdown, or the server stopping)."""
        await asyncio.gather(
            *(s.shutdown("server shutdown") for s in self.all_sessions()), return_exceptions=True
        )

    async def stop(self, keep_kernels: bool) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            self._tick_task = None
        if keep_kernels:
            await asyncio.gather(*(s.detach_kernel() for s in self.all_sessions()), return_exceptions=True)
        else:
            await self.shutdown_all()
        self.writes.flush()
        await self.store.close()

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

    def persist_request(self, session: ActiveSession, *write: Any) -> None:
        """A durable queue's row (``PendingWrites.request``)."""
        self.writes.request(session, *write)

    async def flush(self) -> None:
        """Write what is pending now (a create or start is acknowledged once it is on disk)."""
        await asyncio.gather(*self.writes.flush())

    def snapshot(self) -> list[dict[str, Any]]:
        return [s.to_json(50) for s in self.all_sessions()]

