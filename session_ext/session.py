"""One ActiveSession: its kernel's lifecycle, status machine, timers, queue and clients.

Free of tornado: the REST and websocket handlers call into it, and so can tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Protocol

import psutil
from jupyter_client.session import Session

from . import kernel as kernels
from .channels import ClientHub, InternalClient, WebsocketClient
from .history import OUTPUT_TYPES, OutputCollector, history_entry
from .messages import KernelMessage, kernel_event, make_message, parse_client_frame, synthetic_reply
from .models import (
    EXITED_ABNORMALLY,
    INTERRUPT_FAILED,
    NO_CONNECTION_INFO,
    NO_PROCESS,
    PROCESS_START_FAILED,
    RUNNING_STATUSES,
    SESSION_NOT_RUNNING,
    SESSION_RUNNING,
    TIMEOUT,
    ZMQ_CONNECT_TIMEOUT,
    ExecuteRequest,
    SessionSpec,
    StartupError,
    SupervisorConfig,
    SupervisorError,
    apply_env_actions,
    bad_request,
)
from .output import ProcessOutput
from .queue import ExecutionQueue, QueuedRequest, now_ms

log = logging.getLogger(__name__)

CONNECTED_STATUSES = ("idle", "busy", "offline")
IDLE_GRACE_SECONDS = 10  # after an execute_reply, how long its idle may take


class SessionListener(Protocol):
    """Who hears about a session's changes (the supervisor: events stream, persistence)."""

    def session_status(self, session: ActiveSession) -> None: ...

    def session_queue(self, session: ActiveSession) -> None: ...

    def session_updated(self, session: ActiveSession) -> None: ...

    def history_added(self, session: ActiveSession, entry: dict[str, Any]) -> None: ...


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class ExecuteTimeout(SupervisorError):
    def __init__(self, seconds: float, reply: dict[str, Any]):
        super().__init__(504, TIMEOUT, f"Execution did not finish within {seconds} s")
        self.reply = reply

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "reply": self.reply}


class ExecuteWaiter(InternalClient):
    """Collects what a REST execute request produces, until its reply and idle arrive."""

    def __init__(self, msg_id: str):
        self.msg_id = msg_id
        self.outputs: list[dict[str, Any]] = []
        self.reply: dict[str, Any] | None = None
        self.data: dict[str, Any] | None = None
        self.idle = False
        self.done = asyncio.get_running_loop().create_future()

    def deliver(self, msg: KernelMessage) -> None:
        msg_type = msg.msg_type
        if msg.channel == "iopub":
            if msg_type == "status":
                self.idle = msg.content.get("execution_state") == "idle"
            elif msg_type in OUTPUT_TYPES:
                self.outputs.append({"output_type": msg_type, **msg.content})
                if msg_type == "execute_result":
                    self.data = msg.content.get("data")
        elif msg_type == "execute_reply":
            self.reply = msg.content
        if self.reply is not None and self.idle and not self.done.done():
            self.done.set_result(None)

    def result(self) -> dict[str, Any]:
        reply = self.reply or {"status": "running"}
        result: dict[str, Any] = {
            "status": reply.get("status"),
            "execution_count": reply.get("execution_count"),
            "output": self.outputs,
        }
        if self.data is not None:
            result["data"] = self.data
        if reply.get("status") == "error":
            result["error_name"] = reply.get("ename")
            result["error_message"] = reply.get("evalue")
            result["error_traceback"] = reply.get("traceback", [])
        return result


class KernelInfoWaiter(InternalClient):
    """The startup handshake: a kernel_info_reply, and its iopub idle (proof that iopub is
    connected, so no output of the first request is lost)."""

    def __init__(self) -> None:
        self.reply: dict[str, Any] | None = None
        self.iopub_seen = asyncio.Event()
        self.replied = asyncio.Event()

    def deliver(self, msg: KernelMessage) -> None:
        if msg.channel == "iopub":
            self.iopub_seen.set()
        elif msg.msg_type == "kernel_info_reply":
            self.reply = msg.content
            self.replied.set()


class ActiveSession:
    def __init__(
        self,
        spec: SessionSpec,
        config: SupervisorConfig,
        kernel_manager: Any,
        listener: SessionListener,
        kernel_id: str | None = None,
    ):
        self.spec = spec
        self.config = config
        self.mkm = kernel_manager
        self.listener = listener
        self.kernel_id = kernel_id or str(uuid.uuid4())
        self.status = "uninitialized"
        self.reason = "created"
        self._status_since = time.monotonic()
        self.status_timestamp = now_ms()
        self.created = time.time()
        self.started: float = self.created
        self.last_activity: float | None = None
        self.kernel_info: dict[str, Any] = {}
        self.initial_env: dict[str, str] = {}
        self.working_directory = spec.working_directory
        self.process_id: int | None = None
        self.exit_code: int | None = None
        self.waiting_input = False
        self.resource_usage: dict[str, Any] | None = None
        self.km: Any = None
        self.conn: kernels.KernelConnection | None = None
        self.output: ProcessOutput | None = None
        self.msg_session: Session | None = None
        self.hub = ClientHub(config.buffer_max_messages, config.buffer_max_bytes)
        self.queue = ExecutionQueue(
            dispatch=self._dispatch,
            on_abort=self._abort_request,
            on_finish=self._finish_request,
            on_change=lambda: listener.session_queue(self),
        )
        self.history: deque[dict[str, Any]] = deque(maxlen=config.history_size)
        self._collector: OutputCollector | None = None
        self._iopub_observers: dict[str, InternalClient] = {}
        self._kernel_state = "idle"  # last busy/idle from the kernel, restored after offline
        self._lifecycle = asyncio.Lock()  # one start/restart/kill/shutdown at a time
        self._provisioner_info: dict[str, Any] | None = None  # persisted, for re-adoption
        # A notebook/console session of jupyter_server's: its kernel is the server's to
        # start, restart and shut down (through its kernel manager); we attach to it.
        self.owned_by_server = False
        self._reconnecting = False

    @property
    def session_id(self) -> str:
        return self.spec.session_id

    @property
    def is_running(self) -> bool:
        return self.status in RUNNING_STATUSES

    # --- status ------------------------------------------------------------------------

    def _set_status(self, status: str, reason: str) -> None:
        if status == self.status and reason == self.reason:
            return
        if status != self.status:
            self._status_since = time.monotonic()
            self.status_timestamp = now_ms()
        self.status, self.reason = status, reason
        self.hub.broadcast(kernel_event(status={"status": status, "reason": reason}))
        self.listener.session_status(self)

    def _seconds_in(self, status: str) -> int:
        if self.status != status:
            return 0
        return int(time.monotonic() - self._status_since)

    @property
    def idle_seconds(self) -> int:
        return self._seconds_in("idle")

    @property
    def busy_seconds(self) -> int:
        return self._seconds_in("busy")

    def _require_running(self) -> None:
        if not self.is_running or self.conn is None:
            raise SupervisorError(
                400, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        async with self._lifecycle:
            if self.is_running:
                raise SupervisorError(
                    400, SESSION_RUNNING, f"Session {self.session_id!r} is already running"
                )
            return await self._start(self.spec.working_directory)

    async def restart(
        self, working_directory: str | None = None, env: list[dict[str, str]] | None = None
    ) -> None:
        if self.owned_by_server:
            # jupyter_server restarts its kernel; its restart event re-attaches us.
            await self.mkm.restart_kernel(self.kernel_id)
            await self._reattach_after_restart()
            return
        async with self._lifecycle:
            if env is not None:
                self.spec.env = env
            cwd = working_directory or self.working_directory
            if self.is_running:
                await self._stop_kernel(now=False, reason="restart")
            await self._start(cwd)

    async def interrupt(self) -> None:
        self._require_running()
        km = self.km
        if km is not None and km.has_kernel:
            try:
                await km.interrupt_kernel()
            except Exception as e:
                raise SupervisorError(
                    400, INTERRUPT_FAILED, f"Interrupt failed: {e}"
                ) from None
        elif self.spec.interrupt_mode == "message":
            self._send_control("interrupt_request", {})
        else:
            raise SupervisorError(
                400, INTERRUPT_FAILED, "No local process to signal (adopted kernel)"
            )
        self.on_interrupted()

    def on_interrupted(self) -> None:
        """Whoever interrupted (our API, JupyterLab's button, a client's
        interrupt_request): nothing queued behind the interrupted request runs."""
        self.queue.abort_pending("interrupted")

    async def kill(self) -> None:
        async with self._lifecycle:
            self._require_running()
            if not self.km.has_kernel:
                raise SupervisorError(
                    400, NO_PROCESS, "An adopted kernel has no process of ours to kill; "
                    "send it a shutdown_request"
                )
            await self._stop_kernel(now=True, reason="killed")

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Shut the kernel down gracefully (a kill after ``shutdown_wait`` seconds)."""
        async with self._lifecycle:
            if self.is_running:
                await self._stop_kernel(now=False, reason=reason)

    async def detach_kernel(self) -> None:
        """The server is stopping in durable mode: let go of the kernel, leave it running."""
        async with self._lifecycle:
            self._close_connection()
            if self.output is not None:
                self.output.detach()
            if self.km is not None and not self.owned_by_server:
                kernels.unregister_kernel(self.mkm, self.kernel_id)

    def _kernel_env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if v not in self.config.secrets}
        for name in ("JUPYTER_TOKEN", "JPY_API_TOKEN", "JPY_SESSION_NAME"):
            base.pop(name, None)
        return apply_env_actions(base, self.spec.env)

    async def _start(self, cwd: str) -> dict[str, Any]:
        self.exit_code = None
        self._set_status("starting", "start")
        spec = self.spec
        deadline = time.monotonic() + spec.connection_timeout
        try:
            env = self._kernel_env()
            base = None
            if spec.kernel_name:
                base = kernels.load_kernelspec(self.mkm.kernel_spec_manager, spec.kernel_name)
            kernels.check_program(spec.argv, env, cwd)
        except SupervisorError:
            self._set_status("exited", "start failed")
            raise
        kernel_spec = kernels.build_kernel_spec(spec, base)
        self.initial_env = env
        self.km = km = kernels.new_kernel_manager(
            self.mkm, self.kernel_id, kernel_spec, spec.kernel_name
        )
        km.shutdown_wait_time = self.config.shutdown_wait
        self.output = self._open_output()
        try:
            await asyncio.wait_for(
                km.start_kernel(
                    env=env,
                    cwd=cwd,
                    stdout=self.output.stdout,
                    stderr=self.output.stderr,
                    independent=self.config.keep_kernels_on_shutdown,
                    kernel_id=self.kernel_id,
                ),
                max(deadline - time.monotonic(), 0.1),
            )
        except Exception as e:
            await self._fail_start(PROCESS_START_FAILED, f"The kernel could not be launched: {e}")
        self.process_id = kernels.local_pid(km)
        self._provisioner_info = await kernels.provisioner_info(km)
        self.started = time.time()
        self.working_directory = cwd
        self._connect()
        kernel_info = await self._handshake(deadline)
        self._kernel_ready(kernel_info)
        return kernel_info

    def _open_output(self) -> ProcessOutput:
        prefix = os.path.join(self.config.runtime_dir, f"kernel-{self.kernel_id}")
        return ProcessOutput(prefix, self._on_output)

    def _connect(self) -> None:
        km = self.km
        self.msg_session = Session(
            key=km.session.key,
            signature_scheme=km.session.signature_scheme,
            username=self.spec.username,
        )
        self.conn = kernels.KernelConnection(km, self.msg_session, self._on_kernel_message)

    async def _handshake(self, deadline: float) -> dict[str, Any]:
        """kernel_info_request until the reply and an iopub message arrive (jupyter_server's
        "nudge"), watching for the process exiting and for the deadline."""
        waiter = KernelInfoWaiter()
        while True:
            msg = make_message(self.msg_session, "shell", "kernel_info_request", {})
            self.hub.route(msg["header"]["msg_id"], waiter)
            self._iopub_observers[msg["header"]["msg_id"]] = waiter
            self.conn.send("shell", msg)
            for _ in range(10):  # 1 s per try
                if waiter.replied.is_set() and waiter.iopub_seen.is_set():
                    self._iopub_observers.clear()
                    return waiter.reply or {}
                if self.km.has_kernel and not await self.km.is_alive():
                    code = await self.km.provisioner.poll()
                    await self._fail_start(
                        EXITED_ABNORMALLY, f"The kernel exited during startup (code {code})", code
                    )
                if time.monotonic() > deadline:
                    await self._fail_start(
                        ZMQ_CONNECT_TIMEOUT,
                        f"The kernel did not answer within {self.spec.connection_timeout} s",
                    )
                await asyncio.sleep(0.1)

    async def _fail_start(self, code: str, message: str, exit_code: int | None = None) -> None:
        """Leave nothing behind (no process, no sockets) and raise the StartupError."""
        self._iopub_observers.clear()
        self._close_connection()
        if self.km is not None and not self.owned_by_server:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception:
                log.exception("Cleaning up the kernel of %s", self.session_id)
        output = self.output.read_all() if self.output else ""
        if self.output:
            self.output.close()
        self.process_id = None
        self.exit_code = exit_code
        self._set_status("exited", "start failed")
        raise StartupError(code, message, exit_code, output)

    def _kernel_ready(self, kernel_info: dict[str, Any]) -> None:
        if self.output is not None:
            self.output.poll()  # what the kernel printed while starting comes before `idle`
        self.kernel_info = kernel_info
        positron = (kernel_info.get("language_info") or {}).get("positron") or {}
        self.spec.input_prompt = positron.get("input_prompt", self.spec.input_prompt)
        self.spec.continuation_prompt = positron.get(
            "continuation_prompt", self.spec.continuation_prompt
        )
        if not self.owned_by_server:
            kernels.register_kernel(self.mkm, self.kernel_id, self.km)
        self.conn.start_heartbeat(
            self.config.heartbeat_interval, self.config.heartbeat_timeout, self._on_heartbeat
        )
        self._kernel_state = "idle"
        self.last_activity = time.time()
        self._set_status("idle", "started")
        self.listener.session_updated(self)

    async def attach_server_kernel(self) -> None:
        """Attach to the kernel jupyter_server started for this (notebook/console) session."""
        async with self._lifecycle:
            self.owned_by_server = True
            self.km = self.mkm.get_kernel(self.kernel_id)
            self.process_id = kernels.local_pid(self.km)
            self.started = time.time()
            self._set_status("starting", "attach")
            self._connect()
            kernel_info = await self._handshake(time.monotonic() + self.spec.connection_timeout)
            self._kernel_ready(kernel_info)

    async def adopt(self, connection_info: dict[str, Any]) -> dict[str, Any]:
        """Connect to a kernel that something else started (no process of ours)."""
        async with self._lifecycle:
            if self.is_running:
                raise SupervisorError(
                    400, SESSION_RUNNING, f"Session {self.session_id!r} is already running"
                )
            km = kernels.new_kernel_manager(
                self.mkm, self.kernel_id, kernels.build_kernel_spec(self.spec, None), None
            )
            try:
                km.load_connection_info(connection_info)
            except Exception as e:
                raise bad_request("Invalid connection info", details=str(e)) from None
            self._set_status("starting", "adopt")
            self.km = km
            self.started = time.time()
            self.process_id = None
            self._connect()
            kernel_info = await self._handshake(time.monotonic() + self.spec.connection_timeout)
            self._kernel_ready(kernel_info)
            return kernel_info

    async def _stop_kernel(self, now: bool, reason: str) -> None:
        km = self.km
        process = kernels.local_process(km) if km is not None else None
        known = process is not None and getattr(process, "exit_code_known", True)
        if self.owned_by_server:
            if self.kernel_id in self.mkm:
                await self.mkm.shutdown_kernel(self.kernel_id, now=now)
        elif km is not None and km.has_kernel:
            try:
                await km.shutdown_kernel(now=now)
            except Exception:
                log.exception("Shutting down the kernel of %s", self.session_id)
        elif km is not None and not now:
            # An adopted kernel: ask it to exit.
            self._send_control("shutdown_request", {"restart": False})
        self._on_exited(process.returncode if known else None, reason)

    async def check_alive(self) -> None:
        """Called about every 250 ms: notice a kernel process that has gone."""
        if self.output is not None:
            self.output.poll()
        if self.status not in CONNECTED_STATUSES or self._lifecycle.locked():
            return
        km = self.km
        if km is None or not km.has_kernel:
            return  # adopted: the heartbeat tells
        if await km.provisioner.poll() is None:
            return
        code = kernels.exit_code(km)
        if km.shutting_down and self.kernel_id in self.mkm:
            return  # jupyter_server is restarting or shutting it down: its result decides
        async with self._lifecycle:
            if self.status in CONNECTED_STATUSES:
                if not self.owned_by_server:  # the server's restarter may still act on its own
                    try:
                        await km.shutdown_kernel(now=True)  # reap, remove the connection file
                    except Exception:
                        log.debug("Cleanup after exit of %s", self.session_id, exc_info=True)
                self._on_exited(code, "exited")

    def _on_exited(self, code: int | None, reason: str) -> None:
        """The kernel is gone: tell everyone, answer everything still waiting."""
        self._close_connection()
        if not self.owned_by_server:
            kernels.unregister_kernel(self.mkm, self.kernel_id)
        if self.output is not None:
            self.output.poll()
            self.output.close()
        self.queue.abort_all(reason)
        self.hub.forget_routes()
        self._iopub_observers.clear()
        self.exit_code = code
        self.process_id = None
        self.waiting_input = False
        self.resource_usage = None
        self.hub.broadcast(kernel_event(exited=code))
        self._set_status("exited", reason)
        self.listener.session_updated(self)

    def _close_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _on_heartbeat(self, alive: bool) -> None:
        if not alive and self.status in ("idle", "busy"):
            self._set_status("offline", "heartbeat timeout")
        elif alive and self.status == "offline":
            self._set_status(self._kernel_state, "heartbeat resumed")

    # --- clients -----------------------------------------------------------------------

    def attach(self, client: WebsocketClient, exclusive: bool = False) -> None:
        was_connected = self.hub.connected
        self.hub.attach(client, exclusive)
        if not was_connected:
            self.listener.session_updated(self)

    def detach(self, client: WebsocketClient) -> None:
        self.hub.detach(client)
        if not self.hub.connected:
            self.listener.session_updated(self)

    @property
    def connected(self) -> bool:
        return self.hub.connected

    def handle_client_frame(self, client: WebsocketClient, data: str | bytes) -> None:
        """A websocket frame from a client: a Jupyter message for the kernel."""
        try:
            if self.msg_session is None:
                self._require_running()
            msg = parse_client_frame(data, self.msg_session)
            self.send_client_message(client, msg, source="websocket")
        except SupervisorError as e:
            client.send_frame(kernel_event(error=e.to_json()))

    def send_client_message(self, client: Any, msg: dict[str, Any], source: str) -> None:
        """Send a client's message to the kernel; execute requests go through the queue.

        Raises SupervisorError (never keeps a message for a later kernel)."""
        self._require_running()
        self.last_activity = time.time()
        channel = msg["channel"]
        header = msg["header"]
        msg_type, msg_id = header["msg_type"], header["msg_id"]
        if channel == "shell" and msg_type == "execute_request":
            request = QueuedRequest(msg, client, source)
            if not self.queue.submit(request):
                client_frame = getattr(client, "send_frame", None)
                if client_frame is not None:
                    client_frame(kernel_event(executionQueued=msg_id))
            return
        if msg_type.endswith("_request"):
            self.hub.route(msg_id, client)
        if channel == "stdin" and msg_type == "input_reply":
            self._set_waiting_input(False)
        self.conn.send(channel, msg)
        if msg_type == "interrupt_request":
            self.on_interrupted()
        elif msg_type == "shutdown_request":
            self.queue.abort_pending("shutdown")

    def _send_control(self, msg_type: str, content: dict[str, Any]) -> None:
        if self.conn is not None:
            self.conn.send("control", make_message(self.msg_session, "control", msg_type, content))

    # --- the queue's callbacks ---------------------------------------------------------

    def _dispatch(self, request: QueuedRequest) -> None:
        self.hub.route(request.msg_id, request.client)
        self._collector = OutputCollector()
        self.conn.send("shell", request.msg)

    def _abort_request(self, request: QueuedRequest, reason: str) -> None:
        """Answer a request that will not run as ipykernel would: busy, an aborted
        execute_reply, idle — to its client only."""
        session = self.msg_session
        client = request.client
        self.hub.routes.pop(request.msg_id, None)
        replies = [
            synthetic_reply(session, request.msg, "iopub", {"execution_state": "busy"}),
            synthetic_reply(session, request.msg, "shell", {"status": "aborted"}),
            synthetic_reply(session, request.msg, "iopub", {"execution_state": "idle"}),
        ]
        active = self.queue.active
        if active is not None and active is not request and self._kernel_state == "busy":
            # The client takes any idle as the kernel's state (JupyterLab does): say that the
            # kernel is still busy with the running request.
            replies.append(
                synthetic_reply(session, active.msg, "iopub", {"execution_state": "busy"})
            )
        for msg in replies:
            self.hub.send_to(client, msg)
        self._add_history(history_entry(request, None, "aborted", now_ms()))

    def _finish_request(self, request: QueuedRequest) -> None:
        self._add_history(
            history_entry(request, self._collector, request.reply_status or "ok", now_ms())
        )
        self._collector = None
        self._set_waiting_input(False)
        if self.process_id is not None:
            asyncio.ensure_future(self._check_working_directory())

    async def _check_working_directory(self) -> None:
        pid = self.process_id
        try:
            cwd = kernels.process_cwd(pid)
            if cwd is None:
                cwd = await asyncio.to_thread(lambda: psutil.Process(pid).cwd())
        except (OSError, psutil.Error):
            return
        if cwd != self.working_directory and self.process_id == pid:
            self.working_directory = cwd
            self.hub.broadcast(kernel_event(workingDirChanged=cwd))
            self.listener.session_updated(self)

    # --- kernel -> supervisor (the hot path) -------------------------------------------

    def _on_kernel_message(self, msg: KernelMessage) -> None:
        self.last_activity = time.time()
        if msg.channel == "iopub":
            parent_id = msg.parent_msg_id
            active = self.queue.active
            observer = self._iopub_observers.get(parent_id) if self._iopub_observers else None
            if observer is not None:
                observer.deliver(msg)
                if self.status == "starting":
                    return  # the supervisor's own startup handshake: not the clients' business
            self.hub.broadcast(msg.frame)
            msg_type = msg.msg_type
            if msg_type == "status":
                self._on_kernel_status(msg)
            elif active is not None and parent_id == active.msg_id and msg_type in OUTPUT_TYPES:
                self._collector.add(msg)
            return
        self.hub.deliver_reply(msg)
        if msg.msg_type == "execute_reply":
            self.queue.on_execute_reply(msg.parent_msg_id, msg.content.get("status", "ok"))
            active = self.queue.active
            if active is not None and active.msg_id == msg.parent_msg_id:
                asyncio.get_running_loop().call_later(
                    IDLE_GRACE_SECONDS, self._idle_overdue, active
                )
        elif msg.msg_type == "input_request":
            self._set_waiting_input(True)

    def _idle_overdue(self, request: QueuedRequest) -> None:
        """The reply came but its iopub idle never did (a lost message): do not let the
        queue wait forever."""
        if self.queue.active is request and not request.idle_seen:
            log.warning("Session %s: no idle for %s; moving on", self.session_id, request.msg_id)
            self.queue.on_idle(request.msg_id)

    def _on_kernel_status(self, msg: KernelMessage) -> None:
        state = msg.content.get("execution_state")
        reason = msg.parent_header.get("msg_type", "")
        active = self.queue.active
        if state == "idle" and active is not None and active.msg_id != msg.parent_msg_id:
            # Another request finished (a control-channel debug_request, say) while the
            # active cell still runs: the kernel is still busy with it.
            return
        if state in ("busy", "idle"):
            self._kernel_state = state
            if not self.owned_by_server:  # the server watches its own kernels itself
                kernels.record_activity(self.mkm, self.km, state)
            if self.status in ("idle", "busy"):
                self._set_status(state, reason)
            if state == "idle":
                self.queue.on_idle(msg.parent_msg_id)
        elif state == "starting" and self.status in ("idle", "busy"):
            self.on_kernel_restarted()  # a new process on the same ports

    def on_kernel_restarted(self) -> None:
        """jupyter_server restarted the kernel (JupyterLab's button, its auto-restarter):
        everything waiting is answered, and we re-attach to the new process."""
        if self.km is None or self._reconnecting or self._lifecycle.locked():
            return  # our own restart, or already on it
        if self.conn is not None and kernels.local_pid(self.km) == self.process_id:
            return  # already attached to this process
        asyncio.ensure_future(self._reattach_after_restart())

    async def _reattach_after_restart(self) -> None:
        if self._reconnecting:
            return
        self._reconnecting = True
        try:
            async with self._lifecycle:
                self.queue.abort_all("restarted")
                self.hub.forget_routes()
                self._set_status("starting", "restart")
                self.process_id = kernels.local_pid(self.km)
                if self.conn is None:  # it had exited
                    self._connect()
                try:
                    info = await self._handshake(time.monotonic() + self.spec.connection_timeout)
                except StartupError:
                    return
                self.kernel_info = info
                self._kernel_state = "idle"
                self._set_status("idle", "restarted")
                self.listener.session_updated(self)
        finally:
            self._reconnecting = False

    def _add_history(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        self.listener.history_added(self, entry)

    def _set_waiting_input(self, waiting: bool) -> None:
        if waiting != self.waiting_input:
            self.waiting_input = waiting
            self.listener.session_updated(self)

    def set_resource_usage(self, usage: dict[str, Any]) -> None:
        self.resource_usage = usage
        self.hub.broadcast(kernel_event(resourceUsage=usage))

    def _on_output(self, stream: str, line: str) -> None:
        self.hub.broadcast(kernel_event(output=[stream, line]))

    # --- REST execute ------------------------------------------------------------------

    async def execute(self, request: ExecuteRequest) -> dict[str, Any]:
        if not self.is_running:
            raise SupervisorError(
                409, SESSION_NOT_RUNNING, f"Session {self.session_id!r} is not running"
            )
        content = {
            "code": request.code,
            "silent": request.silent,
            "store_history": request.store_history,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": request.stop_on_error,
        }
        msg = make_message(self.msg_session, "shell", "execute_request", content)
        msg_id = msg["header"]["msg_id"]
        waiter = ExecuteWaiter(msg_id)
        self._iopub_observers[msg_id] = waiter
        try:
            self.send_client_message(waiter, msg, source="rest")
            try:
                await asyncio.wait_for(asyncio.shield(waiter.done), request.timeout_seconds)
            except asyncio.TimeoutError:
                await self._stop_request(msg_id)
                raise ExecuteTimeout(request.timeout_seconds, waiter.result()) from None
        finally:
            self._iopub_observers.pop(msg_id, None)
        return waiter.result()

    async def _stop_request(self, msg_id: str) -> None:
        """A REST execute timed out: cancel it if it waits, interrupt it if it runs (the
        rest of the queue is someone else's and goes on)."""
        if msg_id in self.queue.pending:
            self.queue.cancel(msg_id)
        elif self.queue.active is not None and self.queue.active.msg_id == msg_id:
            self.queue.active.interrupted_by_supervisor = True
            km = self.km
            if km is not None and km.has_kernel:
                await km.interrupt_kernel()
            else:
                self._send_control("interrupt_request", {})

    # --- durability --------------------------------------------------------------------

    def persisted(self) -> dict[str, Any]:
        """What the store keeps: enough to list the session after a restart and, in durable
        mode, to re-attach to its kernel."""
        running = self.is_running and self.km is not None
        return {
            "spec": self.spec.to_json(),
            "kernel_id": self.kernel_id,
            "status": self.status,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "started": self.started,
            "working_directory": self.working_directory,
            "initial_env": self.initial_env,
            "kernel_info": self.kernel_info,
            "connection_info": kernels.jsonable(self.km.get_connection_info()) if running else None,
            "provisioner_info": self._provisioner_info if running else None,
        }

    def restore_state(self, data: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Fields of a session stored by an earlier server (its kernel not yet re-attached)."""
        if data.get("status") == "uninitialized":
            self.status, self.reason = "uninitialized", data.get("reason") or "created"
        else:
            self.status, self.reason = "exited", data.get("reason") or "server restarted"
        self.exit_code = data.get("exit_code")
        self.started = data.get("started") or self.started
        self.working_directory = data.get("working_directory") or self.working_directory
        self.initial_env = data.get("initial_env") or {}
        self.kernel_info = data.get("kernel_info") or {}
        self.history.extend(history)

    def mark_exited(self, reason: str) -> None:
        """No kernel to re-attach to (it died while the server was down)."""
        self._set_status("exited", reason)

    async def reattach(self, data: dict[str, Any]) -> None:
        """Durable mode: connect again to the kernel an earlier server left running, with the
        stored connection and provisioner info. Raises StartupError if it is gone."""
        async with self._lifecycle:
            base = None
            if self.spec.kernel_name:
                try:
                    base = kernels.load_kernelspec(self.mkm.kernel_spec_manager, self.spec.kernel_name)
                except SupervisorError:
                    pass  # the kernelspec was removed; the running kernel does not need it
            km = kernels.new_kernel_manager(
                self.mkm, self.kernel_id, kernels.build_kernel_spec(self.spec, base),
                self.spec.kernel_name,
            )
            km.shutdown_wait_time = self.config.shutdown_wait
            km.load_connection_info(data["connection_info"])
            self._set_status("starting", "reattach")
            if data.get("provisioner_info"):
                await kernels.reattach_provisioner(km, data["provisioner_info"])
                if await km.provisioner.poll() is not None:
                    self._set_status("exited", "kernel exited while the server was down")
                    raise StartupError(EXITED_ABNORMALLY, "The kernel is gone", None, "")
            self.km = km
            self._provisioner_info = data.get("provisioner_info")
            self.process_id = kernels.local_pid(km)
            self.output = self._open_output()
            self._connect()
            kernel_info = await self._handshake(time.monotonic() + self.spec.connection_timeout)
            self._kernel_ready(kernel_info)

    # --- views -------------------------------------------------------------------------

    def connection_info(self) -> dict[str, Any]:
        if self.km is None or not self.is_running:
            raise SupervisorError(
                400, NO_CONNECTION_INFO, f"Session {self.session_id!r} has no running kernel"
            )
        info = self.km.get_connection_info()
        fields = (
            "control_port",
            "shell_port",
            "stdin_port",
            "hb_port",
            "iopub_port",
            "signature_scheme",
            "key",
            "transport",
            "ip",
        )
        out = {k: info[k] for k in fields}
        if isinstance(out["key"], bytes):
            out["key"] = out["key"].decode()
        return out

    def get_history(self, limit: int | None) -> list[dict[str, Any]]:
        items = list(self.history)
        return items[-limit:] if limit else items

    def to_json(self, pending_limit: int | None = None) -> dict[str, Any]:
        """The ActiveSession model; ``pending_limit`` shortens the pending list (events)."""
        spec = self.spec
        return {
            "session_id": spec.session_id,
            "argv": spec.argv,
            "process_id": self.process_id,
            "username": spec.username,
            "display_name": spec.display_name,
            "language": spec.language,
            "interrupt_mode": spec.interrupt_mode,
            "initial_env": self.initial_env,
            "connected": self.connected,
            "started": rfc3339(self.started),
            "session_mode": spec.session_mode,
            "working_directory": self.working_directory,
            "notebook_uri": spec.notebook_uri,
            "input_prompt": spec.input_prompt,
            "continuation_prompt": spec.continuation_prompt,
            "execution_queue": self.queue.to_json(pending_limit),
            "status": self.status,
            "reason": self.reason,
            "kernel_info": self.kernel_info,
            "resource_usage": self.resource_usage,
            "idle_seconds": self.idle_seconds,
            "busy_seconds": self.busy_seconds,
            "socket_path": None,
            "kernel_id": self.kernel_id,
            "kernel_name": spec.kernel_name,
            "tags": spec.tags,
            "metadata": spec.metadata,
            "last_activity": rfc3339(self.last_activity),
            "waiting_input": self.waiting_input,
            "exit_code": self.exit_code,
        }
