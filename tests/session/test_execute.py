"""REST execute and the execution history."""

from ..support.helpers import is_status


async def test_execute_ok_and_error(api):
    session_id = await api.started()
    reply = await api.execute(
        session_id,
        "from IPython.display import display, JSON\n"
        "print('out'); display(JSON({'j': [1]})); {'a': 1}",
    )
    assert reply["status"] == "ok" and reply["execution_count"] == 1
    # Positron's ExecuteOutput: `type` and `stream_name`; MIME values are strings
    assert reply["output"][0] == {"type": "stream", "stream_name": "stdout", "text": "out\n"}
    display = reply["output"][1]
    assert display["type"] == "display_data" and display["data"]["application/json"] == '{"j": [1]}'
    assert len(reply["output"]) == 2  # the execute_result is `data`, not an item
    assert reply["data"]["text/plain"] == "{'a': 1}"
    reply = await api.execute(session_id, "raise ValueError('nope')")
    assert reply["status"] == "error"
    assert reply["error_name"] == "ValueError" and reply["error_message"] == "nope"
    assert any("ValueError" in line for line in reply["error_traceback"])
    error = reply["output"][-1]
    assert error["type"] == "error" and error["error_name"] == "ValueError"
    assert error["error_message"] == "nope" and error["error_traceback"]
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_execute_bad_requests(api):
    session_id = await api.create()
    r = await api.call("POST", f"sessions/{session_id}/execute", {"code": "1"})
    assert r.code == 409 and r.json["code"] == "KS-3"
    for body, field in [
        ({}, "code"),
        ({"code": 1}, "code"),
        ({"code": "1", "silent": "no"}, "silent"),
        ({"code": "1", "timeout_seconds": -1}, "timeout_seconds"),
    ]:
        r = await api.call("POST", f"sessions/{session_id}/execute", body)
        assert r.code == 400 and field in r.json["message"], (body, r)
    r = await api.call("POST", "sessions/nope/execute", {"code": "1"})
    assert r.code == 404


async def test_execute_timeout_interrupts_and_the_session_stays_usable(api):
    session_id = await api.started()
    r = await api.call(
        "POST",
        f"sessions/{session_id}/execute",
        {
            "code": "import time\nprint('before', flush=True)\ntime.sleep(60)",
            "timeout_seconds": 1.5,
        },
    )
    assert r.code == 504 and r.json["code"] == "timeout"
    assert r.json["reply"]["output"][0]["text"] == "before\n"
    # submitted at once: it waits behind the interrupted request, and is not aborted by it
    reply = await api.execute(session_id, "'usable'")
    assert reply["data"]["text/plain"] == "'usable'"
    history = await api.ok("GET", f"sessions/{session_id}/history")
    assert history[-2]["status"] == "error" and history[-2]["error"]["name"] == "KeyboardInterrupt"
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_execute_timeout_of_a_queued_request_cancels_it(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    slow = ws.execute("import time; time.sleep(2)")
    await ws.until(lambda m: is_status(m, "busy", slow))
    r = await api.call(
        "POST", f"sessions/{session_id}/execute", {"code": "never = 1", "timeout_seconds": 0.5}
    )
    assert r.code == 504 and r.json["reply"]["status"] == "aborted"
    await ws.reply_to(slow)
    reply = await api.execute(session_id, "'never' in globals()")
    assert reply["data"]["text/plain"] == "False"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_history_records_websocket_and_rest_executions(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    msg_id = ws.execute("print('from ws')")
    await ws.reply_to(msg_id)
    await ws.idle_of(msg_id)
    await api.execute(session_id, "1/0")
    await api.execute(session_id, "print('x' * 100000)")
    history = await api.ok("GET", f"sessions/{session_id}/history")
    assert [h["source"] for h in history] == ["websocket", "rest", "rest"]
    first, failed, big = history
    assert first["msg_id"] == msg_id and first["input"] == "print('from ws')"
    assert first["output"] == "from ws\n" and first["status"] == "ok" and not first["truncated"]
    assert first["queued_at"] <= first["started_at"] <= first["finished_at"]
    assert failed["status"] == "error" and failed["error"]["name"] == "ZeroDivisionError"
    assert failed["error"]["message"] == "division by zero" and failed["error"]["traceback"]
    assert big["truncated"] and len(big["output"]) < 5000
    assert big["output"].startswith("xxx") and big["output"].rstrip().endswith("xxx")
    last = await api.ok("GET", f"sessions/{session_id}/history", params={"limit": 1})
    assert last == [big]
    for bad in ("0", "-1", "x", "²"):
        r = await api.call("GET", f"sessions/{session_id}/history", params={"limit": bad})
        assert r.code == 400
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_history_is_bounded(api, supervisor):
    supervisor.config.history_size = 3
    session_id = await api.started()
    for i in range(5):
        await api.execute(session_id, f"{i}")
    history = await api.ok("GET", f"sessions/{session_id}/history")
    assert [h["input"] for h in history] == ["2", "3", "4"]
    await api.ok("POST", f"sessions/{session_id}/kill")
