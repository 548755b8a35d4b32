"""The Supervisor: the registry of ActiveSessions (lookups by id and by kernel), and what the
handlers, the MCP tools and the app ask of it — create, start, restart, delete, status, the
server's start and stop. It composes the parts that do the work:

- ``factory``: new sessions (kernelspec defaults, the argv policy), the policy before launches;
- ``observer``: every session's changes to the /events stream and the store;
- ``restore``: the sessions of an earlier server, their kernels re-attached after the handshake;
- ``housekeeping``: the periodic tick; ``server_config``: the run-time configuration.

jupyter_server's own sessions are mirrored by ``integration.mirror`` through ``add``,
``remove``, ``find`` and ``by_kernel``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from session_ext._version import __version__
from session_ext.core.clock import rfc3339
from session_ext.core.errors import SESSION_RUNNING, SupervisorError, not_found
from session_ext.store.database import StoreError
from session_ext.store.records import session_model, session_record
from session_ext.supervisor import server_config
from session_ext.supervisor.events import QUEUE_SUMMARY_LIMIT, EventBus
from session_ext.supervisor.factory import SessionFactory
from session_ext.supervisor.housekeeping import Housekeeping
from session_ext.supervisor.observer import SessionObserver
from session_ext.supervisor.restore import Restorer

if TYPE_CHECKING:
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    from session_ext.core.config import SupervisorConfig
    from session_ext.session.session import ActiveSession
    from session_ext.store.database import SessionStore


class Supervisor:
    def __init__(
        self,
        config: SupervisorConfig,
        kernel_manager: MappingKernelManager,
        events: EventBus,
        store: SessionStore,
    ):
        self.config = config
        self.kernel_manager = kernel_manager
        self.events = events
        self.store = store
        self.sessions: dict[str, ActiveSession] = {}
        self._by_kernel: dict[str, ActiveSession] = {}  # kernel_id -> session (fixed per session)
        self._creating: set[str] = set()  # ids of new sessions being written, not yet listed
        self.started = time.time()
        self.server_id = uuid.uuid4().hex  # new at every start: clients spot a new server
        self.observer = SessionObserver(events, store, self.sessions)
        self.factory = SessionFactory(config, kernel_manager, self.observer)
        self.restorer = Restorer(self)
        self.housekeeping = Housekeeping(config, self.sessions, events)

    # --- the registry ------------------------------------------------------------------

    def get(self, session_id: str) -> ActiveSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise not_found(session_id)
        return session

    def find(self, session_id: str) -> ActiveSession | None:
        return self.sessions.get(session_id)

    def by_kernel(self, kernel_id: str) -> ActiveSession | None:
        """A dict lookup (JupyterLab's every message asks), whatever the session's status."""
        return self._by_kernel.get(kernel_id)

    def all_sessions(self) -> list[ActiveSession]:
        return list(self.sessions.values())

    def add(self, session: ActiveSession) -> None:
        """List a session (and announce it)."""
        self.sessions[session.session_id] = session
        self._by_kernel[session.kernel_id] = session
        self.observer.session_added(session)

    def remove(self, session_id: str) -> None:
        """Unlist a session (its kernel is someone else's business by now)."""
        session = self.sessions.pop(session_id, None)
        if session is not None:
            self._by_kernel.pop(session.kernel_id, None)
            self.observer.session_removed(session_id)

    # --- sessions ----------------------------------------------------------------------

    async def create(self, body: Any) -> ActiveSession:
        """A new session, listed (and announced) only once it is on disk: if it cannot be
        stored, a 507 and nothing changed."""
        session = self.factory.new_session(
            body, self.sessions.keys() | self._creating, len(self.sessions) + len(self._creating)
        )
        self._creating.add(session.session_id)
        try:
            await self.store.save(session.session_id, session_record(session))
        finally:
            self._creating.discard(session.session_id)
        self.add(session)
        return session

    async def start_session(self, session_id: str) -> dict[str, Any]:
        """Start (or start again) a session's kernel; acknowledged once on disk."""
        await self.restorer.settled(session_id)
        session = self.get(session_id)
        self.factory.check_launch(session)
        kernel_info = await session.start()
        await self._acknowledge(session)
        return kernel_info

    async def restart_session(
        self, session_id: str, working_directory: str | None, env: list[dict[str, str]] | None
    ) -> None:
        await self.restorer.settled(session_id)
        session = self.get(session_id)
        self.factory.check_launch(session, env)
        await session.restart(working_directory, env)
        await self._acknowledge(session)

    async def _acknowledge(self, session: ActiveSession) -> None:
        """A started kernel is acknowledged once on disk. If it cannot be stored it is shut
        down again (a durable kernel the store does not know would be orphaned), and 507."""
        try:
            await self.flush()
        except StoreError:
            await session.shutdown("could not be stored")
            raise

    async def delete(self, session_id: str, force: bool = False) -> None:
        await self.restorer.settled(session_id)
        session = self.get(session_id)
        if session.is_running:
            if not force:
                raise SupervisorError(
                    400,
                    SESSION_RUNNING,
                    f"Session {session_id!r} is running; shut it down first or use ?force=true",
                )
            await session.shutdown("deleted")
        deleting = self.observer.deleting
        deleting.add(session_id)
        try:
            await self.store.delete(session_id)  # a 507 leaves the session listed
        finally:
            deleting.discard(session_id)
        self.remove(session_id)

    async def shutdown_all(self) -> None:
        """Shut every kernel down (POST /shutdown, or the server stopping)."""
        sessions = self.all_sessions()
        await asyncio.gather(*(self.restorer.settled(s.session_id) for s in sessions))
        await asyncio.gather(
            *(s.shutdown("server shutdown") for s in sessions), return_exceptions=True
        )

    async def flush(self) -> None:
        """Write what is pending now (a create or start is acknowledged once it is on disk)."""
        await self.observer.flush()

    # --- the server --------------------------------------------------------------------

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
            "server_id": self.server_id,
            **({"gateway": {"url": self.config.gateway_url}} if self.config.gateway_url else {}),
        }

    def snapshot(self) -> list[dict[str, Any]]:
        return [session_model(s, QUEUE_SUMMARY_LIMIT) for s in self.all_sessions()]

    def client_heartbeat(self, process_id: int | None) -> None:
        self.housekeeping.client_heartbeat(process_id)

    def server_configuration(self) -> dict[str, Any]:
        return server_config.server_configuration(self.config)

    def update_server_configuration(self, body: Any) -> None:
        server_config.update_server_configuration(self.config, body)

    async def restore(self) -> None:
        """The sessions an earlier server stored, listed again (see restore.py)."""
        await self.restorer.restore()

    def reattach_restored(self) -> asyncio.Task:
        """Their kernels re-attached, in the background (once the server's state is out)."""
        return self.restorer.reattach()

    def start(self) -> None:
        self.housekeeping.start()

    async def stop(self, keep_kernels: bool) -> None:
        """Stop ticking, then shut the kernels down or, in durable mode, let go of them.
        jupyter_server's own kernels are its to shut down (its cleanup does): let go."""
        await self.restorer.stop()
        self.housekeeping.stop()
        stopping = [
            s.detach_kernel()
            if keep_kernels or s.owned_by_server
            else s.shutdown("server shutdown")
            for s in self.all_sessions()
        ]
        await asyncio.gather(*stopping, return_exceptions=True)
        self.observer.writes.flush()
        await self.store.close()
