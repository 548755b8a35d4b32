"""The blocking client, of the same shape as the asynchronous one: :class:`Supervisor`,
:class:`Session`, :class:`Execution`. Each object drives its asynchronous twin on an event
loop of its own in a background thread (anyio's blocking portal), so a script without
asyncio gets the same behaviour: one websocket per session, streaming, stdin, the queue.

Callbacks (``stdin``, ``on_output``) are called from that thread; a blocking ``stdin``
callback (``input``) runs in a worker thread, so it does not hold the stream up."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from session_ext.client import discovery
from session_ext.client.aio import TIMEOUT, AsyncSession, AsyncSupervisor, EventStream
from session_ext.client.discovery import Endpoint
from session_ext.client.execution import AsyncExecution, OutputCallback, StdinCallback
from session_ext.client.models import (
    CellExecution,
    Event,
    ExecuteReply,
    HistoryEntry,
    NotebookRun,
    QueueSummary,
    ServerStatus,
    SessionInfo,
)

T = TypeVar("T")


class Supervisor:
    """A session_ext server, blocking. ``Supervisor(url, token)``,
    ``.from_connection_file(F)`` or ``.discover()``; use it in a ``with`` block, or
    ``close()`` it."""

    def __init__(self, url: str | Endpoint, token: str = "", *, timeout: float = TIMEOUT):
        endpoint = url if isinstance(url, Endpoint) else discovery.from_url(url, token)
        self._stack = contextlib.ExitStack()
        self._portal: BlockingPortal = self._stack.enter_context(start_blocking_portal())
        self._async: AsyncSupervisor = self._portal.call(_make, endpoint, timeout)
        self.endpoint = endpoint
        self._sessions: dict[str, Session] = {}

    @classmethod
    def from_connection_file(cls, path: str | Path, **kw: Any) -> Supervisor:
        return cls(discovery.from_connection_file(path), **kw)

    @classmethod
    def discover(
        cls, url: str | None = None, token: str | None = None, connection_file: str | None = None
    ) -> Supervisor:
        return cls(discovery.resolve(url, token, connection_file))

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close every websocket and the HTTP connections (sessions and kernels stay)."""
        if self._stack is None:
            return
        try:
            self._portal.call(self._async.aclose)
        finally:
            self._stack.close()
            self._stack = None

    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self._portal.call(lambda: fn(*args, **kw))

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self._call(self._async.call, method, path, body, **kw)

    def status(self) -> ServerStatus:
        return self._call(self._async.status)

    def list_sessions(self) -> list[SessionInfo]:
        return self._call(self._async.list_sessions)

    def get_session(self, session_id: str) -> SessionInfo:
        return self._call(self._async.get_session, session_id)

    def session(self, session_id: str) -> Session:
        if session_id not in self._sessions:
            self._sessions[session_id] = Session(self, self._async.session(session_id))
        return self._sessions[session_id]

    def create_session(self, kernel_name: str | None = None, **kw: Any) -> Session:
        created = self._call(self._async.create_session, kernel_name, **kw)
        return self.session(created.session_id)

    def events(self) -> SyncEventStream:
        """``with sv.events() as events: for event in events``."""
        return SyncEventStream(self._portal, self._async.events())

    def shutdown(self) -> None:
        self._call(self._async.shutdown)


async def _make(endpoint: Endpoint, request_timeout: float) -> AsyncSupervisor:
    """In the portal's loop (httpx's client belongs to the loop it is made in)."""
    return AsyncSupervisor(endpoint, timeout=request_timeout)


class Session:
    """One session of the server, blocking (see :class:`~session_ext.client.AsyncSession`)."""

    def __init__(self, supervisor: Supervisor, twin: AsyncSession):
        self.supervisor = supervisor
        self.session_id = twin.session_id
        self._async = twin

    def __repr__(self) -> str:
        return f"<Session {self.session_id}>"

    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self.supervisor._call(fn, *args, **kw)

    def info(self) -> SessionInfo:
        return self._call(self._async.info)

    def start(self) -> dict[str, Any]:
        return self._call(self._async.start)

    def restart(self, working_directory: str | None = None) -> None:
        self._call(self._async.restart, working_directory)

    def interrupt(self) -> None:
        self._call(self._async.interrupt)

    def kill(self) -> None:
        self._call(self._async.kill)

    def delete(self, force: bool = False) -> None:
        self._call(self._async.delete, force)
        self.supervisor._sessions.pop(self.session_id, None)

    def queue(self) -> QueueSummary:
        return self._call(self._async.queue)

    def cancel(self, msg_id: str) -> None:
        self._call(self._async.cancel, msg_id)

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        return self._call(self._async.history, limit)

    def cells(self) -> list[CellExecution]:
        return self._call(self._async.cells)

    def write_notebook_when_done(self, path: str, msg_ids: list[str], **kw: Any) -> NotebookRun:
        return self._call(self._async.write_notebook_when_done, path, msg_ids, **kw)

    def notebook_run(self) -> NotebookRun:
        return self._call(self._async.notebook_run)

    def connect(self) -> None:
        self._call(self._async.connect)

    def close(self) -> None:
        self._call(self._async.close)

    def execute(
        self,
        code: str,
        *,
        stdin: StdinCallback | None = None,
        on_output: OutputCallback | None = None,
        **kw: Any,
    ) -> Execution:
        """Queue ``code``; returns at once. ``.result()`` waits for the reply; iterating
        gives the outputs as they come."""
        twin = self.supervisor._portal.call(
            lambda: _queued(self._async, code, stdin=stdin, on_output=on_output, **kw)
        )
        return Execution(self.supervisor._portal, twin)

    def kernel_request(self, msg_type: str, content: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._call(self._async.kernel_request, msg_type, content, **kw)


async def _queued(session: AsyncSession, code: str, **kw: Any) -> AsyncExecution:
    """In the portal's loop (an AsyncExecution is awaitable: the portal must not await it)."""
    return session.execute(code, **kw)


class Execution:
    """One execute request, blocking: ``result()``, iteration over the outputs, ``cancel()``."""

    def __init__(self, portal: BlockingPortal, twin: AsyncExecution):
        self._portal = portal
        self._async = twin
        self.msg_id = twin.msg_id

    @property
    def done(self) -> bool:
        return self._async.done

    @property
    def queued(self) -> bool:
        return self._async.queued

    @property
    def started(self) -> bool:
        return self._async.started.is_set()

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return self._async.outputs

    def result(self, timeout: float | None = None) -> ExecuteReply:
        return self._portal.call(lambda: self._async.result(timeout))

    def cancel(self) -> None:
        self._portal.call(self._async.cancel)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return _blocking_iter(self._portal, self._async.__aiter__())


class SyncEventStream:
    def __init__(self, portal: BlockingPortal, twin: EventStream):
        self._portal = portal
        self._async = twin

    def __enter__(self) -> SyncEventStream:
        self._portal.call(self._async.__aenter__)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._portal.call(self._async.__aexit__, None, None, None)

    def __iter__(self) -> Iterator[Event]:
        return _blocking_iter(self._portal, self._async.__aiter__())


def _blocking_iter(portal: BlockingPortal, agen: Any) -> Iterator[Any]:
    try:
        while True:
            try:
                yield portal.call(agen.__anext__)
            except StopAsyncIteration:
                return
    finally:
        with contextlib.suppress(Exception):
            portal.call(agen.aclose)
