"""Kallichore's socket transport for a session's channels: a per-session unix socket.

A plain ``GET /sessions/{id}/channels`` answers the path of the session's socket (made on
first use, 0600, in the socket directory, named ``kc-<server pid>.<first 8 chars of the
id>.sock``). On it a client speaks the channels websocket protocol, either after an HTTP
upgrade (what Positron's ``ws`` client does with a ``ws+unix://`` URL; the bearer token is
checked) or raw from the first byte (no HTTP at all; the socket's 0600 mode is then the only
gate, as in Kallichore). A new connection displaces the session's other clients.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import stat
import tempfile
import urllib.parse
from collections.abc import Callable
from typing import Any

from session_ext.core.errors import SupervisorError
from session_ext.wire.messages import KernelMessage, kernel_event
from session_ext.wire.wsframe import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    FrameError,
    accept_key,
    close_frame,
    frame,
    read_message,
    text_frame,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT = 10.0
RAW_AFTER = 0.5  # seconds of silence after connecting: a raw client waiting to be spoken to


class SocketClient:
    """One connection on a session's socket: a client of the session (channels.py)."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer

    def send_frame(self, payload: bytes, routed: bool = False) -> bool:
        """(The transport buffers what it cannot send yet; a closing one takes nothing.)"""
        if self.writer.is_closing():
            return False
        self.writer.write(text_frame(payload))
        return True

    def deliver(self, msg: KernelMessage) -> None:
        self.send_frame(msg.frame, routed=True)

    def close_displaced(self, reason: str) -> None:
        self.send_frame(kernel_event(clientDisconnected=reason))
        if not self.writer.is_closing():
            self.writer.write(close_frame(1000, "displaced by another client"))
            self.writer.close()


class Source:
    """Exactly-n reads from a stream, after the bytes already peeked at."""

    def __init__(self, reader: asyncio.StreamReader, prefix: bytes = b""):
        self.reader = reader
        self.prefix = prefix

    async def readexactly(self, n: int) -> bytes:
        head, self.prefix = self.prefix[:n], self.prefix[n:]
        return head + (await self.reader.readexactly(n - len(head)) if n > len(head) else b"")


def http_response(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_error(status: str, code: str, message: str) -> bytes:
    body = json.dumps({"code": code, "message": message}).encode()
    return http_response(
        status,
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        },
        body,
    )


class ChannelSockets:
    """The per-session sockets of one server."""

    def __init__(self, directory: str, token: str):
        self.directory = directory
        self.token = token
        self._servers: dict[str, tuple[str, asyncio.AbstractServer]] = {}

    async def path_for(self, session: Any, lookup: Callable[[str], Any]) -> str:
        """The session's socket, made on first use; ``lookup`` finds the session again for
        each connection (404 once it is deleted)."""
        session_id = session.session_id
        known = self._servers.get(session_id)
        if known is not None and os.path.exists(known[0]):  # noqa: ASYNC240 (a stat of a local socket)
            return known[0]
        path = self._free_path(session_id)
        sock = _bind_private(path)
        server = await asyncio.start_unix_server(
            lambda r, w: self._serve(session_id, lookup, r, w), sock=sock
        )
        self._servers[session_id] = (path, server)
        return path

    def _free_path(self, session_id: str) -> str:
        taken = {path for path, _ in self._servers.values()}
        base = os.path.join(self.directory, f"kc-{os.getpid()}.{session_id[:8]}")
        path, n = f"{base}.sock", 1
        while path in taken:
            n += 1
            path = f"{base}-{n}.sock"
        return path

    def close_all(self) -> None:
        for path, server in self._servers.values():
            server.close()
            try:
                os.unlink(path)
            except OSError:
                pass
        self._servers.clear()

    async def _serve(
        self,
        session_id: str,
        lookup: Callable[[str], Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            source = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT)
            if source is None:
                return
            try:
                session = lookup(session_id)
            except SupervisorError as e:
                writer.write(text_frame(kernel_event(error=e.to_json())) + close_frame(1008))
                return
            await self._relay(session, source, writer)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except FrameError as e:
            if not writer.is_closing():
                writer.write(close_frame(1002, str(e)))
        finally:
            if not writer.is_closing():
                writer.close()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Source | None:
        """An HTTP upgrade if the connection starts with one, else raw frames (an HTTP
        client speaks first; a raw one may wait for the kernel's messages)."""
        try:
            first = await asyncio.wait_for(reader.readexactly(4), RAW_AFTER)
        except asyncio.TimeoutError:
            return Source(reader)
        if first != b"GET ":
            return Source(reader, first)
        try:
            raw = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            writer.write(
                json_error(
                    "431 Request Header Fields Too Large",
                    "bad_request",
                    "The upgrade request's headers are too large",
                )
            )
            return None
        request_line, *header_lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
        if not self._authorized(headers, target):
            writer.write(
                json_error(
                    "401 Unauthorized", "unauthorized", "Missing or invalid credentials (token)"
                )
            )
            return None
        key = headers.get("sec-websocket-key")
        if headers.get("upgrade", "").lower() != "websocket" or not key:
            writer.write(
                json_error(
                    "400 Bad Request",
                    "bad_request",
                    "Send a websocket upgrade request, or websocket frames",
                )
            )
            return None
        writer.write(
            http_response(
                "101 Switching Protocols",
                {
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Accept": accept_key(key),
                },
            )
        )
        return Source(reader)

    def _authorized(self, headers: dict[str, str], target: str) -> bool:
        if not self.token:  # --token none
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
            given = (query.get("token") or [""])[0]
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def _relay(self, session: Any, source: Source, writer: asyncio.StreamWriter) -> None:
        client = SocketClient(writer)
        session.attach(client, exclusive=True)
        try:
            while not writer.is_closing():
                opcode, payload = await read_message(source.readexactly, MAX_MESSAGE_BYTES)
                if opcode == CLOSE:
                    writer.write(close_frame(1000))
                    return
                if opcode == PING:
                    writer.write(frame(0xA, payload))
                elif opcode in (TEXT, BINARY):
                    session.handle_client_frame(client, payload)
        finally:
            session.detach(client)


def _bind_private(path: str) -> socket.socket:
    """A listening unix socket at ``path`` that is 0600 from the moment it has that name:
    bound in a private (0700) directory, chmod'ed there, then renamed into place."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.lexists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
        os.unlink(path)  # left by a server that died with this pid
    private = tempfile.mkdtemp(prefix=".kc-", dir=directory)
    staging = os.path.join(private, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(staging)
        os.chmod(staging, 0o600)
        sock.listen(16)
        sock.setblocking(False)
        os.rename(staging, path)
    except BaseException:
        sock.close()
        raise
    finally:
        if os.path.lexists(staging):
            os.unlink(staging)
        os.rmdir(private)
    return sock
