"""What the MCP server and the stdio bridge agree on, importable without the server (the
bridge is a small stdio process: it must not load jupyter_server, tornado or ZeroMQ)."""

from __future__ import annotations

HOST = "127.0.0.1"  # the MCP listener's address (as Kallichore's)
SESSION_HEADER = "mcp-session-id"  # the SDK's streamable HTTP session header
BRIDGE_HEADERS = {  # what the stdio bridge says about itself (listed in GET /status → mcp)
    "pid": "x-session-ext-bridge-pid",
    "working_directory": "x-session-ext-bridge-cwd",
    "session_id": "x-session-ext-session-id",
}
TOKEN_ENV = "SESSION_EXT_MCP_TOKEN"  # the workspace's token, for the bridge (never on argv)
SESSION_ENV = "SESSION_EXT_SESSION_ID"  # the session an agent runs in, when it runs in one
