"""A session's channels websocket (``/sessions/{id}/channels``), as a client of the queue.

One websocket per session and client: requests are Jupyter messages with full headers;
each execute_request becomes an :class:`AsyncExecution`, which collects the iopub messages
whose parent it is and ends once both its ``execute_reply`` and its iopub ``idle`` have
come (the queue's own rule). Other shell requests (kernel_info, is_complete, ...) are
answered through :meth:`SessionChannel.request`; every frame also goes to the listeners
(the nbclient kernel client routes them into its channels).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import connect, unix_connect

from session_ext.client.discovery import Endpoint, auth_headers, quoted
from session_ext.client.errors import ChannelError, ClientError, ServerNotFound, api_error
from session_ext.client.execution import AsyncExecution, OutputCallback, StdinCallback

if TYPE_CHECKING:
    from session_ext.client.aio import AsyncSession

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "5.3"
OPEN_TIMEOUT = 30.0
Listener = Callable[[dict[str, Any]], None]


async def open_websocket(endpoint: Endpoint, path: str) -> Any:
    """A websocket to ``path`` under the API, with the token; the server's refusal as an
    ApiError (401, 404, ...), nothing listening as ServerNotFound."""
    uri = f"{endpoint.ws_url}/{path}"
    options: dict[str, Any] = {
        "additional_headers": auth_headers(endpoint),
        "max_size": None,  # outputs (images, data frames) may be large
        "compression": None,
        "open_timeout": OPEN_TIMEOUT,
        "proxy": None,
    }
    try:
        if endpoint.socket_path:
            return await unix_connect(endpoint.socket_path, uri, **options)
        return await connect(uri, **options)
    except websockets.InvalidStatus as e:
        try:
            body = json.loads(e.response.body or b"null")
        except ValueError:
            body = None
        raise api_error(e.response.status_code, body, f"Cannot connect to {uri}") from None
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        raise ServerNotFound(f"Cannot reach the supervisor at {uri}: {e}") from None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


class SessionChannel:
    """The websocket of one session; opened on first use, closed by :meth:`close`."""

    def __init__(self, endpoint: Endpoint, session: AsyncSession):
        self.endpoint = endpoint
        self.session = session
        self.session_id = session.session_id
        self.client_session = new_id()  # the header's `session`: this client
        self.username = getpass.getuser()
        self.executions: dict[str, AsyncExecution] = {}
        self.listeners: list[Listener] = []
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._unacknowledged: dict[str, AsyncExecution] = {}
        self._ws: Any = None
        self._opening: asyncio.Task[None] | None = None
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.exited = False  # the kernel exited (until the session's status says otherwise)
        self.kernel_status: str | None = None

    # --- connection ----------------------------------------------------------------------

    async def open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(self._opening)
        except ClientError:
            self.closed = True  # the session makes a new channel for the next request
            raise

    async def _open(self) -> None:
        self._ws = await open_websocket(
            self.endpoint, f"sessions/{quoted(self.session_id)}/channels"
        )
        self._tasks = [
            asyncio.ensure_future(self._read()),
            asyncio.ensure_future(self._write()),
        ]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        self._outgoing.put_nowait(None)
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lost(ChannelError("closed", "The client closed the session's websocket"))

    async def _write(self) -> None:
        """One writer, so frames go out in the order they were submitted."""
        while (text := await self._outgoing.get()) is not None:
            try:
                await self._ws.send(text)
            except websockets.ConnectionClosed:
                return

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                self._dispatch(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed:
                self.closed = True
                self._outgoing.put_nowait(None)
                self._lost(ChannelError("closed", "The server closed the session's websocket"))

    def _lost(self, error: ChannelError) -> None:
        for execution in list(self.executions.values()):
            execution._fail(error)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(error)
        self._replies.clear()

    # --- sending -------------------------------------------------------------------------

    def message(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        msg_id: str | None = None,
        parent_header: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "channel": channel,
            "header": {
                "msg_id": msg_id or new_id(),
                "msg_type": msg_type,
                "username": self.username,
                "session": self.client_session,
                "date": now_iso(),
                "version": PROTOCOL_VERSION,
            },
            "parent_header": parent_header or {},
            "metadata": metadata or {},
            "content": content,
            "buffers": [],
        }

    def send(self, msg: dict[str, Any]) -> None:
        """Queue a Jupyter message (with its ``channel``) for the websocket, in order."""
        if self.closed:
            raise ChannelError("closed", "The session's websocket is closed")
        self._outgoing.put_nowait(json.dumps(msg, default=_json_default))

    async def request(
        self, msg_type: str, content: dict[str, Any], channel: str = "shell", timeout: float = 30
    ) -> dict[str, Any]:
        """A request other than execute; its reply message."""
        await self.open()
        msg = self.message(channel, msg_type, content)
        future = asyncio.get_running_loop().create_future()
        self._replies[msg["header"]["msg_id"]] = future
        self.send(msg)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(msg["header"]["msg_id"], None)

    def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
        user_expressions: dict[str, str] | None = None,
        stdin: StdinCallback | None = None,
        on_output: OutputCallback | None = None,
        cell_id: str | None = None,
        msg_id: str | None = None,
    ) -> AsyncExecution:
        msg = self.message(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": user_expressions or {},
                "allow_stdin": stdin is not None,
                "stop_on_error": stop_on_error,
            },
            msg_id=msg_id,
            metadata={"cellId": cell_id} if cell_id else None,
        )
        execution = AsyncExecution(self, msg["header"]["msg_id"], stdin, on_output)
        self.executions[execution.msg_id] = execution
        self._unacknowledged[execution.msg_id] = execution
        execution._sending = asyncio.ensure_future(self._send_when_open(msg, execution))
        return execution

    async def _send_when_open(self, msg: dict[str, Any], execution: AsyncExecution) -> None:
        try:
            await self.open()
            self.send(msg)
        except ClientError as e:
            execution._fail(e)

    # --- receiving -----------------------------------------------------------------------

    def _dispatch(self, frame: dict[str, Any]) -> None:
        if frame.get("kind") == "kernel":
            self._kernel_event(frame)
            return
        for listener in self.listeners:
            listener(frame)
        parent = (frame.get("parent_header") or {}).get("msg_id")
        channel = frame.get("channel")
        execution = self.executions.get(parent) if parent else None
        if execution is not None:
            self._unacknowledged.pop(parent, None)
            execution.accepted.set()
            if channel == "iopub":
                execution._iopub(frame)
            elif channel == "shell" and frame["header"]["msg_type"] == "execute_reply":
                execution._reply(frame)
            elif channel == "stdin" and frame["header"]["msg_type"] == "input_request":
                execution._input_request(frame)
            return
        if channel == "iopub" and frame["header"]["msg_type"] == "status":
            self.kernel_status = frame["content"].get("execution_state")
        future = self._replies.get(parent) if parent else None
        if future is not None and not future.done() and channel in ("shell", "control"):
            future.set_result(frame)

    def _kernel_event(self, frame: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(frame)
        if "executionQueued" in frame:
            execution = self.executions.get(frame["executionQueued"])
            if execution is not None:
                self._unacknowledged.pop(execution.msg_id, None)
                execution.queued = True
                execution.accepted.set()
        elif "error" in frame:
            # A frame the server could not take (the kernel is not running): it does not say
            # which, so every request it has not acknowledged yet fails with it.
            error = frame["error"] or {}
            failure = ChannelError(str(error.get("code", "error")), str(error.get("message", "")))
            for execution in list(self._unacknowledged.values()):
                execution._fail(failure)
            self._unacknowledged.clear()
        elif "exited" in frame or (frame.get("status") or {}).get("status") == "exited":
            self.exited = True
            for execution in list(self.executions.values()):
                execution._abort("the kernel exited")
        elif "status" in frame:
            self.exited = False

    def forget(self, execution: AsyncExecution) -> None:
        self.executions.pop(execution.msg_id, None)
        self._unacknowledged.pop(execution.msg_id, None)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"Not JSON: {type(value).__name__}")
