"""An MCP client as agents have it: the official SDK's streamable HTTP client and
ClientSession (no hand-written JSON-RPC)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOOL_NAMES = {
    "list_sessions",
    "start_session",
    "execute_code",
    "get_execution",
    "interrupt_session",
    "restart_session",
    "get_history",
}


@contextlib.asynccontextmanager
async def mcp_session(
    url: str, token: str, name: str = "test-agent"
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx2.Timeout(30, read=120)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
    ):
        info = types.Implementation(name=name, version="1.2.3")
        async with ClientSession(read, write, client_info=info) as session:
            await session.initialize()
            yield session


async def status_of(url: str, token: str) -> int:
    """The HTTP status of an initialize attempt with ``token`` (a raw probe of the auth gate)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(url, json=body, headers=headers)
        return response.status_code


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def images(result: types.CallToolResult) -> list[types.ImageContent]:
    return [c for c in result.content if isinstance(c, types.ImageContent)]
