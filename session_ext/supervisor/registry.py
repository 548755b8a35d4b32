"""The registry of ActiveSessions: create, list, get, delete; server status; restore; the
bridge from session changes to the events stream and the store. The periodic tick is
housekeeping.py's."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

from session_ext._version import __version__
from session_ext.core.clock import rfc3339
from session_ext.core.config import LOG_LEVELS, SupervisorConfig
from session_ext.core.errors import (
    SESSION_EXISTS,
    SESSION_RUNNING,
    TOO_MANY_SESSIONS,
    StartupError,
    SupervisorError,
    bad_request,
    not_found,
)
from session_ext.core.requests import parse_new_session
from session_ext.core.spec import SessionSpec
from session_ext.core.validation import given
from session_ext.integration import mirror
from session_ext.kernel.launch import check_program, kernel_env, load_kernelspec
from session_ext.kernel.policy import ArgvPolicy
from session_ext.kernel.provisioning import launches_locally
from session_ext.session.cells import SERVER_STOPPED
from session_ext.session.session import ActiveSession
from session_ext.store.database import SessionStore, StoreError
from session_ext.store.persistence import PendingWrites
from session_ext.store.records import restored_session, session_model, session_record
from session_ext.supervisor.events import EventBus
from session_ext.supervisor.housekeeping import Housekeeping

log = logging.getLogger(__name__)

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
        self.policy = ArgvPolicy(config.allow_argv, kernel_manager.kernel_spec_manager)
        self.sessions: dict[str, ActiveSession] = {}
        self._by_kernel: dict[str, ActiveSession] = {}  # kernel_id -> session (fixed per session)
        self.started = time.time()
        self.server_id = uuid.uuid4().hex  # new at every start: clients spot a new server
        self._creating: set[str] = set()  # ids of new sessions being written, not yet listed
        self._deleting: set[str] = set()  # ids being deleted from the store
        # written once per loop turn (never for a session being deleted)
        self.writes = PendingWrites(store, self.sessions, self._deleting)
        self.housekeeping = Housekeeping(config, self.sessions, events)
        self._attaching: dict[str, asyncio.Task] = {}  # jupyter_server sessions' attach tasks
        self._background: set[asyncio.Task] = set()
        # notebook_uri -> (session id, cell records) of jupyter_server sessions of an earlier
        # server: the next session of that notebook takes them over
        self._earlier_cells: dict[str, tuple[str, list[dict[str, Any]]]] = {}

    # --- registry ----------------------------------------------------------------------

    def get(self, session_id: str) -> ActiveSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise not_found(session_id)
        return session

    def all_sessions(self) -> list[ActiveSession]:
        return list(self.sessions.values())

    async def create(self, body: Any) -> ActiveSession:
        """A new session, listed (and announced) only once it is on disk: if it cannot be
        stored, a 507 and nothing changed."""
        session = self._new_session(body)
        self._creating.add(session.session_id)
        try:
            await self.store.save(session.session_id, session_record(session))
        finally:
            self._creating.discard(session.session_id)
        self._add(session)
        return session

    def _new_session(self, body: Any) -> ActiveSession:
        fields, kernel_name = parse_new_session(
            body,
            {"username": self.config.username, "working_directory": self.config.server_root},
        )
        if fields["session_id"] in self.sessions or fields["session_id"] in self._creating:
            raise SupervisorError(
                400, SESSION_EXISTS, f"Session {fields['session_id']!r} already exists"
            )
        count = len(self.sessions) + len(self._creating)
        if self.config.max_sessions and count >= self.config.max_sessions:
            raise SupervisorError(
                409,
                TOO_MANY_SESSIONS,
                f"The server allows at most {self.config.max_sessions} sessions; delete one first",
            )
        kernelspec = self._apply_kernelspec_defaults(fields, kernel_name)
        for name in ("display_name", "language"):
            if fields[name] is None:
                raise bad_request(f"Field '{name}' is required when 'argv' is given")
        self.policy.check(
            fields["argv"], fields["kernel_name"], fields["startup_environment"], fields["env"]
        )
        if fields["argv"]:  # empty: a session for adopting a kernel started elsewhere
            env = kernel_env(fields["env"], self.config.secrets)  # as at launch
            local = kernelspec is None or launches_locally(kernelspec, self.kernel_manager)
            check_program(fields["argv"], env, fields["working_directory"], local)
        return ActiveSession(SessionSpec(**fields), self.config, self.kernel_manager, self)

    def _add(self, session: ActiveSession) -> None:
        self.sessions[session.session_id] = session
        self._by_kernel[session.kernel_id] = session
        self.events.publish({"event": "session_created", "session": session_model(session, 50)})

    def _apply_kernelspec_defaults(self, fields: dict[str, Any], kernel_name: str | None) -> Any:
        """Fill in what the kernelspec gives; the kernelspec, if any."""
        spec = None
        if kernel_name is None and fields["argv"] is None:
            kernel_name = fields["kernel_name"] = self.kernel_manager.default_kernel_name
        if kernel_name is not None:
            spec = load_kernelspec(self.kernel_manager.kernel_spec_manager, kernel_name)
            fields["argv"] = fields["argv"] or list(spec.argv)
            fields["language"] = fields["language"] or spec.language
            fields["display_name"] = fields["display_name"] or spec.display_name
            fields["interrupt_mode"] = fields["interrupt_mode"] or spec.interrupt_mode
        fields["interrupt_mode"] = fields["interrupt_mode"] or "signal"
        return spec

    async def start_session(self, session_id: str) -> dict[str, Any]:
        """Start (or start again) a session's kernel; acknowledged once on disk."""
        session = self.get(session_id)
        spec = session.spec
        self.policy.check(spec.argv, spec.kernel_name, spec.startup_environment, spec.env)
        kernel_info = await session.start()
        await self._acknowledge(session)
        return kernel_info

    async def restart_session(
        self, session_id: str, working_directory: str | None, env: list[dict[str, str]] | None
    ) -> None:
        session = self.get(session_id)
        spec = session.spec
        self.policy.check(
            spec.argv, spec.kernel_name, spec.startup_environment, spec.env if env is None else env
        )
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
        session = self.get(session_id)
        if session.is_running:
            if not force:
                raise SupervisorError(
                    400,
                    SESSION_RUNNING,
                    f"Session {session_id!r} is running; shut it down first or use ?force=true",
                )
            await session.shutdown("deleted")
        self._deleting.add(session_id)
        try:
            await self.store.delete(session_id)  # a 507 leaves the session listed
        finally:
            self._deleting.discard(session_id)
        self._remove(session_id)

    def _remove(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            self._by_kernel.pop(session.kernel_id, None)
            self.writes.forget(session_id)
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
            "server_id": self.server_id,
            **({"gateway": {"url": self.config.gateway_url}} if self.config.gateway_url else {}),
        }

    # --- jupyter_server's sessions (notebooks and consoles) -----------------------------

    def session_for_kernel(self, kernel_id: str) -> ActiveSession | None:
        """Called for every message JupyterLab sends: a dict lookup, not a scan."""
        session = self._by_kernel.get(kernel_id)
        return session if session is not None and session.is_running else None

    def attaching_to_kernel(self, kernel_id: str) -> asyncio.Task | None:
        """The attach in progress to this jupyter_server kernel, if any."""
        session = self._by_kernel.get(kernel_id)
        return self._attaching.get(session.session_id) if session is not None else None

    def mirror_jupyter_session(self, model: dict[str, Any]) -> None:
        """A session of /api/sessions was created or changed: show it as an ActiveSession
        (same id, its kernel, notebook_uri) at once; attaching to its kernel (once the kernel
        is ready: pending kernels) happens beside the request, never inside it."""
        kernel_id = (model.get("kernel") or {}).get("id")
        session = self.sessions.get(model["id"])
        path = model.get("path") or ""
        notebook_uri = mirror.notebook_uri(self.config, model)
        if session is not None and session.kernel_id == kernel_id:
            if (
                session.spec.notebook_uri != notebook_uri
                or session.spec.metadata.get("path") != path
            ):
                session.spec.notebook_uri = notebook_uri
                session.spec.metadata["path"] = path
                # JupyterLab creates a notebook's session on a made-up path (a UUID) and
                # then renames it to the notebook's: the cells of an earlier server are
                # the notebook's, found by its real path.
                self._take_earlier_cells(session)
                self.session_updated(session)
            return
        if session is not None:  # the notebook changed kernels
            self.forget_jupyter_session(session.session_id)
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
        self._take_earlier_cells(session)
        self._attaching[session.session_id] = self._beside(self._attach(session))

    def _take_earlier_cells(self, session: ActiveSession) -> None:
        """A notebook's cells as an earlier server left them (its kernel stopped with it)."""
        earlier = self._earlier_cells.pop(session.spec.notebook_uri or "", None)
        if earlier is None or session.cells is None:
            return
        earlier_id, records = earlier
        session.cells.restore(records)
        session.cells.abort_unfinished(SERVER_STOPPED)
        for cell in session.cells.cells.values():
            self.writes.cell(session, cell, True)
        self.writes.forget_cells(earlier_id)

    async def _attach(self, session: ActiveSession) -> None:
        try:
            await session.attach_server_kernel()
        except StartupError as e:
            log.warning("Could not attach to the kernel of %s: %s", session.session_id, e)
        finally:
            if self._attaching.get(session.session_id) is asyncio.current_task():
                del self._attaching[session.session_id]  # (not a newer one of the same id)

    def forget_jupyter_session(self, session_id: str) -> None:
        """Stop mirroring a jupyter_server session (its kernel is the server's business)."""
        session = self.sessions.get(session_id)
        if session is None or not session.owned_by_server:
            return
        self._remove(session_id)
        self.writes.forget_cells(session_id)
        attaching = self._attaching.pop(session_id, None)
        if attaching is not None:
            attaching.cancel()
        self._beside(self._let_go(session))

    @staticmethod
    async def _let_go(session: ActiveSession) -> None:
        await session.detach_kernel()
        if session.is_running:
            session.on_kernel_exited(None, "session closed")

    def _beside(self, work: Any) -> asyncio.Task:
        """Work for jupyter_server's sessions that its requests do not wait for (finished,
        or for attaching cancelled, when the server stops)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

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
        self.housekeeping.client_heartbeat(process_id)

    def server_configuration(self) -> dict[str, Any]:
        return {
            "idle_shutdown_hours": self.config.idle_shutdown_hours,
            "resource_sample_interval_ms": self.config.resource_sample_interval_ms,
            "log_level": self.config.log_level,
        }

    def update_server_configuration(self, body: Any) -> None:
        """Apply a ServerConfigurationUpdate (all of it, or nothing when a field is invalid)."""
        changes = given("ServerConfigurationUpdate", body)
        if "idle_shutdown_hours" in changes:
            self.config.idle_shutdown_hours = int(changes["idle_shutdown_hours"])
        if "resource_sample_interval_ms" in changes:
            self.config.resource_sample_interval_ms = int(changes["resource_sample_interval_ms"])
        if "log_level" in changes:
            self.config.log_level = changes["log_level"]
            logging.getLogger("session_ext").setLevel(LOG_LEVELS[changes["log_level"]])

    async def restore(self) -> None:
        """Sessions stored by an earlier server: listed again, and in durable mode their
        live kernels re-attached (same ids, metadata, history, kernel state)."""
        reattaching = []
        cells = await self.store.load_cells()
        for data, history, queued in await self.store.load():
            if data["spec"]["session_id"] in self.sessions:
                continue
            _, records = cells.pop(data["spec"]["session_id"], (None, []))
            session = restored_session(
                data, history, queued, self.config, self.kernel_manager, self, records
            )
            self._add(session)
            if data.get("connection_info") and data.get("status") not in (
                "exited",
                "uninitialized",
            ):
                reattaching.append(self._reattach(session, data))
            elif queued:
                session.router.abandon_queue("the kernel had exited")
        for session_id, (uri, records) in cells.items():  # of jupyter_server's sessions
            if uri and _newest(records) > _newest(self._earlier_cells.get(uri, ("", []))[1]):
                self._earlier_cells[uri] = (session_id, records)
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

    async def shutdown_all(self) -> None:
        """Shut every kernel down (POST /shutdown, or the server stopping)."""
        await asyncio.gather(
            *(s.shutdown("server shutdown") for s in self.all_sessions()), return_exceptions=True
        )

    def start(self) -> None:
        self.housekeeping.start()

    async def stop(self, keep_kernels: bool) -> None:
        self.housekeeping.stop()
        for task in list(self._attaching.values()):
            task.cancel()  # a kernel nobody talked to yet; letting go of one is quick: awaited
        await asyncio.gather(*self._background, return_exceptions=True)
        # jupyter_server's own kernels are its to shut down (its cleanup does): let go of them
        stopping = [
            s.detach_kernel()
            if keep_kernels or s.owned_by_server
            else s.shutdown("server shutdown")
            for s in self.all_sessions()
        ]
        await asyncio.gather(*stopping, return_exceptions=True)
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

    def cell_changed(self, session: ActiveSession, cell: Any, urgent: bool) -> None:
        self.writes.cell(session, cell, urgent)

    def persist_request(self, session: ActiveSession, *write: Any) -> None:
        """A durable queue's row (``PendingWrites.request``)."""
        self.writes.request(session, *write)

    async def flush(self) -> None:
        """Write what is pending now (a create or start is acknowledged once it is on disk)."""
        await asyncio.gather(*self.writes.flush())

    def snapshot(self) -> list[dict[str, Any]]:
        return [session_model(s, 50) for s in self.all_sessions()]


def _newest(records: list[dict[str, Any]]) -> int:
    return max((r.get("queued_at") or 0 for r in records), default=-1)
