"""Durable mode's acknowledgement gate: an execute_request is acknowledged only once its queue
row is stored.

It joins the queue when it arrives (so cancel, interrupt and stop_on_error see it), but is
announced as queued (``executionQueued``) or sent to the kernel only once its row is on disk,
and is sent only once its row says it is the one sent (the queue's gate): a restarted server
then knows that only that request may have reached the kernel (``MessageRouter.restore_queue``).

Not on the hot path: the router hands it each new execute_request (``submit``), the queue asks
it before sending one (``may_send``), and it answers through the two callbacks it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from session_ext.session.queue import ExecutionQueue, QueuedRequest

NOT_STORED = "the session store could not be written"


class RequestStore(Protocol):
    """Where the rows go (the session, through the supervisor's per-turn writes)."""

    def persist_request(
        self, request: QueuedRequest, queued: bool, started: bool, done: Callable[[bool], None]
    ) -> None:
        """Write the request's row (``queued``) and/or mark it as the one sent (``started``);
        ``done(ok)`` once on disk."""


class DurableGate:
    def __init__(
        self,
        queue: ExecutionQueue,
        store: RequestStore,
        acknowledge: Callable[[QueuedRequest], None],
    ):
        self.queue = queue
        self.store = store
        self.acknowledge = acknowledge  # tells the request's client it is queued
        queue.gate = self.may_send

    def submit(self, request: QueuedRequest) -> None:
        """Into the queue at once, but sent or announced as queued only once its row is
        written. Into an empty queue its row is written as the one sent, in the same write."""
        queue = self.queue
        quiet = queue.active is None and not queue.pending and not queue.held
        request.may_start = False
        request.start_requested = quiet
        queue.submit(request)  # 409 on a duplicate msg_id, before anything is written
        self.store.persist_request(request, True, quiet, partial(self._stored, request, quiet))

    def _stored(self, request: QueuedRequest, started: bool, ok: bool) -> None:
        if request.msg_id not in self.queue.pending:
            return  # aborted or cancelled meanwhile (its row goes with its history entry)
        if not ok:
            self.queue.cancel(request.msg_id, NOT_STORED)
            return
        if started:
            request.may_start = True
            self.queue.advance()
        if request.msg_id in self.queue.pending:
            self.acknowledge(request)

    def may_send(self, request: QueuedRequest) -> bool:
        """The queue's gate: the head is sent once its row is marked as the one sent."""
        if request.may_start:
            return True
        if not request.start_requested:
            request.start_requested = True
            self.store.persist_request(request, False, True, partial(self._start_stored, request))
        return False

    def _start_stored(self, request: QueuedRequest, ok: bool) -> None:
        if request.msg_id not in self.queue.pending:
            return
        if not ok:
            self.queue.cancel(request.msg_id, NOT_STORED)
            return
        request.may_start = True
        self.queue.advance()
