"""The two websockets: a session's channels, and the server-wide events stream."""

from __future__ import annotations

import asyncio
import json
from collections import deque

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from session_ext.api.base import SupervisorHandler
from session_ext.core import internals
from session_ext.core.errors import bad_request
from session_ext.wire.messages import KernelMessage, kernel_event
from session_ext.wire.wsframe import text_frame


class SupervisorWebsocket(WebSocketMixin, WebSocketHandler, SupervisorHandler, JupyterHandler):
    """Authenticated like jupyter_server's kernel websocket: token or cookie, then the
    authorizer's ``action`` on ``kernels``."""

    action = "execute"
    _pending: list[tuple[bytes, bool]]  # (frame, routed): accepted, not yet written
    # (first byte, end, frames) of each write tornado may not have sent in full yet
    _in_flight: deque[tuple[int, int, list[tuple[bytes, bool]]]]
    _gone = False

    def set_default_headers(self):
        """No JupyterHandler headers on a websocket upgrade."""

    def open(self, *args, **kwargs):
        self._pending = []
        self._in_flight = deque()
        super().open(*args, **kwargs)
        self._stream = self.ws_connection.stream
        # Frames are small and interactive: without this, Nagle's algorithm meets the
        # client's delayed ACK and holds the last frames of a reply ~40 ms.
        self.set_nodelay(True)

    def is_upgrade(self) -> bool:
        headers = self.request.headers
        return headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in [
            v.strip() for v in headers.get("Connection", "").lower().split(",")
        ]

    async def get(self, *args, **kwargs):
        """A plain GET gets a JSON 400 (tornado's own answer is plain text)."""
        if not self.is_upgrade():
            raise bad_request(
                "This is a websocket endpoint: send a websocket upgrade request "
                "(Connection: Upgrade, Upgrade: websocket)"
            )
        await super().get(*args, **kwargs)

    async def authorize(self) -> None:
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, self.action, self.auth_resource)
        )
        if not allowed:
            raise web.HTTPError(403, "Not authorized to %s on %s", self.action, self.auth_resource)

    def send_frame(self, frame: bytes | str, routed: bool = False) -> bool:
        """Queue a text frame; the frames of one event-loop turn go out in one write.
        False once the connection is gone (what it had not sent is handed back first)."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            self.connection_lost()
            return False
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush_frames)
        self._pending.append((frame.encode() if isinstance(frame, str) else frame, routed))
        return True

    def flush_frames(self) -> None:
        """With TCP_NODELAY every write is its own TCP segment: a burst of small frames (a
        chatty cell's output) costs the client one wake-up per frame unless they are
        written together. Frames are built here as tornado does for uncompressed text
        frames; with compression negotiated, tornado writes them one by one."""
        conn = self.ws_connection
        if not self._pending or conn is None or conn.is_closing():
            self.connection_lost()
            return
        pending, self._pending = self._pending, []
        if internals.websocket_compressed(conn):
            try:
                for frame, _ in pending:
                    self.write_message(frame)
            except WebSocketClosedError:
                self.connection_lost()
            return
        stream = self._stream
        sent = internals.bytes_sent(stream)
        while self._in_flight and self._in_flight[0][1] <= sent:
            self._in_flight.popleft()  # written out in full
        start = internals.bytes_written(stream)
        try:
            stream.write(b"".join(text_frame(frame) for frame, _ in pending))
        except StreamClosedError:
            pass  # nothing of it was taken
        self._in_flight.append((start, internals.bytes_written(stream), pending))
        if stream.closed():
            self.connection_lost()

    def connection_lost(self) -> None:
        """The connection is closing or dead: what tornado never sent (and what was not
        written yet) goes back to the session, in order; a frame cut off mid-way is lost
        and counted. Bytes the socket took are the operating system's: not counted."""
        if self._gone:
            return
        self._gone = True
        sent = internals.bytes_sent(self._stream)  # (ws_connection is None by on_close)
        unsent: list[tuple[bytes, bool]] = []
        torn = 0
        for start, _end, frames in self._in_flight:
            offset = start
            for frame, routed in frames:
                size = len(text_frame(frame))
                if offset >= sent:
                    unsent.append((frame, routed))
                elif offset + size > sent:
                    torn += 1
                offset += size
        self._in_flight.clear()
        unsent.extend(self._pending)
        self._pending = []
        self.hand_back(unsent, torn)

    def hand_back(self, frames: list[tuple[bytes, bool]], torn: int) -> None:
        """What a lost connection could not deliver (the events stream lets it go: the
        next subscriber starts from a snapshot)."""

    def on_close(self):
        super().on_close()
        self.connection_lost()


class ChannelsHandler(SupervisorWebsocket):
    """``/sessions/{id}/channels``: Jupyter messages to and from the session's kernel, in
    Kallichore's envelope. This handler is a client of the session (see channels.py)."""

    @ws_authenticated
    async def get(self, session_id):
        await self.authorize()
        self.session = self.supervisor.get(session_id)  # 404 before the upgrade
        sockets = self.extensionapp.channel_sockets
        if sockets is not None and not self.is_upgrade():
            # Kallichore's socket transport: the path of the session's own unix socket
            path = await sockets.path_for(self.session, self.supervisor.get)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(path))
            return
        self.exclusive = self.get_argument("exclusive", "false").lower() in ("1", "true")
        await super().get(session_id)

    def open(self, session_id):
        super().open()
        self.session.attach(self, self.exclusive)

    def on_message(self, message):
        self.session.handle_client_frame(self, message)

    def hand_back(self, frames: list[tuple[bytes, bool]], torn: int) -> None:
        self.session.detach(self, frames, torn)

    # The session's Client protocol.
    def deliver(self, msg: KernelMessage) -> None:
        self.send_frame(msg.frame, routed=True)

    def close_displaced(self, reason: str) -> None:
        self.send_frame(kernel_event(clientDisconnected=reason))
        self.flush_frames()  # before the close frame
        self.close(1000, "displaced by another client")


class EventsHandler(SupervisorWebsocket):
    """``/events``: a snapshot of every session, then live session events."""

    action = "read"

    @ws_authenticated
    async def get(self):
        await self.authorize()
        await super().get()

    def open(self):
        super().open()
        self.supervisor.events.subscribe(self.send_frame, self.supervisor.snapshot())

    def on_message(self, message):
        """Nothing to receive; the stream is one-way."""

    def on_close(self):
        super().on_close()
        self.supervisor.events.unsubscribe(self.send_frame)
