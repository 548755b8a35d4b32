"""Notebook sessions under every kernel manager jupyter_server supports — the synchronous
MappingKernelManager, the async one, and the async one with pending kernels: /api/sessions
answers without waiting on the supervisor, /api/kernels says what stock says, and a
notebook's cells are queued, cancelled and interrupted through the stock websocket."""

import asyncio
import json
import time

import pytest

from ..support.helpers import server_config
from ..support.kernel_ws import StockSocket, open_notebook, queue_of

KM = "jupyter_server.services.kernels.kernelmanager."
MANAGERS = {
    "sync": {"kernel_manager_class": KM + "MappingKernelManager"},
    "async": {"kernel_manager_class": KM + "AsyncMappingKernelManager"},
    "pending": {"kernel_manager_class": KM + "AsyncMappingKernelManager"},
}


@pytest.fixture(params=list(MANAGERS))
def jp_server_config(request):
    config = server_config(**MANAGERS[request.param])
    if request.param == "pending":
        config["AsyncMappingKernelManager"] = {"use_pending_kernels": True}
    return config


async def test_a_notebook_cell_queued_cancelled_and_interrupted(api, jp_fetch, jp_serverapp):
    began = time.monotonic()
    model = await open_notebook(jp_fetch, path="managed.ipynb")
    assert time.monotonic() - began < 10  # never the supervisor's 30 s connection timeout
    session_id, kernel_id = model["id"], model["kernel"]["id"]
    assert (await api.session(session_id))["session_mode"] == "notebook"  # listed at once
    ws = await StockSocket.open(api, kernel_id)  # as JupyterLab does
    await api.wait_status(session_id, "idle")
    slow = ws.execute("import time; time.sleep(30)")
    kept = ws.execute("kept = True")
    cancelled = ws.execute("cancelled = True")
    await ws.until(lambda m: m["header"]["msg_type"] == "execute_input")
    assert (await api.session(session_id))["status"] == "busy"
    for _ in range(40):
        if (await queue_of(api, session_id))["length"] == 2:
            break
        await asyncio.sleep(0.05)
    await api.ok("DELETE", f"sessions/{session_id}/queue/{cancelled}")
    assert (await ws.reply_to(cancelled))["content"]["status"] == "aborted"
    await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
    assert (await ws.reply_to(slow))["content"]["ename"] == "KeyboardInterrupt"
    assert (await ws.reply_to(kept))["content"]["status"] == "aborted"
    assert (await queue_of(api, session_id))["length"] == 0
    reply = await api.execute(session_id, "print('kept' in globals(), 'cancelled' in globals())")
    assert reply["output"][0]["text"] == "False False\n"  # neither ran: cancelled, interrupted
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")


async def test_kernels_state_after_patching_a_session_onto_a_new_kernel(api, jp_fetch):
    model = await open_notebook(jp_fetch, path="patched.ipynb")
    ws = await StockSocket.open(api, model["kernel"]["id"])
    await api.wait_status(model["id"], "idle")
    ws.conn.close()
    r = await jp_fetch(
        "api",
        "sessions",
        model["id"],
        method="PATCH",
        body=json.dumps({"kernel": {"name": "python3"}}),
    )
    patched = json.loads(r.body)
    new_kernel = patched["kernel"]["id"]
    assert new_kernel != model["kernel"]["id"]
    # what stock reports for a fresh kernel nobody has talked to yet
    await asyncio.sleep(1)  # time for the supervisor to attach, were it to talk first
    kernel = json.loads((await jp_fetch("api", "kernels", new_kernel)).body)
    assert kernel["execution_state"] == "starting"
    session = await api.session(model["id"])
    assert session["kernel_id"] == new_kernel and session["status"] == "starting"
    ws = await StockSocket.open(api, new_kernel)
    assert (await api.wait_status(model["id"], "idle"))["kernel_id"] == new_kernel
    ws.conn.close()
    await jp_fetch("api", "sessions", model["id"], method="DELETE")
    # jupyter_server shuts the old kernel down beside the PATCH (not awaited): the test ends
    # once it is gone, or the server's cleanup races it for the same kernel (a 404)
    for _ in range(100):
        kernels = json.loads((await jp_fetch("api", "kernels")).body)
        if not kernels:
            break
        await asyncio.sleep(0.1)
    assert not kernels


async def test_a_session_nobody_talked_to_yet_shuts_down_at_once(api, jp_fetch):
    """Waiting for a client to talk to the kernel never holds up a shutdown."""
    model = await open_notebook(jp_fetch, path="untouched.ipynb")
    assert (await api.session(model["id"]))["status"] == "starting"
    began = time.monotonic()
    await api.ok("DELETE", f"sessions/{model['id']}", params={"force": "true"}, timeout=20)
    assert time.monotonic() - began < 15
    assert (await api.call("GET", f"sessions/{model['id']}")).code == 404
    await jp_fetch("api", "sessions", model["id"], method="DELETE", raise_error=False)
