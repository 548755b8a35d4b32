"""Where a session's messages go: client frames to the kernel (execute requests through the
queue), kernel messages to the clients (iopub to all, a reply to its requester), the queue's
dispatch/abort/finish, waiting_input and each request's outputs for the history.

In durable mode an execute_request is acknowledged only once its row is on disk (durable.py,
off the hot path); a restarted server's stored queue is held until the kernel is back
(``restore_queue``, ``release_queue``).

It knows nothing of processes: it sends through a ``KernelChannels`` and tells its owner
what happened through a ``RouterListener``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Protocol

from jupyter_client.session import Session

from session_ext.core.clock import now_ms
from session_ext.core.config import SupervisorConfig
from session_ext.session.cells import NotebookCells
from session_ext.session.channels import (
    Client,
    ClientHub,
    InternalClient,
    WebsocketClient,
    is_gone,
)
from session_ext.session.durable import DurableGate, RequestStore
from session_ext.session.history import OUTPUT_TYPES, OutputCollector, history_entry
from session_ext.session.queue import ExecutionQueue, QueuedRequest
from session_ext.wire.messages import (
    KernelMessage,
    kernel_event,
    make_message,
    parse_client_frame,
    synthetic_reply,
)

log = logging.getLogger(__name__)

IDLE_GRACE_SECONDS = 10  # after an execute_reply, how long its idle may take
FINISHED_WHILE_DOWN = "finished while the server was down (its reply and output were lost)"
OUTCOME_LOST = "finished before the server stopped; its outcome was not stored"


class KernelChannels(Protocol):
    """What the router needs of a kernel: its message signer and a way to send."""

    msg_session: Session | None

    def send(self, channel: str, msg: dict[str, Any]) -> None: ...


class RouterListener(RequestStore, Protocol):
    """Who hears what the router learns (the session); in durable mode it stores the
    queue's rows too (durable.py)."""

    def kernel_state(self, state: str, reason: str) -> None: ...

    def kernel_restarting(self) -> None: ...

    def queue_changed(self) -> None: ...

    def request_finished(self, request: QueuedRequest) -> None: ...

    def history_added(self, entry: dict[str, Any]) -> None: ...

    def model_changed(self) -> None: ...


class MessageRouter:
    def __init__(
        self,
        config: SupervisorConfig,
        kernel: KernelChannels,
        listener: RouterListener,
        durable: bool = False,
        cells: NotebookCells | None = None,
    ):
        self.kernel = kernel
        self.cells = cells  # a notebook's cells' latest executions (notebook sessions only)
        self.listener = listener
        self.hub = ClientHub(config.buffer_max_messages, config.buffer_max_bytes)
        self.queue = ExecutionQueue(
            dispatch=self._dispatch,
            on_abort=self._abort_request,
            on_finish=self._finish_request,
            on_change=listener.queue_changed,
        )
        self.durable: DurableGate | None = None
        if durable:
            self.durable = DurableGate(self.queue, listener, self._acknowledge)
        self.history: deque[dict[str, Any]] = deque(maxlen=config.history_size)
        self.kernel_state = "idle"  # the last busy/idle from the kernel
        self.waiting_input = False
        self.last_activity: float | None = None
        self._collector: OutputCollector | None = None
        self._observers: dict[str, InternalClient] = {}  # msg_id -> who also sees its iopub

    # --- clients -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.hub.connected

    def attach(self, client: WebsocketClient, exclusive: bool = False) -> None:
        was_connected = self.hub.connected
        self.hub.attach(client, exclusive)
        if not was_connected:
            self.listener.model_changed()

    def detach(
        self, client: WebsocketClient, unsent: list[tuple[bytes, bool]] = (), torn: int = 0
    ) -> None:
        self.hub.take_back(client, list(unsent), torn)
        if not self.hub.connected:
            self.listener.model_changed()

    def broadcast(self, frame: bytes) -> None:
        self.hub.broadcast(frame)

    def observe(self, msg_id: str, observer: InternalClient) -> None:
        """Show ``observer`` the iopub messages of request ``msg_id`` too (REST execute)."""
        self._observers[msg_id] = observer

    def unobserve(self, msg_id: str) -> None:
        self._observers.pop(msg_id, None)

    def parse_client_frame(self, data: str | bytes) -> dict[str, Any]:
        return parse_client_frame(data, self.kernel.msg_session)

    def new_message(self, channel: str, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return make_message(self.kernel.msg_session, channel, msg_type, content)

    # --- client -> kernel ----------------------------------------------------------------

    def send_client_message(self, client: Client, msg: dict[str, Any], source: str) -> None:
        """A client's message for the kernel; execute requests go through the queue."""
        self.last_activity = time.time()
        channel = msg["channel"]
        header = msg["header"]
        msg_type, msg_id = header["msg_type"], header["msg_id"]
        if channel == "shell" and msg_type == "execute_request":
            request = QueuedRequest(msg, client, source)
            if self.cells is not None and msg_id not in self.queue:
                self.cells.queued(request)
            if self.durable is not None:
                self.durable.submit(request)
            elif not self.queue.submit(request):
                self._acknowledge(request)
            return
        if msg_type.endswith("_request"):
            self.hub.route(msg_id, client)
        if channel == "stdin" and msg_type == "input_reply":
            self._set_waiting_input(False)
        self.kernel.send(channel, msg)
        if msg_type == "interrupt_request":
            self.on_interrupted()
        elif msg_type == "shutdown_request":
            self.queue.abort_pending("shutdown")

    def _acknowledge(self, request: QueuedRequest) -> None:
        """It waits in the queue: its websocket client is told (``executionQueued``)."""
        self.hub.send_event(request.client, kernel_event(executionQueued=request.msg_id))

    # --- a restarted server's stored queue (durable mode) --------------------------------

    def restore_queue(self, requests: list[QueuedRequest]) -> None:
        """A restarted server's stored queue, held until the kernel is re-attached
        (``release_queue``). The last request marked as sent may still be running: it is the
        active one again, not sent twice; any marked before it had finished (its outcome was
        not stored). The others wait in order."""
        if not requests:
            return
        sent = [i for i, r in enumerate(requests) if r.started_at is not None]
        last = sent[-1] if sent else -1
        for request in requests[: max(last, 0)]:
            self._add_history(history_entry(request, None, "aborted", now_ms(), OUTCOME_LOST))
        active = requests[last] if last >= 0 else None
        if active is not None:
            self._collector = OutputCollector()  # what it prints from now on
        self.queue.restore(active, requests[last + 1 :])

    def release_queue(self) -> None:
        """The kernel is re-attached: the stored queue goes on. A request that may still run
        is followed by a shell kernel_info_request, answered only once the kernel is done
        with it: if its execute_reply has not come by then, it finished while the server
        was down and is recorded as aborted."""
        if not self.queue.held:
            return
        active = self.queue.active
        if active is not None and active.reply_status is None:
            probe = self.new_message("shell", "kernel_info_request", {})
            self.hub.route(probe["header"]["msg_id"], _AfterActive(self, active))
            self.kernel.send("shell", probe)
        self.queue.release()

    def _active_done_before(self, request: QueuedRequest) -> None:
        if self.queue.active is request and request.reply_status is None:
            log.warning("Request %s got no reply: %s", request.msg_id, FINISHED_WHILE_DOWN)
            self.queue.abort_active(FINISHED_WHILE_DOWN)
            if self.queue.active is None:
                self.kernel_state = "idle"
                self.listener.kernel_state("idle", "reattach")

    def abandon_queue(self, reason: str) -> None:
        """A restored queue whose kernel is gone: every request recorded as aborted."""
        self.queue.held = False
        self.queue.abort_all(reason)

    def rebind(self, client: InternalClient) -> None:
        """A new connection of a client whose earlier one is gone (a reloaded notebook):
        what the gone one was waiting for (queued or running requests' replies) goes to it."""
        self.hub.rebind(client)
        for request in self.queue.waiting():
            if is_gone(request.client):
                request.client = client

    def on_interrupted(self) -> None:
        """Whoever interrupted (our API, JupyterLab's button, a client's interrupt_request):
        nothing queued behind the interrupted request runs."""
        self.queue.abort_pending("interrupted")

    # --- the queue's callbacks -----------------------------------------------------------

    def _dispatch(self, request: QueuedRequest) -> None:
        self.hub.route(request.msg_id, request.client)
        self._collector = OutputCollector()
        if self.cells is not None:
            self.cells.started(request)
        self.kernel.send("shell", request.msg)

    def _abort_request(self, request: QueuedRequest, reason: str) -> None:
        """Answer a request that will not run as ipykernel would: busy, an aborted
        execute_reply, idle — to its client only."""
        session = self.kernel.msg_session
        client = request.client
        self.hub.routes.pop(request.msg_id, None)
        entry = history_entry(request, None, "aborted", now_ms(), reason)
        if self.cells is not None:
            self.cells.finished(request.msg_id, "aborted", reason)
        if session is None:  # a restored request whose kernel never came back
            self._add_history(entry)
            return
        replies = [
            synthetic_reply(session, request.msg, "iopub", {"execution_state": "busy"}),
            synthetic_reply(session, request.msg, "shell", {"status": "aborted"}),
            synthetic_reply(session, request.msg, "iopub", {"execution_state": "idle"}),
        ]
        active = self.queue.active
        if active is not None and active is not request and self.kernel_state == "busy":
            # The client takes any idle as the kernel's state (JupyterLab does): say that the
            # kernel is still busy with the running request.
            replies.append(
                synthetic_reply(session, active.msg, "iopub", {"execution_state": "busy"})
            )
        for msg in replies:
            self.hub.send_to(client, msg)
        self._add_history(entry)

    def _finish_request(self, request: QueuedRequest) -> None:
        self._add_history(
            history_entry(request, self._collector, request.reply_status or "ok", now_ms())
        )
        self._collector = None
        if self.cells is not None:
            self.cells.finished(request.msg_id, request.reply_status or "ok")
        self._set_waiting_input(False)
        self.listener.request_finished(request)

    # --- kernel -> clients (the hot path) ------------------------------------------------

    def kernel_message(self, msg: KernelMessage) -> None:
        self.last_activity = time.time()
        if msg.channel == "iopub":
            parent_id = msg.parent_msg_id
            active = self.queue.active
            observer = self._observers.get(parent_id) if self._observers else None
            if observer is not None:
                observer.deliver(msg)
            self.hub.broadcast(msg.frame)
            msg_type = msg.msg_type
            if msg_type == "status":
                self._on_kernel_status(msg)
            elif active is not None and parent_id == active.msg_id and msg_type in OUTPUT_TYPES:
                self._collector.add(msg)
            if self.cells is not None:
                self.cells.kernel_message(msg)
            return
        self.hub.deliver_reply(msg)
        if msg.msg_type == "execute_reply":
            if self.cells is not None:
                self.cells.execution_count(msg.parent_msg_id, msg.content.get("execution_count"))
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
            log.warning("No idle for %s; moving on", request.msg_id)
            self.queue.on_idle(request.msg_id)

    def _on_kernel_status(self, msg: KernelMessage) -> None:
        state = msg.content.get("execution_state")
        active = self.queue.active
        if state == "idle" and active is not None and active.msg_id != msg.parent_msg_id:
            # Another request finished (a control-channel debug_request, say) while the
            # active cell still runs: the kernel is still busy with it.
            return
        if state in ("busy", "idle"):
            self.kernel_state = state
            self.listener.kernel_state(state, msg.parent_header.get("msg_type", ""))
            if state == "idle":
                self.queue.on_idle(msg.parent_msg_id)
        elif state == "starting":
            self.listener.kernel_restarting()  # a new process on the same ports

    def process_output(self, stream: str, line: str) -> None:
        """A line the kernel process printed (not a Jupyter message)."""
        self.hub.broadcast(kernel_event(output=[stream, line]))

    # --- the kernel came or went ---------------------------------------------------------

    def kernel_ready(self) -> None:
        # busy: a re-attached kernel may still be running a request of the earlier server's
        self.kernel_state = "busy" if self.queue.active is not None else "idle"
        self.last_activity = time.time()

    def kernel_restarted(self) -> None:
        """A new process: nothing sent to the old one will be answered."""
        self.queue.abort_all("restarted")
        self.hub.forget_routes()

    def kernel_gone(self, exit_code: int | None, reason: str) -> None:
        """The kernel is gone: tell everyone, answer everything still waiting."""
        self.queue.abort_all(reason)
        self.hub.forget_routes()
        self._observers.clear()
        self.waiting_input = False
        self.hub.broadcast(kernel_event(exited=exit_code))

    # --- history and input ---------------------------------------------------------------

    def _add_history(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        self.listener.history_added(entry)

    def get_history(self, limit: int | None) -> list[dict[str, Any]]:
        items = list(self.history)
        return items[-limit:] if limit else items

    def _set_waiting_input(self, waiting: bool) -> None:
        if waiting != self.waiting_input:
            self.waiting_input = waiting
            self.listener.model_changed()


class _AfterActive(InternalClient):
    """Receives the kernel_info_reply that follows a restored request (``release_queue``)."""

    def __init__(self, router: MessageRouter, request: QueuedRequest):
        self.router = router
        self.request = request

    def deliver(self, msg: KernelMessage) -> None:
        if msg.msg_type == "kernel_info_reply":
            self.router._active_done_before(self.request)
