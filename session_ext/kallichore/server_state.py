"""The server state a Kallichore client reads to find and authenticate to the supervisor:
written as the connection file, and sent once over a client's handshake socket.

``{port?, base_path?, server_path, server_pid, bearer_token, server_id, log_path,
transport, socket_path?}``. Over TCP ``base_path`` is an absolute URL (Positron hands it
verbatim to its generated client); over a unix socket there is no ``base_path`` (a client
that sees one picks TCP) and the API is answered at the socket's root.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from session_ext.core.private import open_private

HANDSHAKE_TIMEOUT = 10.0  # seconds; Positron itself waits 10 s for the payload


def http_host(ip: str) -> str:
    """The host part of a URL for the address the server listens on."""
    if ip in ("", "0.0.0.0", "*", "::"):
        return "127.0.0.1"
    return f"[{ip}]" if ":" in ip else ip


def server_state(
    *,
    ip: str,
    port: int,
    sock: str,
    api_path: str,
    token: str,
    server_id: str,
    log_path: str | None,
) -> dict[str, Any]:
    """The state document; ``api_path`` is where the API lives over TCP (e.g. /supervisor)."""
    state: dict[str, Any] = {
        "server_path": os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else sys.executable,
        "server_pid": os.getpid(),
        "bearer_token": token,
        "server_id": server_id,
        "log_path": log_path,
    }
    if sock:
        state.update(transport="socket", socket_path=sock)
    else:
        base = f"http://{http_host(ip)}:{port}{api_path}".rstrip("/")
        state.update(transport="tcp", port=port, base_path=base)
    return state


def write_connection_file(path: str, state: dict[str, Any]) -> None:
    """Written to a 0600 temporary file (it holds the token) and renamed into place."""
    tmp = f"{path}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    with open(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


async def send_handshake(
    path: str, state: dict[str, Any], timeout: float = HANDSHAKE_TIMEOUT
) -> None:
    """Connect once to the client's unix socket, write one JSON document, close."""

    async def send() -> None:
        _, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(json.dumps(state).encode())
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.wait_for(send(), timeout)
