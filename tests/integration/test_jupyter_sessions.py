"""Notebooks and consoles of jupyter_server (/api/sessions) as ActiveSessions, with their
execute requests queued by the supervisor, over both kernel websocket protocols."""

import asyncio
import json

import pytest

from ..support.kernel_ws import StockSocket, open_notebook, queue_of


async def test_notebook_sessions_are_mirrored(api, jp_fetch, jp_root_dir):
    (jp_root_dir / "work").mkdir()
    model = await open_notebook(jp_fetch)
    session = await api.session(model["id"])  # listed at once, attached once a client talks
    assert session["status"] == "starting" and session["session_mode"] == "notebook"
    ws = await StockSocket.open(api, model["kernel"]["id"])  # as JupyterLab does
    session = await api.wait_status(model["id"], "idle")
    assert (
        session["session_mode"] == "notebook" and session["display_name"] == "Python 3 (ipykernel)"
    )
    assert session["kernel_id"] == model["kernel"]["id"] and session["kernel_name"] == "python3"
    assert session["notebook_uri"] == (jp_root_dir / "work" / "analysis.ipynb").as_uri()
    assert session["metadata"]["path"] == "work/analysis.ipynb"
    assert session["working_directory"] == str(jp_root_dir / "work")
    assert session["kernel_info"]["implementation"] == "ipython"
    # rename (PATCH path) follows
    await jp_fetch(
        "api",
        "sessions",
        model["id"],
        method="PATCH",
        body=json.dumps({"path": "work/renamed.ipynb"}),
    )
    session = await api.session(model["id"])
    assert session["notebook_uri"].endswith("/work/renamed.ipynb")
    # REST execute works on it too
    reply = await api.execute(model["id"], "1 + 1")
    assert reply["data"]["text/plain"] == "2"
    ws.conn.close()
    await jp_fetch("api", "sessions", model["id"], method="DELETE")
    for _ in range(50):
        if (await api.call("GET", f"sessions/{model['id']}")).code == 404:
            break
        await asyncio.sleep(0.1)
    assert (await api.call("GET", f"sessions/{model['id']}")).code == 404


async def test_console_sessions_are_mirrored(api, jp_fetch):
    body = {
        "path": "console-1",
        "name": "Console 1",
        "type": "console",
        "kernel": {"name": "python3"},
    }
    model = json.loads(
        (await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))).body
    )
    ws = await StockSocket.open(api, model["kernel"]["id"])
    session = await api.wait_status(model["id"], "idle")
    assert session["session_mode"] == "console" and session["notebook_uri"] is None
    ws.conn.close()
    await jp_fetch("api", "sessions", model["id"], method="DELETE")


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_cells_from_the_stock_websocket_go_through_the_queue(api, jp_fetch, v1):
    model = await open_notebook(jp_fetch, path="queued.ipynb")
    session_id, kernel_id = model["id"], model["kernel"]["id"]
    ws = await StockSocket.open(api, kernel_id, v1=v1)
    await api.wait_status(session_id, "idle")
    slow = ws.execute("import time; time.sleep(1.5); print('slow done')")
    keep = ws.execute("kept = True")
    cancel = ws.execute("cancelled = True")
    await api.wait_status(session_id, "busy")
    queue = await queue_of(api, session_id)
    for _ in range(20):
        if queue["length"] == 2:
            break
        await asyncio.sleep(0.05)
        queue = await queue_of(api, session_id)
    assert queue["active"]["msg_id"] == slow
    assert [p["code"] for p in queue["pending"]] == ["kept = True", "cancelled = True"]
    await api.ok("DELETE", f"sessions/{session_id}/queue/{cancel}")
    assert (await ws.reply_to(cancel))["content"]["status"] == "aborted"
    await ws.idle_of(cancel)  # the notebook's cell finishes as after an error
    assert (await ws.reply_to(slow))["content"]["status"] == "ok"
    assert (await ws.reply_to(keep))["content"]["status"] == "ok"
    reply = await api.execute(session_id, "print('kept' in globals(), 'cancelled' in globals())")
    assert reply["output"][0]["text"] == "True False\n"
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")


async def test_jupyterlab_interrupt_clears_the_queue(api, jp_fetch):
    model = await open_notebook(jp_fetch, path="interrupt.ipynb")
    session_id, kernel_id = model["id"], model["kernel"]["id"]
    ws = await StockSocket.open(api, kernel_id)
    await api.wait_status(session_id, "idle")
    slow = ws.execute("import time; time.sleep(30)")
    queued = ws.execute("ran = True")
    await ws.until(lambda m: m["header"]["msg_type"] == "execute_input")
    await asyncio.sleep(0.3)
    await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
    assert (await ws.reply_to(slow))["content"]["ename"] == "KeyboardInterrupt"
    assert (await ws.reply_to(queued))["content"]["status"] == "aborted"
    assert (await queue_of(api, session_id))["length"] == 0
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")


async def test_jupyterlab_restart_answers_the_queue_and_reattaches(api, jp_fetch):
    model = await open_notebook(jp_fetch, path="restart.ipynb")
    session_id, kernel_id = model["id"], model["kernel"]["id"]
    ws = await StockSocket.open(api, kernel_id)
    before = await api.wait_status(session_id, "idle")
    ws.execute("import time; time.sleep(30)")
    queued = ws.execute("1")
    await api.wait_status(session_id, "busy")
    await asyncio.sleep(0.2)
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    assert (await ws.reply_to(queued))["content"]["status"] == "aborted"
    after = await api.wait_status(session_id, "idle")
    assert after["process_id"] != before["process_id"]
    reply = await api.execute(session_id, "'fresh'")
    assert reply["data"]["text/plain"] == "'fresh'"
    # and our restart goes through jupyter_server's kernel manager for its kernels
    await api.ok("POST", f"sessions/{session_id}/restart", timeout=60)
    assert (await api.wait_status(session_id, "idle"))["process_id"] != after["process_id"]
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")
