"""``session-ext-mcp-bridge URL``: the stdio bridge, for agents that only speak MCP over
stdio. It forwards every message between its stdin/stdout and a workspace's MCP URL
(streamable HTTP, the SDK's transports on both sides), with the workspace's token from the
environment (``SESSION_EXT_MCP_TOKEN``: never on a command line, where other users could see
it). It tells the server its pid and working directory, so the agent is listed in ``GET
/status`` → ``mcp`` with them; and ``SESSION_EXT_SESSION_ID``, when set (an agent running
inside a session's kernel), as the session it runs in.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server

from session_ext._version import __version__
from session_ext.mcp.protocol import BRIDGE_HEADERS, SESSION_ENV, TOKEN_ENV

log = logging.getLogger("session_ext.mcp.bridge")


def bridge_headers(token: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        BRIDGE_HEADERS["pid"]: str(os.getpid()),
        BRIDGE_HEADERS["working_directory"]: os.getcwd(),
    }
    if os.environ.get(SESSION_ENV):
        headers[BRIDGE_HEADERS["session_id"]] = os.environ[SESSION_ENV]
    return headers


async def run_bridge(url: str, token: str) -> None:
    async with (
        # (the SDK's own timeouts: a response stream may stay open a long time)
        httpx2.AsyncClient(
            headers=bridge_headers(token), timeout=httpx2.Timeout(30, read=300)
        ) as http,
        streamable_http_client(url, http_client=http) as (http_read, http_write),
        stdio_server() as (stdio_read, stdio_write),
        anyio.create_task_group() as tasks,
    ):

        async def to_server() -> None:
            async with http_write:
                async for message in stdio_read:
                    if isinstance(message, Exception):
                        log.warning("Not an MCP message on stdin: %s", message)
                        continue
                    await http_write.send(message)
            tasks.cancel_scope.cancel()  # the agent has gone: end its MCP session

        async def to_agent() -> None:
            async with stdio_write:
                async for message in http_read:
                    if isinstance(message, Exception):
                        log.warning("From %s: %s", url, message)
                        continue
                    await stdio_write.send(message)
            tasks.cancel_scope.cancel()

        tasks.start_soon(to_server)
        tasks.start_soon(to_agent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="session-ext-mcp-bridge",
        description="Bridge an MCP client speaking stdio to a session_ext MCP workspace URL. "
        f"The workspace's token is read from ${TOKEN_ENV}.",
    )
    parser.add_argument("url", help="the workspace's MCP URL (http://127.0.0.1:<port>/mcp/<id>)")
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="session-ext-mcp-bridge: %(message)s"
    )
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        print(f"session-ext-mcp-bridge: set {TOKEN_ENV} to the workspace's token", file=sys.stderr)
        return 2
    try:
        anyio.run(run_bridge, args.url, token)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
