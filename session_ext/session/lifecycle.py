"""How a session gets its kernel and loses it: start, restart, adopt, attach to jupyter_server's
kernel, re-attach a durable one; shut down, kill, let go, notice an exit.

One change at a time (a lock), and never left in ``starting``: a kernel that does not come up
leaves the session ``exited`` with the reason (and nothing behind: KernelProcess cleans up).
The lifecycle drives its session's two parts (the kernel, the router) and sets its status and
what is known of its kernel (kernel_info, exit code, start time); the session only delegates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from session_ext.core.errors import NO_PROCESS, SESSION_RUNNING, StartupError, SupervisorError
from session_ext.kernel import launch
from session_ext.kernel.server_kernel import ServerKernel
from session_ext.session.status import CONNECTED_STATUSES

if TYPE_CHECKING:
    from session_ext.session.channels import WebsocketClient
    from session_ext.session.session import ActiveSession


class SessionLifecycle:
    def __init__(self, session: ActiveSession):
        self.session = session
        self.kernel = session.kernel
        self.router = session.router
        self.lock = asyncio.Lock()  # one start/restart/kill/shutdown at a time
        self._reconnecting: asyncio.Task | None = None  # to jupyter_server's restarted kernel
        # Durable restore: what clients send while the kernel is being re-attached waits
        self._held_frames: list[tuple[WebsocketClient, str | bytes]] | None = None
        self.released = asyncio.Event()
        self.released.set()

    def _refuse_if_running(self) -> None:
        if self.session.is_running:
            raise SupervisorError(
                400, SESSION_RUNNING, f"Session {self.session.session_id!r} is already running"
            )

    # --- getting a kernel ----------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        async with self.lock:
            self._refuse_if_running()
            return await self._launch(self.session.spec.working_directory)

    async def restart(
        self, working_directory: str | None = None, env: list[dict[str, str]] | None = None
    ) -> None:
        session = self.session
        if isinstance(self.kernel, ServerKernel):
            # jupyter_server restarts its kernel; then we connect to the new process.
            await self.kernel.restart()
            self.on_kernel_restarted()
            if self._reconnecting is not None:
                await asyncio.shield(self._reconnecting)
            return
        async with self.lock:
            if env is not None:
                session.spec.env = env
            cwd = working_directory or session.working_directory
            if session.is_running:
                await self._stop_kernel(now=False, reason="restart")
            await self._launch(cwd)

    async def _launch(self, cwd: str) -> dict[str, Any]:
        session = self.session
        session.exit_code = None
        session.initial_env = env = launch.kernel_env(session.spec.env, session.config.secrets)
        deadline = time.monotonic() + session.spec.connection_timeout
        kernel_info = await self._starting("start", self.kernel.launch(cwd, env, deadline))
        session.working_directory = cwd
        return kernel_info

    async def adopt(self, connection_info: dict[str, Any]) -> dict[str, Any]:
        """Connect to a kernel that something else started (no process of ours)."""
        async with self.lock:
            self._refuse_if_running()
            self.kernel.adopt(connection_info)
            return await self._starting("adopt", self._handshake())

    async def attach_server_kernel(self, reason: str = "attach") -> None:
        """Attach to the kernel jupyter_server started (or restarted) for this notebook or
        console session. Its readiness is waited for outside the lock: a shutdown meanwhile
        wins."""
        session = self.session
        session.set_status("starting", reason)
        try:
            if not await self.kernel.wait_for_server_kernel(lambda: session.status == "starting"):
                return
        except StartupError:
            session.set_status("exited", "start failed")
            raise
        async with self.lock:
            if session.status == "starting":
                await self._starting(reason, self._handshake())

    async def reattach(self, data: dict[str, Any]) -> None:
        """Durable mode: connect again to the kernel an earlier server left running.
        Raises StartupError if it is gone."""
        session = self.session
        async with self.lock:
            session.set_status("starting", "reattach")
            try:
                await self.kernel.reattach(data)
            except StartupError:
                session.set_status("exited", "kernel exited while the server was down")
                raise
            await self._starting(
                "reattach",
                self.kernel.reattach_handshake(time.monotonic() + session.spec.connection_timeout),
            )
            self.router.release_queue()

    def _handshake(self) -> Awaitable[dict[str, Any]]:
        return self.kernel.handshake(time.monotonic() + self.session.spec.connection_timeout)

    async def _starting(self, reason: str, connect: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """`starting` while the kernel comes up; then `idle` with its kernel_info, or
        `exited` (and the error raised) if it does not."""
        session = self.session
        session.set_status("starting", reason)
        try:
            kernel_info = await connect
        except BaseException as e:  # never left in `starting`
            if not isinstance(e, StartupError):  # (a StartupError has cleaned up already)
                self.kernel.detach()
            session.exit_code = e.exit_code if isinstance(e, StartupError) else None
            session.set_status("exited", "start failed")
            raise
        session.started = time.time()
        # A re-attached kernel that did not answer in time keeps its stored kernel_info.
        session.kernel_info = kernel_info or session.kernel_info
        positron = (session.kernel_info.get("language_info") or {}).get("positron") or {}
        spec = session.spec
        spec.input_prompt = positron.get("input_prompt", spec.input_prompt)
        spec.continuation_prompt = positron.get("continuation_prompt", spec.continuation_prompt)
        self.router.kernel_ready()
        # busy: a re-attached kernel may still run the earlier server's request
        session.set_status(self.router.kernel_state, "started")
        session.listener.session_updated(session)
        return kernel_info

    def on_kernel_restarted(self) -> None:
        """jupyter_server restarted the kernel (JupyterLab's button, its auto-restarter):
        everything waiting is answered, and we connect to the new process."""
        if self.kernel.km is None or self._reconnecting or self.lock.locked():
            return  # our own restart, or already on it
        if self.kernel.is_current_process():
            return
        self._reconnecting = asyncio.ensure_future(self._reattach_after_restart())

    async def _reattach_after_restart(self) -> None:
        try:
            async with self.lock:
                self.router.kernel_restarted()
            await self.attach_server_kernel("restart")
        except StartupError:
            pass  # `exited`, and said why
        finally:
            self._reconnecting = None

    # --- losing it -----------------------------------------------------------------------

    async def kill(self) -> None:
        async with self.lock:
            self.session.require_running()
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
        async with self.lock:
            if self.session.is_running:
                await self._stop_kernel(now=False, reason=reason)

    async def detach_kernel(self) -> None:
        """The server is stopping in durable mode: let go of the kernel, leave it running."""
        self._stop_reconnecting()
        async with self.lock:
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
        if self.session.status not in CONNECTED_STATUSES or self.lock.locked():
            return
        if not await self.kernel.has_exited():
            return
        code = self.kernel.exit_code()
        async with self.lock:
            if self.session.status in CONNECTED_STATUSES:
                await self.kernel.reap()
                self.on_kernel_exited(code, "exited")

    def on_kernel_exited(self, code: int | None, reason: str) -> None:
        """The kernel is gone: tell everyone, answer everything still waiting."""
        session = self.session
        self.kernel.closed()
        self.router.kernel_gone(code, reason)
        session.exit_code = code
        session.resource_usage = None
        session.set_status("exited", reason)
        session.listener.session_updated(session)

    def mark_exited(self, reason: str) -> None:
        """No kernel to re-attach to (it died while the server was down): what was queued
        for it is recorded as aborted."""
        self.session.set_status("exited", reason)
        self.router.abandon_queue(reason)

    # --- a restored session, re-attached while the server already serves ----------------

    def hold_client_messages(self) -> None:
        """Until ``release_client_messages``: what clients send (frames, REST and agents'
        executions) waits for the kernel, in order, instead of being refused — a restored
        session is `starting` while the server, already serving, re-attaches its kernel."""
        self._held_frames = []
        self.released.clear()

    def held(self, client: WebsocketClient, data: str | bytes) -> bool:
        """Keep a client's frame for later, if messages are held now."""
        if self._held_frames is None:
            return False
        self._held_frames.append((client, data))
        return True

    def release_client_messages(self) -> None:
        """Re-attached (or not: then each is answered as for any session not running)."""
        held, self._held_frames = self._held_frames or [], None
        self.released.set()
        for client, data in held:
            self.session.handle_client_frame(client, data)
