"""One ActiveSession: identity, spec, status machine (status.py) and timers (its API model is
records.py's).

It composes its parts and forwards their events: ``KernelProcess`` (the kernel's process,
kernel/process.py; ``ServerKernel`` for jupyter_server's own), ``MessageRouter`` (clients,
the queue, the history, router.py) and ``SessionLifecycle`` (getting and losing the kernel,
lifecycle.py). Free of tornado: the handlers call into it, and so can tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from session_ext.core.config import SupervisorConfig
from session_ext.core.errors import NO_CONNECTION_INFO, SESSION_NOT_RUNNING, SupervisorError
from session_ext.core.requests import ExecuteRequest
from session_ext.core.spec import SessionSpec
from session_ext.kernel.process import KernelProcess
from session_ext.kernel.server_kernel import ServerKernel
from session_ext.session.cells import CellExecution, NotebookCells
from session_ext.session.channels import Client, InternalClient, WebsocketClient
from session_ext.session.execute import execute, submit
from session_ext.session.lifecycle import SessionLifecycle
from session_ext.session.queue import ExecutionQueue, QueuedRequest
from session_ext.session.router import MessageRouter
from session_ext.session.status import StatusMachine
from session_ext.wire.messages import kernel_event

if TYPE_CHECKING:
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager


class SessionListener(Protocol):
    """Who hears about a session's changes (the supervisor: events stream, persistence)."""

    def session_status(self, session: ActiveSession) -> None: ...

    def session_queue(self, session: ActiveSession) -> None: ...

    def session_updated(self, session: ActiveSession) -> None: ...

    def history_added(self, session: ActiveSession, entry: dict[str, Any]) -> None: ...

    def persist_request(
        self,
        session: ActiveSession,
        request: QueuedRequest,
        queued: bool,
        started: bool,
        done: Callable[[bool], None],
    ) -> None: ...

    def cell_changed(self, session: ActiveSession, cell: CellExecution, urgent: bool) -> None: ...


class ActiveSession(StatusMachine):
    def __init__(
        self,
        spec: SessionSpec,
        config: SupervisorConfig,
        kernel_manager: MappingKernelManager,
        listener: SessionListener,
        kernel_id: str | None = None,
        owned_by_server: bool = False,
        status: tuple[str, str] = ("uninitialized", "created"),
    ):
        super().__init__(*status)
        self.spec = spec
        self.config = config
        self.listener = listener
        self.kernel_id = kernel_id or str(uuid.uuid4())
        self.created = time.time()
        self.started: float = self.created
        self.kernel_info: dict[str, Any] = {}
        self.initial_env: dict[str, str] = {}
        self.working_directory = spec.working_directory
        self.exit_code: int | None = None
        self.resource_usage: dict[str, Any] | None = None
        # owned_by_server: a notebook/console session of jupyter_server's, whose kernel is the
        # server's (it starts, restarts and shuts it down; we connect to it)
        kind = ServerKernel if owned_by_server else KernelProcess
        self.kernel = kind(self.kernel_id, spec, config, kernel_manager)
        # Durable mode: the queue is kept on disk too (jupyter_server's own sessions are its
        # session manager's to keep, and their kernels stop with it).
        durable = config.keep_kernels_on_shutdown and not owned_by_server
        self.cells: NotebookCells | None = None
        if spec.session_mode == "notebook":
            self.cells = NotebookCells(
                config.max_cell_output_bytes,
                config.max_notebook_output_bytes,
                lambda cell, urgent: listener.cell_changed(self, cell, urgent),
            )
        self.router = MessageRouter(config, self.kernel, self, durable=durable, cells=self.cells)
        self.kernel.on_message = self.router.kernel_message
        self.kernel.on_output = self.router.process_output
        self.kernel.on_heartbeat = self._on_heartbeat
        self.lifecycle = SessionLifecycle(self)
        self._tasks: set[asyncio.Task] = set()

    @property
    def session_id(self) -> str:
        return self.spec.session_id

    @property
    def owned_by_server(self) -> bool:
        """A notebook/console session of jupyter_server's (its kernel is the server's)."""
        return isinstance(self.kernel, ServerKernel)

    @property
    def kernel_connected(self) -> bool:
        return self.kernel.connected

    @property
    def process_id(self) -> int | None:
        return self.kernel.process_id

    @property
    def queue(self) -> ExecutionQueue:
        return self.router.queue

    @property
    def connected(self) -> bool:
        return self.router.connected

    @property
    def last_activity(self) -> float | None:
        return self.router.last_activity

    @property
    def waiting_input(self) -> bool:
        return self.router.waiting_input

    @property
    def placement(self) -> dict[str, Any] | None:
        """Where the kernel runs (provisioning.placement); None without a kernel."""
        return self.kernel.placement

    def stored_kernel(self) -> dict[str, Any]:
        """What a later server needs to re-attach the kernel (durable mode)."""
        return self.kernel.persisted(self.is_running)

    # --- status ------------------------------------------------------------------------

    def set_status(self, status: str, reason: str) -> None:
        if self.change_status(status, reason):
            self.router.broadcast(kernel_event(status={"status": status, "reason": reason}))
            self.listener.session_status(self)

    def require_running(self) -> None:
        if not self.is_running or not self.kernel.connected:
            raise SupervisorError(
                400, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )

    # --- its kernel's life (lifecycle.py) ---------------------------------------------------

    async def start(self) -> dict[str, Any]:
        return await self.lifecycle.start()

    async def restart(
        self, working_directory: str | None = None, env: list[dict[str, str]] | None = None
    ) -> None:
        await self.lifecycle.restart(working_directory, env)

    async def adopt(self, connection_info: dict[str, Any]) -> dict[str, Any]:
        return await self.lifecycle.adopt(connection_info)

    async def attach_server_kernel(self, reason: str = "attach") -> None:
        await self.lifecycle.attach_server_kernel(reason)

    async def reattach(self, data: dict[str, Any]) -> None:
        await self.lifecycle.reattach(data)

    def on_kernel_restarted(self) -> None:
        self.lifecycle.on_kernel_restarted()

    async def kill(self) -> None:
        await self.lifecycle.kill()

    async def shutdown(self, reason: str = "shutdown") -> None:
        await self.lifecycle.shutdown(reason)

    async def detach_kernel(self) -> None:
        await self.lifecycle.detach_kernel()

    async def check_alive(self) -> None:
        await self.lifecycle.check_alive()

    def on_kernel_exited(self, code: int | None, reason: str) -> None:
        self.lifecycle.on_kernel_exited(code, reason)

    def mark_exited(self, reason: str) -> None:
        self.lifecycle.mark_exited(reason)

    async def interrupt(self) -> None:
        self.require_running()
        await self.kernel.interrupt()
        self.on_interrupted()

    def on_interrupted(self) -> None:
        self.router.on_interrupted()

    # --- restored from the store (supervisor/restore.py) ----------------------------------

    def restore(self, history: list[dict[str, Any]], requests: list[QueuedRequest]) -> None:
        """A later server's copy of this session: its history, and its stored queue, held
        until the kernel is re-attached (``reattach``) or given up (``abandon_queue``)."""
        self.router.history.extend(history)
        self.router.restore_queue(requests)

    def abandon_queue(self, reason: str) -> None:
        self.router.abandon_queue(reason)

    def hold_client_messages(self) -> None:
        self.lifecycle.hold_client_messages()

    def release_client_messages(self) -> None:
        self.lifecycle.release_client_messages()

    async def client_messages_released(self) -> None:
        await self.lifecycle.released.wait()

    def _on_heartbeat(self, alive: bool) -> None:
        if not alive and self.status in ("idle", "busy"):
            self.set_status("offline", "heartbeat timeout")
        elif alive and self.status == "offline":
            self.set_status(self._activity(), "heartbeat resumed")

    # --- clients -------------------------------------------------------------------------

    def attach(self, client: WebsocketClient, exclusive: bool = False) -> None:
        self.router.attach(client, exclusive)

    def detach(
        self, client: WebsocketClient, unsent: list[tuple[bytes, bool]] = (), torn: int = 0
    ) -> None:
        """A client left; ``unsent``: the frames its connection could not deliver."""
        self.router.detach(client, unsent, torn)

    def handle_client_frame(self, client: WebsocketClient, data: str | bytes) -> None:
        """A websocket frame from a client: a Jupyter message for the kernel."""
        if self.lifecycle.held(client, data):
            return
        try:
            if self.kernel.msg_session is None:
                self.require_running()
            msg = self.router.parse_client_frame(data)
            self.send_client_message(client, msg, source="websocket")
        except SupervisorError as e:
            client.send_frame(kernel_event(error=e.to_json()))

    def send_client_message(self, client: Client, msg: dict[str, Any], source: str) -> None:
        """Raises SupervisorError (never keeps a message for a later kernel)."""
        self.require_running()
        self.router.send_client_message(client, msg, source)

    async def execute(self, request: ExecuteRequest) -> dict[str, Any]:
        await self.lifecycle.released.wait()
        if not self.is_running:
            raise SupervisorError(
                409, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )
        self.require_running()
        return await execute(self.router, self.kernel, request)

    def submit_execution(self, client: InternalClient, code: str, source: str) -> str:
        """Queue ``code`` for an internal client that follows it on its own (an agent's
        execution, session_ext/mcp); its msg_id."""
        if not self.is_running:
            raise SupervisorError(
                409, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )
        self.require_running()
        return submit(self.router, client, code, source)

    def set_resource_usage(self, usage: dict[str, Any]) -> None:
        self.resource_usage = usage
        self.router.broadcast(kernel_event(resourceUsage=usage))

    # --- RouterListener ------------------------------------------------------------------

    def kernel_state(self, state: str, reason: str) -> None:
        self.kernel.record_state(state)
        if self.status in ("idle", "busy"):
            self.set_status(self._activity(), reason)

    def kernel_restarting(self) -> None:
        if self.status in ("idle", "busy"):
            self.on_kernel_restarted()

    def queue_changed(self) -> None:
        activity = self._activity()
        if self.status in ("idle", "busy") and activity != self.status:
            self.set_status(activity, "execute_request")
        self.listener.session_queue(self)

    def _activity(self) -> str:
        """busy while a request is active (from its dispatch, not only from the kernel's own
        busy), else what the kernel last said."""
        return "busy" if self.router.queue.active is not None else self.router.kernel_state

    def request_finished(self, request: QueuedRequest) -> None:
        if self.kernel.process_id is not None:
            task = asyncio.ensure_future(self._check_working_directory())
            self._tasks.add(task)  # held until done: a bare task may be collected mid-way
            task.add_done_callback(self._tasks.discard)

    def history_added(self, entry: dict[str, Any]) -> None:
        self.listener.history_added(self, entry)

    def model_changed(self) -> None:
        self.listener.session_updated(self)

    def persist_request(
        self, request: QueuedRequest, queued: bool, started: bool, done: Callable[[bool], None]
    ) -> None:
        self.listener.persist_request(self, request, queued, started, done)

    async def _check_working_directory(self) -> None:
        cwd = await self.kernel.current_directory()
        if cwd is not None and cwd != self.working_directory:
            self.working_directory = cwd
            self.router.broadcast(kernel_event(workingDirChanged=cwd))
            self.listener.session_updated(self)

    # --- views ---------------------------------------------------------------------------

    def connection_info(self) -> dict[str, Any]:
        if not self.is_running:
            raise SupervisorError(
                400, NO_CONNECTION_INFO, f"Session {self.session_id!r} has no running kernel"
            )
        return self.kernel.connection_info()

    def get_history(self, limit: int | None) -> list[dict[str, Any]]:
        return self.router.get_history(limit)

    def cells_model(self) -> dict[str, Any]:
        """The latest execution of each notebook cell (none for other sessions)."""
        return {
            "session_id": self.session_id,
            "notebook_uri": self.spec.notebook_uri,
            "cells": self.cells.to_json() if self.cells is not None else [],
        }
