"""Notebook cells outlive the browser: per cell id the latest execution's outputs, kept by
the supervisor whoever is connected, bounded, persisted, and delivered live to a notebook
that connects again."""

import asyncio
import json
import logging
import signal
import time
import uuid
from types import SimpleNamespace

import pytest
import tornado.httpclient
import tornado.websocket

from session_ext.session.cells import NotebookCells
from session_ext.session.queue import QueuedRequest
from session_ext.wire.messages import KernelMessage

from ..support.helpers import WAIT, Channel, StandaloneServer, execute_request, http_json
from ..support.kernel_ws import StockSocket, open_notebook

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def cell_request(code, cell_id, msg_id=None):
    msg = execute_request(code, msg_id or uuid.uuid4().hex)
    msg["metadata"] = {"cellId": cell_id}
    return msg


def send_cell(ws: StockSocket, code, cell_id):
    """An execute_request as JupyterLab sends it (with metadata.cellId)."""
    return ws.execute(code, metadata={"cellId": cell_id})


async def cells_of(api, session_id):
    return (await api.ok("GET", f"sessions/{session_id}/cells"))["cells"]


async def until_cells(api, session_id, predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        cells = {c["cell_id"]: c for c in await cells_of(api, session_id)}
        if predicate(cells):
            return cells
        assert time.monotonic() < deadline, f"timed out; cells: {cells}"
        await asyncio.sleep(0.1)


def all_done(*ids):
    return lambda cells: all(
        cells.get(i, {}).get("status") in ("ok", "error", "aborted") for i in ids
    )


# --- the bookkeeping alone ---------------------------------------------------------------


def iopub(msg_type, parent, **content):
    frames = [
        json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": msg_type}).encode(),
        json.dumps({"msg_id": parent}).encode(),
        b"{}",
        json.dumps(content).encode(),
    ]
    return KernelMessage("iopub", frames)


def started(cells, code, cell_id):
    request = QueuedRequest(cell_request(code, cell_id), None, "jupyter_server")
    cells.queued(request)
    cells.started(request)
    return request.msg_id


def test_outputs_take_nbformat_shape_with_displays_updated_and_cleared():
    changes = []
    cells = NotebookCells(10_000, 100_000, lambda cell, urgent: changes.append(urgent))
    a = started(cells, "print('x'); display(...)", "a")
    cells.kernel_message(iopub("execute_input", a, execution_count=7, code=""))
    cells.kernel_message(iopub("stream", a, name="stdout", text="one\n"))
    cells.kernel_message(iopub("stream", a, name="stdout", text="two\n"))
    cells.kernel_message(
        iopub(
            "display_data", a, data={"text/plain": "v1"}, metadata={}, transient={"display_id": "d"}
        )
    )
    cells.kernel_message(
        iopub("execute_result", a, data={"text/plain": "42"}, metadata={}, execution_count=7)
    )
    b = started(cells, "update", "b")
    cells.kernel_message(
        iopub(
            "update_display_data",
            b,
            data={"text/plain": "v2"},
            metadata={},
            transient={"display_id": "d"},
        )
    )
    cells.kernel_message(iopub("stream", b, name="stdout", text="gone\n"))
    cells.kernel_message(iopub("clear_output", b, wait=True))
    assert cells.cells["b"].outputs[0]["text"] == "gone\n"  # until the next output
    cells.kernel_message(iopub("error", b, ename="E", evalue="v", traceback=["tb"]))
    cells.finished(a, "ok")
    cells.finished(b, "error")
    got = {c["cell_id"]: c for c in cells.to_json()}
    assert got["a"]["execution_count"] == 7 and got["a"]["status"] == "ok"
    assert got["a"]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "one\ntwo\n"},
        {"output_type": "display_data", "data": {"text/plain": "v2"}, "metadata": {}},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "42"},
            "metadata": {},
            "execution_count": 7,
        },
    ]
    assert got["b"]["outputs"] == [
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["tb"]}
    ]
    assert True in changes and False in changes
    # a cell run again: only its latest execution is kept
    again = started(cells, "print('x')", "a")
    assert cells.cells["a"].msg_id == again and cells.cells["a"].outputs == []


def test_bounds_drop_the_oldest_outputs_and_say_so():
    cells = NotebookCells(1000, 2200, lambda *_: None)
    a = started(cells, "", "a")
    for i in range(20):
        cells.kernel_message(
            iopub("display_data", a, data={"text/plain": f"out {i} " + "x" * 40}, metadata={})
        )
    outputs = cells.cells["a"].outputs
    assert outputs[0]["name"] == "stderr" and "earlier outputs" in outputs[0]["text"]
    assert outputs[-1]["data"]["text/plain"].startswith("out 19")  # the newest stay
    assert cells.cells["a"].outputs_dropped == 21 - len(outputs)
    assert cells.cells["a"].size <= 1000 + len(json.dumps(outputs[0]))
    # one stream output too large on its own keeps its tail
    b = started(cells, "", "b")
    cells.kernel_message(iopub("stream", b, name="stdout", text="head" + "y" * 3000 + "tail"))
    kept = cells.cells["b"].outputs
    assert kept[-1]["text"].endswith("tail") and not kept[-1]["text"].startswith("head")
    assert cells.cells["b"].to_json()["outputs_dropped"] == 0 and "characters" in kept[0]["text"]
    # past the session's bound, the oldest cell's outputs go first
    c = started(cells, "", "c")
    for _ in range(8):
        cells.kernel_message(iopub("display_data", c, data={"text/plain": "z" * 40}, metadata={}))
    assert cells.total <= 2200 + 3 * 250  # markers may add a little
    assert cells.cells["a"].outputs_dropped > 0 and len(cells.cells["c"].outputs) == 8


# --- through jupyter_server's own websocket, as JupyterLab runs a notebook -------------


async def test_cells_are_kept_per_cell_id_whoever_watches(api, jp_fetch):
    model = await open_notebook(jp_fetch, path="kept.ipynb")
    session_id = model["id"]
    ws = await StockSocket.open(api, model["kernel"]["id"], v1=True)
    await api.wait_status(session_id, "idle")
    send_cell(ws, "print('first')", "c-1")
    send_cell(
        ws,
        "from IPython.display import Image, display\n"
        f"import base64; display(Image(base64.b64decode('{PNG}')))",
        "c-plot",
    )
    send_cell(ws, "1/0", "c-err")
    send_cell(ws, "'never'", "c-skipped")  # aborted: stop_on_error
    rerun = send_cell(ws, "print('second')", "c-1")  # (aborted too: behind the error)
    cells = await until_cells(api, session_id, all_done("c-1", "c-plot", "c-err", "c-skipped"))
    assert cells["c-plot"]["status"] == "ok" and cells["c-plot"]["execution_count"] == 2
    assert "image/png" in cells["c-plot"]["outputs"][0]["data"]
    assert cells["c-err"]["status"] == "error"
    assert cells["c-err"]["outputs"][0]["ename"] == "ZeroDivisionError"
    assert cells["c-skipped"]["status"] == "aborted" and cells["c-skipped"]["outputs"] == []
    assert cells["c-1"]["msg_id"] == rerun and cells["c-1"]["code"] == "print('second')"
    send_cell(ws, "print('third')", "c-1")
    cells = await until_cells(api, session_id, lambda c: c["c-1"]["outputs"])
    cells = await until_cells(api, session_id, all_done("c-1"))
    assert cells["c-1"]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "third\n"}
    ]
    body = await api.ok("GET", f"sessions/{session_id}/cells")  # validated against openapi.yaml
    assert body["notebook_uri"].endswith("kept.ipynb")
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")


async def test_cells_run_as_the_notebook_opens_are_kept(api, jp_fetch, monkeypatch):
    """Run at once, while the supervisor is still attaching to the new kernel: held until it
    is attached, then queued like every other cell (in order)."""
    from session_ext.kernel.process import KernelProcess

    wait = KernelProcess.wait_for_server_kernel

    async def slow_attach(self, wanted):  # the race made certain: the attach takes a second
        await asyncio.sleep(1)
        return await wait(self, wanted)

    monkeypatch.setattr(KernelProcess, "wait_for_server_kernel", slow_attach)
    model = await open_notebook(jp_fetch, path="early.ipynb")
    session_id = model["id"]
    ws = await StockSocket.open(api, model["kernel"]["id"], v1=True)
    assert (await api.session(session_id))["status"] == "starting"
    first = send_cell(ws, "print('first')", "e1")
    second = send_cell(ws, "print('second')", "e2")
    assert (await ws.reply_to(first))["content"]["execution_count"] == 1
    assert (await ws.reply_to(second))["content"]["execution_count"] == 2
    cells = await until_cells(api, session_id, all_done("e1", "e2"))
    assert [cells[i]["outputs"][0]["text"] for i in ("e1", "e2")] == ["first\n", "second\n"]
    history = await api.ok("GET", f"sessions/{session_id}/history")
    assert [h["source"] for h in history] == ["jupyter_server", "jupyter_server"]
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")


async def test_closing_the_tab_aborts_nothing_and_writes_to_no_closed_socket(api, jp_fetch, caplog):
    model = await open_notebook(jp_fetch, path="closed.ipynb")
    session_id = model["id"]
    ws = await StockSocket.open(api, model["kernel"]["id"], v1=True)
    await api.wait_status(session_id, "idle")
    send_cell(ws, "import time; time.sleep(1.5); print('done-1')", "a")
    send_cell(ws, "print('done-2')", "b")
    send_cell(ws, "print('done-3')", "c")
    await ws.until(lambda m: m["header"]["msg_type"] == "execute_input")
    ws.conn.close()  # the tab closes while a cell runs and two wait
    with caplog.at_level(logging.ERROR):
        cells = await until_cells(api, session_id, all_done("a", "b", "c"))
        await asyncio.sleep(0.3)
    assert [cells[i]["status"] for i in "abc"] == ["ok"] * 3
    assert [cells[i]["outputs"][0]["text"] for i in "abc"] == ["done-1\n", "done-2\n", "done-3\n"]
    assert [cells[i]["execution_count"] for i in "abc"] == [1, 2, 3]
    assert not [r for r in caplog.records if "Stream is closed" in r.getMessage() or r.exc_info]
    # the kernel still talks to the supervisor, and shuts down as stock
    assert (await api.execute(session_id, "'alive'"))["data"]["text/plain"] == "'alive'"
    response = await jp_fetch("api", "sessions", session_id, method="DELETE")
    assert response.code == 204


async def test_a_reopened_notebook_gets_the_replies_of_what_still_runs(api, jp_fetch):
    model = await open_notebook(jp_fetch, path="reopened.ipynb")
    session_id, kernel_id = model["id"], model["kernel"]["id"]
    first = await StockSocket.open(api, kernel_id, v1=True)
    await api.wait_status(session_id, "idle")
    slow = send_cell(first, "import time; time.sleep(2); print('slow')", "a")
    queued = send_cell(first, "print('queued')", "b")
    await first.until(lambda m: m["header"]["msg_type"] == "execute_input")
    first.conn.close()
    await asyncio.sleep(0.3)
    second = await StockSocket.open(api, kernel_id, v1=True)  # a reload: a new client session
    slow_reply = await second.reply_to(slow)
    assert slow_reply["content"]["status"] == "ok" and slow_reply["content"]["execution_count"] == 1
    assert (await second.reply_to(queued))["content"]["status"] == "ok"
    await second.idle_of(queued)  # (iopub and shell are not ordered against each other)
    outputs = [m["content"]["text"] for m in second.received if m["header"]["msg_type"] == "stream"]
    assert outputs == ["slow\n", "queued\n"]  # live, as they came
    second.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")


# --- persisted with the session -----------------------------------------------------------


async def channel_of(server, session_id):
    request = tornado.httpclient.HTTPRequest(
        server.url(f"sessions/{session_id}/channels").replace("http", "ws", 1),
        headers={"Authorization": f"Bearer {server.info['bearer_token']}"},
    )
    return Channel(await asyncio.wait_for(tornado.websocket.websocket_connect(request), WAIT))


def wait_for(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def wait_cells(server, session_id, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        code, body = server.call("GET", f"sessions/{session_id}/cells")
        if code == 200:
            cells = {c["cell_id"]: c for c in body["cells"]}
            if predicate(cells):
                return cells
        assert time.monotonic() < deadline, f"timed out: {code} {body}"
        time.sleep(0.1)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_cells_survive_a_durable_server_restart(server, how):
    server.start()
    server.ok(
        "PUT",
        "sessions",
        {
            "session_id": "nb",
            "kernel_name": "python3",
            "session_mode": "notebook",
            "notebook_uri": "file:///tmp/durable.ipynb",
        },
    )
    server.ok("POST", "sessions/nb/start", timeout=60)
    channel = await channel_of(server, "nb")
    done = cell_request("print('before')", "done")
    channel.send(done)
    await channel.reply_to(done["header"]["msg_id"])
    running = cell_request(
        "import time; print('started', flush=True); time.sleep(3); print('finished')", "running"
    )
    channel.send(running)
    queued = cell_request("print('queued')", "queued")
    channel.send(queued)
    await channel.until(lambda m: m.get("executionQueued") == queued["header"]["msg_id"])
    await channel.until(
        lambda m: m.get("channel") == "iopub" and m["header"]["msg_type"] == "stream"
    )
    await asyncio.sleep(1.2)  # the running cell's first output is written (within a second)
    server.stop(how)
    channel.close()

    server.start()
    cells = wait_cells(server, "nb", all_done("done", "running", "queued"))
    assert cells["done"]["outputs"][0]["text"] == "before\n" and cells["done"]["status"] == "ok"
    assert cells["queued"]["status"] == "ok" and cells["queued"]["outputs"][0]["text"] == "queued\n"
    out = "".join(o.get("text", "") for o in cells["running"]["outputs"])
    assert out.startswith("started\n")
    # it finished on the re-attached kernel (its output collected again), or while the
    # server was down (then it says so)
    assert (cells["running"]["status"] == "ok" and out == "started\nfinished\n") or (
        cells["running"]["status"] == "aborted" and "server was down" in cells["running"]["reason"]
    )
    server.ok("DELETE", "sessions/nb?force=true", timeout=30)


@pytest.mark.parametrize(
    "renamed", [False, True], ids=["created-on-its-path", "renamed-like-jupyterlab"]
)
async def test_a_jupyterlab_notebook_finds_its_cells_after_a_durable_restart(tmp_path, renamed):
    """jupyter_server's kernels stop with it; the next session of the same notebook gets the
    cells the earlier one ran (those cut short marked aborted). JupyterLab creates the
    session on a made-up path (a UUID) and then renames it to the notebook's (renamed)."""
    server = StandaloneServer(
        tmp_path, "--SessionExtApp.keep_kernels_on_shutdown=True", app="server"
    )
    root = lambda: server.info["base_path"].rsplit("/supervisor", 1)[0]  # noqa: E731
    token = lambda: server.info["bearer_token"]  # noqa: E731
    body = {"path": "lab.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    try:
        server.start()
        _, model = http_json("POST", f"{root()}/api/sessions", token(), body)
        port = int(root().rsplit(":", 1)[1].split("/")[0])
        where = SimpleNamespace(
            port=port, base_url="/", auth_header={"Authorization": f"token {token()}"}
        )
        ws = await StockSocket.open(where, model["kernel"]["id"], v1=True)
        wait_for(lambda: server.ok("GET", f"sessions/{model['id']}")["status"] == "idle")
        send_cell(ws, "print('ran before')", "kept")
        send_cell(ws, "import time; time.sleep(60)", "cut")
        await ws.until(
            lambda m: m["header"]["msg_type"] == "execute_input" and "sleep" in m["content"]["code"]
        )
        await asyncio.sleep(1.2)
        ws.conn.close()
        server.stop()
        server.start()
        if renamed:
            _, model = http_json(
                "POST", f"{root()}/api/sessions", token(), {**body, "path": "0f1e2d3c"}
            )
            assert not server.ok("GET", f"sessions/{model['id']}/cells")["cells"]
            http_json(
                "PATCH", f"{root()}/api/sessions/{model['id']}", token(), {"path": "lab.ipynb"}
            )
        else:
            _, model = http_json("POST", f"{root()}/api/sessions", token(), body)
        cells = wait_cells(server, model["id"], all_done("kept", "cut"))
        assert (
            cells["kept"]["outputs"][0]["text"] == "ran before\n"
            and cells["kept"]["status"] == "ok"
        )
        assert cells["cut"]["status"] == "aborted" and "server stopped" in cells["cut"]["reason"]
        http_json("DELETE", f"{root()}/api/sessions/{model['id']}", token())
    finally:
        server.stop()
        server.cleanup()


async def test_the_cell_bound_applies_to_a_real_kernel(api, jp_fetch, supervisor):
    supervisor.config.max_cell_output_bytes = 4096  # (the trait's value, for new sessions)
    model = await open_notebook(jp_fetch, path="bounded.ipynb")
    session_id = model["id"]
    ws = await StockSocket.open(api, model["kernel"]["id"], v1=True)
    await api.wait_status(session_id, "idle")
    send_cell(ws, "for i in range(2000): print(f'line {i}', flush=True)", "big")
    cells = await until_cells(api, session_id, all_done("big"))
    outputs = cells["big"]["outputs"]
    assert "dropped" in outputs[0]["text"] and outputs[-1]["text"].endswith("line 1999\n")
    assert len(json.dumps(outputs)) < 4096 + 400
    ws.conn.close()
    await jp_fetch("api", "sessions", session_id, method="DELETE")
