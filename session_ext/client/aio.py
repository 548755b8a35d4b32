"""The asynchronous client: :class:`AsyncSupervisor` (a server) and :class:`AsyncSession`
(one session on it). REST calls go through httpx; code runs through the session's channels
websocket (``session_ext.client.channel``), so it waits in the session's queue and shows
in the panel like anyone else's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from session_ext.client import discovery
from session_ext.client.channel import SessionChannel, open_websocket
from session_ext.client.discovery import Endpoint, auth_headers, quoted
from session_ext.client.errors import ApiError, ServerNotFound, api_error
from session_ext.client.execution import AsyncExecution, OutputCallback, StdinCallback
from session_ext.client.models import (
    CellExecution,
    Event,
    HistoryEntry,
    NotebookRun,
    QueueSummary,
    ServerStatus,
    SessionInfo,
)

TIMEOUT = 30.0
START_TIMEOUT = 120.0  # a kernel start may take long on a loaded machine


class AsyncSupervisor:
    """A session_ext server. ``AsyncSupervisor(url, token)``, ``.from_connection_file(F)``,
    or ``.discover()`` (the environment, else the running servers of this user)."""

    def __init__(self, url: str | Endpoint, token: str = "", *, timeout: float = TIMEOUT):
        self.endpoint = url if isinstance(url, Endpoint) else discovery.from_url(url, token)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            transport=discovery.http_transport(self.endpoint, sync=False),
            headers=auth_headers(self.endpoint),
            timeout=timeout,
        )
        self._sessions: dict[str, AsyncSession] = {}

    @classmethod
    def from_connection_file(cls, path: str | Path, **kw: Any) -> AsyncSupervisor:
        return cls(discovery.from_connection_file(path), **kw)

    @classmethod
    def discover(
        cls, url: str | None = None, token: str | None = None, connection_file: str | None = None
    ) -> AsyncSupervisor:
        """Given, from the environment, else the running server this user most likely
        means (see ``session_ext.client.discovery``)."""
        return cls(discovery.resolve(url, token, connection_file))

    async def __aenter__(self) -> AsyncSupervisor:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every websocket and the HTTP connections (sessions and kernels stay)."""
        await asyncio.gather(*(s.close() for s in self._sessions.values()))
        await self._http.aclose()

    # --- REST ----------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One API call: its JSON answer, or ApiError carrying the server's code and
        message (ServerNotFound when nothing answers)."""
        url = f"{self.endpoint.api_url}/{path}"
        try:
            response = await self._http.request(
                method,
                url,
                content=json.dumps(body) if body is not None else None,
                params=params,
                timeout=timeout or self.timeout,
            )
        except httpx.TimeoutException:
            raise ServerNotFound(
                f"{method} {url}: no answer in {timeout or self.timeout} s"
            ) from None
        except httpx.HTTPError as e:
            raise ServerNotFound(
                f"Cannot reach the supervisor at {self.endpoint.describe()}: {e}"
            ) from None
        return _answer(response, method, url)

    async def status(self) -> ServerStatus:
        return ServerStatus.model_validate(await self.call("GET", "status"))

    async def list_sessions(self) -> list[SessionInfo]:
        body = await self.call("GET", "sessions")
        return [SessionInfo.model_validate(s) for s in body["sessions"]]

    async def get_session(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate(await self.call("GET", f"sessions/{quoted(session_id)}"))

    def session(self, session_id: str) -> AsyncSession:
        """A handle on an existing session (no request is made)."""
        if session_id not in self._sessions:
            self._sessions[session_id] = AsyncSession(self, session_id)
        return self._sessions[session_id]

    async def create_session(
        self,
        kernel_name: str | None = None,
        *,
        session_id: str | None = None,
        display_name: str | None = None,
        language: str | None = None,
        argv: list[str] | None = None,
        working_directory: str | None = None,
        session_mode: str | None = None,
        notebook_uri: str | None = None,
        env: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        start: bool = False,
        **fields: Any,
    ) -> AsyncSession:
        """``PUT /sessions`` (any other NewSession field as a keyword); ``start=True``
        also starts its kernel."""
        body = {
            "kernel_name": kernel_name,
            "session_id": session_id,
            "display_name": display_name,
            "language": language,
            "argv": argv,
            "working_directory": working_directory,
            "session_mode": session_mode,
            "notebook_uri": notebook_uri,
            "env": [{"action": "replace", "name": k, "value": v} for k, v in env.items()]
            if env
            else None,
            "metadata": metadata,
            "tags": tags,
            **fields,
        }
        created = await self.call(
            "PUT", "sessions", {k: v for k, v in body.items() if v is not None}
        )
        session = self.session(created["session_id"])
        if start:
            await session.start()
        return session

    def events(self) -> EventStream:
        """``/events``: ``async with sv.events() as events: async for event in events``."""
        return EventStream(self.endpoint)

    async def shutdown(self) -> None:
        """``POST /shutdown``: every kernel stops; a standalone server exits."""
        await self.call("POST", "shutdown")


def _answer(response: httpx.Response, method: str, url: str) -> Any:
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.status_code >= 400:
        raise api_error(response.status_code, body, f"{method} {url} failed")
    return body


class AsyncSession:
    """One session of the server (a handle: its state is the server's)."""

    def __init__(self, supervisor: AsyncSupervisor, session_id: str):
        self.supervisor = supervisor
        self.session_id = session_id
        self._channel: SessionChannel | None = None

    def __repr__(self) -> str:
        return f"<AsyncSession {self.session_id}>"

    def _path(self, tail: str = "") -> str:
        base = f"sessions/{quoted(self.session_id)}"
        return f"{base}/{tail}" if tail else base

    async def info(self) -> SessionInfo:
        return await self.supervisor.get_session(self.session_id)

    async def start(self) -> dict[str, Any]:
        """Start the kernel; its kernel_info."""
        return await self.supervisor.call("POST", self._path("start"), timeout=START_TIMEOUT)

    async def restart(self, working_directory: str | None = None) -> None:
        body = {"working_directory": working_directory} if working_directory else None
        await self.supervisor.call("POST", self._path("restart"), body, timeout=START_TIMEOUT)

    async def interrupt(self) -> None:
        """Interrupt the running request; the waiting ones are aborted."""
        await self.supervisor.call("POST", self._path("interrupt"))

    async def kill(self) -> None:
        await self.supervisor.call("POST", self._path("kill"))

    async def delete(self, force: bool = False) -> None:
        """Remove the session (``force``: shut its kernel down first)."""
        await self.close()
        await self.supervisor.call(
            "DELETE", self._path(), params={"force": "true"} if force else None
        )
        self.supervisor._sessions.pop(self.session_id, None)

    async def queue(self) -> QueueSummary:
        return QueueSummary.model_validate(await self.supervisor.call("GET", self._path("queue")))

    async def cancel(self, msg_id: str) -> None:
        """Cancel a waiting request (its submitter gets an aborted reply); 409 ApiError
        (``conflict``) if it is the one running."""
        await self.supervisor.call("DELETE", self._path(f"queue/{quoted(msg_id)}"))

    async def cancel_or_interrupt(self, msg_id: str) -> None:
        try:
            await self.cancel(msg_id)
        except ApiError as e:
            if e.status == 409:  # it runs now
                await self.interrupt()
            elif e.status != 404:  # 404: it has just finished
                raise

    async def history(self, limit: int | None = None) -> list[HistoryEntry]:
        params = {"limit": limit} if limit is not None else None
        body = await self.supervisor.call("GET", self._path("history"), params=params)
        return [HistoryEntry.model_validate(e) for e in body]

    async def cells(self) -> list[CellExecution]:
        body = await self.supervisor.call("GET", self._path("cells"))
        return [CellExecution.model_validate(c) for c in body["cells"]]

    async def write_notebook_when_done(
        self,
        path: str,
        msg_ids: list[str],
        *,
        output_path: str | None = None,
        shutdown_kernel: bool = False,
    ) -> NotebookRun:
        """Have the server write the outputs of these requests (a notebook's cells, queued
        with their cell ids) into the .ipynb at ``path`` (on the server's machine; or into
        ``output_path``) once they have all finished, whether or not a client is still
        there; ``shutdown_kernel``: then shut the kernel down."""
        body = {"path": path, "msg_ids": msg_ids, "shutdown_kernel": shutdown_kernel}
        if output_path:
            body["output_path"] = output_path
        return NotebookRun.model_validate(
            await self.supervisor.call("PUT", self._path("notebook_run"), body)
        )

    async def notebook_run(self) -> NotebookRun:
        return NotebookRun.model_validate(
            await self.supervisor.call("GET", self._path("notebook_run"))
        )

    # --- the channels websocket ----------------------------------------------------------

    @property
    def channel(self) -> SessionChannel:
        if self._channel is None or self._channel.closed:
            self._channel = SessionChannel(self.supervisor.endpoint, self)
        return self._channel

    async def connect(self) -> SessionChannel:
        """Open the session's websocket now (``execute`` opens it when needed)."""
        channel = self.channel
        await channel.open()
        return channel

    async def close(self) -> None:
        """Close this client's websocket (the session and its queue go on)."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def execute(
        self,
        code: str,
        *,
        stdin: StdinCallback | None = None,
        on_output: OutputCallback | None = None,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
        user_expressions: dict[str, str] | None = None,
        cell_id: str | None = None,
        msg_id: str | None = None,
    ) -> AsyncExecution:
        """Queue ``code``; returns at once. ``await`` the execution for its reply, or
        ``async for output in execution`` for the outputs as they come. ``stdin(prompt,
        password)`` answers input() (without it the kernel refuses input); ``cell_id`` makes
        it a notebook cell's run (kept in ``cells()``)."""
        return self.channel.execute(
            code,
            silent=silent,
            store_history=store_history,
            stop_on_error=stop_on_error,
            user_expressions=user_expressions,
            stdin=stdin,
            on_output=on_output,
            cell_id=cell_id,
            msg_id=msg_id,
        )

    async def kernel_request(
        self, msg_type: str, content: dict[str, Any], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """Any other shell request (``kernel_info_request``, ``is_complete_request``,
        ``complete_request``, ...): its reply's content."""
        reply = await self.channel.request(msg_type, content, timeout=timeout)
        return reply.get("content") or {}


class EventStream:
    """The ``/events`` websocket: an async context manager and iterator of :class:`Event`."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._ws: Any = None

    async def __aenter__(self) -> EventStream:
        self._ws = await open_websocket(self.endpoint, "events")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        try:
            async for raw in self._ws:
                yield Event.model_validate(json.loads(raw))
        except websockets.ConnectionClosed:
            return
