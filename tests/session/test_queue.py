"""The supervisor-held execution queue: order, executionQueued, cancel, interrupt, errors."""

import asyncio

import pytest

from session_ext.store.records import session_model

from ..support.helpers import is_status, stream_text


def aborted(msg):
    return msg["content"] == {"status": "aborted"}


async def queue_of(api, session_id):
    return await api.ok("GET", f"sessions/{session_id}/queue")


async def test_requests_wait_their_turn(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(1.5); print('slow')")
    quick = [ws.execute(f"print({i})") for i in range(3)]
    queued = [
        (await ws.until(lambda m: "executionQueued" in m))["executionQueued"] for _ in range(3)
    ]
    assert queued == quick
    q = await queue_of(api, session_id)
    assert q["active"]["msg_id"] == slow and q["length"] == 3
    assert [p["msg_id"] for p in q["pending"]] == quick and q["pending"][0]["code"] == "print(0)"
    model = await api.session(session_id)
    assert model["execution_queue"]["length"] == 3
    assert model["execution_queue"]["active"]["header"]["msg_id"] == slow
    assert model["execution_queue"]["pending"][1]["content"]["code"] == "print(1)"
    for msg_id in [slow, *quick]:
        await ws.reply_to(msg_id)
        await ws.idle_of(msg_id)
    replies = [m["parent_header"]["msg_id"] for m in ws.received if m.get("channel") == "shell"]
    assert replies == [slow, *quick]
    assert [stream_text(ws.received, m) for m in quick] == ["0\n", "1\n", "2\n"]
    assert (await queue_of(api, session_id)) == {"active": None, "length": 0, "pending": []}
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


@pytest.mark.parametrize("mode", ["signal", "message"])
async def test_interrupt_aborts_the_pending_requests(api, mode):
    session_id = await api.started(interrupt_mode=mode)
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(30)")
    queued = [ws.execute(f"ran_{i} = True") for i in range(2)]
    await ws.until(lambda m: m.get("executionQueued") == queued[-1])
    await ws.seen_or_until(lambda m: m.get("header", {}).get("msg_type") == "execute_input")
    await asyncio.sleep(0.3)  # into the sleep: ipykernel ignores a SIGINT before it runs code
    await api.ok("POST", f"sessions/{session_id}/interrupt")
    interrupted = await ws.reply_to(slow)
    assert interrupted["content"]["ename"] == "KeyboardInterrupt"
    for msg_id in queued:
        assert aborted(await ws.reply_to(msg_id))
        await ws.idle_of(msg_id)
    reply = await api.execute(session_id, "print('ran_0' in globals(), 'ran_1' in globals())")
    assert reply["output"][0]["text"] == "False False\n"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_cancel_one_pending_request(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(1)")
    keep, cancel = ws.execute("kept = 1"), ws.execute("cancelled = 1")
    await ws.until(lambda m: m.get("executionQueued") == cancel)
    assert await api.ok("DELETE", f"sessions/{session_id}/queue/{cancel}") is None
    assert aborted(await ws.reply_to(cancel))
    r = await api.call("DELETE", f"sessions/{session_id}/queue/{cancel}")
    assert r.code == 404
    r = await api.call("DELETE", f"sessions/{session_id}/queue/{slow}")
    assert r.code == 409
    await ws.idle_of(keep)
    reply = await api.execute(session_id, "print('kept' in globals(), 'cancelled' in globals())")
    assert reply["output"][0]["text"] == "True False\n"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_stop_on_error_aborts_what_follows(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    failing = ws.execute("import time; time.sleep(0.5); 1/0")
    after = ws.execute("after = 1")
    lenient = ws.execute("1/0", stop_on_error=False)
    await ws.until(lambda m: m.get("executionQueued") == lenient)
    assert (await ws.reply_to(failing))["content"]["status"] == "error"
    assert aborted(await ws.reply_to(after))
    assert aborted(await ws.reply_to(lenient))
    # a request with stop_on_error false does not abort the ones behind it
    first = ws.execute("import time; time.sleep(0.5); 1/0", stop_on_error=False)
    second = ws.execute("second = 2")
    assert (await ws.reply_to(first))["content"]["status"] == "error"
    assert (await ws.reply_to(second))["content"]["status"] == "ok"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_kill_and_restart_answer_everything_waiting(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(30)")
    queued = ws.execute("1")
    await ws.until(lambda m: m.get("executionQueued") == queued)
    await api.ok("POST", f"sessions/{session_id}/restart", timeout=60)
    assert aborted(await ws.reply_to(slow))
    assert aborted(await ws.reply_to(queued))
    assert (await queue_of(api, session_id))["length"] == 0
    slow = ws.execute("import time; time.sleep(30)")
    await ws.until(lambda m: is_status(m, "busy", slow))
    await api.ok("POST", f"sessions/{session_id}/kill")
    assert aborted(await ws.reply_to(slow))
    ws.close()


async def test_duplicate_msg_id_is_refused(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    ws.execute("import time; time.sleep(0.5)", msg_id="same")
    ws.execute("1", msg_id="same")
    error = await ws.until(lambda m: "error" in m and m.get("kind") == "kernel")
    assert error["error"]["code"] == "conflict"
    await ws.reply_to("same")
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_many_requests_all_answered_in_order(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    ids = [ws.execute(f"x = {i}") for i in range(300)]
    await ws.reply_to(ids[-1], timeout=60)  # the reply and the idle come on different sockets
    await ws.idle_of(ids[-1])
    replies = [m["parent_header"]["msg_id"] for m in ws.received if m.get("channel") == "shell"]
    assert replies == ids
    reply = await api.execute(session_id, "x")
    assert reply["data"]["text/plain"] == "299"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_rest_execute_queues_behind_websocket_requests(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    ws.execute("import time; time.sleep(0.8); value = 'from websocket'")
    await asyncio.sleep(0.1)
    reply = await api.execute(session_id, "value")
    assert reply["data"]["text/plain"] == "'from websocket'"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_control_requests_do_not_make_a_running_cell_look_idle(api):
    """JupyterLab's debugger sends debug_requests on control while cells run; their iopub
    busy/idle must not turn the session idle while its active request still runs."""
    session_id = await api.started()
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(2)")
    await api.wait_status(session_id, "busy")
    ws.send(
        {
            "channel": "control",
            "header": {"msg_id": "ctl", "msg_type": "kernel_info_request"},
            "parent_header": {},
            "metadata": {},
            "content": {},
        }
    )
    await ws.idle_of("ctl")
    await asyncio.sleep(0.1)
    assert (await api.session(session_id))["status"] == "busy"
    await ws.reply_to(slow)
    await api.wait_status(session_id, "idle")
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_cancel_tells_the_client_the_kernel_is_still_busy(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(1.5)")
    cancel = ws.execute("1")
    await ws.until(lambda m: m.get("executionQueued") == cancel)
    await api.ok("DELETE", f"sessions/{session_id}/queue/{cancel}")
    await ws.idle_of(cancel)
    # right after the cancelled request's idle: a busy for the request still running
    still_busy = await ws.until(lambda m: is_status(m, "busy", slow))
    assert still_busy["header"]["msg_type"] == "status"
    await ws.reply_to(slow)
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_status_is_busy_whenever_a_request_is_active(api, supervisor):
    """The model follows the queue, not only the kernel's last iopub status: between one
    request's idle and the kernel's busy for the next, the session is still busy."""
    session_id = await api.started()
    session = supervisor.get(session_id)
    inconsistent, watching = [], True

    async def watch():
        while watching:
            model = session_model(session, pending_limit=0)
            if model["execution_queue"]["active"] is not None and model["status"] != "busy":
                inconsistent.append((model["status"], model["execution_queue"]["length"]))
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    ws = await api.channels(session_id)
    ids = [ws.execute(f"x{i} = {i}") for i in range(40)]
    for msg_id in ids:
        await ws.reply_to(msg_id)
    await ws.idle_of(ids[-1])
    watching = False
    await asyncio.wait_for(watcher, 5)
    assert inconsistent == []
    assert (await api.wait_status(session_id, "idle"))["execution_queue"]["active"] is None
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")
