"""The supervisor-held execution queue of one session.

Every execute_request joins one FIFO; one is active (sent to the kernel) at a time. The
active one is finished when both its execute_reply and the iopub ``idle`` whose parent it is
have arrived; only then is the next dispatched. Requests that will not run get an aborted
reply through ``on_abort``. Every operation is O(1) per request.

In durable mode a ``gate`` decides whether the request at the head may be sent now: it may
once its row says, on disk, that it is the one sent (durable.py), so a restarted server knows
which request the kernel may be running and which have never been sent. A restarted server's
queue is ``held`` (nothing sent) until its kernel is re-attached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from session_ext.core.clock import now_ms
from session_ext.core.errors import CONFLICT, SupervisorError
from session_ext.session.channels import Client, InternalClient


class QueuedRequest:
    """An execute_request waiting for, or holding, the kernel."""

    __slots__ = (
        "agent",
        "client",
        "idle_seen",
        "interrupted_by_supervisor",
        "may_start",
        "msg",
        "msg_id",
        "queued_at",
        "reply_status",
        "source",
        "start_requested",
        "started_at",
    )

    def __init__(self, msg: dict[str, Any], client: Client | None, source: str):
        self.msg = msg
        self.msg_id: str = msg["header"]["msg_id"]
        self.client = client  # who gets the replies (None: a restored request's, gone)
        self.source = source  # "websocket", "rest", "jupyter_server" or "agent"
        # an MCP client's name
        self.agent = client.agent if isinstance(client, InternalClient) else None
        self.queued_at = now_ms()
        self.started_at: int | None = None
        self.reply_status: str | None = None  # set when the execute_reply arrives
        self.idle_seen = False
        # A REST timeout interrupted it: its KeyboardInterrupt must not abort the others.
        self.interrupted_by_supervisor = False
        # Durable mode: whether it may be sent (its row is on disk as the one sent), and
        # whether that row update has been asked for.
        self.may_start = True
        self.start_requested = False

    @property
    def code(self) -> str:
        return self.msg.get("content", {}).get("code", "")

    @property
    def stop_on_error(self) -> bool:
        if self.interrupted_by_supervisor:
            return False
        return bool(self.msg.get("content", {}).get("stop_on_error", True))

    def summary(self, code_chars: int = 200) -> dict[str, Any]:
        summary = {
            "msg_id": self.msg_id,
            "code": self.code[:code_chars],
            "queued_at": self.queued_at,
            "source": self.source,
        }
        if self.agent:
            summary["agent"] = self.agent
        return summary

    def public_message(self) -> dict[str, Any]:
        """The request as a Jupyter message (for ``execution_queue``); buffers are not JSON."""
        return {k: v for k, v in self.msg.items() if k != "buffers"}


class ExecutionQueue:
    def __init__(
        self,
        dispatch: Callable[[QueuedRequest], None],
        on_abort: Callable[[QueuedRequest, str], None],
        on_finish: Callable[[QueuedRequest], None],
        on_change: Callable[[], None],
    ):
        self._dispatch = dispatch
        # durable mode: whether the head may be sent now (durable.py sets it)
        self.gate: Callable[[QueuedRequest], bool] | None = None
        self.held = False  # a restored queue, until ``release``
        self._on_abort = on_abort
        self._on_finish = on_finish
        self._on_change = on_change
        self.active: QueuedRequest | None = None
        self.pending: OrderedDict[str, QueuedRequest] = OrderedDict()

    def __len__(self) -> int:
        return len(self.pending)

    def __contains__(self, msg_id: str) -> bool:
        return msg_id in self.pending or (self.active is not None and self.active.msg_id == msg_id)

    def submit(self, request: QueuedRequest) -> bool:
        """Queue a request; True if it was sent to the kernel at once, False if it waits."""
        if request.msg_id in self:
            raise SupervisorError(
                409, CONFLICT, f"An execute_request with msg_id {request.msg_id!r} is queued"
            )
        if self.active is None and not self.pending and self._may_send(request):
            self._start(request)
            self._on_change()
            return True
        self.pending[request.msg_id] = request
        self._on_change()
        return False

    def _start(self, request: QueuedRequest) -> None:
        self.active = request
        request.started_at = now_ms()
        self._dispatch(request)

    def on_execute_reply(self, parent_msg_id: str | None, status: str) -> None:
        active = self.active
        if active is None or active.msg_id != parent_msg_id:
            return
        active.reply_status = status
        if status == "error" and active.stop_on_error:
            # As ipykernel does: an error with stop_on_error aborts what was queued after it.
            self.abort_pending("stop_on_error")
        self._finish_if_done()

    def on_idle(self, parent_msg_id: str | None) -> None:
        active = self.active
        if active is None or active.msg_id != parent_msg_id:
            return
        active.idle_seen = True
        self._finish_if_done()

    def _finish_if_done(self) -> None:
        active = self.active
        if active is None or active.reply_status is None or not active.idle_seen:
            return
        self.active = None
        self._on_finish(active)
        if self.pending:
            if self.gate is None and not self.held:
                _, request = self.pending.popitem(last=False)
                self._start(request)
            else:
                self._advance()
        self._on_change()

    def _may_send(self, request: QueuedRequest) -> bool:
        return not self.held and (self.gate is None or self.gate(request))

    def _advance(self) -> None:
        """Send the first pending request if nothing runs (and the gate lets it)."""
        if self.active is None and self.pending:
            request = next(iter(self.pending.values()))
            if self._may_send(request):
                del self.pending[request.msg_id]
                self._start(request)

    def advance(self) -> None:
        """The gate opened (durable mode: the head's row is on disk as the one sent)."""
        if self.active is None and self.pending:
            self._advance()
            self._on_change()

    def restore(self, active: QueuedRequest | None, pending: list[QueuedRequest]) -> None:
        """A restarted server's queue, held until ``release``: ``active`` is the request the
        kernel may still be running (not sent again), ``pending`` wait in order."""
        self.held = True
        self.active = active
        for request in pending:
            self.pending[request.msg_id] = request
        self._on_change()

    def release(self) -> None:
        """The restored queue's kernel is back: it goes on."""
        self.held = False
        self.advance()

    def abort_active(self, reason: str) -> None:
        """The active request will get no reply (a restarted server learnt that it finished
        while it was down): record it aborted and go on."""
        active, self.active = self.active, None
        if active is not None:
            self._on_abort(active, reason)
            self._advance()
            self._on_change()

    def cancel(self, msg_id: str, reason: str = "cancelled") -> QueuedRequest:
        """Take one pending request out of the queue; it gets an aborted reply."""
        if self.active is not None and self.active.msg_id == msg_id:
            raise SupervisorError(
                409, CONFLICT, f"Request {msg_id!r} is running; interrupt the session instead"
            )
        request = self.pending.pop(msg_id, None)
        if request is None:
            raise SupervisorError(404, "not_found", f"No pending request with msg_id {msg_id!r}")
        self._on_abort(request, reason)
        self._on_change()
        return request

    def abort_pending(self, reason: str) -> int:
        """Abort every pending request (the active one keeps running). Returns how many."""
        if not self.pending:
            return 0
        pending, self.pending = self.pending, OrderedDict()
        for request in pending.values():
            self._on_abort(request, reason)
        self._on_change()
        return len(pending)

    def abort_all(self, reason: str) -> None:
        """The kernel is gone: the active request will never be answered either."""
        active, self.active = self.active, None
        if active is not None:
            self._on_abort(active, reason)
        if not self.abort_pending(reason):  # it announces the change when it aborts any
            self._on_change()

    def waiting(self) -> list[QueuedRequest]:
        """The running request (if any) and the pending ones, in order."""
        return ([self.active] if self.active is not None else []) + list(self.pending.values())

    def _first(self, limit: int | None) -> list[QueuedRequest]:
        if limit is None:
            return list(self.pending.values())
        return [r for _, r in zip(range(limit), self.pending.values(), strict=False)]

    def to_json(self, limit: int | None = None) -> dict[str, Any]:
        return {
            "active": self.active.public_message() if self.active else None,
            "length": len(self.pending),
            "pending": [r.public_message() for r in self._first(limit)],
        }

    def summary(self, limit: int | None = None) -> dict[str, Any]:
        pending = self._first(limit)
        return {
            "active": self.active.summary() if self.active else None,
            "length": len(self.pending),
            "pending": [r.summary() for r in pending],
        }
