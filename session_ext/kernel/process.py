"""One session's kernel process through jupyter_client: launch, adopt, re-attach, stop, kill,
exit watch, the startup handshake and the heartbeat.

A kernel of ours: we start, stop and reap it, and list it in /api/kernels. jupyter_server's own
kernels (a notebook's or a console's, which we only connect to) are the other kind:
``ServerKernel`` (server_kernel.py).

It knows nothing of clients or queues: what the kernel says goes to ``on_message``, what its
process prints to ``on_output``, heartbeat changes to ``on_heartbeat`` (set by the owner).
Every failure to start leaves nothing behind (no process, no sockets) and raises StartupError.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from jupyter_client.session import Session
from jupyter_core.utils import ensure_async

from session_ext.core import internals
from session_ext.core.config import SupervisorConfig
from session_ext.core.errors import (
    EXITED_ABNORMALLY,
    INTERRUPT_FAILED,
    NO_CONNECTION_INFO,
    StartupError,
    SupervisorError,
    bad_request,
)
from session_ext.core.spec import SessionSpec
from session_ext.kernel import launch, provisioning, startup
from session_ext.kernel.connection import KernelConnection, connection_info
from session_ext.kernel.handshake import KernelInfoHandshake
from session_ext.kernel.output import ProcessOutput
from session_ext.wire.messages import KernelMessage, make_message

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

log = logging.getLogger(__name__)
T = TypeVar("T")


def _ignore(*args: Any) -> None:
    pass


class KernelProcess:
    def __init__(
        self,
        kernel_id: str,
        spec: SessionSpec,
        config: SupervisorConfig,
        multi_kernel_manager: MappingKernelManager,
    ):
        self.kernel_id = kernel_id
        self.spec = spec
        self.config = config
        self.mkm = multi_kernel_manager
        self.on_message: Callable[[KernelMessage], None] = _ignore
        self.on_output: Callable[[str, str], None] = _ignore
        self.on_heartbeat: Callable[[bool], None] = _ignore
        self.km: KernelManager | None = None
        self.conn: KernelConnection | None = None
        self.output: ProcessOutput | None = None
        self.msg_session: Session | None = None
        self.process_id: int | None = None  # a local process's only
        self.placement: dict[str, Any] | None = None  # where it runs (provisioning.placement)
        self.provisioner_info: dict[str, Any] | None = None  # persisted, for re-attachment
        # Durable mode: the earlier server's message session id, so our sockets have its
        # ZeroMQ identity and the kernel's replies to its requests reach us.
        self._session_id: str | None = None
        self._handshake: KernelInfoHandshake | None = None  # the latest one
        self._exit_watch = provisioning.ExitWatch()
        self._process_key: tuple | None = None  # tells a restarted process from this one

    @property
    def connected(self) -> bool:
        return self.conn is not None

    @property
    def has_process(self) -> bool:
        """A process of ours (launched or re-attached), not an adopted kernel's."""
        return self.km is not None and self.km.has_kernel

    # --- getting a kernel ---------------------------------------------------------------

    async def launch(self, cwd: str, env: dict[str, str], deadline: float) -> dict[str, Any]:
        """Start the kernel through jupyter_client and its provisioner; its kernel_info."""
        spec = self.spec
        km = self._new_manager()
        # Popen's arguments (output files, the parent-death watch) only for a local process:
        # another provisioner runs the kernel elsewhere, and may pass its own.
        local = provisioning.launches_locally(km.kernel_spec, self.mkm)
        launch.check_program(spec.argv, env, cwd, on_this_machine=local)
        self.km = km
        self.output = output = self._open_output() if local else None
        popen = {}
        if output is not None:
            independent = self.config.keep_kernels_on_shutdown
            popen = dict(stdout=output.stdout, stderr=output.stderr, independent=independent)
        await self._starting(startup.start_process(km, self.kernel_id, cwd, env, popen, deadline))
        self.provisioner_info = await provisioning.provisioner_info(km)
        self._placed(km)
        return await self.handshake(deadline)

    def adopt(self, connection_info: dict[str, Any]) -> None:
        """Take a kernel that something else started (no process of ours); 400 if its
        connection info is unusable. ``handshake`` connects."""
        km = self._new_manager(named=False)
        try:
            km.load_connection_info(connection_info)
        except Exception as e:
            raise bad_request("Invalid connection info", details=str(e)) from None
        self.km = km
        self.process_id = None

    async def reattach(self, data: dict[str, Any]) -> None:
        """Durable mode: the kernel an earlier server left running, from its stored connection
        and provisioner info. StartupError if it is gone. ``handshake`` connects."""
        km = self._new_manager(kernelspec_required=False)  # (the kernel runs without it)
        km.load_connection_info(data["connection_info"])
        if data.get("provisioner_info"):
            await provisioning.reattach_provisioner(km, data["provisioner_info"])
            if await provisioning.poll(km) is not None:
                raise StartupError(EXITED_ABNORMALLY, "The kernel is gone", None, "")
        self.km = km
        self.provisioner_info = data.get("provisioner_info")
        self._session_id = data.get("message_session")
        self._placed(km)
        self.output = self._open_output() if provisioning.is_local(km) else None

    async def wait_for_server_kernel(self, wanted: Callable[[], bool]) -> bool:
        """Take the kernel jupyter_server started or restarted (its own, or one of ours that
        JupyterLab restarted) once it is ready (startup.server_kernel); ``handshake``
        connects. False once no longer ``wanted``."""
        km = await startup.server_kernel(self.mkm, self.kernel_id, wanted)
        if km is None:
            return False
        self.km = km
        self._placed(km, await provisioning.provisioner_info(km))
        return True

    def is_current_process(self) -> bool:
        """Connected to the process jupyter_server runs now (not one it replaced)."""
        return self.conn is not None and provisioning.process_key(self.km) == self._process_key

    def _placed(self, km: Any, info: dict[str, Any] | None = None) -> None:
        """The kernel runs: its local pid (none for a remote one), and where it runs."""
        self.process_id = provisioning.local_pid(km)
        self.placement = provisioning.placement(km, info or self.provisioner_info)
        self._process_key = provisioning.process_key(km)
        provisioning.never_blocks(km)  # (jupyter_server's shutdowns of it too)

    def _new_manager(self, named: bool = True, kernelspec_required: bool = True) -> KernelManager:
        km = launch.session_kernel_manager(
            self.mkm, self.kernel_id, self.spec, named, kernelspec_required
        )
        km.shutdown_wait_time = self.config.shutdown_wait
        return km

    def _open_output(self) -> ProcessOutput:
        prefix = os.path.join(self.config.runtime_dir, f"kernel-{self.kernel_id}")
        return ProcessOutput(prefix, lambda stream, line: self.on_output(stream, line))

    # --- the startup handshake ----------------------------------------------------------

    async def reattach_handshake(self, deadline: float) -> dict[str, Any]:
        """Durable mode: the handshake with a kernel an earlier server left running, which
        may be busy with a long request. On control (ipykernel >= 6 answers it while a
        request runs; on shell it would wait behind it), and a kernel that does not answer in
        time is never killed: it is taken as busy (kernel_info unknown: ``{}``)."""
        return await self.handshake(deadline, channel="control", kill_on_timeout=False)

    async def handshake(
        self, deadline: float, channel: str = "shell", kill_on_timeout: bool = True
    ) -> dict[str, Any]:
        """Connect, then the kernel_info handshake (startup.py). Then the kernel is ready:
        listed with the server, its heartbeat watched."""
        if self.conn is None:
            self.msg_session = startup.message_session(
                self.km, self.spec.username, self._session_id
            )
            self.conn = await self._starting(
                startup.connect(self.km, self.msg_session, self._receive)
            )
        self._handshake = handshake = KernelInfoHandshake()
        timeout = self.spec.connection_timeout
        if not await self._starting(
            startup.handshake(
                self.km, self.conn, handshake, channel, deadline, timeout, kill_on_timeout
            )
        ):
            log.warning(
                "Kernel %s did not answer within %s s; taken as it is (busy?)",
                self.kernel_id,
                timeout,
            )
        elif not await self.conn.wait_for_stdin(min(max(deadline - time.monotonic(), 0), 5)):
            log.warning(
                "Kernel %s: stdin not connected yet; an input() may be lost", self.kernel_id
            )
        if self.output is not None:
            self.output.poll()  # what the kernel printed while starting comes before `idle`
        self._list()
        self.conn.start_heartbeat(
            self.config.heartbeat_interval, self.config.heartbeat_timeout, self._heartbeat
        )
        return handshake.reply or {}

    async def _starting(self, step: Awaitable[T]) -> T:
        """A step of the startup (startup.py); if it fails, nothing is left behind."""
        try:
            return await step
        except startup.StartupFailed as e:
            await self._fail(e.code, e.message, e.exit_code)

    async def _fail(self, code: str, message: str, exit_code: int | None = None) -> NoReturn:
        """Leave nothing behind (no process, no sockets) and raise the StartupError."""
        self._close_connection()
        await self._discard()
        output = ""
        if self.output is not None:
            output = self.output.read_all()
            self.output.close()
        self.process_id = self.placement = None
        raise StartupError(code, message, exit_code, output)

    def _receive(self, msg: KernelMessage) -> None:
        """Every message from the kernel, but the handshake's own."""
        if self._handshake is not None and self._handshake.claims(msg):
            return
        self.on_message(msg)

    def _heartbeat(self, alive: bool) -> None:
        self.on_heartbeat(alive)

    # --- talking to it -------------------------------------------------------------------

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        self.conn.send(channel, msg)

    def send_control(self, msg_type: str, content: dict[str, Any]) -> None:
        if self.conn is not None:
            self.conn.send("control", make_message(self.msg_session, "control", msg_type, content))

    async def interrupt(self) -> None:
        """SIGINT through jupyter_client (or its interrupt_request in message mode); an
        adopted kernel in signal mode has no process of ours to signal."""
        km = self.km
        if km is not None and km.has_kernel:
            try:
                await ensure_async(km.interrupt_kernel())
            except Exception as e:
                raise SupervisorError(400, INTERRUPT_FAILED, f"Interrupt failed: {e}") from None
        elif self.spec.interrupt_mode == "message":
            self.send_control("interrupt_request", {})
        else:
            raise SupervisorError(
                400, INTERRUPT_FAILED, "No local process to signal (adopted kernel)"
            )

    def record_state(self, execution_state: str) -> None:
        """The kernel's busy/idle, for /api/kernels (the server watches its own kernels)."""
        if self.km is not None:
            internals.record_activity(self.mkm, self.km, execution_state)

    # --- stopping --------------------------------------------------------------------------

    async def stop(self, now: bool) -> int | None:
        """Shut the kernel down (a kill after ``shutdown_wait``; at once with ``now``); its exit
        code when known."""
        process = provisioning.local_process(self.km) if self.km is not None else None
        await self._shut_down(now)
        return provisioning.exit_code_of(process)  # (the provisioner lets go of it meanwhile)

    async def _shut_down(self, now: bool) -> None:
        """Through jupyter_client; an adopted kernel is asked to exit with a shutdown_request."""
        km = self.km
        if km is not None and km.has_kernel:
            if not now and not provisioning.is_local(km):
                # jupyter_client's shutdown_request goes on a control socket it connects just
                # then and closes (100 ms linger) once the provisioner's poll says the kernel
                # is gone — which gateway-provisioners' says as soon as it told its listener
                # to stop, so the request was often lost: ours goes on a connection that is up.
                self.send_control("shutdown_request", {"restart": False})
            try:
                await self._shutdown_kernel(now)
            except Exception:
                log.exception("Shutting down the kernel %s", self.kernel_id)
        elif km is not None and not now:
            self.send_control("shutdown_request", {"restart": False})

    async def has_exited(self) -> bool:
        """Whether a process of ours has gone on its own (adopted kernels: the heartbeat
        tells). False while jupyter_server is restarting or shutting it down: its result
        decides."""
        km = self.km
        if km is None or not km.has_kernel or not await self._exit_watch.exited(km):
            return False
        return not (km.shutting_down and self.kernel_id in self.mkm)

    def exit_code(self) -> int | None:
        return provisioning.exit_code(self.km) if self.km is not None else None

    async def reap(self) -> None:
        """After an exit: reap the process and remove its connection file."""
        try:
            await self._shutdown_kernel(now=True)
        except Exception:
            log.debug("Cleanup after exit of %s", self.kernel_id, exc_info=True)

    def closed(self) -> None:
        """The kernel has gone: sockets closed, out of /api/kernels, output files removed."""
        self._close_connection()
        self._unlist()
        if self.output is not None:
            self.output.poll()
            self.output.close()
        self.process_id = self.placement = None
        self._session_id = None

    def detach(self) -> None:
        """The server stops in durable mode: let go of the kernel and leave it running."""
        self._close_connection()
        if self.output is not None:
            self.output.detach()
        if self.km is not None:
            self._unlist()

    async def current_directory(self) -> str | None:
        """The local process's working directory; None without one, or if it changed."""
        pid = self.process_id
        cwd = await provisioning.working_directory(pid) if pid is not None else None
        return cwd if self.process_id == pid else None

    def poll_output(self) -> None:
        if self.output is not None:
            self.output.poll()

    # --- what a kernel of ours has that jupyter_server's own do not (ServerKernel) ------

    def _list(self) -> None:
        """Ready: listed in /api/kernels, so JupyterLab can attach to it."""
        internals.register_kernel(self.mkm, self.kernel_id, self.km)

    def _unlist(self) -> None:
        internals.unregister_kernel(self.mkm, self.kernel_id)

    async def _discard(self) -> None:
        """A kernel that failed to start: its process and connection file go."""
        if self.km is None:
            return
        try:
            await self._shutdown_kernel(now=True)
        except Exception:
            log.exception("Cleaning up the kernel %s", self.kernel_id)

    async def _shutdown_kernel(self, now: bool) -> None:
        provisioning.never_blocks(self.km)  # (a provisioner jupyter_server made since)
        await ensure_async(self.km.shutdown_kernel(now=now))

    def _close_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # --- views ------------------------------------------------------------------------------

    def connection_info(self) -> dict[str, Any]:
        if self.km is None:
            raise SupervisorError(
                400, NO_CONNECTION_INFO, f"Session {self.spec.session_id!r} has no running kernel"
            )
        return connection_info(self.km)

    def persisted(self, running: bool) -> dict[str, Any]:
        """What a later server needs to re-attach (durable mode)."""
        running = running and self.km is not None
        return {
            "connection_info": (
                provisioning.jsonable(self.km.get_connection_info()) if running else None
            ),
            "provisioner_info": self.provisioner_info if running else None,
            "message_session": (
                self.msg_session.session if running and self.msg_session is not None else None
            ),
        }
