"""MCP workspaces across a restart of a real `jupyter session-ext` (durable mode): the
workspace, its token and its URL survive; re-registering with the id and token keeps them;
the agent reaches the re-attached kernel."""

from __future__ import annotations

import signal

from ..support.mcp import mcp_session, status_of, text


async def test_workspace_survives_a_server_restart(server):
    server.start()
    ws = server.ok("POST", "mcp/workspaces", {"display_name": "durable project"})
    assert server.ok("GET", "status")["mcp"]["port"] == ws["port"]
    server.ok(
        "PUT",
        "sessions",
        {"session_id": "kept", "kernel_name": "python3", "workspace_id": ws["workspace_id"]},
    )
    model = server.ok("GET", "sessions/kept")
    server.ok("POST", "sessions/kept/start", timeout=60)
    server.kernel_pids.add(server.ok("GET", "sessions/kept")["process_id"])
    assert model["status"] == "uninitialized"
    async with mcp_session(ws["url"], ws["token"]) as session:
        result = await session.call_tool("execute_code", {"session_id": "kept", "code": "x = 41"})
        assert result.structured_content["status"] == "ok", text(result)

    server.stop(signal.SIGTERM)
    server.start()

    # Known again at once (stored), on the same port: the URL agents were given still works.
    status = server.ok("GET", "status")["mcp"]
    assert status["active"] and status["port"] == ws["port"]
    assert ws["workspace_id"] in {w["id"] for w in status["workspaces"]}
    again = server.ok(
        "POST",
        "mcp/workspaces",
        {
            "workspace_id": ws["workspace_id"],
            "display_name": "durable project",
            "token": ws["token"],
        },
    )
    assert again == ws
    assert await status_of(ws["url"], server.info["bearer_token"]) == 401
    async with mcp_session(ws["url"], ws["token"]) as session:
        listed = await session.call_tool("list_sessions", {})
        assert [s["session_id"] for s in listed.structured_content["sessions"]] == ["kept"]
        result = await session.call_tool("execute_code", {"session_id": "kept", "code": "x + 1"})
        assert "42" in text(result)
    history = server.ok("GET", "sessions/kept/history")
    assert [h["source"] for h in history] == ["agent", "agent"]
    server.ok("DELETE", "sessions/kept?force=true")


async def test_re_registering_with_token_after_forgetting(server):
    """A server that does not know the workspace (deregistered, or never stored) takes the
    id and token it was given again, as Positron's client re-registers after a restart."""
    server.start()
    ws = server.ok("POST", "mcp/workspaces", {"display_name": "p"})
    server.ok("DELETE", f"mcp/workspaces/{ws['workspace_id']}")
    status = server.ok("GET", "status")["mcp"]
    assert not status["active"] and status["port"] == 0  # the last one: the listener stopped
    server.stop(signal.SIGTERM)
    server.start()
    assert not server.ok("GET", "status")["mcp"]["active"]  # nothing stored
    again = server.ok(
        "POST",
        "mcp/workspaces",
        {
            "workspace_id": ws["workspace_id"],
            "display_name": "p",
            "token": ws["token"],
            "preferred_port": ws["port"],
        },
    )
    assert again["token"] == ws["token"] and again["workspace_id"] == ws["workspace_id"]
    assert await status_of(again["url"], ws["token"]) == 200
