"""One ActiveSession: identity, spec, status machine (status.py) and timers (its API model is
records.py's).

It composes two parts and forwards their events: ``KernelProcess`` (the kernel's process
life, kernel.py) and ``MessageRouter`` (clients, the queue, the history, router.py). Free of
tornado: the handlers call into it, and so can tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from session_ext.core.config import SupervisorConfig
from session_ext.core.errors import (
    NO_CONNECTION_INFO,
    NO_PROCESS,
    SESSION_NOT_RUNNING,
    SESSION_RUNNING,
    StartupError,
    SupervisorError,
)
from session_ext.core.requests import ExecuteRequest
from session_ext.core.spec import SessionSpec
from session_ext.kernel import launch
from session_ext.kernel.process import KernelProcess
from session_ext.session.cells import CellExecution, NotebookCells
from session_ext.session.channels import WebsocketClient
from session_ext.session.execute import execute, submit
from session_ext.session.queue import ExecutionQueue, QueuedRequest
from session_ext.session.router import MessageRouter
from session_ext.session.status import CONNECTED_STATUSES, StatusMachine
from session_ext.wire.messages import kernel_event


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
        kernel_manager: Any,
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
        self.kernel = KernelProcess(self.kernel_id, spec, config, kernel_manager, owned_by_server)
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
        self._lifecycle = asyncio.Lock()  # one start/restart/kill/shutdown at a time
        self._reconnecting: asyncio.Task | None = None  # to jupyter_server's restarted kernel
        self._tasks: set[asyncio.Task] = set()
        # Durable restore: what clients send while the kernel is being re-attached waits
        self._held_frames: list[tuple[WebsocketClient, str | bytes]] | None = None
        self._released = asyncio.Event()
        self._released.set()

    @property
    def session_id(self) -> str:
        return self.spec.session_id

    @property
    def owned_by_server(self) -> bool:
        """A notebook/console session of jupyter_server's (its kernel is the server's)."""
        return self.kernel.owned_by_server

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

    def _set_status(self, status: str, reason: str) -> None:
        if self.change_status(status, reason):
            self.router.broadcast(kernel_event(status={"status": status, "reason": reason}))
            self.listener.session_status(self)

    def _require_running(self) -> None:
        if not self.is_running or not self.kernel.connected:
            raise SupervisorError(
                400, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )

    def _refuse_if_running(self) -> None:
        if self.is_running:
            raise SupervisorError(
                400, SESSION_RUNNING, f"Session {self.session_id!r} is already running"
            )

    # --- getting a kernel ----------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        async with self._lifecycle:
            self._refuse_if_running()
            return await self._launch(self.spec.working_directory)

    async def restart(
        self, working_directory: str | None = None, env: list[dict[str, str]] | None = None
    ) -> None:
        if self.owned_by_server:
            # jupyter_server restarts its kernel; then we connect to the new process.
            await self.kernel.restart_server_kernel()
            self.on_kernel_restarted()
            if self._reconnecting is not None:
                await asyncio.shield(self._reconnecting)
            return
        async with self._lifecycle:
            if env is not None:
                self.spec.env = env
            cwd = working_directory or self.working_directory
            if self.is_running:
                await self._stop_kernel(now=False, reason="restart")
            await self._launch(cwd)

    async def _launch(self, cwd: str) -> dict[str, Any]:
        self.exit_code = None
        self.initial_env = env = launch.kernel_env(self.spec.env, self.config.secrets)
        deadline = time.monotonic() + self.spec.connection_timeout
        kernel_info = await self._starting("start", self.kernel.launch(cwd, env, deadline))
        self.working_directory = cwd
        return kernel_info

    async def adopt(self, connection_info: dict[str, Any]) -> dict[str, Any]:
        """Connect to a kernel that something else started (no process of ours)."""
        async with self._lifecycle:
            self._refuse_if_running()
            self.kernel.adopt(connection_info)
            return await self._starting("adopt", self._handshake())

    async def attach_server_kernel(self, reason: str = "attach") -> None:
        """Attach to the kernel jupyter_server started (or restarted) for this notebook or
        console session. Its readiness is waited for outside the lifecycle lock: a shutdown
        meanwhile wins."""
        self._set_status("starting", reason)
        try:
            if not await self.kernel.wait_for_server_kernel(lambda: self.status == "starting"):
                return
        except StartupError:
            self._set_status("exited", "start failed")
            raise
        async with self._lifecycle:
            if self.status == "starting":
                await self._starting(reason, self._handshake())

    async def reattach(self, data: dict[str, Any]) -> None:
        """Durable mode: connect again to the kernel an earlier server left running.
        Raises StartupError if it is gone."""
        async with self._lifecycle:
            self._set_status("starting", "reattach")
            try:
                await self.kernel.reattach(data)
            except StartupError:
                self._set_status("exited", "kernel exited while the server was down")
                raise
            await self._starting(
                "reattach",
                self.kernel.reattach_handshake(time.monotonic() + self.spec.connection_timeout),
            )
            self.router.release_queue()

    def _handshake(self) -> Awaitable[dict[str, Any]]:
        return self.kernel.handshake(time.monotonic() + self.spec.connection_timeout)

    async def _starting(self, reason: str, connect: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """`starting` while the kernel comes up; then `idle` with its kernel_info, or
        `exited` (and the error raised) if it does not."""
        self._set_status("starting", reason)
        try:
            kernel_info = await connect
        except BaseException as e:  # never left in `starting`
            if not isinstance(e, StartupError):  # (a StartupError has cleaned up already)
                self.kernel.detach()
            self.exit_code = getattr(e, "exit_code", None)
            self._set_status("exited", "start failed")
            raise
        self.started = time.time()
        # A re-attached kernel that did not answer in time keeps its stored kernel_info.
        self.kernel_info = kernel_info or self.kernel_info
        positron = (self.kernel_info.get("language_info") or {}).get("positron") or {}
        self.spec.input_prompt = positron.get("input_prompt", self.spec.input_prompt)
        self.spec.continuation_prompt = positron.get(
            "continuation_prompt", self.spec.continuation_prompt
        )
        self.router.kernel_ready()
        # busy: a re-attached kernel may still run the earlier server's request
        self._set_status(self.router.kernel_state, "started")
        self.listener.session_updated(self)
        return kernel_info

    def on_kernel_restarted(self) -> None:
        """jupyter_server restarted the kernel (JupyterLab's button, its auto-restarter):
        everything waiting is answered, and we connect to the new process."""
        if self.kernel.km is None or self._reconnecting or self._lifecycle.locked():
            return  # our own restart, or already on it
        if self.kernel.is_current_process():
            return
        self._reconnecting = asyncio.ensure_future(self._reattach_after_restart())

    async def _reattach_after_restart(self) -> None:
        try:
            async with self._lifecycle:
                self.router.kernel_restarted()
            await self.attach_server_kernel("restart")
        except StartupError:
            pass  # `exited`, and said why
        finally:
            self._reconnecting = None

    # --- stopping ------------------------------------------------------------------------

    async def interrupt(self) -> None:
        self._require_running()
        await self.kernel.interrupt()
        self.on_interrupted()

    def on_interrupted(self) -> None:
        self.router.on_interrupted()

    async def kill(self) -> None:
        async with self._lifecycle:
            self._require_running()
            if not self.kernel.has_process:
                raise SupervisorError(
                    400,
                    NO_PROCESS,
                    "An adopted kernel has no process of ours to kill; send it a shutdown_request",
                )
            await self._stop_kernel(now=True, reason="killed")

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Shut the kernel down gracefully (a kill after ``shutdown_wait`` seconds)."""
        self._stop_reconnecting()
        async with self._lifecycle:
            if self.is_running:
                await self._stop_kernel(now=False, reason=reason)

    async def detach_kernel(self) -> None:
        """The server is stopping in durable mode: let go of the kernel, leave it running."""
        self._stop_reconnecting()
        async with self._lifecycle:
            self.kernel.detach()

    def _stop_reconnecting(self) -> None:
        """Waiting for jupyter_server's restarted kernel (that may never come up, or that
        nobody talks to) must not hold up a shutdown."""
        if self._reconnecting is not None:
            self._reconnecting.cancel()

    async def _stop_kernel(self, now: bool, reason: str) -> None:
        self.on_kernel_exited(await self.kernel.stop(now), reason)

    async def check_alive(self) -> None:
        """Called about every 250 ms: notice a kernel process that has gone."""
        self.kernel.poll_output()
        if self.status not in CONNECTED_STATUSES or self._lifecycle.locked():
            return
        if not await self.kernel.has_exited():
            return
        code = self.kernel.exit_code()
        async with self._lifecycle:
            if self.status in CONNECTED_STATUSES:
                await self.kernel.reap()
                self.on_kernel_exited(code, "exited")

    def on_kernel_exited(self, code: int | None, reason: str) -> None:
        """The kernel is gone: tell everyone, answer everything still waiting."""
        self.kernel.closed()
        self.router.kernel_gone(code, reason)
        self.exit_code = code
        self.resource_usage = None
        self._set_status("exited", reason)
        self.listener.session_updated(self)

    def restore(self, history: list[dict[str, Any]], requests: list[QueuedRequest]) -> None:
        """A later server's copy of this session: its history, and its stored queue, held
        until the kernel is re-attached (``reattach``) or given up (``abandon_queue``)."""
        self.router.history.extend(history)
        self.router.restore_queue(requests)

    def abandon_queue(self, reason: str) -> None:
        self.router.abandon_queue(reason)

    def hold_client_messages(self) -> None:
        """Until ``release_client_messages``: what clients send (frames, REST and agents'
        executions) waits for the kernel, in order, instead of being refused — a restored
        session is `starting` while the server, already serving, re-attaches its kernel."""
        self._held_frames = []
        self._released.clear()

    def release_client_messages(self) -> None:
        """Re-attached (or not: then each is answered as for any session not running)."""
        held, self._held_frames = self._held_frames or [], None
        self._released.set()
        for client, data in held:
            self.handle_client_frame(client, data)

    async def client_messages_released(self) -> None:
        await self._released.wait()

    def mark_exited(self, reason: str) -> None:
        """No kernel to re-attach to (it died while the server was down): what was queued
        for it is recorded as aborted."""
        self._set_status("exited", reason)
        self.router.abandon_queue(reason)

    def _on_heartbeat(self, alive: bool) -> None:
        if not alive and self.status in ("idle", "busy"):
            self._set_status("offline", "heartbeat timeout")
        elif alive and self.status == "offline":
            self._set_status(self._activity(), "heartbeat resumed")

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
        if self._held_frames is not None:
            self._held_frames.append((client, data))
            return
        try:
            if self.kernel.msg_session is None:
                self._require_running()
            msg = self.router.parse_client_frame(data)
            self.send_client_message(client, msg, source="websocket")
        except SupervisorError as e:
            client.send_frame(kernel_event(error=e.to_json()))

    def send_client_message(self, client: Any, msg: dict[str, Any], source: str) -> None:
        """Raises SupervisorError (never keeps a message for a later kernel)."""
        self._require_running()
        self.router.send_client_message(client, msg, source)

    async def execute(self, request: ExecuteRequest) -> dict[str, Any]:
        await self._released.wait()
        if not self.is_running:
            raise SupervisorError(
                409, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )
        self._require_running()
        return await execute(self.router, self.kernel, request)

    def submit_execution(self, client: Any, code: str, source: str) -> str:
        """Queue ``code`` for an internal client that follows it on its own (an agent's
        execution, session_ext/mcp); its msg_id."""
        if not self.is_running:
            raise SupervisorError(
                409, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )
        self._require_running()
        return submit(self.router, client, code, source)

    def set_resource_usage(self, usage: dict[str, Any]) -> None:
        self.resource_usage = usage
        self.router.broadcast(kernel_event(resourceUsage=usage))

    # --- RouterListener ------------------------------------------------------------------

    def kernel_state(self, state: str, reason: str) -> None:
        self.kernel.record_state(state)
        if self.status in ("idle", "busy"):
            self._set_status(self._activity(), reason)

    def kernel_restarting(self) -> None:
        if self.status in ("idle", "busy"):
            self.on_kernel_restarted()

    def queue_changed(self) -> None:
        activity = self._activity()
        if self.status in ("idle", "busy") and activity != self.status:
            self._set_status(activity, "execute_request")
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
