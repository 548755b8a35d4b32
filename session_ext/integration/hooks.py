"""jupyter_server integration: notebooks and consoles opened through /api/sessions become
ActiveSessions, and their execute requests go through the supervisor's queue.

Three hooks, all on jupyter_server's own extension points:
- a session manager mixin that tells the mirror (mirror.py) when /api/sessions creates,
  changes or deletes a session;
- a kernel websocket connection subclass that hands shell ``execute_request``s to the
  session's queue (everything else, both websocket protocols included, stays stock);
- a listener on jupyter_server's kernel action events, so JupyterLab's interrupt and restart
  buttons have the same effect on the queue as ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from jupyter_client.session import DELIM
from jupyter_server.gateway.connections import GatewayWebSocketConnection
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.sessions.sessionmanager import SessionManager
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError
from traitlets.utils.importstring import import_item

from session_ext.integration.gateway_ws import gateway_connection_class
from session_ext.session.channels import InternalClient
from session_ext.wire.messages import KernelMessage

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

    from session_ext.integration.mirror import JupyterSessions
    from session_ext.session.session import ActiveSession

log = logging.getLogger(__name__)

KERNEL_ACTIONS_SCHEMA = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
HOLD_SECONDS = 10.0  # the longest an execute request waits for the supervisor's attach
# The mirror in the tornado settings of the server it belongs to: each hook finds its own
# server's (several servers may run in one process, as in tests).
SETTINGS_KEY = "session_ext_jupyter_sessions"


def jupyter_sessions_in(settings: dict[str, Any] | None) -> JupyterSessions | None:
    return settings.get(SETTINGS_KEY) if settings is not None else None


class SupervisedSessionManagerMixin:
    """Mixed into the server's configured SessionManager class (see ``supervised``)."""

    @property
    def jupyter_sessions(self) -> JupyterSessions | None:
        web_app = getattr(self.parent, "web_app", None)  # the parent is the ServerApp
        return jupyter_sessions_in(web_app.settings if web_app is not None else None)

    async def create_session(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        model = await super().create_session(*args, **kwargs)
        mirror = self.jupyter_sessions
        if mirror is not None:
            mirror.mirror(model)
        return model

    async def update_session(self, session_id: str, **kwargs: Any) -> None:
        await super().update_session(session_id, **kwargs)
        mirror = self.jupyter_sessions
        if mirror is not None:
            mirror.mirror(await self.get_session(session_id=session_id))

    async def delete_session(self, session_id: str) -> None:
        await super().delete_session(session_id)
        mirror = self.jupyter_sessions
        if mirror is not None:
            mirror.forget(session_id)


class SupervisedWebsocketConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket, with execute requests queued by the supervisor.

    A queued request is sent on the supervisor's own shell socket, so its reply comes back
    to the supervisor, which hands it here (``deliver``) to go out exactly as stock replies
    do (same protocol, same serialization). Closing it leaves its requests queued or running;
    the kernel's next connection (a reloaded notebook) gets their replies (``rebind``).
    """

    closed = False
    # execute requests that came while the supervisor was attaching to the kernel (a notebook
    # just opened): queued once it is attached, in order (the stock path if that fails)
    _held: list[tuple[Any, dict[str, Any]]] | None = None

    def connect(self) -> Any:
        connected = super().connect()
        session = self._supervised_session()
        if connected is not None and session is not None:
            session.router.rebind(_ConnectionClient(self))
        return connected

    def disconnect(self) -> None:
        self.closed = True
        super().disconnect()

    @property
    def jupyter_sessions(self) -> JupyterSessions | None:
        handler = self.websocket_handler
        return jupyter_sessions_in(handler.settings if handler is not None else None)

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        if self.jupyter_sessions is None or not self.channels:
            super().handle_incoming_message(incoming_msg)
            return
        msg = self._execute_request(incoming_msg)
        if msg is None:
            super().handle_incoming_message(incoming_msg)
        elif self._held is not None:
            self._held.append((incoming_msg, msg))
        elif not self._queue(
            incoming_msg, msg, stock_if_unsupervised=False
        ) and not self._hold_until_attached(incoming_msg, msg):
            super().handle_incoming_message(incoming_msg)

    def _queue(
        self, incoming_msg: Any, msg: dict[str, Any], stock_if_unsupervised: bool = True
    ) -> bool:
        """Into the session's queue; False if there is no supervised session (then the stock
        path, unless told otherwise)."""
        session = self._supervised_session()
        if session is not None:
            session.send_client_message(_ConnectionClient(self), msg, source="jupyter_server")
            return True
        if stock_if_unsupervised:
            super().handle_incoming_message(incoming_msg)
        return False

    def _hold_until_attached(self, incoming_msg: Any, msg: dict[str, Any]) -> bool:
        attaching = self.jupyter_sessions.attaching_to_kernel(self.kernel_id)
        if attaching is None or attaching.done():
            return False
        self._held = [(incoming_msg, msg)]
        attaching.add_done_callback(lambda _: self._release_held())
        asyncio.get_running_loop().call_later(HOLD_SECONDS, self._release_held)
        return True

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for incoming_msg, msg in held:
            self._queue(incoming_msg, msg)  # (also if it closed meanwhile: the cell runs)

    def _supervised_session(self) -> ActiveSession | None:
        mirror = self.jupyter_sessions
        if mirror is None:
            return None
        session = mirror.session_for_kernel(self.kernel_id)
        return session if session is not None and session.kernel_connected else None

    def _execute_request(self, ws_msg: Any) -> dict[str, Any] | None:
        """The message as a dict if it is a shell execute_request (allowed by the server),
        else None (it takes the stock path)."""
        if self.subprotocol == V1_PROTOCOL:
            channel, parts = deserialize_msg_from_ws_v1(ws_msg)
            if channel != "shell":
                return None
            header = self.session.unpack(parts[0])
            if header.get("msg_type") != "execute_request":
                return None
            msg = {
                "header": header,
                "parent_header": self.session.unpack(parts[1]),
                "metadata": self.session.unpack(parts[2]),
                "content": self.session.unpack(parts[3]),
                "buffers": [bytes(b) for b in parts[4:]],
            }
        else:
            if isinstance(ws_msg, bytes):
                return None  # legacy binary frames (with buffers): stock path
            msg = json.loads(ws_msg)
            if msg.get("channel", "shell") != "shell":
                return None
            if msg.get("header", {}).get("msg_type") != "execute_request":
                return None
            msg["buffers"] = []
        allowed = self.multi_kernel_manager.allowed_message_types
        if allowed and "execute_request" not in allowed:
            return None
        msg["channel"] = "shell"
        return msg

    def deliver_kernel_message(self, msg: KernelMessage) -> None:
        """A message the supervisor received for this client: out like a stock one."""
        if self.closed or not self.channels or msg.channel not in self.channels:
            return  # (a closed connection's channels may live on, buffering for a reconnect)
        frames = [msg.header_raw, msg.parent_raw, msg.metadata_raw, msg.content_raw]
        msg_list = [DELIM, self.session.sign(frames), *frames, *msg.buffers]
        try:
            self.handle_outgoing_message(msg.channel, msg_list)
        except (WebSocketClosedError, StreamClosedError):
            self.closed = True  # closing, its on_close not run yet


class _ConnectionClient(InternalClient):
    """The session's view of one jupyter_server websocket connection: replies to its queued
    requests are written straight to it (it has its own reconnect buffering)."""

    __slots__ = ("connection",)

    def __init__(self, connection: SupervisedWebsocketConnection):
        self.connection = connection

    @property
    def gone(self) -> bool:
        return self.connection.closed

    def deliver(self, msg: KernelMessage) -> None:
        self.connection.deliver_kernel_message(msg)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ConnectionClient) and other.connection is self.connection

    def __hash__(self) -> int:
        return id(self.connection)


def supervised(base: type, mixin: type, name: str) -> type:
    """``base`` (whatever the server is configured with) with ``mixin`` on top."""
    if issubclass(base, mixin):
        return base
    return type(name, (mixin, base), {})


def _configured(serverapp: ServerApp, trait: str, default: type) -> type:
    """The class the user configured for a ServerApp trait, else the stock one. (At link time
    the trait's own default cannot be read yet: it depends on the gateway config.)"""
    value = serverapp.config.get("ServerApp", {}).get(trait)
    if value is None or not isinstance(value, (str, type)):
        return default
    return import_item(value) if isinstance(value, str) else value


def gateway_url(serverapp: ServerApp) -> str | None:
    """The kernel gateway the server's kernels run on (``--gateway-url``, ``GatewayClient.url``
    or ``JUPYTER_GATEWAY_URL``), read at link time, before jupyter_server builds its
    GatewayClient from the same two sources."""
    url = serverapp.config.get("GatewayClient", {}).get("url") or os.environ.get(
        "JUPYTER_GATEWAY_URL"
    )
    return url if isinstance(url, str) and url else None


def install(serverapp: ServerApp) -> None:
    """At link time (before the server builds its managers): supervise its session manager
    and kernel websocket connections, on top of whatever classes are configured.

    Not when its kernels are a gateway's: there is no ZeroMQ here to supervise (the gateway
    holds the kernels), so jupyter_server's gateway classes stay exactly as they are."""
    url = gateway_url(serverapp)
    if url is not None:
        log.info(
            "Kernels run on the gateway at %s: notebooks and consoles take jupyter_server's path",
            url,
        )
        base = _configured(
            serverapp, "kernel_websocket_connection_class", GatewayWebSocketConnection
        )
        serverapp.kernel_websocket_connection_class = gateway_connection_class(base)
        return
    serverapp.session_manager_class = supervised(
        _configured(serverapp, "session_manager_class", SessionManager),
        SupervisedSessionManagerMixin,
        "SupervisedSessionManager",
    )
    base = _configured(
        serverapp, "kernel_websocket_connection_class", ZMQChannelsWebsocketConnection
    )
    if issubclass(base, ZMQChannelsWebsocketConnection):
        serverapp.kernel_websocket_connection_class = supervised(
            base, SupervisedWebsocketConnection, "SupervisedKernelWebsocketConnection"
        )
    else:
        log.warning(
            "Kernel websocket class %s is not ZMQ-based: notebook cells are not queued", base
        )


def connect(serverapp: ServerApp, mirror: JupyterSessions, settings: dict[str, Any]) -> None:
    """Once the supervisor exists: give the hooks their server's mirror (through its tornado
    ``settings``) and listen to its kernel actions."""
    settings[SETTINGS_KEY] = mirror
    if gateway_url(serverapp) is not None:
        return

    async def on_kernel_action(logger: Any, schema_id: str, data: dict) -> None:
        if data.get("status") == "success" and data.get("kernel_id"):
            mirror.on_kernel_action(data["kernel_id"], data.get("action"))

    serverapp.event_logger.add_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=on_kernel_action)
