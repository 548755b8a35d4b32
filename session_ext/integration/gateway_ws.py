"""The kernel websocket of a server whose kernels are a gateway's (``--gateway-url``).

jupyter_server's GatewayWebSocketConnection speaks only the legacy JSON protocol, to the
browser and to the gateway. JupyterLab offers the v1 protocol; Chrome refuses a handshake
that picks none, and JupyterLab reconnects without one. By then the refused connection has
already opened a websocket to the gateway, which stock never closes (it connected after its
client left): the gateway keeps it, races it with the new one under the same session id
("Replacing stale connection"), and counts two connections to the kernel for good, so its
culler never sees the kernel unconnected (measured: `connections` 2 for one page).

Here the browser's first handshake succeeds: the browser gets v1 when it offers it, and each
message is translated between v1 (browser) and the legacy JSON the gateway speaks, with
jupyter_server's own (de)serializers. A browser without v1 gets the stock behaviour.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.gateway.connections import GatewayWebSocketConnection
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from tornado.websocket import WebSocketClosedError
from traitlets import Unicode

from session_ext.core import internals

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
PARTS = ("header", "parent_header", "metadata", "content")


def v1_to_legacy(frame: bytes) -> str | bytes:
    """A v1 frame from the browser as the legacy protocol's message (binary when it has
    buffers, as the legacy protocol sends those)."""
    channel, parts = deserialize_msg_from_ws_v1(frame)
    msg: dict[str, Any] = {name: json.loads(part) for name, part in zip(PARTS, parts, strict=False)}
    msg["channel"] = channel
    buffers = [bytes(b) for b in parts[len(PARTS) :]]
    if buffers:
        msg["buffers"] = buffers
        return serialize_binary_message(msg)
    return json.dumps(msg)


def legacy_to_v1(message: str) -> bytes:
    """A legacy JSON message from the gateway as a v1 frame."""
    msg = json.loads(message)
    return serialize_msg_to_ws_v1(
        msg, msg.get("channel") or "shell", lambda part: json.dumps(part).encode()
    )


class V1GatewayWebSocketConnection(GatewayWebSocketConnection):
    """GatewayWebSocketConnection that offers the browser the v1 protocol."""

    # None: the handler picks v1 when the client offers it (the stock class forces legacy)
    kernel_ws_protocol = Unicode(None, allow_none=True, config=True)

    _speaks_v1: bool | None = None

    @property
    def speaks_v1(self) -> bool:
        """Whether the browser's handshake picked v1 (kept: a closed handler cannot say)."""
        if self._speaks_v1 is None:
            handler = self.websocket_handler
            if handler is None or handler.ws_connection is None:
                return False
            self._speaks_v1 = handler.selected_subprotocol == V1_PROTOCOL
        return self._speaks_v1

    def handle_incoming_message(self, message: Any) -> None:
        if self.speaks_v1 and isinstance(message, bytes):
            message = v1_to_legacy(message)
        super().handle_incoming_message(message)

    def handle_outgoing_message(self, incoming_msg: str, *args: Any) -> None:
        if not self.speaks_v1:
            super().handle_outgoing_message(incoming_msg, *args)
            return
        try:
            self.websocket_handler.write_message(legacy_to_v1(incoming_msg), binary=True)
        except WebSocketClosedError:
            pass  # the browser left (the stock class drops it too)

    def _connection_done(self, fut: Any) -> None:
        super()._connection_done(fut)
        internals.close_gateway_socket_connected_late(self, fut)


def gateway_connection_class(base: type) -> type:
    """The class for a server configured with ``base``: ours on top of the stock class, or
    ``base`` itself when it is something else (a user's own class is left alone)."""
    if base is GatewayWebSocketConnection:
        return V1GatewayWebSocketConnection
    return base
