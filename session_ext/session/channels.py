"""The clients attached to one session's channels, and where each kernel message goes.

iopub and supervisor events go to every attached client; a reply on shell/control/stdin goes
to the client whose request it answers. While no client is attached, frames wait in a
bounded buffer (by count and bytes) and are replayed in order to the next client.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from session_ext.wire.messages import KernelMessage, kernel_event


class Client(Protocol):
    """Something that receives a session's kernel messages."""

    def deliver(self, msg: KernelMessage) -> None: ...


class WebsocketClient(Client, Protocol):
    def send_frame(self, frame: bytes, routed: bool = False) -> bool:
        """Queue ``frame`` (``routed``: meant for this client alone); False if the
        connection is gone (it has then handed back what it had not sent: ``take_back``)."""
        ...

    def close_displaced(self, reason: str) -> None: ...


class InternalClient:
    """A requester inside the supervisor (REST execute, an agent's execution, a
    jupyter_server websocket): never buffered here, and never sent the supervisor's own
    events (it follows its requests itself)."""

    agent: str | None = None  # an MCP client's name, recorded with its requests

    @property
    def gone(self) -> bool:
        """Its connection closed: what it waits for may go to its successor (``rebind``)."""
        return False

    def deliver(self, msg: KernelMessage) -> None:
        raise NotImplementedError


def is_gone(client: Client | None) -> bool:
    """Whether ``client`` is an internal client whose connection closed (a websocket client
    that left is out of the hub instead; a restored request has none)."""
    return isinstance(client, InternalClient) and client.gone


class ClientHub:
    def __init__(self, max_buffer_messages: int, max_buffer_bytes: int):
        self.max_buffer_messages = max_buffer_messages
        self.max_buffer_bytes = max_buffer_bytes
        self.clients: dict[WebsocketClient, None] = {}  # ordered set
        # msg_id of a request -> the client its replies go to.
        self.routes: dict[str, Client] = {}
        self._buffer: deque[bytes] = deque()
        self._buffer_bytes = 0
        self._dropped = 0

    @property
    def connected(self) -> bool:
        return bool(self.clients)

    def attach(self, client: WebsocketClient, exclusive: bool = False) -> None:
        if exclusive:
            for other in list(self.clients):
                other.close_displaced("Another client is connecting to this session.")
            self.clients.clear()
        self.clients[client] = None
        if self._dropped:
            if not client.send_frame(kernel_event(messagesDropped=self._dropped)):
                return
            self._dropped = 0
        while self._buffer:
            frame = self._buffer[0]
            if not client.send_frame(frame):
                return  # gone already: the rest waits for the next client
            self._buffer.popleft()
            self._buffer_bytes -= len(frame)

    def take_back(
        self, client: WebsocketClient, frames: list[tuple[bytes, bool]], torn: int = 0
    ) -> None:
        """A client's connection died with ``frames`` (frame, routed) accepted but not sent,
        and ``torn`` frames sent only in part: it leaves, and what only it would have had
        goes to the others, or back to the front of the buffer (they are older than anything
        kept there), the torn ones announced as dropped."""
        self.clients.pop(client, None)
        self._dropped += torn
        if self.clients:
            for frame, routed in frames:
                if routed:  # the others had every broadcast frame already
                    self.broadcast(frame)
            return
        for frame, _ in reversed(frames):
            self._buffer.appendleft(frame)
            self._buffer_bytes += len(frame)
        self._trim()

    def route(self, msg_id: str, client: Client) -> None:
        """Send the replies to request ``msg_id`` to ``client``."""
        self.routes[msg_id] = client

    def rebind(self, client: Client) -> None:
        """Replies meant for clients whose connection is gone go to ``client``."""
        for msg_id, routed in self.routes.items():
            if is_gone(routed):
                self.routes[msg_id] = client

    def broadcast(self, frame: bytes) -> None:
        delivered = False
        for client in tuple(self.clients):  # a client whose connection died leaves meanwhile
            delivered = client.send_frame(frame) or delivered
        if not delivered:
            self._keep(frame)

    @staticmethod
    def send_event(client: Client | None, frame: bytes) -> None:
        """A supervisor event for one requester: a websocket client gets it."""
        if client is not None and not isinstance(client, InternalClient):
            client.send_frame(frame)

    def deliver_reply(self, msg: KernelMessage) -> None:
        """A shell/control/stdin message goes to the requester (to everyone if it is gone)."""
        parent_id = msg.parent_msg_id
        client = self.routes.get(parent_id) if parent_id else None
        if msg.msg_type.endswith("_reply") and parent_id:
            self.routes.pop(parent_id, None)
        if client is not None:
            self.send_to(client, msg)
        else:
            self.broadcast(msg.frame)

    def send_to(self, client: Client, msg: KernelMessage) -> None:
        """A message meant for one client; if that client has gone, to everyone (or the
        buffer), so a reconnecting client still gets it."""
        if isinstance(client, InternalClient):
            client.deliver(msg)
        elif client not in self.clients or not client.send_frame(msg.frame, routed=True):
            self.broadcast(msg.frame)

    def forget_routes(self) -> None:
        """The kernel is gone: no reply will come for any outstanding request."""
        self.routes.clear()

    def _keep(self, frame: bytes) -> None:
        self._buffer.append(frame)
        self._buffer_bytes += len(frame)
        self._trim()

    def _trim(self) -> None:
        while self._buffer and (
            len(self._buffer) > self.max_buffer_messages
            or self._buffer_bytes > self.max_buffer_bytes
        ):
            self._buffer_bytes -= len(self._buffer.popleft())
            self._dropped += 1
