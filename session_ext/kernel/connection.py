"""The supervisor's own ZeroMQ connection to one kernel: shell, control, stdin (DEALER, one
identity), iopub (SUB, no high-water mark) and a heartbeat watcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session
from zmq.eventloop.zmqstream import ZMQStream
from zmq.utils.monitor import parse_monitor_message

from session_ext.core import internals
from session_ext.wire.messages import InvalidSignature, KernelMessage

log = logging.getLogger(__name__)


STDIN_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
CONNECTION_FIELDS = (
    "control_port",
    "shell_port",
    "stdin_port",
    "hb_port",
    "iopub_port",
    "signature_scheme",
    "key",
    "transport",
    "ip",
)


def connection_info(km: Any) -> dict[str, Any]:
    """A kernel's connection info as the API shows it (Kallichore's fields; the key a str)."""
    info = km.get_connection_info()
    out = {k: info[k] for k in CONNECTION_FIELDS}
    if isinstance(out["key"], bytes):
        out["key"] = out["key"].decode()
    return out


def _stream(
    km: Any, channel: str, kind: int, identity: bytes | None = None, monitor: int = 0
) -> tuple[ZMQStream, ZMQStream | None]:
    """A socket to one of the kernel's channels, as jupyter_client's
    ``_create_connected_socket`` makes it, but from the process's own ZeroMQ context: the
    kernel manager destroys its context when jupyter_server shuts the kernel down, which
    would close our sockets under their streams (tornado then keeps stale handlers, "fd
    added twice"). iopub has no receive high-water mark: with the default (1000) ZeroMQ
    silently drops output when the server falls behind a chatty kernel, and a lost ``idle``
    would leave the execution queue waiting forever."""
    sock = zmq.Context.instance().socket(
        kind, socket_class=zmq.Socket
    )  # ZMQStream wants a plain Socket
    sock.linger = 1000
    if identity is not None:
        sock.identity = identity
    if km.curve_publickey is not None:
        sock.curve_secretkey = km.curve_secretkey
        sock.curve_publickey = km.curve_publickey
        sock.curve_serverkey = km.curve_publickey
    if kind == zmq.SUB:
        sock.rcvhwm = 0
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    events = ZMQStream(sock.get_monitor_socket(monitor)) if monitor else None  # before connect
    sock.connect(internals.channel_url(km, channel))
    return ZMQStream(sock), events


class KernelConnection:
    """The supervisor's ZeroMQ sockets to one kernel: shell, control, stdin (DEALER, one
    identity), iopub (SUB), and a heartbeat watcher.

    Every verified message is handed to ``on_message``; sending signs with the kernel's key.
    """

    def __init__(
        self,
        km: Any,
        session: Session,
        on_message: Callable[[KernelMessage], None],
    ):
        self.km = km
        self.session = session
        self._on_message = on_message
        identity = session.bsession
        # The kernel's stdin ROUTER drops an input_request for a peer whose connection is
        # not up yet (the cell would wait for input forever): stdin's handshake is watched.
        stdin, self._stdin_events = _stream(km, "stdin", zmq.DEALER, identity, STDIN_EVENTS)
        self.stdin_connected = False
        self._stdin_events.on_recv(self._on_stdin_event)
        self.streams: dict[str, ZMQStream] = {
            "shell": _stream(km, "shell", zmq.DEALER, identity)[0],
            "control": _stream(km, "control", zmq.DEALER, identity)[0],
            "stdin": stdin,
            "iopub": _stream(km, "iopub", zmq.SUB)[0],
        }
        for channel, stream in self.streams.items():
            stream.on_recv(self._receiver(channel))
        self._heartbeat_task: asyncio.Task | None = None

    def _on_stdin_event(self, frames: list[bytes]) -> None:
        event = parse_monitor_message(frames)["event"]
        self.stdin_connected = event == zmq.EVENT_HANDSHAKE_SUCCEEDED

    async def wait_for_stdin(self, timeout: float) -> bool:
        """Until stdin's connection is up (True), or ``timeout`` seconds (False)."""
        for _ in range(max(int(timeout * 100), 1)):
            if self.stdin_connected:
                return True
            await asyncio.sleep(0.01)
        return self.stdin_connected

    def _receiver(self, channel: str) -> Callable[[list[bytes]], None]:
        session, on_message = self.session, self._on_message

        def receive(msg_list: list[bytes]) -> None:
            try:
                msg = KernelMessage.from_zmq(channel, msg_list, session)
            except (InvalidSignature, ValueError) as e:
                log.warning("Dropping a bad %s message from the kernel: %s", channel, e)
                return
            on_message(msg)

        return receive

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        """Sign and send; unlike Session.send this leaves ``msg`` as it was (it is queued
        and shown in ``execution_queue``)."""
        frames = self.session.serialize(msg)
        frames.extend(msg.get("buffers") or ())
        self.streams[channel].send_multipart(frames, copy=False)

    def start_heartbeat(
        self,
        interval: float,
        timeout: float,
        on_change: Callable[[bool], None],
    ) -> None:
        if self._heartbeat_task is not None:
            return  # already watching (a re-handshake on the same connection)
        self._heartbeat_task = asyncio.ensure_future(self._heartbeat(interval, timeout, on_change))

    async def _heartbeat(
        self, interval: float, timeout: float, on_change: Callable[[bool], None]
    ) -> None:
        """Ping the kernel's heartbeat; ``on_change(False)`` after ``timeout`` seconds without
        an answer, ``on_change(True)`` when the late answer finally comes."""
        ctx = zmq.asyncio.Context.instance()
        url = internals.channel_url(self.km, "hb")
        alive = True
        sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(url)
        try:
            while True:
                await sock.send(b"ping")
                if await sock.poll(timeout * 1000):
                    await sock.recv()
                else:
                    if alive:
                        alive = False
                        on_change(False)
                    # Keep waiting on the same ping: a stopped kernel answers it on resume.
                    while not await sock.poll(interval * 1000):
                        pass
                    await sock.recv()
                if not alive:
                    alive = True
                    on_change(True)
                await asyncio.sleep(interval)
        except asyncio.CancelledError:
            pass
        finally:
            sock.close(linger=0)

    def close(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
        if not self._stdin_events.closed():
            self._stdin_events.on_recv(None)
            self.streams["stdin"].socket.disable_monitor()
            self._stdin_events.close(linger=0)
        for stream in self.streams.values():
            if not stream.closed():
                stream.on_recv(None)
                stream.close(linger=0)
        self.streams.clear()
