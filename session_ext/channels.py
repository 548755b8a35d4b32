"""The clients attached to one session's channels, and where each kernel message goes.

iopub and supervisor events go to every attached client; a reply on shell/control/stdin goes
to the client whose request it answers. While no client is attached, frames wait in a
bounded buffer (by count and bytes) and are replayed in order to the next client.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from .messages import KernelMessage, kernel_event


class Client(Protocol):
    """Something that receives a session's kernel messages."""

    def deliver(self, msg: KernelMessage) -> None: ...


class WebsocketClient(Client, Protocol):
    def send_frame(self, frame: bytes) -> None: ...

    def close_displaced(self, reason: str) -> None: ...


class InternalClient:
    """A requester inside the supervisor (REST execute, the startup kernel_info): always
    reachable, never buffered."""

    def deliver(self, msg: KernelMessage) -> None:
        raise NotImplementedError


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
            client.send_frame(kernel_event(messagesDropped=self._dropped))
            self._dropped = 0
        while self._buffer:
            client.send_frame(self._buffer.popleft())
        self._buffer_bytes = 0

    def detach(self, client: Client) -> None:
        self.clients.pop(client, None)

    def route(self, msg_id: str, client: Client) -> None:
        """Send the replies to request ``msg_id`` to ``client``."""
        self.routes[msg_id] = client

    def broadcast(self, frame: bytes) -> None:
        if not self.clients:
            self._keep(frame)
            return
        for client in self.clients:
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
        if client in self.clients or isinstance(client, InternalClient):
            client.deliver(msg)
        else:
            self.broadcast(msg.frame)

    def forget_routes(self) -> None:
        """The kernel is gone: no reply will come for any outstanding request."""
        self.routes.clear()

    def _keep(self, frame: bytes) -> None:
        self._buffer.append(frame)
        self._buffer_bytes += len(frame)
        while self._buffer and (
            len(self._buffer) > self.max_buffer_messages
            or self._buffer_bytes > self.max_buffer_bytes
        ):
            self._buffer_bytes -= len(self._buffer.popleft())
            self._dropped += 1
