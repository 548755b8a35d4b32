"""MCP for agents, in-process: workspaces over REST, the MCP server driven by the official
SDK's client, real kernels."""

from __future__ import annotations

import asyncio
import base64

import pytest

from ..support.helpers import WAIT
from ..support.mcp import TOOL_NAMES, images, mcp_session, status_of, text


async def register(api, name="project", **fields):
    return await api.ok("POST", "mcp/workspaces", {"display_name": name, **fields})


async def test_workspace_registration(api, jp_auth_header):
    ws = await register(api)
    assert ws["workspace_id"].startswith("project-")
    assert ws["url"] == f"http://127.0.0.1:{ws['port']}/mcp/{ws['workspace_id']}"
    assert ws["token"] != jp_auth_header["Authorization"].split()[-1]
    again = await register(api, workspace_id=ws["workspace_id"])
    assert again == ws  # same token, same URL
    given = "x" * 40
    other = await register(api, "other", workspace_id="fixed-id", token=given)
    assert other["token"] == given and other["port"] == ws["port"]
    bad = await register(api, "third", workspace_id="bad-token", token="short")
    assert bad["token"] != "short"
    status = await api.ok("GET", "status")
    assert status["mcp"]["active"] and status["mcp"]["port"] == ws["port"]
    ids = {w["id"] for w in status["mcp"]["workspaces"]}
    assert {ws["workspace_id"], "fixed-id", "bad-token", "jupyter"} <= ids
    assert (await api.ok("GET", f"mcp/workspaces/{ws['workspace_id']}")) == ws
    await api.ok("DELETE", "mcp/workspaces/fixed-id")
    assert (await api.call("DELETE", "mcp/workspaces/fixed-id")).code == 404
    assert (await api.call("GET", "mcp/workspaces/fixed-id")).code == 404
    assert await status_of(other["url"], given) == 401  # its token is invalid now
    r = await api.call("POST", "mcp/workspaces", {"workspace_id": "x y", "display_name": "a"})
    assert r.code == 400 and "workspace_id" in r.json["message"]
    r = await api.call("POST", "mcp/workspaces", {"display_name": 3})
    assert r.code == 400
    r = await api.call("POST", "mcp/workspaces", {"display_name": "a"}, headers={})
    assert r.code == 401


async def test_tokens_are_scoped(api, jp_auth_header):
    a = await register(api, "a")
    b = await register(api, "b")
    server_token = jp_auth_header["Authorization"].split()[-1]
    assert await status_of(a["url"], server_token) == 401
    assert await status_of(a["url"], "wrong" * 10) == 401
    assert await status_of(a["url"], None) == 401
    assert await status_of(a["url"], b["token"]) == 401  # another workspace's token
    assert await status_of(a["url"], a["token"]) == 200
    # a workspace token opens nothing of the REST API
    r = await api.call("GET", "status", headers={"Authorization": f"Bearer {a['token']}"})
    assert r.code == 401
    sid_a = await api.create(workspace_id=a["workspace_id"])
    await api.create(workspace_id=b["workspace_id"])
    async with mcp_session(b["url"], b["token"]) as session:
        listed = await session.call_tool("list_sessions", {})
        ids = [s["session_id"] for s in listed.structured_content["sessions"]]
        assert sid_a not in ids and len(ids) == 1
        result = await session.call_tool("execute_code", {"session_id": sid_a, "code": "1"})
        assert result.is_error and "No session" in text(result)


async def test_tools_end_to_end(api):
    ws = await register(api)
    sid = await api.started(workspace_id=ws["workspace_id"])
    async with mcp_session(ws["url"], ws["token"], name="claude-test") as session:
        tools = (await session.list_tools()).tools
        assert {t.name for t in tools} == TOOL_NAMES
        by_name = {t.name: t for t in tools}
        assert by_name["execute_code"].input_schema["required"] == ["session_id", "code"]
        assert "timeout_seconds" in by_name["execute_code"].input_schema["properties"]
        assert all(t.description for t in tools)

        listed = await session.call_tool("list_sessions", {})
        [entry] = listed.structured_content["sessions"]
        assert entry["session_id"] == sid and entry["status"] == "idle"

        started = await session.call_tool("start_session", {"display_name": "agent's"})
        assert not started.is_error, text(started)
        new_sid = started.structured_content["session_id"]
        assert started.structured_content["status"] == "idle"

        result = await session.call_tool(
            "execute_code", {"session_id": new_sid, "code": "print('hello agent')\n6*7"}
        )
        assert not result.is_error
        assert "hello agent" in text(result) and "42" in text(result)
        assert result.structured_content["status"] == "ok"
        assert result.structured_content["execution_count"] == 1

        result = await session.call_tool(
            "execute_code", {"session_id": new_sid, "code": "def f():\n  1/0\nf()"}
        )
        assert result.is_error
        assert result.structured_content["status"] == "error"
        error = result.structured_content["error"]
        assert error["name"] == "ZeroDivisionError"
        assert any("f()" in line for line in error["traceback"])
        assert "\x1b[" not in text(result)  # no terminal colours for agents

        history = await session.call_tool("get_history", {"session_id": new_sid})
        entries = history.structured_content["entries"]
        assert [e["source"] for e in entries] == ["agent", "agent"]
        assert {e["agent"] for e in entries} == {"claude-test"}

        rest_history = await api.ok("GET", f"sessions/{new_sid}/history")
        assert rest_history[0]["source"] == "agent" and rest_history[0]["agent"] == "claude-test"

        status = await api.ok("GET", "status")
        assert status["mcp"]["request_count"] == 5  # tool calls
        [mine] = [w for w in status["mcp"]["workspaces"] if w["id"] == ws["workspace_id"]]
        [client] = mine["clients"]
        assert client["name"] == "claude-test" and client["version"] == "1.2.3"


async def test_images_and_bounded_output(api):
    pytest.importorskip("PIL")
    ws = await register(api)
    sid = await api.started(workspace_id=ws["workspace_id"])
    async with mcp_session(ws["url"], ws["token"]) as session:
        code = (
            "from PIL import Image\nfrom IPython.display import display\n"
            "display(Image.new('RGB', (20, 10), 'red'))"
        )
        result = await session.call_tool("execute_code", {"session_id": sid, "code": code})
        [image] = images(result)
        assert image.mime_type == "image/png"
        assert base64.b64decode(image.data).startswith(b"\x89PNG")

        code = "print('HEAD' + 'x' * 10_000_000 + 'TAIL')"
        result = await session.call_tool(
            "execute_code", {"session_id": sid, "code": code, "timeout_seconds": 60}
        )
        out = text(result)
        assert result.structured_content["status"] == "ok"
        assert out.startswith("HEAD") and "TAIL" in out[-200:]
        assert len(out) < 25_000 and "characters omitted" in out
        assert result.structured_content["truncated"]


async def test_timeout_then_poll(api):
    ws = await register(api)
    sid = await api.started(workspace_id=ws["workspace_id"])
    async with mcp_session(ws["url"], ws["token"]) as session:
        code = (
            "import time\nfor i in range(10):\n    print('step', i, flush=True)\n    time.sleep(1)"
        )
        result = await session.call_tool(
            "execute_code", {"session_id": sid, "code": code, "timeout_seconds": 1}
        )
        facts = result.structured_content
        assert facts["status"] == "running" and facts["execution_id"]
        assert "step 0" in text(result) and "step 9" not in text(result)
        queue = await api.ok("GET", f"sessions/{sid}/queue")
        assert queue["active"]["msg_id"] == facts["execution_id"]
        assert queue["active"]["source"] == "agent"
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            polled = await session.call_tool(
                "get_execution",
                {"session_id": sid, "execution_id": facts["execution_id"], "wait_seconds": 2},
            )
            if polled.structured_content["status"] != "running":
                break
            assert asyncio.get_running_loop().time() < deadline
        assert polled.structured_content["status"] == "ok"
        assert "step 9" in text(polled)


async def test_interrupt_and_restart(api):
    ws = await register(api)
    sid = await api.started(workspace_id=ws["workspace_id"])
    async with mcp_session(ws["url"], ws["token"]) as session:
        await session.call_tool("execute_code", {"session_id": sid, "code": "x = 5"})
        running = await session.call_tool(
            "execute_code", {"session_id": sid, "code": "while True: pass", "timeout_seconds": 1}
        )
        assert running.structured_content["status"] == "running"
        interrupted = await session.call_tool("interrupt_session", {"session_id": sid})
        assert not interrupted.is_error, text(interrupted)
        polled = await session.call_tool(
            "get_execution",
            {
                "session_id": sid,
                "execution_id": running.structured_content["execution_id"],
                "wait_seconds": 20,
            },
        )
        assert polled.structured_content["status"] == "error"
        assert polled.structured_content["error"]["name"] == "KeyboardInterrupt"
        restarted = await session.call_tool("restart_session", {"session_id": sid})
        assert not restarted.is_error, text(restarted)
        result = await session.call_tool(
            "execute_code", {"session_id": sid, "code": "'x' in dir()"}
        )
        assert "False" in text(result)


async def test_channel_announces_agents(api):
    ws = await register(api)
    sid = await api.started(workspace_id=ws["workspace_id"])
    channel = await api.ws(f"mcp/workspaces/{ws['workspace_id']}/channel")
    await channel.until(lambda m: m["event"] == "connected")
    status = await api.ok("GET", "status")
    [mine] = [w for w in status["mcp"]["workspaces"] if w["id"] == ws["workspace_id"]]
    assert mine["connected"]
    async with mcp_session(ws["url"], ws["token"], name="announcer") as session:
        await session.call_tool("execute_code", {"session_id": sid, "code": "1+1"})
        connected = await channel.until(lambda m: m["event"] == "client_connected")
        assert connected["client"]["name"] == "announcer"
        called = await channel.until(lambda m: m["event"] == "tool_called")
        assert called["tool"] == "execute_code" and called["session_id"] == sid
    await channel.until(lambda m: m["event"] == "client_disconnected")
    channel.close()
    for _ in range(100):
        status = await api.ok("GET", "status")
        [mine] = [w for w in status["mcp"]["workspaces"] if w["id"] == ws["workspace_id"]]
        if not mine["connected"]:
            break
        await asyncio.sleep(0.05)
    assert not mine["connected"] and not mine["clients"]
    r = await api.call("GET", "mcp/workspaces/nope/channel")
    assert r.code in (400, 404)


async def test_last_deregistration_stops_listener(api, extension):
    extension.mcp.registry.workspaces.pop("jupyter", None)  # (JupyterLab's keeps it running)
    ws = await register(api)
    assert (await api.ok("GET", "status"))["mcp"]["active"]
    await api.ok("DELETE", f"mcp/workspaces/{ws['workspace_id']}")
    status = await api.ok("GET", "status")
    assert not status["mcp"]["active"] and status["mcp"]["port"] == 0


async def test_stdio_bridge(api, tmp_path):
    """An agent that speaks only stdio, through `session-ext-mcp-bridge URL` (the SDK's
    stdio client launching it), listed with its pid and working directory."""
    import os
    import sys

    import mcp_types as types
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    ws = await register(api)
    sid = await api.started(workspace_id=ws["workspace_id"])
    env = {
        **os.environ,
        "SESSION_EXT_MCP_TOKEN": ws["token"],
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "session_ext.mcp.bridge", ws["url"]],
        env=env,
        cwd=str(tmp_path),
    )
    async with stdio_client(params) as (read, write):
        info = types.Implementation(name="stdio-agent", version="9.9")
        async with ClientSession(read, write, client_info=info) as session:
            await asyncio.wait_for(session.initialize(), WAIT)
            tools = await asyncio.wait_for(session.list_tools(), WAIT)
            assert {t.name for t in tools.tools} == TOOL_NAMES
            result = await asyncio.wait_for(
                session.call_tool(
                    "execute_code", {"session_id": sid, "code": "print('via stdio')"}
                ),
                WAIT,
            )
            assert "via stdio" in text(result)
            status = await api.ok("GET", "status")
            [mine] = [w for w in status["mcp"]["workspaces"] if w["id"] == ws["workspace_id"]]
            [client] = mine["clients"]
            assert client["name"] == "stdio-agent" and client["version"] == "9.9"
            assert client["working_directory"] == str(tmp_path)
            assert isinstance(client["pid"], int) and client["pid"] != os.getpid()
    history = await api.ok("GET", f"sessions/{sid}/history")
    assert history[-1]["agent"] == "stdio-agent" and history[-1]["source"] == "agent"
    for _ in range(100):  # the bridge ended its MCP session when it exited
        status = await api.ok("GET", "status")
        [mine] = [w for w in status["mcp"]["workspaces"] if w["id"] == ws["workspace_id"]]
        if not mine["clients"]:
            break
        await asyncio.sleep(0.1)
    assert not mine["clients"]


async def test_jupyter_workspace_has_the_notebooks(api, jp_fetch, jp_root_dir):
    """JupyterLab's notebooks and consoles form the 'jupyter' workspace (on by default
    inside another app); sessions created over REST without a workspace are not in it."""
    from ..support.kernel_ws import StockSocket, open_notebook

    (jp_root_dir / "work").mkdir()
    model = await open_notebook(jp_fetch)
    socket = await StockSocket.open(api, model["kernel"]["id"])  # as JupyterLab does
    await api.wait_status(model["id"], "idle")
    loose = await api.create()
    ws = await api.ok("GET", "mcp/workspaces/jupyter")
    async with mcp_session(ws["url"], ws["token"], name="lab-agent") as session:
        listed = await session.call_tool("list_sessions", {})
        [entry] = listed.structured_content["sessions"]
        assert entry["session_id"] == model["id"] and entry["session_mode"] == "notebook"
        assert entry["notebook_uri"].endswith("work/analysis.ipynb")
        result = await session.call_tool(
            "execute_code", {"session_id": model["id"], "code": "import os; os.getcwd()"}
        )
        assert str(jp_root_dir / "work") in text(result)
        refused = await session.call_tool("execute_code", {"session_id": loose, "code": "1"})
        assert refused.is_error
    [entry] = await api.ok("GET", f"sessions/{model['id']}/history")
    assert entry["source"] == "agent" and entry["agent"] == "lab-agent"
    socket.conn.close()
    await jp_fetch("api", "sessions", model["id"], method="DELETE")
